"""Chooses the publisher for a mention: the manual one where the platform lets Parley answer
only by hand, else the one of the source it came from (a connector that can post), else the one
serving its platform, else the default (manual or log)."""

from __future__ import annotations

from collections.abc import Mapping

from bot.errors import ConfigError
from bot.publishers.base import Publisher
from bot.publishers.manual import ManualPublisher

MANUAL = "manual"


class Publishers:
    """Publishers by name, and which one serves each platform (the default for the rest)."""

    def __init__(
        self,
        publishers: Mapping[str, Publisher],
        *,
        default: str,
        by_platform: Mapping[str, str] | None = None,
        by_source: Mapping[str, str] | None = None,
    ) -> None:
        self._publishers = dict(publishers)
        self._by_platform = dict(by_platform or {})
        self._by_source = dict(by_source or {})
        self._publishers.setdefault(MANUAL, ManualPublisher())
        for name in (default, *self._by_platform.values(), *self._by_source.values()):
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
        return self._by_platform.get(platform, self.default)

    def get(self, name: str) -> Publisher:
        """The publisher called ``name`` (falls back to the default one)."""
        return self._publishers.get(name) or self._publishers[self.default]
