"""Reply length limits per platform (see platform-facts.md)."""

from __future__ import annotations

REPLY_LIMITS: dict[str, int] = {
    "x": 280,
    "bluesky": 300,
    "mastodon": 500,
    "reddit": 10_000,
}
DEFAULT_REPLY_LIMIT = 5_000


def reply_limit(platform: str, default: int = DEFAULT_REPLY_LIMIT) -> int:
    """The longest reply the platform accepts (characters)."""
    return REPLY_LIMITS.get(platform, default)
