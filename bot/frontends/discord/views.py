"""Persistent alert components: buttons and selects whose ``custom_id`` carries the whole state.

A component's ``custom_id`` is ``p1:<action>:<mention_id>`` (version-tagged, ≤ 100 chars);
everything else lives in SQLite, so buttons on alerts posted before a restart keep working
(the classes in :data:`DYNAMIC_ITEMS` are registered once with ``add_dynamic_items``). Ids are
parsed strictly by the templates; ids of another version or shape reach :class:`StaleComponent`,
which answers that the button is out of date. A click is handed to the Review cog, which checks
the presser and the mention's state through the core on every click.

This module also builds an alert message (embed and components) for a mention's current state,
the one path used for new alerts, edits after a decision and ``/mention``, and holds the small
helpers every interaction uses (the bot, ephemeral answers, the error boundary).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

import discord
from discord import app_commands

from bot.app import Core
from bot.domain.models import Actor, Draft, Mention, Reply
from bot.domain.states import MentionState, ReplyState
from bot.drafting.tweaks import TWEAKS
from bot.errors import PermissionDenied, UserFacingError
from bot.frontends.discord.bot import ParleyBot, place, refusal, team_only
from bot.frontends.discord.render import decision_line, error_text, plain, render_alert
from bot.presentation import alert_view
from bot.services.tenancy import Scope

log = logging.getLogger(__name__)

FRONTEND = "discord"
VERSION = "p1"
CUSTOM_ID_LIMIT = 100
LABEL_LIMIT = 80
"""A button's label, and a select option's label and description (100; kept shorter)."""
REVIEW_COG = "Review"
NO_PINGS = discord.AllowedMentions.none()
APOLOGY = "Sorry, that failed unexpectedly; the log has the details."
STALE = "This button is out of date; use /mention with the mention's number for a fresh one."
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


# ---- handing clicks to the Review cog -------------------------------------------------------


class TeamOnly:
    """Mixed into every component and modal: interactions from another server or a DM are
    refused before their callback runs (discord.py calls ``interaction_check`` first)."""

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        """Only the team's server (see bot/frontends/discord/bot.py)."""
        return await team_only(interaction)


@runtime_checkable
class ReviewHandler(Protocol):
    """What the components expect of the Review cog (cogs/review.py)."""

    async def on_button(
        self, interaction: discord.Interaction, action: Action, mention_id: int
    ) -> None:
        """A review button was pressed."""

    async def on_variant(
        self, interaction: discord.Interaction, mention_id: int, variant: int
    ) -> None:
        """A draft variant was chosen."""

    async def on_tweak(self, interaction: discord.Interaction, mention_id: int, tweak: str) -> None:
        """A redraft was asked for (a tweak key, or :data:`OWN_INSTRUCTION`)."""


def review_handler(interaction: discord.Interaction) -> ReviewHandler | None:
    """The loaded Review cog, if any."""
    cog = parley_bot(interaction.client).get_cog(REVIEW_COG)
    return cog if isinstance(cog, ReviewHandler) else None


async def _dispatch(
    interaction: discord.Interaction, work: Callable[[ReviewHandler], Awaitable[None]]
) -> None:
    handler = review_handler(interaction)
    if handler is None:
        await tell(interaction, "Reviewing is not available right now; try again in a moment.")
        return
    await work(handler)


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
        """Hand the click to the Review cog."""
        await _dispatch(
            interaction, lambda h: h.on_button(interaction, self.action, self.mention_id)
        )


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
        """Hand the chosen variant to the Review cog (a non-number is a forged value)."""
        value = self.item.values[0] if self.item.values else ""
        if not value.isdigit() or not 0 < int(value) < 100:
            await tell(interaction, STALE)
            return
        await _dispatch(
            interaction, lambda h: h.on_variant(interaction, self.mention_id, int(value))
        )


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
        """Hand the chosen tweak to the Review cog (an unknown key is stale or forged)."""
        value = self.item.values[0] if self.item.values else ""
        if value != OWN_INSTRUCTION and value not in {t.key for t in TWEAKS}:
            await tell(interaction, STALE)
            return
        await _dispatch(interaction, lambda h: h.on_tweak(interaction, self.mention_id, value))


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
"""Registered by the bot's setup_hook (``bot.add_dynamic_items(*DYNAMIC_ITEMS)``)."""


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


# ---- interaction helpers ------------------------------------------------------------------


def parley_bot(client: discord.Client) -> ParleyBot:
    """The running ParleyBot (its ``core`` holds every service)."""
    if not isinstance(client, ParleyBot):
        raise RuntimeError("Parley's Discord components need a ParleyBot client")
    return client


async def tell(interaction: discord.Interaction, text: str) -> None:
    """Answer only the person who interacted (ephemeral), whether or not it was deferred."""
    text = plain(text)
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)
        else:
            await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS)
    except discord.HTTPException as exc:  # the token expired, or Discord refused
        log.warning("could not answer a Discord interaction: %s", exc)


async def guarded(
    interaction: discord.Interaction, what: str, work: Callable[[], Awaitable[None]]
) -> None:
    """Run an interaction's work; a UserFacingError's text is shown to the user, anything else
    is logged with its traceback and answered with a generic apology (never ``str(exc)``)."""
    try:
        await work()
    except UserFacingError as exc:
        await tell(interaction, error_text(str(exc)))
    except Exception:
        log.exception("Discord %s failed", what)
        await tell(interaction, APOLOGY)


def reader(interaction: discord.Interaction) -> Actor:
    """The actor, if they may read here (the team's server only)."""
    return seen(interaction)[0]


def seen(interaction: discord.Interaction) -> tuple[Actor, Scope]:
    """The actor and the brands this channel shows (bot/services/tenancy.py): a brand's
    channel sees its brands, any other channel of the team's server every brand."""
    bot = parley_bot(interaction.client)
    actor = bot.actor(interaction.user)
    if refusal(interaction):
        raise PermissionDenied("Parley answers in its team's server only")
    return actor, bot.core.tenancy.scope(place(interaction), actor)


async def decider(
    interaction: discord.Interaction, mention_id: int, action: str = "decide"
) -> Actor:
    """The actor, if this channel sees the mention and they approve its brand."""
    bot = parley_bot(interaction.client)
    actor = bot.actor(interaction.user)
    if refusal(interaction):
        raise PermissionDenied("Parley answers in its team's server only")
    await bot.core.tenancy.decider(place(interaction), actor, mention_id, action)
    return actor


async def brand_choices(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    """Autocomplete for a ``brand`` option: the brands in parley.toml matching what is typed."""
    try:
        _, scope = seen(interaction)
    except PermissionDenied:
        return []
    brands = parley_bot(interaction.client).core.tenancy.brands(scope)
    typed = current.casefold()
    return [
        app_commands.Choice(name=plain(b.label, 100), value=b.name)
        for b in brands
        if typed in b.name.casefold() or typed in b.label.casefold()
    ][:25]
