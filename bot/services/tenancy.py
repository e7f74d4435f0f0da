"""Tenancy: which brands a chat may see, written once for every frontend.

An agency routes each client's alerts to the client's own chat (``route.telegram_chat_id``,
``route.discord_channel_id`` of a brand in parley.toml). Such a chat sees only the brands routed
to it: their alerts, ``/pending``, ``/mention``, ``/stats``, ``/queue`` and watch rules. The team's
own places see every brand: the default alert chat (``TELEGRAM_ALERT_CHAT_ID``,
``DISCORD_ALERT_CHANNEL_ID``), the console, and any other channel of the team's Discord server.
A Telegram chat that is neither routed nor the default one is nobody's (anyone may add a bot to
a group): only approvers are answered there, each about the brands they approve.

Frontends only say where a command was typed (a :class:`Place`); :meth:`Tenancy.scope` answers
which brands that is, and the rest of this module checks a brand or a mention against it. A
brand or mention outside the scope is answered exactly as one that does not exist, so a client
cannot even learn another client's brand names or mention numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bot.config import BrandConfig, ParleyConfig
from bot.domain.models import Actor, Mention
from bot.errors import NotFound, PermissionDenied
from bot.services.permissions import ApproverPolicy
from bot.storage.store import Store

Scope = frozenset[str] | None
"""The brands a place may see; None: every brand (the team's own place)."""

CONSOLE = "console"
SOURCES = "source health (every source serves every brand)"
"""What :meth:`Tenancy.require_team` names for ``/sources``."""


@dataclass(frozen=True)
class Place:
    """Where a command or a button press came from.

    ``ids`` are the chat's or channel's id first, then any other name it goes by: a Telegram
    chat's ``@username``, a Discord thread's parent channel (a thread belongs to its channel).
    ``team_space``: the place is inside the team's own space (a channel of DISCORD_GUILD_ID),
    so an unrouted one is the team's.
    """

    platform: str
    ids: tuple[int | str, ...] = ()
    team_space: bool = False


def _key(value: int | str) -> str:
    return str(value).strip().lower()


def _route(brand: BrandConfig, platform: str) -> int | str | None:
    if platform == "telegram":
        return brand.route.telegram_chat_id
    if platform == "discord":
        return brand.route.discord_channel_id
    return None


class Tenancy:
    """Which brands a place sees, and the checks every frontend makes with it."""

    def __init__(
        self,
        config: ParleyConfig,
        policy: ApproverPolicy,
        store: Store,
        defaults: Mapping[str, int | str | None],
    ) -> None:
        """``defaults``: each platform's default alert chat or channel (the team's own)."""
        self.config = config
        self.policy = policy
        self.store = store
        self._defaults = {p: _key(v) for p, v in defaults.items() if v is not None}
        self._routes: dict[tuple[str, str], set[str]] = {}
        for brand in config.brands:
            for platform in ("telegram", "discord"):
                route = _route(brand, platform)
                if route is not None:
                    self._routes.setdefault((platform, _key(route)), set()).add(brand.name)
        self._aliases: dict[tuple[str, str], str] = {}

    def alias(self, platform: str, old: int | str, new: int | str) -> None:
        """The chat ``old`` is now ``new`` (a Telegram group upgraded to a supergroup): ``new``
        is seen as ``old`` was, routed brands and default chat included."""
        self._aliases[(platform, _key(new))] = _key(old)

    def _keys(self, place: Place) -> set[str]:
        """The place's ids, and the ids it had before it moved."""
        keys = {_key(i) for i in place.ids}
        todo = list(keys)
        while todo:
            before = self._aliases.get((place.platform, todo.pop()))
            if before is not None and before not in keys:
                keys.add(before)
                todo.append(before)
        return keys

    def routed(self, place: Place) -> frozenset[str]:
        """The brands whose alerts are routed to this place."""
        keys = self._keys(place)
        found: set[str] = set()
        for key in keys:
            found |= self._routes.get((place.platform, key), set())
        return frozenset(found)

    def scope(self, place: Place, actor: Actor) -> Scope:
        """The brands ``actor`` may see in ``place`` (None: all); PermissionDenied in a place
        that is nobody's for someone who approves nothing."""
        if place.platform == CONSOLE:
            return None
        if self._defaults.get(place.platform) in self._keys(place):
            return None
        routed = self.routed(place)
        if routed:
            return routed
        if place.team_space:
            return None
        approved = self.policy.approved_brands(actor)
        if approved is None:
            return None
        if not approved:
            raise PermissionDenied(
                "this chat is not one of the team's; ask them to add your user id "
                f"({actor.user_id}) as an approver"
            )
        return approved

    def brands(self, scope: Scope) -> list[BrandConfig]:
        """The configured brands within ``scope``, in config order."""
        return [b for b in self.config.brands if scope is None or b.name in scope]

    def brand(self, scope: Scope, name: str | None) -> str | None:
        """``name`` if it is a brand within ``scope`` (None stays None); else NotFound, worded
        as for a brand that does not exist."""
        if name is None or not name.strip():
            return None
        if self.config.brand(name) is None or (scope is not None and name not in scope):
            known = ", ".join(b.name for b in self.brands(scope))
            raise NotFound(f"unknown brand {name!r}; brands here: {known}")
        return name

    def only_brand(self, scope: Scope, name: str | None) -> str | None:
        """The brand a per-brand figure (``/stats``) is about: ``name``, else the place's only
        brand; None means every brand and is allowed to the team's own places only."""
        chosen = self.brand(scope, name)
        if chosen is not None or scope is None:
            return chosen
        mine = [b.name for b in self.brands(scope)]
        if len(mine) == 1:
            return mine[0]
        raise NotFound(f"this chat follows {', '.join(mine)}: name one, e.g. {mine[0]}")

    @staticmethod
    def sees(scope: Scope, brand: str) -> bool:
        """Whether ``brand`` is within ``scope``."""
        return scope is None or brand in scope

    @staticmethod
    def require_team(scope: Scope, what: str) -> None:
        """Refuse ``what`` (something every brand shares, such as source health) in a place
        that sees only some brands."""
        if scope is not None:
            raise PermissionDenied(f"{what} is shown in the team's own chat only")

    async def mention(self, scope: Scope, mention_id: int) -> Mention:
        """The mention if ``scope`` sees its brand; else NotFound, as for an unknown number."""
        mention = await self.store.mentions.get(mention_id)
        if not self.sees(scope, mention.brand):
            raise NotFound(f"no mention #{mention_id}")
        return mention

    async def decider(
        self, place: Place, actor: Actor, mention_id: int, action: str = "decide"
    ) -> Mention:
        """The mention, when ``place`` sees it and ``actor`` approves its brand (a global
        approver, or one of that brand's); NotFound or PermissionDenied (naming ``action``)
        otherwise."""
        mention = await self.mention(self.scope(place, actor), mention_id)
        if not self.policy.is_approver(actor, mention.brand):
            raise PermissionDenied(f"only approvers can {action}; ask a team lead to add you")
        return mention
