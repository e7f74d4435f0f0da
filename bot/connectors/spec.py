"""What a platform package tells the rest of Parley about its platform: one frozen
:class:`ConnectorSpec` (config model, secrets, builder, reply limit, length counter and its
unit, display name, colour, default routing). :mod:`bot.connectors.catalog` lists the specs;
the config union, the source factory, the limits table, the display names and colours are
derived from that list."""

from __future__ import annotations

import builtins
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from bot.connectors.base import Publisher, Source
from bot.errors import ConfigError


class SourceSection(Protocol):
    """What every ``[[sources]]`` section (a pydantic model) holds, whatever its platform."""

    @property
    def type(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def interval(self) -> float: ...

    def model_dump(self) -> dict[str, Any]:
        """The section's settings (it is a pydantic model)."""
        ...


SectionT = TypeVar("SectionT", bound=SourceSection)


@dataclass(frozen=True)
class Secret:
    """A value a connector reads from the environment (``.env`` is loaded at start)."""

    env: str
    """The environment variable."""
    what: str
    """What it holds, for the one-line 'set X (what) in .env' error."""
    required: bool = True


@dataclass
class Built:
    """A source, and the publisher that answers its mentions when the platform allows it
    (sharing the source's client: one session, one rate budget)."""

    source: Source
    publisher: Publisher | None = None
    sign_in: Callable[[], Awaitable[str]] | None = None
    """Who the credentials belong to, asked of the platform ('signed in as @acme'; raises
    CredentialsRejected or SourceError), for ``parley check --online``; None: nothing to
    sign in to (RSS, Hacker News, webhooks)."""


SecretValues = Mapping[str, str]
"""Secret values by environment variable; an optional secret that is unset reads as ``""``."""


def no_secrets(config: Any) -> tuple[Secret, ...]:
    """For a connector that reads no secret."""
    return ()


def no_prefix(handle: str) -> str:
    """For a publisher that puts nothing in front of the reply text."""
    return ""


@dataclass(frozen=True)
class ConnectorSpec(Generic[SectionT]):
    """One platform, as the rest of Parley knows it."""

    type: str
    """The ``type`` tag of its ``[[sources]]`` section, and the platform of its mentions."""
    display_name: str
    """The platform as people write it: 'X', 'Hacker News', 'Mastodon'."""
    config: builtins.type[SectionT]
    """The pydantic model of its ``[[sources]]`` section."""
    secrets: Callable[[SectionT], tuple[Secret, ...]]
    """The secrets a section needs, in the order they are checked."""
    build: Callable[[SectionT, SecretValues, Path | None], Built]
    """The source (and publisher) for a section, its secrets and the config's directory."""
    reply_limit: int | None = None
    """The longest reply the platform accepts, in its own unit; None: the default limit."""
    reply_length: Callable[[str], int] = len
    """How the platform counts a reply's length against ``reply_limit``."""
    reply_prefix: Callable[[str], str] = no_prefix
    """What the publisher puts in front of the reply for an author's handle (it eats into the
    limit): Mastodon's ``@acct``."""
    length_unit: str = "characters"
    """How the model's prompt names the unit ``reply_length`` counts in."""
    accent_colour: int | None = None
    """The platform's colour (``0xRRGGBB``) on alerts where the frontend colours them; None:
    Parley's own."""
    replies_by_hand: bool = False
    """The platform lets Parley answer only by hand: its mentions go to the manual publisher."""
    relays: bool = False
    """Its mentions may come from other platforms (the inbound webhook): each goes to the
    publisher of the platform it names when Parley has exactly one connector for that."""
    env_names: tuple[str, ...] = ()
    """Environment variables it reads whatever the section says (its ``*_env`` settings name
    the rest), so ``parley check`` does not take them for typos."""

    def create(self, config: SectionT, base_dir: Path | None = None) -> Built:
        """The source and publisher for ``config``; a missing secret is a ConfigError line."""
        values = {secret.env: read_secret(config, secret) for secret in self.secrets(config)}
        return self.build(config, values, base_dir)


def read_secret(config: SourceSection, secret: Secret) -> str:
    """The secret's value from the environment; ``""`` for an unset optional one."""
    value = os.environ.get(secret.env, "").strip()
    if not value and secret.required:
        raise ConfigError(
            [f"source {config.name!r} ({config.type}): set {secret.env} ({secret.what}) in .env"]
        )
    return value
