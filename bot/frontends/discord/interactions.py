"""Small helpers every Discord interaction uses: the bot behind it, who acts and where, answers
only the presser sees, and the error boundary.

One error boundary per interaction (:func:`guarded`): a UserFacingError's text is shown, anything
else is logged with its traceback and answered with a generic apology (never ``str(exc)``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import discord
from discord import app_commands

from bot.domain.models import Actor
from bot.errors import PermissionDenied, UserFacingError
from bot.frontends.discord.bot import ParleyBot, place, refusal
from bot.frontends.discord.render import error_text, plain
from bot.services.tenancy import Scope

log = logging.getLogger(__name__)

NO_PINGS = discord.AllowedMentions.none()
APOLOGY = "Sorry, that failed unexpectedly; the log has the details."
STALE = "This button is out of date; use /mention with the mention's number for a fresh one."


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
