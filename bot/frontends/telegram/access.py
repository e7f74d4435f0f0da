"""Who is asking, and from where: the Telegram side of the tenancy rules.

The rules themselves live in bot/services/tenancy.py; this turns an update's user and chat into
the core's :class:`~bot.domain.models.Actor` and :class:`~bot.services.tenancy.Place`.
"""

from __future__ import annotations

from telegram import Chat, Update

from bot.app import Core
from bot.domain.models import Actor
from bot.frontends.telegram.chat import TelegramChat
from bot.services.tenancy import Place, Scope


def place_of(chat: Chat) -> Place:
    """Where an update came from, for the tenancy rules: the chat's id and its @username."""
    names: tuple[int | str, ...] = (f"@{chat.username}",) if chat.username else ()
    return Place("telegram", (chat.id, *names))


class Access:
    """The actor behind an update and the brands the update's chat shows them."""

    def __init__(self, core: Core, chat: TelegramChat) -> None:
        self.core = core
        self.chat = chat

    async def reader(self, update: Update) -> Actor:
        """The actor, if they may read here (see bot/services/tenancy.py)."""
        return (await self.seen(update))[0]

    async def seen(self, update: Update) -> tuple[Actor, Scope]:
        """The actor and the brands this chat shows them: a brand's chat sees its brands, the
        default chat every brand, any other chat only what the actor approves."""
        assert update.effective_user is not None and update.effective_chat is not None
        actor = await self.chat.actor(update.effective_user)
        return actor, self.core.tenancy.scope(place_of(update.effective_chat), actor)
