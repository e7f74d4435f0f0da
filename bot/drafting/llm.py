"""The LLM drafter: one Chat Completions call returns every variant for a mention.

The request starts with the static, cacheable part (system prompt, brand voice, draft task) and
ends with what varies: the platform's limit, the reply language, a tweak or the CM's
instruction (trusted, outside the fences) and the mention, its thread and the current draft
(untrusted, fenced). If the server fails, automatic drafts fall back to the offline templates,
at once while the client's circuit breaker is open (bot/llm/breaker.py); a redraft with an
instruction reports the failure instead (templates cannot follow it). When the token budget
is spent, drafting pauses: :class:`BudgetExhausted` reaches the CM.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from typing import Any

from bot.config import BrandConfig
from bot.connectors.catalog import length_unit, reply_limit
from bot.domain.limits import DEFAULT_REPLY_LIMIT
from bot.domain.models import Mention
from bot.drafting.base import Drafter, DraftText
from bot.drafting.offline import safe_author
from bot.drafting.tweaks import MAX_INSTRUCTION_CHARS, find_tweak
from bot.errors import LLMError, UserFacingError
from bot.llm.client import BudgetExhausted, ChatMessage, JsonTask, LlmClient
from bot.llm.prompts import PromptLibrary, fence, new_fence_key
from bot.storage.store import Store

log = logging.getLogger(__name__)

DRAFT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"variants": {"type": "array", "items": {"type": "string"}}},
    "required": ["variants"],
    "additionalProperties": False,
}

_LANGUAGE_TAG_RE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")


def parse_variants(data: Any) -> list[str]:
    """The variants of a draft answer; ValueError when there are none."""
    if not isinstance(data, dict) or not isinstance(data.get("variants"), list):
        raise ValueError('expected {"variants": [ ... ]}')
    texts = []
    for item in data["variants"]:
        text = item.get("text") if isinstance(item, dict) else item
        if isinstance(text, str) and text.strip():
            texts.append(text.strip())
    if not texts:
        raise ValueError("the variants list was empty")
    return texts


class LlmDrafter:
    """Drafts with an OpenAI-compatible model (see the module docstring)."""

    name = "llm"

    def __init__(
        self,
        client: LlmClient,
        library: PromptLibrary,
        store: Store,
        fallback: Drafter,
        *,
        default_limit: int = DEFAULT_REPLY_LIMIT,
    ) -> None:
        self.client = client
        self.library = library
        self.store = store
        self.fallback = fallback
        self.default_limit = default_limit

    async def draft(
        self,
        mention: Mention,
        brand: BrandConfig,
        *,
        variants: int = 3,
        instruction: str | None = None,
    ) -> list[DraftText]:
        """``variants`` replies from one call (a repair retry aside)."""
        if variants < 1:
            return []
        if not instruction and not self.client.available:
            log.debug("the LLM is paused; drafting #%d with templates", mention.id)
            return await self._fallback(mention, brand, variants)
        try:
            return await self._draft(mention, brand, variants, instruction)
        except BudgetExhausted:
            raise
        except LLMError as exc:
            if instruction:
                raise UserFacingError(
                    f"the LLM could not redraft: {exc}; try again later"
                ) from None
            log.warning("LLM drafting failed for #%d (%s); using templates", mention.id, exc)
            return await self._fallback(mention, brand, variants)

    async def _fallback(
        self, mention: Mention, brand: BrandConfig, variants: int
    ) -> list[DraftText]:
        texts = await self.fallback.draft(mention, brand, variants=variants)
        return [replace(t, origin=t.origin or self.fallback.name) for t in texts]

    async def _draft(
        self, mention: Mention, brand: BrandConfig, variants: int, instruction: str | None
    ) -> list[DraftText]:
        current = None
        if instruction:
            selected = await self.store.drafts.selected(mention.id)
            current = selected.text if selected else None
        messages: list[ChatMessage] = [
            {
                "role": "system",
                "content": self.library.system_message("draft", brand, variants=variants),
            },
            {
                "role": "user",
                "content": self.user_message(mention, brand, variants, instruction, current),
            },
        ]
        limit = reply_limit(mention.platform, self.default_limit, handle=mention.author.handle)
        texts, usage = await self.client.complete_json(
            messages,
            model=self.client.config.model,
            schema_name="parley_draft",
            schema=DRAFT_SCHEMA,
            parse=parse_variants,
            task=JsonTask("draft", brand.name, mention.id),
            max_tokens=min(4_000, 300 + variants * min(limit, 1_500)),
        )
        prompt_hash = self.library.prompt_hash("draft", brand)
        return [
            DraftText(text, self.client.config.model, prompt_hash, usage.total)
            for text in texts[:variants]
        ]

    def user_message(
        self,
        mention: Mention,
        brand: BrandConfig,
        variants: int,
        instruction: str | None,
        current: str | None,
    ) -> str:
        """The variable part of a draft request; untrusted text only inside fences."""
        key = new_fence_key()
        limit = reply_limit(mention.platform, self.default_limit, handle=mention.author.handle)
        unit = length_unit(mention.platform)
        tweak = find_tweak(instruction)
        if tweak is not None and tweak.key == "translate":
            language = f"{brand.language} (the brand's language)"
        elif mention.language and _LANGUAGE_TAG_RE.match(mention.language):
            language = f"{mention.language} (the mention's language)"
        else:
            language = f"the mention's own language (if unsure: {brand.language})"
        lines = [
            f"Fence key for this request: {key}",
            f"Write {variants} reply variants to the mention below.",
            f"Platform: {mention.platform}. Each variant at most {limit} {unit}, signature "
            "included.",
            f"Reply language: {language}.",
        ]
        if tweak is not None:
            lines.append(f"Tweak: {tweak.instruction.replace('{language}', brand.language)}")
        elif instruction:
            text = " ".join(instruction.split())[:MAX_INSTRUCTION_CHARS]
            lines.append(f"Instruction from the community manager: {text}")
        blocks = []
        if current:
            blocks.append(fence(key, "current-draft", current))
        author = safe_author(mention.author) or "unknown"
        body = "\n".join(
            part
            for part in (f"author: {author}", mention.title and f"title: {mention.title}")
            if part
        )
        blocks.append(fence(key, "mention", f"{body}\ntext: {mention.text}"))
        if mention.thread_context:
            blocks.append(fence(key, "thread", mention.thread_context))
        return "\n".join(lines) + "\n\n" + "\n\n".join(blocks)
