"""The small interfaces every connector implements: a mention source (with the rule for a
source's ``name`` and two base classes that give a source its ``name`` and ``interval`` from its
config section and close its API client) and a publisher that posts approved replies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Generic, Protocol, TypeVar, runtime_checkable

from pydantic import Field

from bot.domain.models import Mention, RawMention, Reply

SourceName = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
]
"""A source's ``name`` setting: letters, digits, ``_``, ``.`` and ``-``, at most 64."""

Cursor = dict[str, str]
"""A source's persisted position (ETag, since_id, watermark…), stored as JSON between polls."""


@dataclass
class FetchResult:
    """What one poll returned: new items and the cursor to persist once they are stored."""

    items: list[RawMention]
    cursor: Cursor = field(default_factory=dict)


class Source(Protocol):
    """A place Parley polls for mentions. ``fetch`` raises SourceError on failure."""

    @property
    def name(self) -> str: ...

    @property
    def interval(self) -> float: ...

    async def fetch(self, cursor: Cursor) -> FetchResult: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Budgeted(Protocol):
    """A source that knows how many calls its platform still allows (shown in health)."""

    @property
    def rate_limit_remaining(self) -> int | None: ...


class SourceSettings(Protocol):
    """What every source's config section holds."""

    @property
    def name(self) -> str: ...

    @property
    def interval(self) -> float: ...


class Closable(Protocol):
    """An API client a source closes when it is closed itself."""

    async def aclose(self) -> None: ...


ConfigT = TypeVar("ConfigT", bound=SourceSettings)
ClientT = TypeVar("ClientT", bound=Closable)


class ConfiguredSource(Generic[ConfigT]):
    """A source's ``name`` and ``interval``, read from its config section."""

    def __init__(self, config: ConfigT) -> None:
        self.config = config

    @property
    def name(self) -> str:
        """The configured source name."""
        return self.config.name

    @property
    def interval(self) -> float:
        """Seconds between polls."""
        return self.config.interval


class ClientSource(ConfiguredSource[ConfigT], Generic[ConfigT, ClientT]):
    """A configured source that reads its platform through an API client it closes with itself."""

    def __init__(self, config: ConfigT, client: ClientT) -> None:
        super().__init__(config)
        self.client = client

    async def aclose(self) -> None:
        """Close the API client (it closes the HTTP client if it created that)."""
        await self.client.aclose()


@dataclass(frozen=True)
class PublishResult:
    """Outcome of a post. ``manual`` means a person must post it and confirm."""

    posted_id: str | None = None
    url: str | None = None
    manual: bool = False
    cost_usd: float | None = None
    """What the platform charges for this post (X pay-per-use), when it charges."""


class Publisher(Protocol):
    """Posts a reply. Raises PublishError; ``permanent=True`` ends the reply as dead."""

    @property
    def name(self) -> str: ...

    async def publish(self, reply: Reply, mention: Mention) -> PublishResult: ...

    async def reconcile(self, reply: Reply, mention: Mention) -> PublishResult | None:
        """After a crash mid-send: the earlier post if it went through, else None."""
        ...
