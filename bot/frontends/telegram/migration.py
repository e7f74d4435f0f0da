"""Telegram chat migrations: a group upgraded to a supergroup gets a new chat id.

Telegram says so in two ways: a send to the old id is answered ``ChatMigrated`` (with the new
id), and a service message carries ``migrate_to_chat_id`` (in the old group) or
``migrate_from_chat_id`` (in the new supergroup). Either way, :class:`ChatMoves` records the move
in the store, so alerts and routing for the old id go to the new one from then on (after a
restart too: the configured old id maps to the new one), the tenancy rules treat the new id as
the old one, and the log and the chat say which setting to update.
"""

from __future__ import annotations

import logging

from bot.config import ParleyConfig
from bot.services.tenancy import Tenancy
from bot.storage.chat_state import ChatMigrationRepo
from bot.storage.db import Database

log = logging.getLogger(__name__)

PLATFORM = "telegram"


def settings_to_update(
    config: ParleyConfig, alert_chat: int | str | None, old: int | str
) -> list[str]:
    """The settings that still name ``old``: TELEGRAM_ALERT_CHAT_ID and brands' routes."""
    names = []
    if alert_chat is not None and str(alert_chat) == str(old):
        names.append("TELEGRAM_ALERT_CHAT_ID in .env")
    for brand in config.brands:
        if brand.route.telegram_chat_id is not None and str(brand.route.telegram_chat_id) == str(
            old
        ):
            names.append(f"telegram_chat_id of brand {brand.name!r} in parley.toml")
    return names


def moved_text(old: int | str, new: int, settings: list[str]) -> str:
    """What the log and the chat say about a move."""
    where = " and ".join(settings) if settings else "your settings (if they name it)"
    return (
        f"This Telegram group became a supergroup and its chat id changed from {old} to {new}; "
        f"Parley now posts to {new}: set {where} to {new}"
    )


class ChatMoves:
    """Old chat id → new chat id, kept in the store and applied to routing and tenancy."""

    def __init__(self, db: Database, tenancy: Tenancy) -> None:
        self.store = ChatMigrationRepo(db, PLATFORM)
        self.tenancy = tenancy
        self._moved: dict[str, int] = {}

    async def load(self) -> None:
        """Apply the moves recorded by earlier runs."""
        for old, new in (await self.store.all()).items():
            self._apply(old, int(new))

    def resolve(self, chat: int | str) -> int | str:
        """Where ``chat`` is now (itself if it never moved)."""
        return self._moved.get(str(chat), chat)

    async def record(self, old: int | str, new: int) -> bool:
        """``old`` is now ``new``: stored and applied; False if this was already known."""
        if self._moved.get(str(old)) == new:
            return False
        await self.store.record(str(old), str(new))
        self._apply(str(old), new)
        return True

    def _apply(self, old: str, new: int) -> None:
        for key, value in list(self._moved.items()):
            if str(value) == old:
                self._moved[key] = new
        self._moved[old] = new
        self.tenancy.alias(PLATFORM, old, new)
