"""The Discord forms of a review: the reply's own text (Edit) and a redraft instruction.

A modal only collects the text; what is done with it (the core's review command) is handed in
as ``on_submit`` by the component that opened it (bot/frontends/discord/views.py).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

import discord

from bot.connectors.catalog import reply_length, reply_limit
from bot.drafting.tweaks import MAX_INSTRUCTION_CHARS

MODAL_TEXT_LIMIT = 4000
"""Discord's limit on a modal text input."""
MODAL_TIMEOUT = 900.0
"""Seconds a modal waits for its submit (an interaction token lives 15 minutes)."""
_LINK_PROBE = "https://example.com/" + "a" * 100

Submit = Callable[[discord.Interaction, int, str], Awaitable[None]]
"""What a submitted form does: (the interaction, the mention id, the text)."""


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

    def __init__(
        self, mention_id: int, text: str, max_length: int, *, version: str, on_submit: Submit
    ) -> None:
        super().__init__(
            title=f"Reply to mention #{mention_id}",
            timeout=MODAL_TIMEOUT,
            custom_id=f"{version}:em:{mention_id}:{secrets.token_hex(4)}",
        )
        self.mention_id = mention_id
        self.submit = on_submit
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
        await self.submit(interaction, self.mention_id, self.reply.value)


class InstructionModal(discord.ui.Modal):
    """A redraft instruction in the CM's own words."""

    def __init__(self, mention_id: int, *, version: str, on_submit: Submit) -> None:
        super().__init__(
            title=f"Redraft mention #{mention_id}",
            timeout=MODAL_TIMEOUT,
            custom_id=f"{version}:ri:{mention_id}:{secrets.token_hex(4)}",
        )
        self.mention_id = mention_id
        self.submit = on_submit
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
        await self.submit(interaction, self.mention_id, self.instruction.value)
