"""Watch rules at run time: list them, add or remove rules from chat without a restart.

Rules come from two places: ``parley.toml`` (read-only here) and chat commands (persisted in
the database, audited). The ingestor matches config rules first, in file order, then chat rules
in the order they were added; every change rebuilds its matcher at once.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Literal

from bot.config import ParleyConfig
from bot.domain.models import Actor
from bot.errors import NotFound, PermissionDenied, QuerySyntaxError, UserFacingError
from bot.matching.matcher import Matcher, RuleSpec
from bot.matching.query import parse_query
from bot.pipeline.ingest import Ingestor
from bot.services.permissions import ApproverPolicy
from bot.storage.controls import DuplicateRule, StoredRule
from bot.storage.store import Store

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 2000
"""Same cap as a query in parley.toml."""

MAX_NAME_CHARS = 64
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class WatchRule:
    """One watch rule, wherever it was defined."""

    brand: str
    name: str
    query: str
    urgent: bool
    origin: Literal["config", "chat"]
    added_by: str | None


def _from_chat(rule: StoredRule) -> WatchRule:
    return WatchRule(rule.brand, rule.name, rule.query, rule.urgent, "chat", rule.added_by)


class WatchService:
    """Lists and changes watch rules; approvers only may change them."""

    def __init__(
        self, store: Store, config: ParleyConfig, ingestor: Ingestor, policy: ApproverPolicy
    ) -> None:
        self.controls = store.controls
        self.config = config
        self.ingestor = ingestor
        self.policy = policy
        self._chat_rules: list[WatchRule] = []
        self._lock = asyncio.Lock()  # one change (write + rebuild) at a time

    def _config_rules(self) -> list[WatchRule]:
        return [
            WatchRule(b.name, r.name, r.query, r.urgent, "config", None)
            for b in self.config.brands
            for r in b.rules
        ]

    async def load(self) -> None:
        """Read the chat rules and rebuild the ingestor's matcher (config rules, then chat).

        A stored rule whose brand left parley.toml, or whose query no longer parses, is kept in
        the database but not used (logged), so a config edit never stops Parley from starting.
        """
        usable = []
        for stored in await self.controls.rules():
            if self.config.brand(stored.brand) is None:
                log.warning(
                    "chat rule %s/%s skipped: brand not in parley.toml", stored.brand, stored.name
                )
                continue
            try:
                parse_query(stored.query)
            except QuerySyntaxError as exc:
                log.warning("chat rule %s/%s skipped: %s", stored.brand, stored.name, exc)
                continue
            usable.append(_from_chat(stored))
        self._chat_rules = usable
        self._rebuild()

    def _rebuild(self) -> None:
        specs = [
            RuleSpec(brand=r.brand, rule=r.name, query=r.query, urgent=r.urgent)
            for r in (*self._config_rules(), *self._chat_rules)
        ]
        self.ingestor.matcher = Matcher(specs)

    async def rules(self, brand: str | None = None) -> list[WatchRule]:
        """Every rule in matching order (config order, then chat rules by creation)."""
        if brand is not None:
            self._brand(brand)
        return [
            r
            for r in (*self._config_rules(), *self._chat_rules)
            if brand is None or r.brand == brand
        ]

    def _brand(self, brand: str) -> None:
        if self.config.brand(brand) is None:
            known = ", ".join(b.name for b in self.config.brands)
            raise NotFound(f"unknown brand {brand!r}; brands are: {known}")

    def _require_approver(self, actor: Actor) -> None:
        if not self.policy.is_approver(actor):
            raise PermissionDenied("only approvers can change watch rules; ask a team lead")

    async def add(
        self, brand: str, name: str, query: str, actor: Actor, *, urgent: bool = False
    ) -> WatchRule:
        """Add a rule to a brand (matched after the existing rules); audited and persisted."""
        self._require_approver(actor)
        self._brand(brand)
        name, query = name.strip(), query.strip()
        if not name or len(name) > MAX_NAME_CHARS or not _NAME.match(name):
            raise UserFacingError(
                f"a rule name is one word of up to {MAX_NAME_CHARS} letters, digits, '_', '.' "
                "or '-', starting with a letter or digit"
            )
        if not query:
            raise UserFacingError("the query is empty; type it after the rule name")
        if len(query) > MAX_QUERY_CHARS:
            raise UserFacingError(
                f"that query is {len(query)} characters; the limit is {MAX_QUERY_CHARS}"
            )
        try:
            parse_query(query)
        except QuerySyntaxError as exc:
            raise UserFacingError(f"that query has a mistake: {exc}") from None
        async with self._lock:
            existing = next(
                (r for r in await self.rules(brand) if r.name.casefold() == name.casefold()), None
            )
            if existing is not None:
                where = "parley.toml" if existing.origin == "config" else "chat"
                raise UserFacingError(
                    f"brand {brand} already has a rule named {existing.name!r} (from {where}); "
                    "choose another name"
                )
            try:
                stored = await self.controls.add_rule(brand, name, query, urgent, actor)
            except DuplicateRule:
                # A rule skipped at load (unparseable after an upgrade) still holds the name.
                raise UserFacingError(
                    f"brand {brand} already has a stored rule named {name!r}; remove it first"
                ) from None
            rule = _from_chat(stored)
            self._chat_rules.append(rule)
            self._rebuild()
        log.info("rule %s/%s added by %s", brand, name, actor.label)
        return rule

    async def remove(self, brand: str, name: str, actor: Actor) -> WatchRule:
        """Remove a rule added from chat; config rules are edited in parley.toml."""
        self._require_approver(actor)
        self._brand(brand)
        name = name.strip()
        async with self._lock:
            if any(r.name == name for r in self._config_rules() if r.brand == brand):
                raise UserFacingError(
                    f"rule {brand}/{name} comes from parley.toml; edit that file to change or "
                    "remove it, then restart Parley"
                )
            stored = await self.controls.remove_rule(brand, name, actor)
            if stored is None:
                raise NotFound(f"brand {brand} has no rule named {name!r}")
            self._chat_rules = [r for r in self._chat_rules if (r.brand, r.name) != (brand, name)]
            self._rebuild()
        log.info("rule %s/%s removed by %s", brand, name, actor.label)
        return _from_chat(stored)
