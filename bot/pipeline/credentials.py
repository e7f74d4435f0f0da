"""Refused credentials and the sources that use them, so the team hears once per credential.

A Facebook Page source and an Instagram source often share one Meta token: when it expires,
every poll of each fails the same way. The runners share one :class:`RefusedCredentials`; the
first source to report a credential refused says so (log and chat), the others and later polls
stay quiet until a source using it works again.
"""

from __future__ import annotations


class RefusedCredentials:
    """Which credentials are refused right now, and by which sources."""

    def __init__(self) -> None:
        self._sources: dict[str, set[str]] = {}

    def refused(self, credential: str, source: str) -> bool:
        """Record that ``source`` had ``credential`` refused; True when it is news (no source
        had reported it since it last worked)."""
        users = self._sources.setdefault(credential, set())
        news = not users
        users.add(source)
        return news

    def accepted(self, source: str) -> None:
        """``source`` worked: a credential it had refused is forgotten once none still fails."""
        for credential in [c for c, users in self._sources.items() if source in users]:
            users = self._sources[credential]
            users.discard(source)
            if not users:
                del self._sources[credential]
