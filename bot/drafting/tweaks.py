"""The redraft vocabulary, in one place so every frontend offers the same buttons.

A frontend passes a tweak's ``key`` (or any free text: "redraft with my instruction") as the
``instruction`` of ``ReviewService.draft``; the LLM drafter turns a key into its instruction.
The offline drafter cannot follow instructions and shows other template variants instead.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tweak:
    """One redraft button."""

    key: str
    label: str
    instruction: str


TWEAKS: tuple[Tweak, ...] = (
    Tweak("shorter", "Shorter", "Make every variant clearly shorter (about half), same meaning."),
    Tweak("warmer", "Warmer", "Make every variant warmer and more personal; add no promises."),
    Tweak("formal", "More formal", "Make every variant more formal: polite, no slang, no emoji."),
    Tweak(
        "translate",
        "Brand language",
        "Write every variant in the brand's language ({language}), not the mention's.",
    ),
)
"""The tweaks, in button order. Free text from the CM is the fifth option."""

_BY_KEY = {t.key: t for t in TWEAKS}
_ALIASES = {"more formal": "formal", "translate to brand language": "translate", "short": "shorter"}

MAX_INSTRUCTION_CHARS = 500


def find_tweak(instruction: str | None) -> Tweak | None:
    """The tweak an instruction names (its key, label or an alias), if any."""
    if not instruction:
        return None
    word = " ".join(instruction.lower().split())
    word = _ALIASES.get(word, word)
    return _BY_KEY.get(word) or next((t for t in TWEAKS if t.label.lower() == word), None)
