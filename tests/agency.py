"""An agency with two clients, acme and globex, each routed to its own Telegram chat and Discord
channel, acme with its own approvers: the configuration the tenancy tests share."""

from __future__ import annotations

from bot.config import ParleyConfig, parse_config

CHAT_A = -1001000000001
CHAT_B = -1001000000002
CHANNEL_A = 900000000000000201
CHANNEL_B = 900000000000000202
ACME_ROLE = 900000000000000401
"""Acme's own approver role on Discord."""
SECRET_A = "acme ACME-SECRET-1 the export is broken"
SECRET_B = "globex GLOBEX-SECRET-2 where is my refund"
"""A mention of each client that only its own chat may see."""


def agency() -> ParleyConfig:
    """Two clients, each routed to its own chat and channel; acme has its own approvers."""
    return parse_config(
        {
            "brands": [
                {
                    "name": "acme",
                    "display_name": "Acme Cloud",
                    "rules": [{"name": "any", "query": "acme"}],
                    "route": {"telegram_chat_id": CHAT_A, "discord_channel_id": CHANNEL_A},
                    "approvers": {"telegram_user_ids": [333], "discord_role_ids": [ACME_ROLE]},
                },
                {
                    "name": "globex",
                    "display_name": "Globex Corp",
                    "rules": [{"name": "any", "query": "globex"}],
                    "route": {"telegram_chat_id": CHAT_B, "discord_channel_id": CHANNEL_B},
                },
            ]
        },
        "agency.toml",
    )
