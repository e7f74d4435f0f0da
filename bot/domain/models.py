"""Domain models shared by the store, the pipeline, the services and every frontend."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.domain.states import MentionState, ReplyState

MAX_TEXT_CHARS = 20_000
"""Mention text is capped at this size when normalised; the rest is dropped with an ellipsis."""


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class Author(BaseModel):
    """Who wrote a mention. ``reach`` is a follower/subscriber count when the source knows it."""

    model_config = ConfigDict(frozen=True)

    handle: str = ""
    display_name: str | None = None
    profile_url: str | None = None
    reach: int | None = None


class RawMention(BaseModel):
    """An item as a source yields it, normalised but not yet matched or stored."""

    source: str = Field(description="configured source name, e.g. 'google-alerts'")
    platform: str = Field(description="where it was said: rss, mastodon, bluesky, reddit …")
    external_id: str
    url: str | None = None
    author: Author = Author()
    title: str | None = None
    text: str
    language: str | None = None
    created_at: datetime | None = None
    parent_ref: str | None = None
    thread_context: str | None = None
    answerable: bool = Field(
        default=True, description="False: the platform lets Parley answer only by hand"
    )


TRIAGE_INTENTS = (
    "question",
    "complaint",
    "praise",
    "bug_report",
    "sales_lead",
    "press",
    "crisis_legal",
    "spam",
    "other",
)
"""What a mention is, as triage sees it (LLM or rules); stored in ``Mention.intent``."""

Sentiment = Literal["positive", "neutral", "negative"]
Urgency = Literal["low", "normal", "high"]


class Triage(BaseModel):
    """What triage decided about a mention (see bot/triage/)."""

    model_config = ConfigDict(frozen=True)

    relevant: bool = Field(description="about the brand (False: a homonym or unrelated)")
    sentiment: Sentiment
    urgency: Urgency
    needs_reply: bool
    reason: str = Field(default="", description="one short line from the triager")
    by: str = Field(description="'rules' or the model that triaged it")


class Mention(BaseModel):
    """A stored mention that matched a watch rule."""

    id: int
    source: str
    platform: str
    external_id: str
    url: str | None
    canonical_url: str | None
    author: Author
    title: str | None
    text: str
    language: str | None
    created_at: datetime | None
    fetched_at: datetime
    brand: str
    rule: str
    parent_ref: str | None = None
    thread_context: str | None = None
    state: MentionState
    urgent: bool = False
    intent: str | None = None
    triage: Triage | None = None
    duplicates: int = 0
    answerable: bool = True
    """False: the platform lets Parley answer only by hand (the manual publisher)."""
    alert_refs: dict[str, str] = Field(default_factory=dict)
    drafting: bool = False
    """An automatic draft is owed: the alert went out first (bot/services/auto_draft.py)."""
    draft_refused: str | None = None
    """Why every automatic draft was refused by the guards (shown until drafts are saved)."""

    @property
    def relayed(self) -> bool:
        """Pushed by the inbound webhook, which scopes ids as ``<platform>:<id>``."""
        return self.external_id.startswith(f"{self.platform}:")

    @property
    def post_id(self) -> str:
        """The platform's own id of the post (publishers answer under it)."""
        return self.external_id.removeprefix(f"{self.platform}:")


class Draft(BaseModel):
    """One candidate reply text for a mention."""

    id: int
    mention_id: int
    variant: int
    text: str
    origin: str = Field(description="'offline', 'llm', or 'edit:<actor>'")
    model: str | None = None
    prompt_hash: str | None = None
    tokens: int | None = None
    created_at: datetime
    selected: bool = False
    flags: tuple[str, ...] = Field(
        default=(), description="checks a CM should look at before approving (promises…)"
    )


class Reply(BaseModel):
    """An approved reply in the outbox."""

    id: int
    mention_id: int
    text: str
    publisher: str
    idempotency_key: str
    state: ReplyState
    attempts: int = 0
    next_attempt_at: datetime | None = None
    posted_url: str | None = None
    posted_id: str | None = None
    cost_usd: float | None = None
    """What the platform charged for the post (X pay-per-use), when it charges."""
    error: str | None = None
    approved_by: str
    created_at: datetime
    updated_at: datetime
    posted_by_hand: str | None = None
    """Who confirmed posting it by hand (the manual publisher's "Posted it"), from the audit."""


class AuditEntry(BaseModel):
    """One decision or state change, kept forever."""

    id: int
    at: datetime
    actor: str
    entity: str
    entity_id: int
    action: str
    from_state: str | None = None
    to_state: str | None = None
    before_text: str | None = None
    after_text: str | None = None
    detail: str | None = None


class Actor(BaseModel):
    """Someone acting from a chat frontend (or the system itself)."""

    model_config = ConfigDict(frozen=True)

    platform: str
    user_id: str
    display_name: str = ""
    roles: frozenset[str] = frozenset()

    @property
    def label(self) -> str:
        """How the actor is written in the audit log and in chat."""
        name = self.display_name or self.user_id
        return f"{self.platform}:{name}"


SYSTEM = Actor(platform="system", user_id="parley", display_name="parley")
