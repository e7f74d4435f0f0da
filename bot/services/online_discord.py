"""Online check of Discord over REST (no gateway): the token (``GET /users/@me``), the server
DISCORD_GUILD_ID, each alert channel and the bot's permissions there (computed from the server's
roles and the channel's overwrites, as Discord does), and the approver roles.

Plain HTTP to DISCORD_API_BASE_URL (no chat library outside bot/frontends).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from bot.services.online_runner import Verdict, ok, refused

SERVICE = "Discord"

ADMINISTRATOR = 1 << 3
NEEDED = {
    "View Channel": 1 << 10,
    "Send Messages": 1 << 11,
    "Embed Links": 1 << 14,
    "Attach Files": 1 << 15,
    "Read Message History": 1 << 16,
    "Use Application Commands": 1 << 31,
}
"""What Parley needs in an alert channel, by the names Discord's settings show."""
ALL_NEEDED = sum(NEEDED.values())


@dataclass(frozen=True)
class DiscordTargets:
    """What the settings and parley.toml point at."""

    guild_id: int | None
    channel_ids: list[int]
    approver_role_ids: list[str]


class _Refused(Exception):
    """Discord answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class _Api:
    http: httpx.AsyncClient
    base: str
    token: str
    guilds: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def get(self, path: str) -> dict[str, Any]:
        """``GET path``: the JSON object, or _Refused."""
        response = await self.http.get(
            self.base.rstrip("/") + path, headers={"Authorization": f"Bot {self.token}"}
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict):
            message = body.get("message") if isinstance(body, dict) else None
            raise _Refused(response.status_code, str(message or f"HTTP {response.status_code}"))
        return body

    async def guild(self, guild_id: str) -> dict[str, Any]:
        """The server (asked once)."""
        if guild_id not in self.guilds:
            self.guilds[guild_id] = await self.get(f"/guilds/{guild_id}")
        return self.guilds[guild_id]


async def check_discord(
    http: httpx.AsyncClient, *, base_url: str, token: str, targets: DiscordTargets
) -> list[Verdict]:
    """The bot's line, then the server, each channel and the approver roles."""
    api = _Api(http, base_url, token)
    try:
        me = await api.get("/users/@me")
    except _Refused as exc:
        if exc.status != 401:
            return [
                refused(SERVICE, f"Discord answered {exc.message!r}: check DISCORD_API_BASE_URL")
            ]
        return [
            refused(
                SERVICE,
                "Discord refused DISCORD_BOT_TOKEN: reset it in the Developer Portal "
                "(your app → Bot → Reset Token) and put the new one in .env",
            )
        ]
    bot_id = str(me["id"])
    verdicts = [ok(SERVICE, f"signed in as bot {me.get('username', '?')} ({bot_id})")]
    invite = (
        "https://discord.com/oauth2/authorize?client_id="
        f"{bot_id}&scope=bot+applications.commands&permissions={ALL_NEEDED}"
    )
    if targets.guild_id is not None:
        verdicts.append(await _check_guild(api, str(targets.guild_id), invite))
    for channel_id in targets.channel_ids:
        verdicts.append(await _check_channel(api, str(channel_id), bot_id))
    guild_id = str(targets.guild_id) if targets.guild_id else _first_guild(api)
    if targets.approver_role_ids and guild_id in api.guilds:
        verdicts.append(_check_roles(api.guilds[guild_id], targets.approver_role_ids))
    return verdicts


def _first_guild(api: _Api) -> str | None:
    """The server of the first alert channel that could be read."""
    return next(iter(api.guilds), None)


async def _check_guild(api: _Api, guild_id: str, invite: str) -> Verdict:
    """Whether the bot is in the server DISCORD_GUILD_ID."""
    service = f"Discord server {guild_id}"
    try:
        guild = await api.guild(guild_id)
    except _Refused:
        return refused(
            service,
            "the bot is not in this server (or DISCORD_GUILD_ID is wrong): invite it with "
            + invite,
        )
    return ok(f"Discord server {guild.get('name', guild_id)!r}", "the bot is a member")


async def _check_channel(api: _Api, channel_id: str, bot_id: str) -> Verdict:
    """Whether the bot sees the channel and holds every permission Parley needs there."""
    service = f"Discord channel {channel_id}"
    try:
        channel = await api.get(f"/channels/{channel_id}")
        guild_id = str(channel.get("guild_id"))
        guild = await api.guild(guild_id)
        member = await api.get(f"/guilds/{guild_id}/members/{bot_id}")
    except _Refused:
        return refused(
            service,
            "the bot cannot see this channel: check the id (right-click the channel → Copy "
            "Channel ID) and give the bot's role View Channel there",
        )
    service = f"Discord channel #{channel.get('name', channel_id)}"
    granted = permissions(guild, channel, member, bot_id)
    missing = [name for name, bit in NEEDED.items() if not granted & bit]
    if missing:
        return refused(
            service,
            f"the bot lacks {', '.join(missing)}: grant them to its role in the channel's "
            "permissions (Edit Channel → Permissions)",
        )
    return ok(service, "the bot can read, post, embed, attach and use commands")


def permissions(
    guild: dict[str, Any], channel: dict[str, Any], member: dict[str, Any], user_id: str
) -> int:
    """The member's permissions in the channel: Discord's documented computation (server
    roles, then the channel's @everyone, role and member overwrites)."""
    if str(guild.get("owner_id")) == user_id:
        return ALL_NEEDED | ADMINISTRATOR
    guild_id = str(guild.get("id"))
    roles = {str(r["id"]): int(r.get("permissions", 0)) for r in guild.get("roles", [])}
    member_roles = {str(r) for r in member.get("roles", [])}
    base = roles.get(guild_id, 0)
    for role_id in member_roles:
        base |= roles.get(role_id, 0)
    if base & ADMINISTRATOR:
        return ALL_NEEDED | ADMINISTRATOR
    overwrites = {str(o["id"]): o for o in channel.get("permission_overwrites", [])}
    base = _apply(base, [overwrites[guild_id]] if guild_id in overwrites else [])
    base = _apply(base, [o for i, o in overwrites.items() if i in member_roles])
    return _apply(base, [overwrites[user_id]] if user_id in overwrites else [])


def _apply(base: int, overwrites: list[dict[str, Any]]) -> int:
    """One layer of overwrites: every deny of the layer, then every allow."""
    deny = allow = 0
    for overwrite in overwrites:
        deny |= int(overwrite.get("deny", 0))
        allow |= int(overwrite.get("allow", 0))
    return (base & ~deny) | allow


def _check_roles(guild: dict[str, Any], role_ids: list[str]) -> Verdict:
    """Whether every approver role exists in the server."""
    names = {str(r["id"]): str(r.get("name", "")) for r in guild.get("roles", [])}
    missing = [r for r in role_ids if r not in names]
    service = "Discord approver roles"
    if missing:
        return refused(
            service,
            f"no role {', '.join(missing)} in server {guild.get('name', '?')!r}: copy the ids "
            "again (Server Settings → Roles → ⋯ → Copy Role ID) into DISCORD_APPROVER_ROLE_IDS",
        )
    return ok(service, ", ".join(f"@{names[r]}" for r in role_ids))
