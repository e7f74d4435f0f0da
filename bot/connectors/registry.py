"""Chooses the publisher for a mention: the manual one where the platform lets Parley answer
only by hand, else the one of the source it came from (a connector that can post), else, for a
mention relayed by the inbound webhook, the connector of the platform it names, else the one
serving its platform, else the default (manual or log)."""

from __future__ import annotations

from collections.abc import Mapping

from bot.connectors.base import Publisher
from bot.connectors.manual import ManualPublisher
from bot.errors import ConfigError

MANUAL = ManualPublisher.name


class Publishers:
    """Publishers by name, and which one serves each platform (the default for the rest)."""

    def __init__(
        self,
        publishers: Mapping[str, Publisher],
        *,
        default: str,
        by_platform: Mapping[str, str] | None = None,
        by_source: Mapping[str, str] | None = None,
        relays: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self._publishers = dict(publishers)
        self._by_platform = dict(by_platform or {})
        self._by_source = dict(by_source or {})
        self._relays = {source: dict(by) for source, by in (relays or {}).items()}
        """Sources that relay other platforms' mentions (the inbound webhook): per source, the
        publisher of each platform Parley has exactly one connector for."""
        self._publishers.setdefault(MANUAL, ManualPublisher())
        relayed = [name for by in self._relays.values() for name in by.values()]
        for name in (default, *self._by_platform.values(), *self._by_source.values(), *relayed):
            if name not in self._publishers:
                known = ", ".join(sorted(self._publishers))
                raise ConfigError([f"unknown publisher {name!r} (known: {known})"])
        self.default = default

    def name_for(self, platform: str, source: str | None = None, *, answerable: bool = True) -> str:
        """The publisher name that posts replies to a mention from ``source`` on ``platform``."""
        if not answerable:
            return MANUAL
        if source is not None and source in self._by_source:
            return self._by_source[source]
        if source is not None and platform in self._relays.get(source, {}):
            return self._relays[source][platform]
        return self._by_platform.get(platform, self.default)

    def get(self, name: str) -> Publisher:
        """The publisher called ``name`` (falls back to the default one)."""
        return self._publishers.get(name) or self._publishers[self.default]
