"""Online check of Telegram: the token (``getMe``), then each alert chat (``getChat`` and
``getChatMember`` for the bot itself): is the bot there, and may it post?

Plain HTTP to the Bot API at TELEGRAM_API_BASE_URL (no chat library outside bot/frontends).
"""

from __future__ import annotations

from typing import Any

import httpx

from bot.services.online_runner import Verdict, ok, refused

SERVICE = "Telegram"


class _Refused(Exception):
    """The Bot API answered ``ok: false``."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


async def check_telegram(
    http: httpx.AsyncClient, *, base_url: str, token: str, chats: list[int | str]
) -> list[Verdict]:
    """The bot's line, then one line per chat alerts go to."""
    api = f"{base_url.rstrip('/')}/bot{token}/"
    try:
        me = await _call(http, api, "getMe", {})
    except _Refused as exc:
        if exc.code not in (401, 404):
            return [refused(SERVICE, f"{exc.description}: check TELEGRAM_API_BASE_URL")]
        return [
            refused(
                SERVICE,
                "Telegram refused TELEGRAM_BOT_TOKEN: create a new one with @BotFather "
                "(/token) and put it in .env",
            )
        ]
    name = f"@{me.get('username', '?')}"
    verdicts = [ok(SERVICE, f"bot {name}{_privacy_note(me)}")]
    for chat_id in chats:
        verdicts.append(await _check_chat(http, api, chat_id, int(me["id"]), name))
    return verdicts


def _privacy_note(me: dict[str, Any]) -> str:
    """What privacy mode means for the team, when it is on."""
    if me.get("can_read_all_group_messages"):
        return " (privacy mode off: sees every message in its groups)"
    return (
        " (privacy mode on: commands and replies to the bot work, other messages in groups are "
        "not seen; @BotFather → /setprivacy to change)"
    )


async def _check_chat(
    http: httpx.AsyncClient, api: str, chat_id: int | str, bot_id: int, name: str
) -> Verdict:
    """Whether the bot is in ``chat_id`` and may post there."""
    service = f"Telegram chat {chat_id}"
    try:
        chat = await _call(http, api, "getChat", {"chat_id": chat_id})
        member = await _call(http, api, "getChatMember", {"chat_id": chat_id, "user_id": bot_id})
    except _Refused as exc:
        return refused(
            service,
            f"Telegram says {exc.description!r}: add {name} to the chat, or fix the id "
            "(send /start in the group to see it)",
        )
    title = chat.get("title") or chat.get("username") or chat.get("first_name") or chat_id
    service = f"Telegram chat {title!r} ({chat_id})"
    status = member.get("status")
    if status in ("left", "kicked"):
        return refused(service, f"{name} is not a member: add it to the chat")
    problem = _cannot_post(chat, member)
    if problem:
        return refused(service, f"{name} cannot post: {problem}")
    return ok(service, f"{name} is {_ROLES.get(str(status), status)} and can post")


_ROLES = {
    "creator": "the owner",
    "administrator": "an administrator",
    "member": "a member",
    "restricted": "a restricted member",
}


def _cannot_post(chat: dict[str, Any], member: dict[str, Any]) -> str | None:
    """Why the bot may not send messages here, or None when it may."""
    status = member.get("status")
    if chat.get("type") == "channel":
        if status == "creator" or (status == "administrator" and member.get("can_post_messages")):
            return None
        return "in a channel the bot must be an administrator allowed to post messages"
    if status in ("creator", "administrator"):
        return None
    if status == "restricted" and not member.get("can_send_messages", False):
        return "it is restricted: allow it to send messages in the chat's member settings"
    permissions = chat.get("permissions")
    if (
        status == "member"
        and isinstance(permissions, dict)
        and not permissions.get("can_send_messages", True)
    ):
        return "members may not send messages here: make the bot an administrator"
    return None


async def _call(
    http: httpx.AsyncClient, api: str, method: str, params: dict[str, Any]
) -> dict[str, Any]:
    """One Bot API call: its ``result``, or _Refused with Telegram's description."""
    response = await http.post(api + method, json=params)
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _Refused(0, f"the server answered HTTP {response.status_code}, not the Bot API")
    if not body.get("ok"):
        code = body.get("error_code")
        raise _Refused(code if isinstance(code, int) else 0, str(body.get("description", "")))
    result = body.get("result")
    if not isinstance(result, dict):
        raise _Refused(response.status_code, f"{method} returned no object")
    return result
