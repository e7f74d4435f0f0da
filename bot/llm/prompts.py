"""Prompt files (prompts/system.md, draft.md, triage.md and the brand-voice files) and the
fencing of untrusted text.

Files are read at start and on :meth:`PromptLibrary.reload`. Each message is built so that its
start is identical across calls for a brand (system prompt, brand voice, task), which lets a
provider cache it; everything that varies (the mention, the fence key) comes last, in the user
message. Untrusted text (mention, thread, author name, a previous draft) only ever appears
inside a fence whose key is random per call, so a mention cannot close its own fence.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bot.config import BrandConfig, ParleyConfig
from bot.domain.models import TRIAGE_INTENTS
from bot.errors import ConfigError

Task = Literal["draft", "triage"]

PLACEHOLDERS = ("brand", "signature", "language", "variants", "allowed_links", "intents")
"""Every placeholder the prompt files may use, written ``{name}`` (see prompts/README.md)."""

PROMISE_KINDS = ("refunds", "discounts", "legal")
"""What a brand-voice file may allow under '## Allowed promises' (one per bullet)."""

PROMPT_FILES = ("system.md", "draft.md", "triage.md")

MAX_UNTRUSTED_CHARS = 4_000
"""Untrusted text beyond this is cut (cost: a long article is triaged on its start)."""

_PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ALLOWED_SECTION_RE = re.compile(
    r"^##\s*allowed promises\s*$(?P<body>.*?)(?=^#|\Z)", re.IGNORECASE | re.MULTILINE | re.DOTALL
)
_BULLET_RE = re.compile(r"^\s*[-*]\s*(.+?)\s*$", re.MULTILINE)
# Fence look-alikes inside untrusted text are defused so they cannot mimic a fence line.
_MARKERS = str.maketrans({"<": "\u2039", ">": "\u203a"})
_NO_DISPLAY = {"Cc", "Cf", "Co", "Cs"}


@dataclass(frozen=True)
class BrandVoice:
    """A brand's voice file as the LLM sees it, and the promises it allows."""

    text: str
    allowed_promises: frozenset[str]
    source: str


_NO_VOICE = BrandVoice(
    text="(This brand has no voice file: reply plainly, warmly and briefly, and promise nothing.)",
    allowed_promises=frozenset(),
    source="",
)


class PromptLibrary:
    """The prompt files of one prompts folder, loaded and checked."""

    def __init__(self, prompts_dir: Path, config: ParleyConfig) -> None:
        self.dir = prompts_dir
        self.config = config
        self._files: dict[str, str] = {}
        self._voices: dict[str, BrandVoice] = {}
        self.reload()

    def reload(self) -> None:
        """Read every prompt file again; on any problem the old files stay in use."""
        problems: list[str] = []
        files: dict[str, str] = {}
        for name in PROMPT_FILES:
            path = self.dir / name
            try:
                files[name] = path.read_text(encoding="utf-8").strip()
            except OSError:
                problems.append(f"{path}: prompt file not found (see prompts/README.md)")
                continue
            problems += [f"{path}: {p}" for p in _placeholder_problems(files[name])]
        voices: dict[str, BrandVoice] = {}
        for brand in self.config.brands:
            if not brand.voice_file:
                voices[brand.name] = _NO_VOICE
                continue
            path = self.dir / brand.voice_file
            try:
                text = path.read_text(encoding="utf-8").strip()
            except OSError:
                problems.append(f"{path}: brand-voice file of {brand.name!r} not found")
                continue
            try:
                voices[brand.name] = BrandVoice(text, allowed_promises(text), text)
            except ValueError as exc:
                problems.append(f"{path}: {exc}")
        if problems:
            raise ConfigError(problems)
        self._files, self._voices = files, voices

    def voice(self, brand: BrandConfig) -> BrandVoice:
        """The brand's voice (a neutral one when it has no file or was added since)."""
        return self._voices.get(brand.name, _NO_VOICE)

    def system_message(self, task: Task, brand: BrandConfig, *, variants: int = 3) -> str:
        """The static part of every request for this brand and task: the system prompt,
        the brand voice, then the task. Identical for every call, so it can be cached."""
        values = {
            "brand": brand.label,
            "signature": brand.signature or "(no signature)",
            "language": brand.language,
            "variants": str(variants),
            "allowed_links": ", ".join(brand.allowed_links) or "(none: include no links)",
            "intents": ", ".join(TRIAGE_INTENTS),
        }
        parts = (
            fill(self._files["system.md"], values),
            f"# Brand voice of {brand.label}\n\n{self.voice(brand).text}",
            fill(self._files[f"{task}.md"], values),
        )
        return "\n\n".join(parts)

    def prompt_hash(self, task: Task, brand: BrandConfig) -> str:
        """First 12 hex digits of the SHA-256 of the files behind a request."""
        digest = hashlib.sha256()
        for part in (self._files["system.md"], self._files[f"{task}.md"], self.voice(brand).source):
            digest.update(part.encode("utf-8"))
            digest.update(b"\0")
        return digest.hexdigest()[:12]

    def instructions_text(self) -> str:
        """The system and task prompts (not the brand voice), to spot a model leaking them."""
        return "\n".join(self._files[name] for name in PROMPT_FILES)


def fill(template: str, values: Mapping[str, str]) -> str:
    """Replace ``{name}`` placeholders in one pass (a value is never re-expanded)."""
    return _PLACEHOLDER_RE.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def _placeholder_problems(text: str) -> list[str]:
    unknown = sorted({m.group(1) for m in _PLACEHOLDER_RE.finditer(text)} - set(PLACEHOLDERS))
    return [
        f"unknown placeholder {{{name}}} (known: {', '.join(PLACEHOLDERS)})" for name in unknown
    ]


def allowed_promises(voice_text: str) -> frozenset[str]:
    """The promise kinds a voice file allows under '## Allowed promises'."""
    found: set[str] = set()
    for section in _ALLOWED_SECTION_RE.finditer(voice_text):
        for bullet in _BULLET_RE.finditer(section.group("body")):
            word = bullet.group(1).lower().rstrip(".")
            kind = next((k for k in PROMISE_KINDS if word.startswith(k.rstrip("s"))), None)
            if kind is None:
                raise ValueError(
                    f"'## Allowed promises' lists {word!r}; use {', '.join(PROMISE_KINDS)}"
                )
            found.add(kind)
    return frozenset(found)


def new_fence_key() -> str:
    """A random key for one request's fences (64 bits: it cannot be guessed)."""
    return secrets.token_hex(8)


def clean_untrusted(text: str, limit: int = MAX_UNTRUSTED_CHARS) -> str:
    """Untrusted text made safe to place inside a fence: invisible and control characters
    dropped (newlines and tabs kept), angle brackets swapped for look-alikes so no line can
    pass for a fence marker, and cut to ``limit`` characters."""
    kept = "".join(
        ch
        for ch in text
        if ch in "\n\t" or unicodedata.category(ch) not in _NO_DISPLAY or ch == "\u200d"
    )
    kept = kept.translate(_MARKERS).strip()
    if len(kept) > limit:
        kept = kept[: limit - 1].rstrip() + "…"
    return kept


def fence(key: str, label: str, text: str) -> str:
    """One block of untrusted data, between marker lines carrying the request's key."""
    return f"<<<DATA {key} {label}>>>\n{clean_untrusted(text)}\n<<<END {key}>>>"
