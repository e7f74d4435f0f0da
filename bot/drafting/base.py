"""The drafting interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.config import BrandConfig
from bot.domain.models import Mention


@dataclass(frozen=True)
class DraftText:
    """One proposed reply and where it came from."""

    text: str
    model: str | None = None
    prompt_hash: str | None = None
    tokens: int | None = None
    origin: str | None = None
    """Who wrote it, when not the drafter asked (e.g. the templates an LLM fell back to)."""


class Drafter(Protocol):
    """Writes reply variants for a mention in a brand's voice."""

    @property
    def name(self) -> str: ...

    async def draft(
        self,
        mention: Mention,
        brand: BrandConfig,
        *,
        variants: int = 3,
        instruction: str | None = None,
    ) -> list[DraftText]: ...
