"""Parley's error tree.

ParleyError
├── UserFacingError      text is safe to show in chat as-is
│   ├── PermissionDenied  the actor is not an approver
│   ├── NotFound          no such mention / reply
│   └── InvalidTransition the entity's state does not allow the action
├── ConfigError           bad settings or parley.toml; carries one line per problem
├── QuerySyntaxError      a malformed watch-rule query (position included)
├── SourceError           a source could not be fetched or parsed
│   ├── SourceRateLimited the platform said 429 (retry_after seconds)
│   └── CredentialsRejected the token or password was refused (expired, revoked, missing
│                         permission): polling cannot recover until a person renews it
├── PublishError          a reply could not be posted (retryable or permanent)
├── LLMError              the language model failed
└── StorageError          the database failed or is from a newer Parley
    └── DatabaseInUse     another running Parley holds the database (one writer per file)
"""

from __future__ import annotations


class ParleyError(Exception):
    """Base of every error Parley raises on purpose."""


class UserFacingError(ParleyError):
    """An error whose message is written for the person who caused it."""


class PermissionDenied(UserFacingError):
    """The actor may not perform this action."""


class NotFound(UserFacingError):
    """The mention or reply does not exist."""


class InvalidTransition(UserFacingError):
    """A state machine refused a transition."""


class ConfigError(ParleyError):
    """Configuration is invalid; ``problems`` holds one human-readable line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class QuerySyntaxError(ParleyError):
    """A watch-rule query could not be parsed; ``position`` is a 0-based character offset."""

    def __init__(self, message: str, position: int) -> None:
        self.message = message
        self.position = position
        super().__init__(f"{message} at position {position}")


class SourceError(ParleyError):
    """A source failed to fetch or parse; the message is safe to log and show."""


class SourceRateLimited(SourceError):
    """The platform answered 429; ``retry_after`` is its Retry-After in seconds, if sent."""

    def __init__(self, message: str, *, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CredentialsRejected(SourceError):
    """The platform refused the source's credentials; the message says what to renew.

    ``credential`` names the refused secret (its variable and a fingerprint of its value) when
    several sources may share it, so the team hears once per credential, not once per source.
    """

    def __init__(self, message: str, *, credential: str | None = None) -> None:
        super().__init__(message)
        self.credential = credential


class PublishError(ParleyError):
    """Posting a reply failed. ``permanent`` errors are not retried."""

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None):
        self.permanent = permanent
        self.retry_after = retry_after
        super().__init__(message)


class LLMError(ParleyError):
    """The language model could not produce a usable answer."""


class StorageError(ParleyError):
    """The database could not be opened or migrated."""


class DatabaseInUse(StorageError):
    """Another running Parley holds the database's lock; ``holder`` describes it (pid, host,
    since when) when its record could be read."""

    DEFAULT_REMEDY = "stop that one first, or point PARLEY_DB_PATH at another file"

    def __init__(self, database: str, holder: str | None, remedy: str = DEFAULT_REMEDY) -> None:
        self.database = database
        self.holder = holder
        self.remedy = remedy
        who = holder or "another Parley process"
        super().__init__(f"{database} is in use by {who}: {remedy}")

    def with_remedy(self, remedy: str) -> DatabaseInUse:
        """The same refusal with other advice (e.g. the demo's --db option)."""
        return DatabaseInUse(self.database, self.holder, remedy)
