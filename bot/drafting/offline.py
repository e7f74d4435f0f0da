"""The offline drafter: saved-reply templates chosen by intent and language, no LLM needed.

Templates live in ``<prompts_dir>/templates/<intent>.md`` (question, complaint, praise, other),
with optional language versions ``<intent>.<lang>.md`` (``question.fr.md``) used when the
mention is in that language. A file holds several variants separated by a line ``---``.
Placeholders are filled from a fixed set (see prompts/README.md); a mention's own text is never
copied into a draft, and the author's handle is reduced to a name that cannot ping anyone.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from bot.config import BrandConfig
from bot.domain.models import Author, Mention
from bot.drafting.base import DraftText
from bot.errors import ConfigError
from bot.matching.intent import INTENTS, classify_intent
from bot.matching.normalize import fold

PLACEHOLDERS = ("author", "brand", "signature", "url", "topic")
"""Every placeholder a template may use, written ``{name}``."""

_PLACEHOLDER_RE = re.compile(r"([ \n]?)\{(" + "|".join(PLACEHOLDERS) + r")\}")
_ANY_BRACED_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SEPARATOR_RE = re.compile(r"^---[ \t]*$", re.MULTILINE)
_FILE_RE = re.compile(r"^(?P<intent>[a-z]+)(?:\.(?P<lang>[a-z]{2,3}))?\.md$")

MAX_AUTHOR_CHARS = 32
_PING_WORDS = frozenset({"everyone", "here", "channel", "all"})

# {topic}: the first entry whose cues appear in the mention, named in the template's language so
# the phrase fits the templates' wording ("trouble with {topic}", "souci avec {topic}",
# "hakt es {topic}"). Fixed strings only: nothing from the mention is ever echoed.
_TOPICS: tuple[tuple[re.Pattern[str], dict[str, str]], ...] = tuple(
    (
        re.compile(r"(?<!\w)(?:" + cues + r")"),
        labels,
    )
    for cues, labels in (
        (
            r"sync|synchro|sincroniz",
            {
                "en": "sync",
                "fr": "la synchro",
                "es": "la sincronización",
                "de": "bei der Synchronisierung",
            },
        ),
        (
            r"bill|charg|refund|invoice|subscription|payment|factur|rembours|abonnement|paiement"
            r"|cobr|reembols|suscrip|pago|rechnung|abbuchung|ruckerstatt|zahlung",
            {
                "en": "billing",
                "fr": "la facturation",
                "es": "la facturación",
                "de": "bei der Abrechnung",
            },
        ),
        (
            r"log ?in|sign ?in|password|2fa|connexion|mot de passe|contrasena|sesion|anmeld"
            r"|passwort",
            {
                "en": "signing in",
                "fr": "la connexion",
                "es": "el inicio de sesión",
                "de": "bei der Anmeldung",
            },
        ),
        (
            r"export|import|markdown|pdf",
            {"en": "export", "fr": "l'export", "es": "la exportación", "de": "beim Export"},
        ),
    )
)
_TOPIC_FALLBACK = {"en": "this", "fr": "ça", "es": "esto", "de": "bei uns"}


@dataclass(frozen=True)
class _TemplateFile:
    variants: tuple[str, ...]
    prompt_hash: str


def safe_author(author: Author) -> str:
    """A name for ``author`` that pings nobody: no '@', no '@everyone'/'@here', no markup.

    Reddit's "/u/name", Mastodon's "name@instance" and Bluesky's domain handles
    ("name.bsky.social") become "name" (a handle that reads as a domain would count as a link);
    anything left that is not a letter, digit, '.', '_' or '-' is dropped. An empty result means
    "unknown author".
    """
    for raw in (author.handle, author.display_name or ""):
        name = re.sub(r"^\s*(?:/?u/|@+)", "", raw).split("@", 1)[0]
        if raw is author.handle:
            name = name.split(".", 1)[0]
        name = re.sub(r"[^\w.-]", "", name)[:MAX_AUTHOR_CHARS]
        if name and name.casefold() not in _PING_WORDS:
            return name
    return ""


def _language(mention: Mention, brand: BrandConfig) -> str:
    tag = mention.language or brand.language
    return tag.split("-", 1)[0].split("_", 1)[0].lower()


def _topic(folded_text: str, lang: str) -> str:
    for pattern, labels in _TOPICS:
        if pattern.search(folded_text):
            return labels.get(lang, labels["en"])
    return _TOPIC_FALLBACK.get(lang, _TOPIC_FALLBACK["en"])


def _fill(template: str, values: dict[str, str]) -> str:
    """Fill placeholders in one pass; an empty value also drops the space before it."""

    def repl(match: re.Match[str]) -> str:
        value = values[match.group(2)]
        return match.group(1) + value if value else ""

    return _PLACEHOLDER_RE.sub(repl, template).strip()


def _read_template(path: Path) -> _TemplateFile:
    try:
        content = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read template ({exc.strerror})"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start})"]) from None
    variants = tuple(v.strip() for v in _SEPARATOR_RE.split(content) if v.strip())
    if not variants:
        raise ConfigError([f"{path}: no reply variants (separate variants with a '---' line)"])
    unknown = sorted(
        {name for v in variants for name in _ANY_BRACED_RE.findall(v)} - set(PLACEHOLDERS)
    )
    if unknown:
        raise ConfigError(
            [
                f"{path}: unknown placeholder {{{name}}} (known: {', '.join(PLACEHOLDERS)})"
                for name in unknown
            ]
        )
    digest = hashlib.sha256(content.encode("utf-8")).hexdigest()[:12]
    return _TemplateFile(variants=variants, prompt_hash=digest)


class OfflineDrafter:
    """Drafts replies from saved templates; works with no network and no model.

    ``instruction`` (a CM's "redraft with my instruction") cannot be followed by templates:
    the drafter ignores its wording and returns the variants rotated so that the CM sees
    different ones first (the next ``variants`` along when the file has that many more).
    Without an instruction, the first variant shown depends on the mention id, so a busy
    channel does not read the same sentence on every alert.
    """

    name = "offline"

    def __init__(self, prompts_dir: Path) -> None:
        self._templates_dir = prompts_dir / "templates"
        self._templates: dict[tuple[str, str | None], _TemplateFile] = {}
        self.reload()

    def reload(self) -> None:
        """Re-read every template file; on error the previous templates stay in use."""
        directory = self._templates_dir
        if not directory.is_dir():
            raise ConfigError([f"{directory}: templates directory not found"])
        loaded: dict[tuple[str, str | None], _TemplateFile] = {}
        for path in sorted(directory.glob("*.md")):
            match = _FILE_RE.match(path.name)
            if match is None or match["intent"] not in INTENTS:
                raise ConfigError(
                    [
                        f"{path}: unexpected template name (expected <intent>.md or "
                        f"<intent>.<lang>.md with intent one of {', '.join(INTENTS)})"
                    ]
                )
            loaded[(match["intent"], match["lang"])] = _read_template(path)
        missing = [directory / f"{intent}.md" for intent in INTENTS if (intent, None) not in loaded]
        if missing:
            raise ConfigError([f"{absent}: template file not found" for absent in missing])
        self._templates = loaded

    async def draft(
        self,
        mention: Mention,
        brand: BrandConfig,
        *,
        variants: int = 3,
        instruction: str | None = None,
    ) -> list[DraftText]:
        """Up to ``variants`` filled templates for the mention's intent and language."""
        if variants < 1:
            return []
        text = "\n".join(part for part in (mention.title, mention.text) if part)
        intent = mention.intent if mention.intent in INTENTS else classify_intent(text)
        lang = _language(mention, brand)
        template = self._templates.get((intent, lang)) or self._templates[(intent, None)]
        template_lang = lang if (intent, lang) in self._templates else "en"
        values = {
            "author": safe_author(mention.author),
            "brand": brand.label,
            "signature": brand.signature,
            "url": mention.canonical_url or mention.url or "",
            "topic": _topic(fold(text), template_lang),
        }
        pool = template.variants
        start = mention.id % len(pool)
        if instruction is not None:
            shift = variants % len(pool) or 1
            start += shift
        ordered = [pool[(start + i) % len(pool)] for i in range(min(variants, len(pool)))]
        return [
            DraftText(text=_fill(v, values), model=None, prompt_hash=template.prompt_hash)
            for v in ordered
        ]
