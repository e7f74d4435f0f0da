"""A fake Telegram Bot API server on loopback, speaking the real wire format.

PTB posts to ``{base}/bot{token}/{method}`` with form-encoded (or JSON / multipart) bodies in
which objects such as ``reply_markup`` are JSON strings. Answers are ``{"ok": true, "result":
…}`` with realistic Message/User/Chat objects, or ``{"ok": false, "error_code": …}``.
``getUpdates`` long-polls: it returns as soon as an update is queued, and every waiting poll
is released when the server stops. Every request is recorded for the tests to assert on.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_USER = {
    "id": 7000000001,
    "is_bot": True,
    "first_name": "Parley",
    "username": "parley_test_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}


@dataclass
class Call:
    """One recorded request: the method and its parameters exactly as sent (strings)."""

    method: str
    params: dict[str, str]
    at: float = field(default_factory=time.monotonic)

    def json(self, name: str) -> Any:
        """A parameter PTB sends JSON-encoded (reply_markup, link_preview_options …)."""
        return json.loads(self.params[name])

    @property
    def callback_data(self) -> list[str]:
        """Every button's callback_data in this request's inline keyboard."""
        if "reply_markup" not in self.params:
            return []
        markup = self.json("reply_markup")
        return [
            button["callback_data"]
            for row in markup.get("inline_keyboard", [])
            for button in row
            if "callback_data" in button
        ]


def user(user_id: int, first_name: str = "Ann", username: str | None = None) -> dict[str, Any]:
    """A Telegram User object."""
    out: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
    if username:
        out["username"] = username
    return out


def chat(chat_id: int, title: str = "Community team") -> dict[str, Any]:
    """A Chat object: a supergroup for negative ids, a private chat otherwise."""
    if chat_id < 0:
        return {"id": chat_id, "type": "supergroup", "title": title}
    return {"id": chat_id, "type": "private", "first_name": "Ann"}


@dataclass
class Upload:
    """One multipart request: its method and file parts (name → filename, type, bytes)."""

    method: str
    files: dict[str, tuple[str, str, bytes]]


class FakeTelegram:
    """The fake server. ``await start()``, then point PTB's base_url at :attr:`base_url`."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        self.admins: dict[int, list[dict[str, Any]]] = {}
        self.members: dict[tuple[int, int], dict[str, Any]] = {}
        """ChatMember objects by (chat id, user id); the bot is a plain member elsewhere."""
        self.unknown_chats: set[int] = set()
        """Chats getChat answers "chat not found" for (the bot was never added)."""
        self.chat_permissions: dict[str, bool] = {"can_send_messages": True}
        """The default member permissions getChat reports."""
        self.failures: dict[str, list[dict[str, Any]]] = {}
        """Canned error answers per method, returned (and consumed) before normal handling."""
        self.webhook: dict[str, str] | None = None
        self.uploads: list[Upload] = []
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(100)
        self._callback_ids = itertools.count(1)
        self._wake = asyncio.Condition()
        self._stopped = False
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self, port: int = 0) -> None:
        """Listen on 127.0.0.1 on ``port`` (a free one by default; a given one lets a test make
        Telegram unreachable, then reachable again at the same address)."""
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.*}", self._file)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Release every waiting long-poll and close the server."""
        self._stopped = True
        async with self._wake:
            self._wake.notify_all()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        """The server root, as TELEGRAM_API_BASE_URL takes it."""
        return f"http://127.0.0.1:{self.port}"

    # ---- what tests use -----------------------------------------------------------------

    def of(self, method: str) -> list[Call]:
        """Recorded calls of one method, in order."""
        return [c for c in self.calls if c.method == method]

    async def wait_for(self, method: str, count: int = 1, within: float = 30.0) -> list[Call]:
        """Wait until ``method`` was called at least ``count`` times."""
        deadline = time.monotonic() + within
        while len(self.of(method)) < count:
            if time.monotonic() > deadline:
                seen = [c.method for c in self.calls]
                raise AssertionError(
                    f"{method} called {len(self.of(method))}x, not {count}: {seen}"
                )
            await asyncio.sleep(0.01)
        return self.of(method)

    def fail_next(self, method: str, error_code: int, description: str, **parameters: Any) -> None:
        """Make the next call of ``method`` fail with this Bot API error."""
        answer: dict[str, Any] = {"ok": False, "error_code": error_code, "description": description}
        if parameters:
            answer["parameters"] = parameters
        self.failures.setdefault(method, []).append(answer)

    async def push_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update (its update_id is assigned) and wake waiting polls."""
        update = {"update_id": next(self._update_ids), **update}
        self._updates.append(update)
        async with self._wake:
            self._wake.notify_all()
        return update

    async def press(self, who: dict[str, Any], message: dict[str, Any], data: str) -> str:
        """A user taps an inline button with ``data`` under ``message``; returns the query id."""
        query_id = f"cbq{next(self._callback_ids)}"
        await self.push_update(
            {
                "callback_query": {
                    "id": query_id,
                    "from": who,
                    "message": message,
                    "chat_instance": "-123456789",
                    "data": data,
                }
            }
        )
        return query_id

    async def say(
        self,
        who: dict[str, Any],
        chat_id: int,
        text: str,
        *,
        reply_to: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A user sends a text message (a /command gets its bot_command entity)."""
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "from": who,
            "chat": chat(chat_id),
            "date": int(time.time()),
            "text": text,
        }
        if text.startswith("/"):
            length = len(text.split()[0])
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        await self.push_update({"message": message})
        return message

    def answers(self) -> dict[str, str | None]:
        """callback_query_id → toast text of every answerCallbackQuery."""
        return {
            c.params["callback_query_id"]: c.params.get("text")
            for c in self.of("answerCallbackQuery")
        }

    # ---- the API ------------------------------------------------------------------------

    async def _params(self, request: web.Request) -> dict[str, str]:
        if request.content_type == "application/json":
            body = await request.json()
            return {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}
        form = await request.post()
        if request.content_type == "multipart/form-data":
            files = {
                name: (part.filename, part.content_type, part.file.read())
                for name, part in form.items()
                if isinstance(part, web.FileField)
            }
            self.uploads.append(Upload(request.match_info["method"], files))
        return {k: v for k, v in form.items() if isinstance(v, str)}

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        method = request.match_info["method"]
        params = await self._params(request)
        self.calls.append(Call(method, params))
        canned = self.failures.get(method)
        if canned:
            answer = canned.pop(0)
            return web.json_response(answer, status=answer["error_code"])
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found: method not found"},
                status=404,
            )
        try:
            result = await handler(params)
        except _ApiError as exc:
            return web.json_response(
                {"ok": False, "error_code": exc.code, "description": exc.description},
                status=exc.code,
            )
        return web.json_response({"ok": True, "result": result})

    async def _file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        self.calls.append(Call("file", {"path": request.match_info["path"]}))
        return web.Response(body=b"file-bytes")

    async def _api_getMe(self, params: dict[str, str]) -> Any:
        return BOT_USER

    async def _api_deleteWebhook(self, params: dict[str, str]) -> Any:
        self.webhook = None
        return True

    async def _api_setWebhook(self, params: dict[str, str]) -> Any:
        self.webhook = params
        return True

    async def _api_setMyCommands(self, params: dict[str, str]) -> Any:
        return True

    async def _api_answerCallbackQuery(self, params: dict[str, str]) -> Any:
        if len(params.get("text", "")) > 200:
            raise _ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        return True

    async def _api_getFile(self, params: dict[str, str]) -> Any:
        file_id = params["file_id"]
        return {"file_id": file_id, "file_unique_id": "u" + file_id, "file_path": "docs/a.txt"}

    async def _api_getChatAdministrators(self, params: dict[str, str]) -> Any:
        members = self.admins.get(int(params["chat_id"]), [])
        return [{"status": "administrator", "user": u, **_ADMIN_RIGHTS} for u in members]

    async def _api_getChat(self, params: dict[str, str]) -> Any:
        chat_id = int(params["chat_id"])
        if chat_id in self.unknown_chats:
            raise _ApiError(400, "Bad Request: chat not found")
        return {**chat(chat_id), "permissions": self.chat_permissions}

    async def _api_getChatMember(self, params: dict[str, str]) -> Any:
        chat_id, user_id = int(params["chat_id"]), int(params["user_id"])
        if chat_id in self.unknown_chats:
            raise _ApiError(400, "Bad Request: chat not found")
        found = self.members.get((chat_id, user_id), {"status": "member"})
        who = BOT_USER if user_id == BOT_USER["id"] else user(user_id)
        return {"user": who, **found}

    async def _api_getUpdates(self, params: dict[str, str]) -> Any:
        offset = int(params.get("offset", "0") or 0)
        timeout = float(params.get("timeout", "0") or 0)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        deadline = time.monotonic() + timeout
        async with self._wake:
            while not self._updates and not self._stopped:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    await asyncio.wait_for(self._wake.wait(), left)
                except TimeoutError:
                    break
        return list(self._updates)

    def _check_text(self, params: dict[str, str]) -> str:
        text = params.get("text", "")
        if not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if len(text.encode("utf-16-le")) // 2 > 4096 and params.get("parse_mode") is None:
            raise _ApiError(400, "Bad Request: message is too long")
        if params.get("parse_mode") == "HTML":
            _check_html(text)
        return text

    async def _api_sendMessage(self, params: dict[str, str]) -> Any:
        text = self._check_text(params)
        chat_id = int(params["chat_id"])
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "from": BOT_USER,
            "chat": chat(chat_id),
            "date": int(time.time()),
            "text": text,
        }
        if "message_thread_id" in params:
            message["message_thread_id"] = int(params["message_thread_id"])
            message["is_topic_message"] = True
        if "reply_markup" in params:
            markup = json.loads(params["reply_markup"])
            if "inline_keyboard" in markup:
                message["reply_markup"] = markup
        self.messages[(chat_id, message["message_id"])] = message
        return message

    async def _api_editMessageText(self, params: dict[str, str]) -> Any:
        text = self._check_text(params)
        key = (int(params["chat_id"]), int(params["message_id"]))
        message = self.messages.get(key)
        if message is None:
            raise _ApiError(400, "Bad Request: message to edit not found")
        markup = json.loads(params["reply_markup"]) if "reply_markup" in params else None
        if message["text"] == text and message.get("reply_markup") == markup:
            raise _ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup of the message",
            )
        message = {**message, "text": text, "edit_date": int(time.time())}
        message.pop("reply_markup", None)
        if markup:
            message["reply_markup"] = markup
        self.messages[key] = message
        return message

    async def _api_deleteMessage(self, params: dict[str, str]) -> Any:
        key = (int(params["chat_id"]), int(params["message_id"]))
        if self.messages.pop(key, None) is None:
            raise _ApiError(400, "Bad Request: message to delete not found")
        return True

    async def _api_sendPhoto(self, params: dict[str, str]) -> Any:
        caption = params.get("caption", "")
        if params.get("parse_mode") == "HTML":
            _check_html(caption)
        shown = html.unescape(re.sub(r"<[^>]+>", "", caption))
        if len(shown.encode("utf-16-le")) // 2 > 1024:
            raise _ApiError(400, "Bad Request: message caption is too long")
        chat_id = int(params["chat_id"])
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "from": BOT_USER,
            "chat": chat(chat_id),
            "date": int(time.time()),
            "photo": [{"file_id": "ph1", "file_unique_id": "uph1", "width": 1000, "height": 700}],
        }
        if caption:
            message["caption"] = caption
        self.messages[(chat_id, message["message_id"])] = message
        return message


_ADMIN_RIGHTS = {
    "can_be_edited": False,
    "is_anonymous": False,
    "can_manage_chat": True,
    "can_delete_messages": True,
    "can_manage_video_chats": True,
    "can_restrict_members": True,
    "can_promote_members": False,
    "can_change_info": True,
    "can_invite_users": True,
    "can_post_stories": False,
    "can_edit_stories": False,
    "can_delete_stories": False,
}

_ALLOWED_TAGS = {"b", "i", "u", "s", "a", "code", "pre", "blockquote", "tg-spoiler"}


class _ApiError(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def _check_html(text: str) -> None:
    """Refuse what Telegram's HTML parser refuses: unknown tags and unknown entities."""

    for tag in re.findall(r"</?([a-zA-Z-]+)", text):
        if tag.lower() not in _ALLOWED_TAGS:
            raise _ApiError(400, f"Bad Request: can't parse entities: unsupported tag {tag!r}")
    for entity in re.findall(r"&([a-zA-Z0-9#]+);", text):
        if entity not in ("lt", "gt", "amp", "quot") and not entity.startswith("#"):
            raise _ApiError(400, f"Bad Request: can't parse entities: unknown entity {entity}")
