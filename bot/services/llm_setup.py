"""Chooses and wires drafting, triage and draft checks from the settings (used by build_core).

With ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` set, drafts and triage come from the model;
otherwise from the offline templates and the triage rules. The choice is logged once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.config import ParleyConfig
from bot.drafting.base import Drafter
from bot.drafting.guards import DraftGuard
from bot.drafting.llm import LlmDrafter
from bot.drafting.offline import OfflineDrafter
from bot.events import EventBus
from bot.llm.breaker import BreakerPolicy
from bot.llm.client import LlmClient, LlmConfig
from bot.llm.prompts import PromptLibrary
from bot.settings import Settings
from bot.storage.store import Store
from bot.triage.model import Triager

log = logging.getLogger(__name__)


@dataclass
class LlmServices:
    """What build_core wires in: the drafter, the triager, the draft checks, and the client
    and prompt files when an LLM is configured."""

    drafter: Drafter
    triager: Triager
    guard: DraftGuard
    offline: OfflineDrafter
    client: LlmClient | None = None
    library: PromptLibrary | None = None

    async def start(self, store: Store) -> None:
        """Store this run's LLM health (none without a model), replacing a past run's."""
        if self.client is None:
            await store.llm_health.clear()
        else:
            await self.client.save_health()

    def reload_prompts(self) -> None:
        """Read the templates and prompt files again; a ConfigError (naming the bad file)
        leaves the old ones in use."""
        self.offline.reload()
        if self.library is not None:
            self.library.reload()


def llm_config(settings: Settings) -> LlmConfig:
    """The client configuration from the settings."""
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return LlmConfig(
        model=settings.openai_model,
        api_key=key or None,
        base_url=settings.openai_base_url or None,
        triage_model=settings.openai_triage_model or None,
        timeout=settings.parley_llm_timeout,
        max_retries=settings.parley_llm_max_retries,
        concurrency=settings.parley_llm_concurrency,
        daily_tokens=settings.parley_llm_daily_tokens,
        json_schema=settings.parley_llm_json_schema,
        breaker=breaker_policy(settings),
    )


def breaker_policy(settings: Settings) -> BreakerPolicy:
    """The circuit breaker's thresholds; the cap never undercuts the first cool-down."""
    cooldown = settings.parley_llm_cooldown_seconds
    return BreakerPolicy(
        threshold=settings.parley_llm_breaker_failures,
        cooldown=cooldown,
        max_cooldown=max(cooldown, settings.parley_llm_max_cooldown_seconds),
    )


def build_llm(
    settings: Settings,
    config: ParleyConfig,
    store: Store,
    bus: EventBus,
    offline: OfflineDrafter,
    *,
    client_config: LlmConfig | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> LlmServices:
    """The LLM services when one is configured, else the offline ones (``client_config``
    overrides the settings, e.g. a short backoff in tests; ``clock`` times the circuit
    breaker's cool-down)."""
    limit = settings.parley_reply_limit
    if not settings.llm_configured():
        log.info(
            "no OPENAI_API_KEY or OPENAI_BASE_URL: drafting with the offline templates and "
            "triaging by rules (docs/llm.md explains how to add a model)"
        )
        return LlmServices(
            drafter=offline,
            triager=Triager(store, config, urgent_reach=settings.parley_urgent_reach),
            guard=DraftGuard(default_limit=limit),
            offline=offline,
        )
    library = PromptLibrary(settings.prompts_dir(), config)
    client = LlmClient(client_config or llm_config(settings), store, bus, clock=clock)
    log.info(
        "drafting with %s and triaging with %s via %s",
        client.config.model,
        client.triage_model,
        client.config.base_url or "api.openai.com",
    )
    return LlmServices(
        drafter=LlmDrafter(client, library, store, offline, default_limit=limit),
        triager=Triager(
            store,
            config,
            bus=bus,
            client=client,
            library=library,
            batch_size=settings.parley_llm_triage_batch,
            window=settings.parley_triage_window_seconds,
            urgent_reach=settings.parley_urgent_reach,
        ),
        guard=DraftGuard(library, default_limit=limit),
        offline=offline,
        client=client,
        library=library,
    )
