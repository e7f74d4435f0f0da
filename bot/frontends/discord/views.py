"""Persistent alert components: buttons and selects whose ``custom_id`` carries the whole state.

A component's ``custom_id`` is ``p1:<action>:<mention_id>`` (version-tagged, ≤ 100 chars);
everything else lives in SQLite, so buttons on alerts posted before a restart keep working
(the classes in :data:`DYNAMIC_ITEMS` are registered once with ``add_dynamic_items``). Ids are
parsed strictly by the templates; ids of another version or shape reach :class:`StaleComponent`,
which answers that the button is out of date. A click runs a command of the core's review table
(bot/services/review_commands.py), reached through the bot (``ParleyBot.core.commands``): the
presser and the mention's state are checked on every click; this module adds only Discord's
plumbing (deferring within 3 seconds, the edit and instruction forms, ephemeral notes, the copy
of an alert that was clicked).

This module also builds an alert message (embed and components) for a mention's current state,
the one path used for new alerts, edits after a decision and ``/mention``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import discord

from bot.app import Core
from bot.domain.models import Draft, Mention, Reply
from bot.domain.states import MentionState, ReplyState
from bot.drafting.tweaks import MAX_INSTRUCTION_CHARS, TWEAKS
from bot.frontends.discord.bot import team_only
from bot.frontends.discord.interactions import (
    NO_PINGS,
    STALE,
    decider,
    guarded,
    parley_bot,
    tell,
)
from bot.frontends.discord.modals import EditModal, InstructionModal, modal_max_length
from bot.frontends.discord.render import decision_line, plain, render_alert
from bot.presentation import alert_view
from bot.services.review import NeedsConfirmation
from bot.services.review_commands import Order, Outcome, Verb, redraft_label

log = logging.getLogger(__name__)

FRONTEND = "discord"
VERSION = "p1"
CUSTOM_ID_LIMIT = 100
LABEL_LIMIT = 80
"""A button's label, and a select option's label and description (100; kept shorter)."""
OWN_INSTRUCTION = "own"
"""The tweak select's value for "write your own instruction" (opens a modal)."""


class Action(StrEnum):
    """What a button does; the value is its code in the ``custom_id``."""

    DRAFT = "dr"
    APPROVE = "ap"
    EDIT = "ed"
    REJECT = "rj"
    IGNORE = "ig"
    RETRY = "rt"
    CONFIRM = "ok"
    POST_ANYWAY = "pa"
    """Keep the presser's own text that the checks held back (ReviewService.confirm_edit)."""


_ID = r"[1-9][0-9]{0,11}"
_ACTIONS = "|".join(a.value for a in Action)
BUTTON_TEMPLATE = rf"{VERSION}:(?P<action>{_ACTIONS}):(?P<id>{_ID})"
VARIANT_TEMPLATE = rf"{VERSION}:vs:(?P<id>{_ID})"
TWEAK_TEMPLATE = rf"{VERSION}:tw:(?P<id>{_ID})"
_CURRENT = rf"{VERSION}:(?:(?:{_ACTIONS}|vs|tw):{_ID})"
STALE_TEMPLATE = rf"(?!{_CURRENT}\Z)p[0-9]{{1,3}}:\S{{1,96}}"
"""Any other ``p<version>:…`` id: an older or newer version, or a forged one."""


def button_id(action: Action, mention_id: int) -> str:
    """The ``custom_id`` of a review button."""
    return _checked(f"{VERSION}:{action.value}:{mention_id}", BUTTON_TEMPLATE)


def variant_select_id(mention_id: int) -> str:
    """The ``custom_id`` of the variant select."""
    return _checked(f"{VERSION}:vs:{mention_id}", VARIANT_TEMPLATE)


def tweak_select_id(mention_id: int) -> str:
    """The ``custom_id`` of the redraft select."""
    return _checked(f"{VERSION}:tw:{mention_id}", TWEAK_TEMPLATE)


def _checked(custom_id: str, template: str) -> str:
    if len(custom_id) > CUSTOM_ID_LIMIT or re.fullmatch(template, custom_id) is None:
        raise ValueError(f"not a valid custom_id: {custom_id!r}")
    return custom_id


# ---- what a click does: the core's review commands ------------------------------------------


_VERBS = {
    Action.DRAFT: Verb.DRAFT,
    Action.APPROVE: Verb.APPROVE,
    Action.REJECT: Verb.REJECT,
    Action.IGNORE: Verb.IGNORE,
    Action.RETRY: Verb.RETRY,
    Action.CONFIRM: Verb.CONFIRM,
    Action.POST_ANYWAY: Verb.POST_ANYWAY,
}
"""The buttons that run a command of the core's table (Edit opens a form first)."""


async def on_button(interaction: discord.Interaction, action: Action, mention_id: int) -> None:
    """A review button: Edit opens the form; the others run their command (deferred within
    Discord's 3 seconds) and show the new state."""
    if action is Action.EDIT:

        async def ask() -> None:
            await decider(interaction, mention_id)
            await interaction.response.send_modal(await _edit_modal(interaction, mention_id))

        await guarded(interaction, "button edit", ask)
        return
    await _review(interaction, _VERBS[action], mention_id)


async def redraft(interaction: discord.Interaction, mention_id: int, how: str) -> None:
    """New drafts following a tweak key or an instruction."""
    await _review(interaction, Verb.DRAFT, mention_id, text=how[:MAX_INSTRUCTION_CHARS])


async def _review(
    interaction: discord.Interaction,
    verb: Verb,
    mention_id: int,
    *,
    variant: int | None = None,
    text: str | None = None,
) -> None:
    """Run one review command for the presser: checked, deferred, run, answered, shown."""

    async def work() -> None:
        bot = parley_bot(interaction.client)
        actor = await decider(interaction, mention_id)
        wanted = Order(verb, mention_id, actor, variant=variant, text=text)
        await interaction.response.defer()
        try:
            done = await bot.core.commands.run(
                wanted, working=lambda _: tell(interaction, _working(wanted))
            )
        except NeedsConfirmation as held:
            await offer_anyway(interaction, held)
            return
        note = _NOTES.get(wanted.verb)
        if note is not None:
            await tell(interaction, note(done))
        await show(interaction, mention_id)

    await guarded(interaction, _WHAT.get(verb, f"button {verb}"), work)


_WHAT = {Verb.USE: "variant select", Verb.EDIT: "edit"}
"""How the log names a failed interaction (else after its button)."""


def _working(order: Order) -> str:
    if not order.text:
        return f"📝 Drafting #{order.mention_id}…"
    return f"📝 Redrafting #{order.mention_id}: {redraft_label(order)}…"


_NOTES: dict[Verb, Callable[[Outcome], str]] = {
    Verb.EDIT: lambda done: f"{done.answer} Press Approve on the alert to queue it.",
    Verb.POST_ANYWAY: lambda done: (
        f"Kept as you wrote it (recorded). Approve #{done.order.mention_id} to queue it."
    ),
}
"""What the presser alone is told after a command (the others show in the alert)."""


async def _edit_modal(interaction: discord.Interaction, mention_id: int) -> EditModal:
    """The edit form, prefilled with the selected draft (NotFound if the mention is unknown)."""
    core = parley_bot(interaction.client).core
    mention = await core.store.mentions.get(mention_id)
    draft = await core.store.drafts.selected(mention_id)
    size = modal_max_length(mention.platform, core.review.default_limit)
    text = draft.text if draft else ""
    return EditModal(mention_id, text, size, version=VERSION, on_submit=_edited)


async def _edited(interaction: discord.Interaction, mention_id: int, text: str) -> None:
    await _review(interaction, Verb.EDIT, mention_id, text=text)


async def _open_instruction(interaction: discord.Interaction, mention_id: int) -> None:
    async def ask() -> None:
        await decider(interaction, mention_id)
        modal = InstructionModal(mention_id, version=VERSION, on_submit=redraft)
        await interaction.response.send_modal(modal)

    await guarded(interaction, "redraft select", ask)


async def offer_anyway(interaction: discord.Interaction, held: NeedsConfirmation) -> None:
    """Tell the editor (only them) why their text was held, with a Post anyway button."""
    reasons = "\n".join(f"• {reason}" for reason in held.reasons)
    text = (
        f"⚠️ Your reply to #{held.mention_id} was held:\n{reasons}\n"
        "Press Post anyway to keep it as written (the team log records it), "
        "or press Edit on the alert to write it again."
    )
    try:
        await interaction.followup.send(
            plain(text),
            view=held_edit_view(held.mention_id),
            ephemeral=True,
            allowed_mentions=NO_PINGS,
        )
    except discord.HTTPException as exc:
        log.warning("could not offer 'post anyway' for #%d: %s", held.mention_id, exc)


async def show(interaction: discord.Interaction, mention_id: int) -> None:
    """Edit the clicked message to the new state, unless it is the alert the alert delivery
    keeps up to date (it edits that one on the core's MentionChanged event)."""
    message = interaction.message
    if message is None:
        return
    core = parley_bot(interaction.client).core
    mention, embed, view = await current_alert(core, mention_id)
    if parse_ref(mention.alert_refs.get(FRONTEND)) == (message.channel.id, message.id):
        return
    try:
        await interaction.edit_original_response(embed=embed, view=view)
    except discord.HTTPException as exc:
        log.warning("could not update a copy of mention #%d: %s", mention_id, exc)


# ---- the persistent components ------------------------------------------------------------


class TeamOnly:
    """Mixed into every component and modal: interactions from another server or a DM are
    refused before their callback runs (discord.py calls ``interaction_check`` first)."""

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        """Only the team's server (see bot/frontends/discord/bot.py)."""
        return await team_only(interaction)


class ReviewButton(
    TeamOnly, discord.ui.DynamicItem[discord.ui.Button[Any]], template=BUTTON_TEMPLATE
):
    """Draft, Approve, Edit, Reject, Ignore, Retry or Posted it, for one mention."""

    def __init__(
        self,
        action: Action,
        mention_id: int,
        *,
        label: str = "",
        emoji: str | None = None,
        style: discord.ButtonStyle = discord.ButtonStyle.secondary,
    ) -> None:
        super().__init__(
            discord.ui.Button(
                label=label[:LABEL_LIMIT] or None,
                emoji=emoji,
                style=style,
                custom_id=button_id(action, mention_id),
            )
        )
        self.action = action
        self.mention_id = mention_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[discord.Client],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> ReviewButton:
        """Rebuild the button from a click (the label is irrelevant to the callback)."""
        return cls(Action(match["action"]), int(match["id"]))

    async def callback(self, interaction: discord.Interaction[discord.Client]) -> None:
        """Run the button's review command (or open the edit form)."""
        await on_button(interaction, self.action, self.mention_id)


class VariantSelect(
    TeamOnly, discord.ui.DynamicItem[discord.ui.Select[Any]], template=VARIANT_TEMPLATE
):
    """Choose which draft variant Approve will post."""

    def __init__(self, mention_id: int, options: list[discord.SelectOption]) -> None:
        super().__init__(
            discord.ui.Select(
                custom_id=variant_select_id(mention_id),
                placeholder="Choose the draft to post",
                options=options,
            )
        )
        self.mention_id = mention_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[discord.Client],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> VariantSelect:
        """Rebuild the select from a choice; the chosen value arrives in ``item.values``."""
        options = item.options if isinstance(item, discord.ui.Select) else []
        return cls(int(match["id"]), list(options) or [discord.SelectOption(label="?")])

    async def callback(self, interaction: discord.Interaction[discord.Client]) -> None:
        """Choose the variant (a non-number is a forged value)."""
        value = self.item.values[0] if self.item.values else ""
        if not value.isdigit() or not 0 < int(value) < 100:
            await tell(interaction, STALE)
            return
        await _review(interaction, Verb.USE, self.mention_id, variant=int(value))


class TweakSelect(
    TeamOnly, discord.ui.DynamicItem[discord.ui.Select[Any]], template=TWEAK_TEMPLATE
):
    """Redraft every variant: shorter, warmer, more formal, in the brand's language, or as told."""

    def __init__(self, mention_id: int) -> None:
        options = [discord.SelectOption(label=t.label, value=t.key) for t in TWEAKS]
        options.append(
            discord.SelectOption(label="Your own instruction…", value=OWN_INSTRUCTION, emoji="✍️")
        )
        super().__init__(
            discord.ui.Select(
                custom_id=tweak_select_id(mention_id), placeholder="Redraft…", options=options
            )
        )
        self.mention_id = mention_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[discord.Client],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> TweakSelect:
        """Rebuild the select from a choice."""
        return cls(int(match["id"]))

    async def callback(self, interaction: discord.Interaction[discord.Client]) -> None:
        """Redraft with the tweak, or open the instruction form (an unknown key is stale or
        forged)."""
        value = self.item.values[0] if self.item.values else ""
        if value != OWN_INSTRUCTION and value not in {t.key for t in TWEAKS}:
            await tell(interaction, STALE)
            return
        if value == OWN_INSTRUCTION:
            await _open_instruction(interaction, self.mention_id)
        else:
            await redraft(interaction, self.mention_id, value)


class StaleComponent(
    TeamOnly, discord.ui.DynamicItem[discord.ui.Item[Any]], template=STALE_TEMPLATE
):
    """Any Parley component id this version does not produce: answered, never acted on."""

    def __init__(self, item: discord.ui.Item[Any]) -> None:
        super().__init__(item)

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[discord.Client],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> StaleComponent:
        """Wrap whatever component was clicked."""
        return cls(item)

    async def callback(self, interaction: discord.Interaction[discord.Client]) -> None:
        """Say the button is out of date (only to the presser)."""
        await tell(interaction, STALE)


DYNAMIC_ITEMS: tuple[type[discord.ui.DynamicItem[Any]], ...] = (
    ReviewButton,
    VariantSelect,
    TweakSelect,
    StaleComponent,
)
"""Registered by the Review cog when it loads (``bot.add_dynamic_items(*DYNAMIC_ITEMS)``)."""


# ---- an alert message for a mention's current state -------------------------------------------


_Style = discord.ButtonStyle


def _button(
    action: Action, mid: int, label: str, emoji: str, style: discord.ButtonStyle
) -> ReviewButton:
    return ReviewButton(action, mid, label=label, emoji=emoji, style=style)


def variant_options(drafts: list[Draft]) -> list[discord.SelectOption]:
    """One option per draft (Discord allows 25), the selected one marked as default."""
    return [
        discord.SelectOption(
            label=f"Draft {d.variant}",
            value=str(d.variant),
            description=plain(" ".join(d.text.split()), LABEL_LIMIT) or None,
            default=d.selected,
        )
        for d in drafts[:25]
    ]


def alert_components(
    mention: Mention, drafts: list[Draft], reply: Reply | None
) -> discord.ui.View | None:
    """The components an alert offers in the mention's current state (None: none).

    Rows come from the order items are added in: a select fills a row of its own, buttons
    share one. (No explicit rows: discord.py 2.7 ignores ``row`` on selects.)
    """
    mid = mention.id
    view = discord.ui.View(timeout=None)
    if reply is not None and reply.state is ReplyState.DEAD:
        view.add_item(_button(Action.RETRY, mid, "Retry", "🔁", _Style.primary))
        view.add_item(_button(Action.EDIT, mid, "Edit", "✏️", _Style.secondary))
    elif reply is not None and reply.state is ReplyState.AWAITING_MANUAL:
        view.add_item(_button(Action.CONFIRM, mid, "Posted it", "✅", _Style.success))
    elif mention.state is MentionState.DRAFTED:
        if len(drafts) > 1:
            view.add_item(VariantSelect(mid, variant_options(drafts)))
        selected = next((d for d in drafts if d.selected), None)
        # Crisis/legal mentions need a person's own text: ReviewService refuses one-tap approval.
        if mention.intent != "crisis_legal" or (
            selected is not None and selected.origin.startswith("edit:")
        ):
            view.add_item(_button(Action.APPROVE, mid, "Approve", "✅", _Style.success))
        view.add_item(_button(Action.EDIT, mid, "Edit", "✏️", _Style.primary))
        view.add_item(_button(Action.DRAFT, mid, "New drafts", "🔄", _Style.secondary))
        view.add_item(_button(Action.REJECT, mid, "Reject", "🚫", _Style.danger))
        view.add_item(_button(Action.IGNORE, mid, "Ignore", "🙈", _Style.secondary))
        view.add_item(TweakSelect(mid))
    elif mention.state in (MentionState.NEW, MentionState.BACKLOG, MentionState.ALERTED):
        view.add_item(_button(Action.DRAFT, mid, "Draft", "📝", _Style.primary))
        view.add_item(_button(Action.EDIT, mid, "Edit", "✏️", _Style.secondary))
        view.add_item(_button(Action.REJECT, mid, "Reject", "🚫", _Style.danger))
        view.add_item(_button(Action.IGNORE, mid, "Ignore", "🙈", _Style.secondary))
    else:
        return None
    return view


def held_edit_view(mention_id: int) -> discord.ui.View:
    """Under a held edit (ephemeral): keep it anyway, a second confirmation the audit records."""
    view = discord.ui.View(timeout=None)
    view.add_item(_button(Action.POST_ANYWAY, mention_id, "Post anyway", "⚠️", _Style.danger))
    return view


async def alert_message(
    core: Core, mention: Mention, drafts: list[Draft], reply: Reply | None
) -> tuple[discord.Embed, discord.ui.View | None]:
    """An alert's embed and components for the mention's current state."""
    view = alert_view(mention, drafts, reply, core.brand_label(mention.brand))
    decision = await core.review.decision(mention, reply)
    embed = render_alert(view, reply=reply, decision=decision_line(decision) if decision else None)
    return embed, alert_components(mention, drafts, reply)


async def current_alert(
    core: Core, mention_id: int
) -> tuple[Mention, discord.Embed, discord.ui.View | None]:
    """:func:`alert_message` for a mention as the store has it now (NotFound if unknown)."""
    store = core.store
    mention = await store.mentions.get(mention_id)
    drafts = await store.drafts.current(mention_id)
    reply = await store.replies.for_mention(mention_id)
    embed, view = await alert_message(core, mention, drafts, reply)
    return mention, embed, view


def parse_ref(ref: str | None) -> tuple[int, int] | None:
    """An alert reference ``"channel_id:message_id"`` back into its parts."""
    channel, _, message = (ref or "").partition(":")
    if not channel.isdigit() or not message.isdigit():
        return None
    return int(channel), int(message)
