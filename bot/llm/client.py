"""The LLM client: one ``AsyncOpenAI`` (Chat Completions) with a concurrency limit, retries that
honour ``Retry-After``, structured JSON output with one repair retry, and a daily token budget.

Every call's token usage is stored (``llm_usage``) so the budget survives a restart and stats
can show the spend. When the budget is used up, calls raise :class:`BudgetExhausted` and a
:class:`~bot.events.Notice` tells the team once per day.

Every request passes the circuit breaker (bot/llm/breaker.py): when the server stops
answering, calls fail at once with :class:`~bot.llm.breaker.LlmPaused` for a cool-down, so
drafting and triage fall back without waiting; a Notice tells the team once when it stops
and once when it is back, and the health (bot/storage/llm_health.py) is stored for
``parley status`` and ``/sources``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeAlias, TypeVar
from urllib.parse import urlsplit

import openai
from openai.types.chat import ChatCompletionMessageParam
from openai.types.chat.completion_create_params import ResponseFormat

from bot.domain.models import utcnow
from bot.errors import LLMError, UserFacingError
from bot.events import EventBus, Notice
from bot.llm.breaker import Breaker, BreakerPolicy, Transition
from bot.localtime import clock
from bot.retry_after import parse_retry_after
from bot.storage.store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")

ChatMessage: TypeAlias = ChatCompletionMessageParam
"""One message of a request (``{"role": ..., "content": ...}``), so callers need not import
the SDK's types."""

MAX_RETRY_WAIT = 60.0
"""Longest wait between two attempts, even if the server asks for more (Retry-After)."""

_PLACEHOLDER_KEY = "not-needed"  # local servers (Ollama, LM Studio) ignore the key
_TIMED_OUT = "no answer within"


class LlmUnavailable(LLMError):
    """The server could not be reached or kept failing (timeouts, 429, 5xx)."""


class LlmBadOutput(LLMError):
    """The model's answer was not valid JSON for the schema, even after one repair."""


class BudgetExhausted(LLMError, UserFacingError):
    """Today's token budget is used up; LLM calls resume at 00:00 UTC (shown in local time)."""


@dataclass(frozen=True)
class LlmConfig:
    """How to reach the server and how much to spend."""

    model: str
    api_key: str | None = None
    base_url: str | None = None
    triage_model: str | None = None
    timeout: float = 30.0
    max_retries: int = 3
    concurrency: int = 4
    daily_tokens: int = 500_000
    """0: no budget."""
    json_schema: Literal["auto", "on", "off"] = "auto"
    """auto: ask for a JSON schema and stop asking if the server refuses it (HTTP 400)."""
    backoff: float = 0.5
    """First wait between attempts without Retry-After; doubled each time, with jitter."""
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    """When to stop calling a server that does not answer, and for how long."""


@dataclass(frozen=True)
class Usage:
    """Tokens of one answer (summed over a repair retry when there was one)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    calls: int = 0

    @property
    def total(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cached_tokens + other.cached_tokens,
            self.calls + other.calls,
        )


@dataclass(frozen=True)
class JsonTask:
    """What one structured call is for, for accounting."""

    purpose: str
    brand: str | None = None
    mention_id: int | None = None
    mentions: int = 1


class LlmClient:
    """Structured JSON calls to an OpenAI-compatible Chat Completions endpoint."""

    def __init__(
        self,
        config: LlmConfig,
        store: Store,
        bus: EventBus,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.store = store
        self.bus = bus
        # The SDK's own retries are off: ours honour Retry-After beyond the SDK's 2-minute cap
        # refusal, use the configured backoff and count every attempt in the logs.
        self._client = openai.AsyncOpenAI(
            api_key=config.api_key or _PLACEHOLDER_KEY,
            base_url=config.base_url or None,
            timeout=config.timeout,
            max_retries=0,
        )
        self._slots = asyncio.Semaphore(config.concurrency)
        self._schema_ok = config.json_schema != "off"
        self._budget_noticed: str | None = None
        self.breaker = Breaker(_endpoint(str(self._client.base_url)), config.breaker, clock=clock)
        self._health = store.llm_health

    @property
    def available(self) -> bool:
        """False while the breaker is open: callers use templates and rules without asking."""
        return self.breaker.available

    @property
    def triage_model(self) -> str:
        """The model used for triage (the cheaper one when configured)."""
        return self.config.triage_model or self.config.model

    async def save_health(self) -> None:
        """Store the current health (at start, so status never shows a past run's)."""
        await self._health.save(self.breaker.snapshot())

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.close()

    async def check_budget(self) -> None:
        """Raise :class:`BudgetExhausted` (and tell the team once a day) if today is spent."""
        if self.config.daily_tokens <= 0:
            return
        day = utcnow().date().isoformat()
        spent = await self.store.llm_usage.tokens_on(day)
        if spent < self.config.daily_tokens:
            return
        # The budget's day is UTC's; its end is shown in the team's zone (PARLEY_TIMEZONE).
        resume = datetime.combine(utcnow().date() + timedelta(days=1), datetime.min.time(), UTC)
        message = (
            f"today's LLM token budget ({self.config.daily_tokens:,} tokens) is used up: LLM "
            f"drafting is paused until {clock(resume)} and triage uses the rules meanwhile. "
            "Raise PARLEY_LLM_DAILY_TOKENS to resume now; you can still write replies with edit"
        )
        if self._budget_noticed != day:
            self._budget_noticed = day
            log.warning("LLM daily token budget reached (%d tokens spent)", spent)
            self.bus.publish(Notice(message[0].upper() + message[1:] + "."))
        raise BudgetExhausted(message)

    async def complete_json(
        self,
        messages: list[ChatMessage],
        *,
        model: str,
        schema_name: str,
        schema: dict[str, Any],
        parse: Callable[[Any], T],
        task: JsonTask,
        max_tokens: int,
    ) -> tuple[T, Usage]:
        """Ask for a JSON object, validate it with ``parse`` (raising ValueError when it does
        not fit) and repair once: the bad answer goes back with the error, and the model is
        asked for the JSON only. Each call is accounted for separately."""
        await self.check_budget()
        content, usage = await self._call(messages, model, schema_name, schema, task, max_tokens)
        try:
            return parse(parse_json_object(content)), usage
        except ValueError as exc:
            problem = str(exc)
        log.info(
            "LLM answer for %s was not usable (%s); asking once to repair", task.purpose, problem
        )
        repair: list[ChatMessage] = [
            *messages,
            {"role": "assistant", "content": content or "(empty answer)"},
            {
                "role": "user",
                "content": f"That answer could not be used: {problem}. Reply with only the JSON "
                f"object described above, nothing else.",
            },
        ]
        await self.check_budget()
        repair_task = JsonTask(f"{task.purpose}:repair", task.brand, task.mention_id, task.mentions)
        content, more = await self._call(
            repair, model, schema_name, schema, repair_task, max_tokens
        )
        usage = usage + more
        try:
            return parse(parse_json_object(content)), usage
        except ValueError as exc:
            raise LlmBadOutput(f"the model's answer was not usable twice ({exc})") from None

    async def _call(
        self,
        messages: list[ChatMessage],
        model: str,
        schema_name: str,
        schema: dict[str, Any],
        task: JsonTask,
        max_tokens: int,
    ) -> tuple[str, Usage]:
        """One completion, retried on timeouts, 429 and 5xx; returns the text (may be '')."""
        attempt = 0
        while True:
            try:
                completion = await self._attempt(messages, model, schema_name, schema, max_tokens)
                break
            except openai.BadRequestError as exc:
                if self._schema_ok and self.config.json_schema == "auto" and _about_format(exc):
                    log.warning("the LLM server refused a JSON schema; using the tolerant parser")
                    self._schema_ok = False
                    continue
                raise LlmUnavailable(
                    f"the LLM server refused the request ({_status(exc)})"
                ) from None
            except (
                openai.RateLimitError,
                openai.InternalServerError,
                openai.APIConnectionError,
            ) as exc:
                if attempt >= self.config.max_retries:
                    raise LlmUnavailable(
                        f"the LLM server failed {attempt + 1} times ({_status(exc)})"
                    ) from None
                if not self.breaker.available:
                    raise self.breaker.paused() from None
                wait = self._wait(exc, attempt)
                attempt += 1
                if isinstance(exc, openai.RateLimitError):  # handled: one line, no traceback
                    log.warning("LLM: rate limited (%s), retrying in %.0f s", _status(exc), wait)
                else:
                    log.info(
                        "LLM call failed (%s); attempt %d in %.2fs", _status(exc), attempt + 1, wait
                    )
                await asyncio.sleep(wait)
            except openai.APIStatusError as exc:
                raise LlmUnavailable(
                    f"the LLM server refused the request ({_status(exc)})"
                ) from None
        usage = Usage(calls=1)
        if completion.usage is not None:
            details = completion.usage.prompt_tokens_details
            usage = Usage(
                prompt_tokens=completion.usage.prompt_tokens,
                completion_tokens=completion.usage.completion_tokens,
                cached_tokens=(details.cached_tokens or 0) if details else 0,
                calls=1,
            )
        await self.store.llm_usage.record(
            purpose=task.purpose,
            model=completion.model or model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            brand=task.brand,
            mention_id=task.mention_id,
            mentions=task.mentions,
        )
        if not completion.choices:
            return "", usage
        return completion.choices[0].message.content or "", usage

    async def _attempt(
        self,
        messages: list[ChatMessage],
        model: str,
        schema_name: str,
        schema: dict[str, Any],
        max_tokens: int,
    ) -> openai.types.chat.ChatCompletion:
        """One request through the breaker, its outcome recorded; openai errors propagate."""
        async with self._slots:
            probe = self.breaker.acquire()
            try:
                completion = await self._create(messages, model, schema_name, schema, max_tokens)
            except (openai.InternalServerError, openai.APIConnectionError) as exc:
                await self._record(self.breaker.failed(self._reason(exc), probe))
                raise
            except openai.APIStatusError:
                await self._record(self.breaker.succeeded(probe))  # the server answered
                raise
            except BaseException:
                self.breaker.release(probe)
                raise
            await self._record(self.breaker.succeeded(probe))
            return completion

    async def _record(self, transition: Transition | None) -> None:
        """Store the health and tell the team when the model stopped or came back."""
        await self.save_health()
        where = self.breaker.endpoint
        if transition is Transition.OPENED:
            reason = self.breaker.last_error
            log.warning(
                "the LLM at %s is not answering (%s): using templates and rules for %.0f s",
                where,
                reason,
                self.config.breaker.cooldown,
            )
            advice = "Check that the server is running."
            if reason and reason.startswith(_TIMED_OUT):
                advice += " If it is only slow, raise PARLEY_LLM_TIMEOUT (docs/llm.md)."
            self.bus.publish(
                Notice(
                    f"The language model at {where} is not answering ({reason}); drafts use "
                    f"the saved templates and triage the keyword rules until it is back. {advice}"
                )
            )
        elif transition is Transition.RECOVERED:
            log.info("the LLM at %s is answering again", where)
            self.bus.publish(
                Notice(f"The language model at {where} is answering again; drafts come from it.")
            )

    def _reason(self, exc: openai.APIError) -> str:
        """A few plain words on why a request got no usable answer."""
        if isinstance(exc, openai.APITimeoutError):
            return f"{_TIMED_OUT} {self.config.timeout:g} s"
        if isinstance(exc, openai.APIStatusError):
            return f"HTTP {exc.status_code}"
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, ConnectionRefusedError):
                return "connection refused"
            if isinstance(cause, socket.gaierror):
                return "host name not found"
            cause = cause.__cause__ or cause.__context__
        return "connection failed"

    async def _create(
        self,
        messages: list[ChatMessage],
        model: str,
        schema_name: str,
        schema: dict[str, Any],
        max_tokens: int,
    ) -> openai.types.chat.ChatCompletion:
        response_format: ResponseFormat
        if self._schema_ok:
            response_format = {
                "type": "json_schema",
                "json_schema": {"name": schema_name, "schema": schema, "strict": True},
            }
            return await self._client.chat.completions.create(
                model=model,
                messages=messages,
                response_format=response_format,
                max_tokens=max_tokens,
                temperature=0.4,
            )
        return await self._client.chat.completions.create(
            model=model, messages=messages, max_tokens=max_tokens, temperature=0.4
        )

    def _wait(self, exc: openai.APIError, attempt: int) -> float:
        """Seconds before the next attempt: the server's Retry-After, else backoff."""
        if isinstance(exc, openai.APIStatusError):
            asked = retry_after_seconds(exc.response.headers)
            if asked is not None:
                return min(asked, MAX_RETRY_WAIT)
        base = self.config.backoff * 2.0**attempt
        return min(base * (0.75 + random.random() / 2), MAX_RETRY_WAIT)


def _endpoint(url: str) -> str:
    """The server's address as shown to people: no credentials, no trailing slash."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}".rstrip("/")


def retry_after_seconds(headers: Any) -> float | None:
    """``Retry-After-Ms`` or ``Retry-After`` (seconds or an HTTP date), if present."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    return parse_retry_after(headers.get("retry-after"))


def _status(exc: openai.APIError) -> str:
    if isinstance(exc, openai.APITimeoutError):
        return "timed out"
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}"
    return "connection failed"


def _about_format(exc: openai.BadRequestError) -> bool:
    text = f"{exc.message} {exc.body}".lower()
    return "response_format" in text or "json_schema" in text or "schema" in text


_FENCE_RE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_TRAILING_COMMA_RE = re.compile(r",\s*([}\]])")


def parse_json_object(content: str) -> Any:
    """The JSON object in a model's answer, tolerating what models add around it: Markdown
    code fences, prose before or after, trailing commas. Raises ValueError when none."""
    text = content.strip()
    if not text:
        raise ValueError("the answer was empty")
    fenced = _FENCE_RE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    start = text.find("{")
    if start < 0:
        raise ValueError("the answer held no JSON object")
    candidate = _balanced(text, start)
    for attempt in (candidate, _TRAILING_COMMA_RE.sub(r"\1", candidate)):
        try:
            value = json.loads(attempt)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    raise ValueError("the answer was not valid JSON")


def _balanced(text: str, start: int) -> str:
    """From ``start`` (a '{') to its matching '}', skipping braces inside strings."""
    depth = 0
    in_string = escaped = False
    for index in range(start, len(text)):
        ch = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start : index + 1]
    return text[start:]
