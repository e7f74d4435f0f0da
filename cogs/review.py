"""Review cog: what the alert buttons, selects and modals do, through ReviewService.

Every click is checked again: the presser must be an approver (else an ephemeral refusal) and
the core refuses what the mention's state does not allow, so a double click answers the second
presser "already approved" instead of queueing a second reply. Anything that may outlast
Discord's 3-second deadline (a draft, a redraft) is deferred first. The alert is then edited by
the Alerts cog on the core's MentionChanged event; a copy elsewhere (an older message, or one
posted by /mention) is edited through the interaction.
"""

from __future__ import annotations

import logging
import secrets

import discord
from discord.ext import commands

from bot.connectors.catalog import reply_length, reply_limit
from bot.domain.models import Actor
from bot.drafting.tweaks import MAX_INSTRUCTION_CHARS, TWEAKS
from bot.frontends.discord.render import plain
from bot.frontends.discord.views import (
    FRONTEND,
    NO_PINGS,
    OWN_INSTRUCTION,
    VERSION,
    Action,
    current_alert,
    decider,
    guarded,
    held_edit_view,
    parley_bot,
    parse_ref,
    tell,
)
from bot.services.review import NeedsConfirmation

log = logging.getLogger(__name__)

MODAL_TEXT_LIMIT = 4000
"""Discord's limit on a modal text input."""
MODAL_TIMEOUT = 900.0
"""Seconds a modal waits for its submit (an interaction token lives 15 minutes)."""
_LINK_PROBE = "https://example.com/" + "a" * 100


def modal_max_length(platform: str, default_limit: int) -> int:
    """The edit box's size: the platform's reply limit, within Discord's 4000 characters.

    Where the platform counts a link as fewer characters than it has (X, Mastodon), the box
    allows Discord's maximum and ReviewService checks the length in the platform's own unit.
    """
    if reply_length(_LINK_PROBE, platform) < len(_LINK_PROBE):
        return MODAL_TEXT_LIMIT
    return min(MODAL_TEXT_LIMIT, reply_limit(platform, default_limit))


class EditModal(discord.ui.Modal):
    """The reply text, prefilled with the selected draft."""

    def __init__(self, cog: Review, mention_id: int, text: str, max_length: int) -> None:
        super().__init__(
            title=f"Reply to mention #{mention_id}",
            timeout=MODAL_TIMEOUT,
            custom_id=f"{VERSION}:em:{mention_id}:{secrets.token_hex(4)}",
        )
        self.cog = cog
        self.mention_id = mention_id
        cut = len(text) > max_length
        self.reply: discord.ui.TextInput[EditModal] = discord.ui.TextInput(
            label="Your reply (the draft was cut to fit)" if cut else "Your reply",
            style=discord.TextStyle.paragraph,
            default=text[:max_length] or None,
            min_length=1,
            max_length=max_length,
        )
        self.add_item(self.reply)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        """Save the text as the selected draft."""
        await self.cog.on_edit_submit(interaction, self.mention_id, self.reply.value)


class InstructionModal(discord.ui.Modal):
    """A redraft instruction in the CM's own words."""

    def __init__(self, cog: Review, mention_id: int) -> None:
        super().__init__(
            title=f"Redraft mention #{mention_id}",
            timeout=MODAL_TIMEOUT,
            custom_id=f"{VERSION}:ri:{mention_id}:{secrets.token_hex(4)}",
        )
        self.cog = cog
        self.mention_id = mention_id
        self.instruction: discord.ui.TextInput[InstructionModal] = discord.ui.TextInput(
            label="How should the drafts change?",
            style=discord.TextStyle.paragraph,
            placeholder="e.g. mention the status page and keep it under two sentences",
            min_length=1,
            max_length=MAX_INSTRUCTION_CHARS,
        )
        self.add_item(self.instruction)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        """Redraft with the instruction."""
        await self.cog.redraft(interaction, self.mention_id, self.instruction.value)


class Review(commands.Cog):
    """The callbacks of the alert components (see bot/frontends/discord/views.py)."""

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = parley_bot(bot)
        self.core = self.bot.core

    async def approver(self, interaction: discord.Interaction, mention_id: int) -> Actor:
        """The presser as an Actor, if this channel sees the mention and they approve its
        brand (the core checks again)."""
        return await decider(interaction, mention_id)

    # ---- buttons and selects ------------------------------------------------------------

    async def on_button(
        self, interaction: discord.Interaction, action: Action, mention_id: int
    ) -> None:
        """A review button: check, act, show the new state."""

        async def work() -> None:
            actor = await self.approver(interaction, mention_id)
            if action is Action.EDIT:
                await interaction.response.send_modal(await self.edit_modal(mention_id))
                return
            await interaction.response.defer()
            review = self.core.review
            match action:
                case Action.APPROVE:
                    await review.approve(mention_id, actor)
                case Action.REJECT:
                    await review.reject(mention_id, actor)
                case Action.IGNORE:
                    await review.ignore(mention_id, actor)
                case Action.RETRY:
                    await review.retry(mention_id, actor)
                case Action.CONFIRM:
                    await review.confirm_posted(mention_id, actor)
                case Action.POST_ANYWAY:
                    await review.confirm_edit(mention_id, actor)
                    await tell(
                        interaction,
                        f"Kept as you wrote it (recorded). Approve #{mention_id} to queue it.",
                    )
                case Action.DRAFT:
                    await tell(interaction, f"📝 Drafting #{mention_id}…")
                    await review.draft(mention_id, actor)
            await self.show(interaction, mention_id)

        await guarded(interaction, f"button {action.name.lower()}", work)

    async def on_variant(
        self, interaction: discord.Interaction, mention_id: int, variant: int
    ) -> None:
        """A draft variant was chosen in the select."""

        async def work() -> None:
            actor = await self.approver(interaction, mention_id)
            await interaction.response.defer()
            await self.core.review.select(mention_id, variant, actor)
            await self.show(interaction, mention_id)

        await guarded(interaction, "variant select", work)

    async def on_tweak(self, interaction: discord.Interaction, mention_id: int, tweak: str) -> None:
        """A redraft from the select: a tweak at once, or a modal for the CM's own words."""
        if tweak == OWN_INSTRUCTION:

            async def ask() -> None:
                await self.approver(interaction, mention_id)
                await interaction.response.send_modal(InstructionModal(self, mention_id))

            await guarded(interaction, "redraft select", ask)
            return
        await self.redraft(interaction, mention_id, tweak)

    async def redraft(self, interaction: discord.Interaction, mention_id: int, how: str) -> None:
        """New drafts following a tweak key or an instruction (deferred: an LLM takes time)."""

        async def work() -> None:
            actor = await self.approver(interaction, mention_id)
            await interaction.response.defer()
            label = next((t.label.lower() for t in TWEAKS if t.key == how), "your instruction")
            await tell(interaction, f"📝 Redrafting #{mention_id}: {label}…")
            await self.core.review.draft(mention_id, actor, instruction=how[:MAX_INSTRUCTION_CHARS])
            await self.show(interaction, mention_id)

        await guarded(interaction, "redraft", work)

    # ---- the edit modal -----------------------------------------------------------------

    async def edit_modal(self, mention_id: int) -> EditModal:
        """The modal for a mention, prefilled with its selected draft (NotFound if unknown)."""
        mention = await self.core.store.mentions.get(mention_id)
        draft = await self.core.store.drafts.selected(mention_id)
        size = modal_max_length(mention.platform, self.core.review.default_limit)
        return EditModal(self, mention_id, draft.text if draft else "", size)

    async def on_edit_submit(
        self, interaction: discord.Interaction, mention_id: int, text: str
    ) -> None:
        """Save the submitted text as the selected draft (ReviewService checks its length)."""

        async def work() -> None:
            actor = await self.approver(interaction, mention_id)
            await interaction.response.defer()
            try:
                await self.core.review.edit(mention_id, text, actor)
            except NeedsConfirmation as held:
                await self.offer_anyway(interaction, held)
                return
            await tell(
                interaction,
                f"Saved as the reply to #{mention_id}. Press Approve on the alert to queue it.",
            )
            await self.show(interaction, mention_id)

        await guarded(interaction, "edit", work)

    async def offer_anyway(self, interaction: discord.Interaction, held: NeedsConfirmation) -> None:
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

    # ---- showing the result -------------------------------------------------------------

    async def show(self, interaction: discord.Interaction, mention_id: int) -> None:
        """Edit the clicked message to the new state, unless it is the alert the Alerts cog
        keeps up to date (it edits that one on the core's MentionChanged event)."""
        message = interaction.message
        if message is None:
            return
        mention, embed, view = await current_alert(self.core, mention_id)
        if parse_ref(mention.alert_refs.get(FRONTEND)) == (message.channel.id, message.id):
            return
        try:
            await interaction.edit_original_response(embed=embed, view=view)
        except discord.HTTPException as exc:
            log.warning("could not update a copy of mention #%d: %s", mention_id, exc)


async def setup(bot: commands.Bot) -> None:
    """Load the cog (extension entry point)."""
    await bot.add_cog(Review(bot))
