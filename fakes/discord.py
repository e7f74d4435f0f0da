"""A fake Discord REST API and gateway on loopback, speaking the wire format discord.py 2.7 uses.

The gateway (``ws://127.0.0.1:PORT/gateway/``) sends HELLO, acks heartbeats and answers
IDENTIFY with READY then GUILD_CREATE (one guild, one text channel, roles, members); tests then
deliver INTERACTION_CREATE events (button clicks, selects, slash commands, modal submits) as
plain JSON text frames. REST (``http://127.0.0.1:PORT/api/v10``) answers the calls the client
makes: login, application info, command sync, interaction callbacks, webhook follow-ups and
channel messages (threads too), keeping the messages so edits apply to them. Every REST call
is recorded (method, path, JSON body) for tests to assert the exact payloads; a 429 with
Discord's body is returned on demand. Answers carry exactly ``Content-Type: application/json``,
which discord.py requires before it parses a body as JSON.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

APP_ID = 900000000000000001
GUILD_ID = 900000000000000100
CHANNEL_ID = 900000000000000200
APPROVER_ROLE_ID = 900000000000000300
MEMBER_ROLE_ID = 900000000000000301
BOT_USER = {
    "id": str(APP_ID),
    "username": "Parley",
    "discriminator": "0",
    "global_name": None,
    "avatar": None,
    "bot": True,
    "flags": 0,
}
API_PREFIX = "/api/v10"
RATE_LIMIT_BODY: dict[str, Any] = json.loads(
    (Path(__file__).parent / "payloads" / "discord_429.json").read_text()
)
_EPHEMERAL = 1 << 6
_snowflakes = itertools.count(910000000000000000)


def snowflake() -> str:
    """A fresh id, as Discord sends ids: a decimal string."""
    return str(next(_snowflakes))


def user(user_id: int, name: str) -> dict[str, Any]:
    """A Discord User object."""
    return {
        "id": str(user_id),
        "username": name.lower(),
        "discriminator": "0",
        "global_name": name,
        "avatar": None,
        "flags": 0,
    }


def member(who: dict[str, Any], roles: list[int]) -> dict[str, Any]:
    """A guild Member object (with the permissions field interactions carry)."""
    return {
        "user": who,
        "roles": [str(r) for r in roles],
        "nick": None,
        "avatar": None,
        "joined_at": "2024-01-01T00:00:00+00:00",
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "pending": False,
        "flags": 0,
        "communication_disabled_until": None,
        "permissions": "2248473465835073",
    }


ANN = user(111, "Ann")
"""Holds the approver role."""
BOB = user(222, "Bob")
"""A member without it."""


def _role(role_id: int, name: str, position: int) -> dict[str, Any]:
    return {
        "id": str(role_id),
        "name": name,
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": position,
        "permissions": "1071698660929",
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }


def _channel(channel_id: int, name: str, guild_id: int = GUILD_ID) -> dict[str, Any]:
    return {
        "id": str(channel_id),
        "type": 0,
        "guild_id": str(guild_id),
        "name": name,
        "position": 0,
        "permission_overwrites": [],
        "nsfw": False,
        "parent_id": None,
        "topic": None,
        "rate_limit_per_user": 0,
        "last_message_id": None,
    }


def guild_payload(
    members: list[dict[str, Any]],
    channels: dict[int, str] | None = None,
    roles: dict[int, str] | None = None,
) -> dict[str, Any]:
    """The GUILD_CREATE payload: one guild with its text channels (by default the one alert
    channel), three roles and any ``roles`` more, its members."""
    channels = channels or {CHANNEL_ID: "mentions"}
    more = [_role(i, name, 3 + n) for n, (i, name) in enumerate((roles or {}).items())]
    return {
        "id": str(GUILD_ID),
        "name": "Community team",
        "icon": None,
        "owner_id": ANN["id"],
        "unavailable": False,
        "member_count": len(members),
        "large": False,
        "joined_at": "2024-01-01T00:00:00+00:00",
        "features": [],
        "roles": [
            _role(GUILD_ID, "@everyone", 0),
            _role(MEMBER_ROLE_ID, "team", 1),
            _role(APPROVER_ROLE_ID, "approvers", 2),
            *more,
        ],
        "emojis": [],
        "stickers": [],
        "channels": [_channel(i, name) for i, name in channels.items()],
        "threads": [],
        "members": members,
        "voice_states": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
        "preferred_locale": "en-US",
        "premium_tier": 0,
        "mfa_level": 0,
        "nsfw_level": 0,
        "verification_level": 0,
        "explicit_content_filter": 0,
        "default_message_notifications": 0,
        "system_channel_flags": 0,
        "application_id": None,
    }


@dataclass
class Call:
    """One recorded REST request."""

    method: str
    path: str
    """Without the ``/api/v10`` prefix, e.g. ``/channels/123/messages``."""
    body: Any
    """The JSON body (``payload_json`` for multipart requests), or None."""
    files: list[str] = field(default_factory=list)
    """File names of a multipart request."""
    at: float = field(default_factory=time.monotonic)


@dataclass
class _Interaction:
    """What the server remembers about an interaction it delivered."""

    id: str
    token: str
    type: int
    message_id: str | None
    """The message a component was attached to (the ``@original`` once updated)."""
    channel_id: str = str(CHANNEL_ID)
    """Where it was used: answers and follow-ups are posted there."""
    responded: int | None = None
    original_id: str | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # Bytes body: aiohttp adds no charset, and discord.py parses only exactly application/json.
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _error(status: int, code: int, message: str) -> web.Response:
    return _json({"message": message, "code": code}, status)


class FakeDiscord:
    """The fake server. ``await start()``, then point discord.py at :attr:`api_url` and
    :attr:`gateway_url`."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.messages: dict[str, dict[str, Any]] = {}
        self.threads: dict[str, dict[str, Any]] = {}
        self.members = [
            member(ANN, [APPROVER_ROLE_ID, MEMBER_ROLE_ID]),
            member(BOB, [MEMBER_ROLE_ID]),
        ]
        self.channels: dict[int, str] = {CHANNEL_ID: "mentions"}
        """The guild's text channels (id → name); add one before the client connects."""
        self.roles: dict[int, str] = {}
        """The guild's roles beyond the three standard ones (id → name), likewise."""
        self.bot_roles = [MEMBER_ROLE_ID]
        """The bot's roles in the guild (REST ``GET /guilds/{id}/members/{bot}``)."""
        self.overwrites: list[dict[str, Any]] = []
        """The alert channel's permission overwrites (REST ``GET /channels/{id}``)."""
        self.identified = asyncio.Event()
        self.identify_payloads: list[dict[str, Any]] = []
        self.commands: dict[str, list[dict[str, Any]]] = {}
        """Synced commands: ``"global"`` or the guild id → the commands as sent."""
        self._limited: list[tuple[str, re.Pattern[str], float]] = []
        self._interactions: dict[str, _Interaction] = {}
        self._sockets: list[web.WebSocketResponse] = []
        self._seq = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self, port: int = 0) -> None:
        """Listen on 127.0.0.1 on ``port`` (a free one by default; a given one lets a test make
        Discord unreachable, then reachable at the same address)."""
        app = web.Application()
        app.router.add_get("/gateway/", self._gateway)
        app.router.add_route("*", API_PREFIX + "/{path:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        """Close every gateway connection and the server."""
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        """What DISCORD_API_BASE_URL takes (``Route.BASE``)."""
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        """What DISCORD_GATEWAY_URL takes; the trailing slash matters to discord.py."""
        return f"ws://127.0.0.1:{self.port}/gateway/"

    # ---- what tests use -----------------------------------------------------------------

    def of(self, method: str, pattern: str) -> list[Call]:
        """Recorded calls of ``method`` whose path fully matches the regex ``pattern``."""
        rx = re.compile(pattern)
        return [c for c in self.calls if c.method == method and rx.fullmatch(c.path)]

    async def wait_for(
        self, method: str, pattern: str, count: int = 1, within: float = 30.0
    ) -> list[Call]:
        """Wait until ``method pattern`` was called at least ``count`` times."""
        deadline = time.monotonic() + within
        while len(self.of(method, pattern)) < count:
            if time.monotonic() > deadline:
                seen = [f"{c.method} {c.path}" for c in self.calls]
                raise AssertionError(f"{method} {pattern} not called {count}x: {seen}")
            await asyncio.sleep(0.01)
        return self.of(method, pattern)

    def rate_limit_next(self, method: str, pattern: str, retry_after: float = 0.2) -> None:
        """Answer the next matching request with a 429 (Discord's body, shorter wait)."""
        self._limited.append((method, re.compile(pattern), retry_after))

    def callbacks(self, interaction_id: str) -> list[Call]:
        """Interaction callbacks sent for one interaction."""
        return self.of("POST", rf"/interactions/{interaction_id}/[^/]+/callback")

    def followups(self, token: str) -> list[Call]:
        """Follow-up messages and edits of the original response for one interaction."""
        return [c for c in self.calls if c.path.startswith(f"/webhooks/{APP_ID}/{token}")]

    async def click(
        self,
        who: dict[str, Any],
        message_id: str,
        custom_id: str,
        *,
        values: list[str] | None = None,
        channel_id: int = CHANNEL_ID,
        guild_id: int | None = GUILD_ID,
    ) -> _Interaction:
        """A member clicks a button (or picks ``values`` in a select) on a message, in a
        channel of a guild (``guild_id`` None: in a DM)."""
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": 2}
        if values is not None:
            data = {"custom_id": custom_id, "component_type": 3, "values": values}
        return await self._interact(
            who, 3, data, message_id=message_id, channel_id=channel_id, guild_id=guild_id
        )

    async def slash(
        self,
        who: dict[str, Any],
        name: str,
        options: list[dict[str, Any]] | None = None,
        *,
        channel_id: int = CHANNEL_ID,
        guild_id: int | None = GUILD_ID,
    ) -> _Interaction:
        """A member runs ``/name`` with these options (as Discord sends them), in a channel of
        a guild (``guild_id`` None: in a DM)."""
        synced = self.commands.get(str(GUILD_ID)) or self.commands.get("global") or []
        command = next((c for c in synced if c["name"] == name), None)
        if command is None:
            raise AssertionError(f"/{name} was not synced")
        data = {
            "id": command["id"],
            "name": name,
            "type": 1,
            "options": options or [],
            "guild_id": str(GUILD_ID),
        }
        return await self._interact(who, 2, data, channel_id=channel_id, guild_id=guild_id)

    async def submit(
        self, who: dict[str, Any], modal_from: _Interaction, values: dict[str, str]
    ) -> _Interaction:
        """A member submits the modal that ``modal_from`` was answered with; ``values`` maps
        each text input's custom_id to what they typed. The payload mirrors the modal's own
        layout (action rows or labels), as Discord does."""
        (call,) = [c for c in self.callbacks(modal_from.id) if c.body["type"] == 9]
        modal = call.body["data"]

        def answer(component: dict[str, Any]) -> dict[str, Any]:
            if component["type"] == 4:
                cid = component["custom_id"]
                return {"type": 4, "custom_id": cid, "value": values.get(cid, "")}
            if component["type"] == 1:
                return {"type": 1, "components": [answer(c) for c in component["components"]]}
            if component["type"] == 18:
                return {"type": 18, "component": answer(component["component"])}
            return {"type": component["type"]}

        data = {
            "custom_id": modal["custom_id"],
            "components": [answer(c) for c in modal["components"]],
        }
        return await self._interact(who, 5, data, message_id=modal_from.message_id)

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a gateway DISPATCH event to every connected client."""
        frame = json.dumps({"op": 0, "t": event, "s": next(self._seq), "d": data})
        for ws in list(self._sockets):
            if not ws.closed:
                await ws.send_str(frame)

    def plant(self, *custom_ids: str) -> str:
        """A bot message carrying buttons with these custom ids (an old or forged message:
        discord.py ignores clicks on ids its message does not carry, as Discord never sends
        them); returns its id."""
        buttons = [{"type": 2, "style": 2, "label": "x", "custom_id": c} for c in custom_ids]
        body = {"content": "old alert", "components": [{"type": 1, "components": buttons}]}
        return str(self._new_message(str(CHANNEL_ID), body)["id"])

    def message(self, message_id: str) -> dict[str, Any]:
        """A channel message as it is now (after edits)."""
        return self.messages[message_id]

    def channel_messages(self, channel_id: int = CHANNEL_ID) -> list[dict[str, Any]]:
        """Messages posted in a channel, oldest first."""
        return [m for m in self.messages.values() if m["channel_id"] == str(channel_id)]

    # ---- gateway ------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}}))
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                if frame["op"] == 1:
                    await ws.send_str(json.dumps({"op": 11}))
                elif frame["op"] == 2:
                    self.identify_payloads.append(frame["d"])
                    await self._ready(ws)
        finally:
            self._sockets.remove(ws)
        return ws

    async def _ready(self, ws: web.WebSocketResponse) -> None:
        ready = {
            "v": 10,
            "user": BOT_USER,
            "guilds": [{"id": str(GUILD_ID), "unavailable": True}],
            "session_id": "fake-session",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(APP_ID), "flags": 0},
            "private_channels": [],
            "relationships": [],
        }
        guild = guild_payload(self.members, self.channels, self.roles)
        for event, data in (("READY", ready), ("GUILD_CREATE", guild)):
            await ws.send_str(json.dumps({"op": 0, "t": event, "s": next(self._seq), "d": data}))
        self.identified.set()

    async def _interact(
        self,
        who: dict[str, Any],
        kind: int,
        data: dict[str, Any],
        *,
        message_id: str | None = None,
        channel_id: int = CHANNEL_ID,
        guild_id: int | None = GUILD_ID,
    ) -> _Interaction:
        interaction = _Interaction(
            snowflake(), f"tok-{snowflake()}", kind, message_id, str(channel_id)
        )
        self._interactions[interaction.token] = interaction
        if guild_id != GUILD_ID:
            elsewhere = self._elsewhere(who, interaction, data, channel_id, guild_id)
            await self.dispatch("INTERACTION_CREATE", elsewhere)
            return interaction
        roles = next(m["roles"] for m in self.members if m["user"]["id"] == who["id"])
        payload: dict[str, Any] = {
            "id": interaction.id,
            "application_id": str(APP_ID),
            "type": kind,
            "data": data,
            "guild_id": str(GUILD_ID),
            "guild": {"id": str(GUILD_ID), "locale": "en-US", "features": []},
            "channel_id": str(channel_id),
            "channel": _channel(channel_id, self.channels.get(channel_id, "mentions")),
            "member": member(who, [int(r) for r in roles]),
            "token": interaction.token,
            "version": 1,
            "app_permissions": "2248473465835073",
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(GUILD_ID)},
            "context": 0,
            "attachment_size_limit": 10485760,
        }
        if message_id is not None and message_id in self.messages:
            payload["message"] = self.messages[message_id]
        await self.dispatch("INTERACTION_CREATE", payload)
        return interaction

    def _elsewhere(
        self,
        who: dict[str, Any],
        interaction: _Interaction,
        data: dict[str, Any],
        channel_id: int,
        guild_id: int | None,
    ) -> dict[str, Any]:
        """An interaction from a DM (``guild_id`` None) or from another server (Discord sends
        ``user`` alone in a DM). Elsewhere the member holds a role with the approver role's id:
        the worst case, which must be refused all the same."""
        payload: dict[str, Any] = {
            "id": interaction.id,
            "application_id": str(APP_ID),
            "type": interaction.type,
            "data": data,
            "channel_id": str(channel_id),
            "token": interaction.token,
            "version": 1,
            "app_permissions": "2248473465835073",
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": 10485760,
        }
        if guild_id is None:
            payload["channel"] = {"id": str(channel_id), "type": 1, "recipients": [who]}
            payload["user"] = who
            payload["context"] = 1
            payload["authorizing_integration_owners"] = {"1": who["id"]}
        else:
            payload["guild_id"] = str(guild_id)
            payload["guild"] = {"id": str(guild_id), "locale": "en-US", "features": []}
            payload["guild_locale"] = "en-US"
            payload["channel"] = _channel(channel_id, "elsewhere", guild_id)
            payload["member"] = member(who, [APPROVER_ROLE_ID])  # a role id they chose there
            payload["context"] = 0
            payload["authorizing_integration_owners"] = {"0": str(guild_id)}
        if interaction.message_id is not None and interaction.message_id in self.messages:
            payload["message"] = self.messages[interaction.message_id]
        return payload

    # ---- REST ---------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["path"]
        body: Any = None
        files: list[str] = []
        if request.content_type == "multipart/form-data":
            form = await request.post()
            for name, part in form.items():
                if isinstance(part, web.FileField):
                    files.append(part.filename)
                elif name == "payload_json":
                    body = json.loads(str(part))
        elif request.can_read_body:
            body = await request.json()
        self.calls.append(Call(request.method, path, body, files))
        if request.headers.get("Authorization") not in (f"Bot {self.token}", None):
            return _error(401, 0, "401: Unauthorized")
        for i, (method, pattern, retry_after) in enumerate(self._limited):
            if method == request.method and pattern.fullmatch(path):
                del self._limited[i]
                answer = {**RATE_LIMIT_BODY, "retry_after": retry_after}
                headers = {
                    # Discord's own 429s carry Via; without it discord.py assumes a Cloudflare
                    # ban and raises instead of waiting retry_after and retrying.
                    "Via": "1.1 google",
                    "Retry-After": str(max(1, round(retry_after))),
                    "X-RateLimit-Scope": "user",
                    "X-RateLimit-Global": "false",
                }
                return _json(answer, 429, headers)
        for method, route, handler in self._routes():
            match = re.fullmatch(route, path)
            if method == request.method and match:
                return handler(body, *match.groups())
        return _error(404, 0, "404: Not Found")

    def _routes(self) -> list[tuple[str, str, Callable[..., web.Response]]]:
        msgs = r"/channels/(\d+)/messages"
        hook = rf"/webhooks/{APP_ID}/([^/]+)"
        return [
            ("GET", r"/users/@me", lambda _b: _json(BOT_USER)),
            ("GET", r"/oauth2/applications/@me", lambda _b: _json(self._app_info())),
            ("PUT", rf"/applications/{APP_ID}/commands", self._sync),
            ("PUT", rf"/applications/{APP_ID}/guilds/(\d+)/commands", self._sync),
            ("GET", r"/guilds/(\d+)", self._guild),
            ("GET", r"/guilds/(\d+)/members/(\d+)", self._member),
            ("GET", r"/channels/(\d+)", self._channel),
            ("POST", r"/interactions/(\d+)/([^/]+)/callback", self._callback),
            ("POST", hook, self._followup),
            ("GET", hook + r"/messages/(@original|\d+)", self._hook_get),
            ("PATCH", hook + r"/messages/(@original|\d+)", self._hook_edit),
            ("DELETE", hook + r"/messages/(@original|\d+)", self._hook_delete),
            ("POST", msgs, self._send),
            ("GET", msgs, self._history),
            ("GET", msgs + r"/(\d+)", self._get),
            ("PATCH", msgs + r"/(\d+)", self._edit),
            ("DELETE", msgs + r"/(\d+)", self._delete),
            ("POST", msgs + r"/(\d+)/threads", self._thread),
        ]

    def _guild(self, _body: Any, guild_id: str) -> web.Response:
        if guild_id != str(GUILD_ID):
            return _error(404, 10004, "Unknown Guild")
        return _json(guild_payload(self.members))

    def _member(self, _body: Any, guild_id: str, user_id: str) -> web.Response:
        if guild_id != str(GUILD_ID):
            return _error(404, 10004, "Unknown Guild")
        if user_id == BOT_USER["id"]:
            return _json(member(BOT_USER, self.bot_roles))
        found = [m for m in self.members if m["user"]["id"] == user_id]
        return _json(found[0]) if found else _error(404, 10007, "Unknown Member")

    def _channel(self, _body: Any, channel_id: str) -> web.Response:
        if channel_id != str(CHANNEL_ID):
            return _error(404, 10003, "Unknown Channel")
        return _json({**_channel(CHANNEL_ID, "mentions"), "permission_overwrites": self.overwrites})

    def _app_info(self) -> dict[str, Any]:
        return {
            "id": str(APP_ID),
            "name": "Parley",
            "description": "",
            "icon": None,
            "bot_public": False,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "owner": ANN,
            "team": None,
            "flags": 0,
            "summary": "",
            "interactions_endpoint_url": None,
        }

    def _sync(self, body: Any, guild_id: str | None = None) -> web.Response:
        out = []
        for command in body:
            if not 1 <= len(command.get("description", "")) <= 100:
                return _error(400, 50035, "Invalid Form Body: description")
            out.append(
                {
                    "id": snowflake(),
                    "application_id": str(APP_ID),
                    "version": snowflake(),
                    "default_member_permissions": None,
                    "dm_permission": True,
                    "nsfw": False,
                    "options": [],
                    **command,
                    **({"guild_id": guild_id} if guild_id else {}),
                }
            )
        self.commands[guild_id or "global"] = out
        return _json(out)

    def _new_message(self, channel_id: str, body: dict[str, Any]) -> dict[str, Any]:
        content = body.get("content") or ""
        if len(content) > 2000:
            raise _Refused(_error(400, 50035, "Invalid Form Body: content"))
        for embed in body.get("embeds") or []:
            if len(embed.get("description") or "") > 4096:
                raise _Refused(_error(400, 50035, "Invalid Form Body: embeds.0.description"))
        message_id = snowflake()
        message: dict[str, Any] = {
            "id": message_id,
            "type": 0,
            "channel_id": channel_id,
            "guild_id": str(GUILD_ID),
            "author": BOT_USER,
            "content": content,
            "timestamp": _now(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": body.get("embeds") or [],
            "components": body.get("components") or [],
            "pinned": False,
            "flags": body.get("flags") or 0,
            "application_id": str(APP_ID),
        }
        self.messages[message_id] = message
        return message

    def _send(self, body: Any, channel_id: str) -> web.Response:
        if int(channel_id) not in self.channels and channel_id not in self.threads:
            return _error(404, 10003, "Unknown Channel")
        try:
            return _json(self._new_message(channel_id, body))
        except _Refused as exc:
            return exc.response

    def _history(self, body: Any, channel_id: str) -> web.Response:
        return _json(list(reversed(self.channel_messages(int(channel_id)))))

    def _get(self, body: Any, channel_id: str, message_id: str) -> web.Response:
        message = self.messages.get(message_id)
        if message is None or message["channel_id"] != channel_id:
            return _error(404, 10008, "Unknown Message")
        return _json(message)

    def _apply_edit(self, message_id: str, body: dict[str, Any]) -> dict[str, Any]:
        message = self.messages.get(message_id)
        if message is None:
            raise _Refused(_error(404, 10008, "Unknown Message"))
        for key in ("content", "embeds", "components", "flags"):
            if body.get(key) is not None:
                message[key] = body[key]
        message["edited_timestamp"] = _now()
        return message

    def _edit(self, body: Any, channel_id: str, message_id: str) -> web.Response:
        try:
            return _json(self._apply_edit(message_id, body))
        except _Refused as exc:
            return exc.response

    def _delete(self, body: Any, channel_id: str, message_id: str) -> web.Response:
        self.messages.pop(message_id, None)
        return web.Response(status=204)

    def _thread(self, body: Any, channel_id: str, message_id: str) -> web.Response:
        thread = {
            "id": message_id,  # Discord gives a thread started from a message that message's id
            "type": 11,
            "guild_id": str(GUILD_ID),
            "parent_id": channel_id,
            "owner_id": str(APP_ID),
            "name": body["name"],
            "message_count": 0,
            "member_count": 1,
            "rate_limit_per_user": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": body.get("auto_archive_duration", 1440),
                "archive_timestamp": _now(),
                "locked": False,
            },
        }
        self.threads[message_id] = thread
        return _json(thread)

    def _callback(self, body: Any, interaction_id: str, token: str) -> web.Response:
        interaction = self._interactions.get(token)
        if interaction is None or interaction.id != interaction_id:
            return _error(404, 10062, "Unknown interaction")
        if interaction.responded is not None:
            return _error(400, 40060, "Interaction has already been acknowledged.")
        kind = body["type"]
        interaction.responded = kind
        data = body.get("data") or {}
        resource: dict[str, Any] = {"type": kind}
        answer: dict[str, Any] = {
            "id": interaction.id,
            "type": interaction.type,
            "response_message_loading": kind == 5,
            "response_message_ephemeral": bool((data.get("flags") or 0) & _EPHEMERAL),
        }
        if kind in (4, 5):  # a new message answers the interaction
            message = self._new_message(interaction.channel_id, data)
            interaction.original_id = message["id"]
            resource["message"] = message
        elif kind in (6, 7) and interaction.message_id is not None:
            interaction.original_id = interaction.message_id
            if kind == 7:
                try:
                    resource["message"] = self._apply_edit(interaction.message_id, data)
                except _Refused as exc:
                    return exc.response
        if "message" in resource:
            answer["response_message_id"] = resource["message"]["id"]
        return _json({"interaction": answer, "resource": resource})

    def _interaction(self, token: str) -> _Interaction:
        interaction = self._interactions.get(token)
        if interaction is None:
            raise _Refused(_error(404, 10015, "Unknown Webhook"))
        if interaction.responded is None:
            raise _Refused(_error(404, 10015, "Unknown Webhook"))  # no response yet
        return interaction

    def _followup(self, body: Any, token: str) -> web.Response:
        try:
            interaction = self._interaction(token)
            return _json(self._new_message(interaction.channel_id, body))
        except _Refused as exc:
            return exc.response

    def _resolve(self, token: str, message: str) -> str:
        interaction = self._interaction(token)
        if message != "@original":
            return message
        if interaction.original_id is None:
            raise _Refused(_error(404, 10008, "Unknown Message"))
        return interaction.original_id

    def _hook_get(self, body: Any, token: str, message: str) -> web.Response:
        try:
            return _json(self.messages[self._resolve(token, message)])
        except _Refused as exc:
            return exc.response

    def _hook_edit(self, body: Any, token: str, message: str) -> web.Response:
        try:
            return _json(self._apply_edit(self._resolve(token, message), body))
        except _Refused as exc:
            return exc.response

    def _hook_delete(self, body: Any, token: str, message: str) -> web.Response:
        try:
            self.messages.pop(self._resolve(token, message), None)
        except _Refused as exc:
            return exc.response
        return web.Response(status=204)


class _Refused(Exception):
    """A request the fake refuses, carrying Discord's error answer."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response
