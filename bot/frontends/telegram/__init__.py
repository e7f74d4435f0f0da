"""The Telegram frontend (python-telegram-bot): alerts with buttons, commands, edits in place."""

from bot.frontends.telegram.chat import TelegramConfig
from bot.frontends.telegram.frontend import TelegramFrontend

__all__ = ["TelegramConfig", "TelegramFrontend"]
