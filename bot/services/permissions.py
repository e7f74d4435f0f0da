"""Who may decide: approvers are configured per chat platform, by user id or role id."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.domain.models import Actor


@dataclass(frozen=True)
class ApproverPolicy:
    """``users`` and ``roles`` map a platform name to the ids allowed to approve and post."""

    users: dict[str, frozenset[str]] = field(default_factory=dict)
    roles: dict[str, frozenset[str]] = field(default_factory=dict)
    console_is_approver: bool = True

    def is_approver(self, actor: Actor) -> bool:
        """Whether this actor may approve, edit, reject, ignore or retry."""
        if actor.platform == "system":
            return True
        if actor.platform == "console":
            return self.console_is_approver
        if actor.user_id in self.users.get(actor.platform, frozenset()):
            return True
        return bool(actor.roles & self.roles.get(actor.platform, frozenset()))
