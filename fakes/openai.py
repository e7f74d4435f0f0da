"""A fake OpenAI-compatible server on loopback (aiohttp): ``POST /v1/chat/completions`` with
the real response shape, usage included. Tests reach it through ``OPENAI_BASE_URL``.

It records every request body, plays scripted failures (``script``), and otherwise answers
like a model that is *perfectly obedient*: any text of the user message that is outside the
request's fenced data blocks and is not one of Parley's own labelled lines is taken as an
instruction and obeyed, i.e. copied into every variant (or every triage reason, with
everything marked relevant and urgent). So if a fence ever leaked, tests would see it.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TRUSTED_PREFIXES = (
    "Fence key for this request:",
    "Write ",
    "Platform:",
    "Reply language:",
    "Tweak:",
    "Instruction from the community manager:",
    "Triage these",
)
"""Lines Parley itself writes outside fences; anything else there would be obeyed."""

OBEYED = "OBEYED:"
"""Prefix of what the fake writes when it obeys an instruction it found outside a fence."""

_KEY_RE = re.compile(r"^Fence key for this request: (\w+)$", re.MULTILINE)


@dataclass
class Step:
    """One scripted answer: ``kind`` is ok, status, sleep, malformed, empty, content, overlong
    or refuse_schema."""

    kind: str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    content: str = ""


def outside_fences(user: str) -> str:
    """The user message with its fenced blocks (for the key it declares) removed."""
    match = _KEY_RE.search(user)
    if match is None:
        return user
    key = re.escape(match.group(1))
    return re.sub(rf"<<<DATA {key} [^\n]*>>>\n.*?\n<<<END {key}>>>", "", user, flags=re.DOTALL)


def fenced_blocks(user: str) -> list[tuple[str, str]]:
    """(label, content) of every fenced block of the user message."""
    match = _KEY_RE.search(user)
    if match is None:
        return []
    key = re.escape(match.group(1))
    return re.findall(rf"<<<DATA {key} ([^\n]*)>>>\n(.*?)\n<<<END {key}>>>", user, re.DOTALL)


def injected_lines(user: str) -> list[str]:
    """Lines outside the fences that Parley did not write: what an obedient model obeys."""
    return [
        line.strip()
        for line in outside_fences(user).splitlines()
        if line.strip() and not line.strip().startswith(TRUSTED_PREFIXES)
    ]


class FakeOpenAI:
    """The fake server; ``requests`` holds every JSON body received, in order."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[Step] = []
        self.models: set[str] | None = None
        """When set, the models served: any other is answered 404 as Ollama does."""
        self.draft_delay = 0.0
        """Seconds every draft request (not triage) waits before its answer: a slow model."""
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._previous_system = ""

    async def start(self, port: int = 0) -> FakeOpenAI:
        """Listen on a loopback port (a free one by default; the same again after ``stop``
        to play a server that comes back)."""
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    def then(self, *steps: Step) -> None:
        """Queue scripted answers for the next requests."""
        self.script.extend(steps)

    def user_messages(self) -> list[str]:
        """The last user message of every request."""
        return [
            next(m["content"] for m in reversed(r["messages"]) if m["role"] == "user")
            for r in self.requests
        ]

    async def _completions(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        if self.models is not None and body.get("model") not in self.models:
            message = f'model "{body.get("model")}" not found, try pulling it first'
            error = {"error": {"message": message, "type": "api_error", "param": None}}
            return web.json_response(error, status=404)
        step = self.script.pop(0) if self.script else Step("ok")
        if step.kind == "sleep":
            await asyncio.sleep(step.delay)
        if self.draft_delay and "# Task: triage" not in body["messages"][0]["content"]:
            await asyncio.sleep(self.draft_delay)
        if step.kind == "status":
            error = {"error": {"message": f"fake error {step.status}", "type": "fake"}}
            return web.json_response(error, status=step.status, headers=step.headers)
        if step.kind == "refuse_schema" and "response_format" in body:
            error = {"error": {"message": "response_format json_schema is not supported"}}
            return web.json_response(error, status=400)
        if step.kind == "empty":
            return web.json_response(self._shape(body, None, empty=True))
        if step.kind == "malformed":
            return web.json_response(self._shape(body, 'Sure! {"variants": ["Hi there", '))
        if step.kind == "content":
            return web.json_response(self._shape(body, step.content))
        return web.json_response(self._shape(body, self._answer(body, step.kind == "overlong")))

    def _answer(self, body: dict[str, Any], overlong: bool) -> str:
        system = body["messages"][0]["content"]
        # The first user message is the request; a later one is Parley's repair prompt.
        user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        obey = " ".join(injected_lines(user))
        if "# Task: triage mentions" in system:
            return json.dumps(
                {
                    "items": [
                        self._triage(label, text, obey)
                        for label, text in fenced_blocks(user)
                        if label.startswith("mention id=")
                    ]
                }
            )
        count = int(m.group(1)) if (m := re.search(r"Write (\d+) reply variants", user)) else 3
        limit = int(m.group(1)) if (m := re.search(r"at most (\d+)", user)) else 280
        tweak = "shorter" if "shorter" in user.lower() else ""
        variants = []
        for i in range(count):
            text = f"Thanks for reaching out, we're on it (option {i + 1}). — Sam from Acme"
            if tweak:
                text = f"On it ({i + 1}). — Sam"
            if obey:
                text = f"{OBEYED} {obey} — Sam"
            if overlong:
                sentences = " ".join(f"Sentence {n} of a long reply." for n in range(limit // 10))
                text = f"Thanks for writing. {sentences} — Sam from Acme"
            variants.append(text)
        return json.dumps({"variants": variants})

    @staticmethod
    def _triage(label: str, text: str, obey: str) -> dict[str, Any]:
        found = re.search(r"id=(\d+)", label)
        assert found is not None, label
        mention_id = int(found.group(1))
        lowered = text.lower()
        intent = (
            "crisis_legal"
            if "lawyer" in lowered
            else "question"
            if "?" in text
            else "complaint"
            if "down" in lowered or "broken" in lowered
            else "praise"
            if "love" in lowered
            else "other"
        )
        negative = intent in ("complaint", "crisis_legal")
        item = {
            "id": mention_id,
            "relevant": "broom" not in lowered,
            "sentiment": "negative"
            if negative
            else "positive"
            if intent == "praise"
            else "neutral",
            "intent": intent,
            "urgency": "high" if intent == "crisis_legal" else "normal",
            "needs_reply": intent != "other",
            "reason": "fake triage",
        }
        if obey:
            item.update(relevant=True, urgency="high", reason=f"{OBEYED} {obey}"[:200])
        return item

    def _shape(self, body: dict[str, Any], content: str | None, *, empty: bool = False) -> Any:
        text = "".join(str(m.get("content", "")) for m in body["messages"])
        system = str(body["messages"][0].get("content", ""))
        shared = 0
        for a, b in zip(system, self._previous_system, strict=False):
            if a != b:
                break
            shared += 1
        self._previous_system = system
        prompt_tokens = max(1, len(text) // 4)
        completion_tokens = len(content or "") // 4
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": []
            if empty
            else [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": shared // 4},
            },
        }
