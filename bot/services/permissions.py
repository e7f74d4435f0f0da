"""Who may decide: approvers are configured per chat platform, by user id or role id, globally
(the settings) and per brand (``approvers`` of a brand in parley.toml).

A global approver may decide on every brand's mentions; a brand's approver on that brand's
only. Every permission check in Parley asks :meth:`ApproverPolicy.is_approver`, with the brand
when a mention is concerned and without it for team-wide actions (pause, reload, watch rules),
which stay with the global approvers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bot.config import BrandConfig
from bot.domain.models import Actor


@dataclass(frozen=True)
class Approvers:
    """Ids allowed to decide, per platform: ``users`` by user id, ``roles`` by role id."""

    users: Mapping[str, frozenset[str]] = field(default_factory=dict)
    roles: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def include(self, actor: Actor) -> bool:
        """Whether this actor is listed, by user id or by one of its roles."""
        if actor.user_id in self.users.get(actor.platform, frozenset()):
            return True
        return bool(actor.roles & self.roles.get(actor.platform, frozenset()))


@dataclass(frozen=True)
class ApproverPolicy:
    """``users`` and ``roles`` map a platform name to the ids allowed to approve and post any
    brand's replies; ``brands`` maps a brand to its own additional approvers."""

    users: dict[str, frozenset[str]] = field(default_factory=dict)
    roles: dict[str, frozenset[str]] = field(default_factory=dict)
    console_is_approver: bool = True
    brands: Mapping[str, Approvers] = field(default_factory=dict)

    def is_approver(self, actor: Actor, brand: str | None = None) -> bool:
        """Whether this actor may approve, edit, reject, ignore or retry: for every brand
        (``brand`` None: a team-wide action), or for this brand's mentions."""
        if actor.platform == "system":
            return True
        if actor.platform == "console":
            return self.console_is_approver
        if Approvers(self.users, self.roles).include(actor):
            return True
        own = self.brands.get(brand) if brand is not None else None
        return own is not None and own.include(actor)

    def approved_brands(self, actor: Actor) -> frozenset[str] | None:
        """The brands this actor may decide on: None for a global approver (every brand)."""
        if self.is_approver(actor):
            return None
        return frozenset(name for name, own in self.brands.items() if own.include(actor))


def brand_approvers(brands: Iterable[BrandConfig]) -> dict[str, Approvers]:
    """Each brand's own approvers from parley.toml (brands listing none are left out)."""
    out = {}
    for brand in brands:
        own = brand.approvers
        if own.telegram_user_ids or own.discord_role_ids:
            out[brand.name] = Approvers(
                users={"telegram": frozenset(str(i) for i in own.telegram_user_ids)},
                roles={"discord": frozenset(str(i) for i in own.discord_role_ids)},
            )
    return out
