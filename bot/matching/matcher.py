"""The rule matcher: finds every watch rule a mention satisfies without testing each rule.

Each rule is parsed once and compiled to a predicate over a tokenized mention. Rules are indexed
by their *trigger* words: a set of words, at least one of which every match must contain (the
parser only accepts queries that have one). A mention is tokenized once; its distinct words are
looked up in the exact-word index and, for ``acme*`` rules, in prefix buckets keyed by the first
letters of each prefix. Only the rules found that way are evaluated, and phrases are checked on
token positions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.errors import QuerySyntaxError
from bot.matching.normalize import tokenize
from bot.matching.query import (
    And,
    Filter,
    Not,
    Or,
    Phrase,
    Query,
    Term,
    parse_query,
)


@dataclass(frozen=True)
class RuleSpec:
    """One watch rule of one brand, as configured."""

    brand: str
    rule: str
    query: str
    urgent: bool = False


class _Doc:
    """What predicates see of a mention: its tokens and the normalised metadata."""

    __slots__ = ("language", "platform", "prefixes", "source", "tokens", "words")

    def __init__(
        self,
        tokens: list[str],
        words: set[str],
        prefixes: set[str],
        *,
        language: str | None,
        source: str,
        platform: str,
    ) -> None:
        self.tokens = tokens
        self.words = words
        self.prefixes = prefixes  # the rules' prefixes that some token starts with
        self.language = language.lower().replace("_", "-") if language else None
        self.source = source.casefold()
        self.platform = platform.casefold()


_Predicate = Callable[[_Doc], bool]
_Triggers = tuple[frozenset[str], frozenset[str]]  # (exact words, prefixes)


def _compile(q: Query) -> _Predicate:
    match q:
        case Term(word, prefix):
            if prefix:
                return lambda d: word in d.prefixes
            return lambda d: word in d.words
        case Phrase(words):
            return _phrase_predicate(words)
        case Filter(field, value):
            if field == "source":
                return lambda d: value in (d.source, d.platform)
            subtag = value + "-"  # lang:fr also accepts fr-CA
            return lambda d: (
                d.language is not None and (d.language == value or d.language.startswith(subtag))
            )
        case Not(operand):
            inner = _compile(operand)
            return lambda d: not inner(d)
        case And(operands):
            required, rest = _split_exact(operands)
            return lambda d: required <= d.words and all(p(d) for p in rest)
        case Or(operands):
            wanted, rest = _split_exact(operands)
            return lambda d: not wanted.isdisjoint(d.words) or any(p(d) for p in rest)


def _split_exact(operands: tuple[Query, ...]) -> tuple[frozenset[str], tuple[_Predicate, ...]]:
    """Whole-word operands as one set test, and predicates for the others, cheapest first."""
    words: set[str] = set()
    others: list[Query] = []
    for operand in operands:
        if isinstance(operand, Term) and not operand.prefix:
            words.add(operand.word)
        else:
            others.append(operand)
    return frozenset(words), tuple(_compile(o) for o in _by_cost(others))


def _by_cost(operands: list[Query]) -> list[Query]:
    """Cheap checks first, so that ``all``/``any`` can stop before the costly ones."""
    cost = {Term: 0, Filter: 0, Phrase: 1, Not: 2, Or: 2, And: 2}
    return sorted(operands, key=lambda o: cost[type(o)])


def _phrase_predicate(words: tuple[str, ...]) -> _Predicate:
    needed = frozenset(words)
    first, size, expected = words[0], len(words), list(words)

    def phrase(d: _Doc) -> bool:
        if not needed <= d.words:
            return False
        tokens = d.tokens
        start = -1
        try:
            while True:
                # list.index scans in C, far faster than a Python loop over positions.
                start = tokens.index(first, start + 1)
                if tokens[start : start + size] == expected:
                    return True
        except ValueError:
            return False

    return phrase


def _triggers(q: Query) -> _Triggers | None:
    """Words one of which every match of ``q`` contains, or None if ``q`` has no such set."""
    match q:
        case Term(word, prefix):
            return (
                (frozenset(), frozenset((word,))) if prefix else (frozenset((word,)), frozenset())
            )
        case Phrase(words):
            # Any word of a phrase is required; longer words tend to be rarer, so fewer wakeups.
            return frozenset((max(words, key=len),)), frozenset()
        case Filter() | Not():
            return None
        case And(operands):
            options = [t for t in map(_triggers, operands) if t is not None]
            return min(options, key=_trigger_cost) if options else None
        case Or(operands):
            exact: set[str] = set()
            prefixes: set[str] = set()
            for operand in operands:
                found = _triggers(operand)
                if found is None:
                    return None
                exact |= found[0]
                prefixes |= found[1]
            return frozenset(exact), frozenset(prefixes)


def _trigger_cost(triggers: _Triggers) -> tuple[int, int]:
    exact, prefixes = triggers
    shortest = min(map(len, exact | prefixes))
    return len(exact) + 3 * len(prefixes), -shortest


def _prefixes(q: Query) -> set[str]:
    match q:
        case Term(word, True):
            return {word}
        case Not(operand):
            return _prefixes(operand)
        case And(operands) | Or(operands):
            return set().union(*map(_prefixes, operands))
    return set()


class Matcher:
    """Matches mentions against many rules at once; build one per rule set and reuse it."""

    def __init__(self, rules: Sequence[RuleSpec]) -> None:
        self._rules = tuple(rules)
        self._predicates: list[_Predicate] = []
        self._by_word: dict[str, list[int]] = {}
        self._by_prefix: dict[str, list[int]] = {}
        # Every prefix any rule uses, grouped by length: a mention's word starts with a prefix of
        # length n exactly when its first n characters are in that group (rules use few lengths).
        by_length: dict[int, set[str]] = {}
        for index, spec in enumerate(self._rules):
            try:
                query = parse_query(spec.query)
            except QuerySyntaxError as exc:
                raise QuerySyntaxError(
                    f"rule {spec.brand}/{spec.rule}: {exc.message}", exc.position
                ) from None
            self._predicates.append(_compile(query))
            triggers = _triggers(query)
            assert triggers is not None, "parse_query only returns anchored queries"
            for word in triggers[0]:
                self._by_word.setdefault(word, []).append(index)
            for prefix in triggers[1]:
                self._by_prefix.setdefault(prefix, []).append(index)
            for prefix in _prefixes(query):
                by_length.setdefault(len(prefix), set()).add(prefix)
        self._trigger_words = frozenset(self._by_word)
        self._prefix_groups = tuple((n, frozenset(group)) for n, group in sorted(by_length.items()))

    @property
    def rules(self) -> tuple[RuleSpec, ...]:
        """The rules, in the order given."""
        return self._rules

    def match(
        self, text: str, *, language: str | None, source: str, platform: str
    ) -> list[RuleSpec]:
        """Every rule ``text`` satisfies, in rule order."""
        return self.match_tokens(
            tokenize(text), language=language, source=source, platform=platform
        )

    def match_tokens(
        self, tokens: Sequence[str], *, language: str | None, source: str, platform: str
    ) -> list[RuleSpec]:
        """:meth:`match` on the output of :func:`~bot.matching.normalize.tokenize`."""
        words = set(tokens)
        candidates: set[int] = set()
        for word in words & self._trigger_words:
            candidates.update(self._by_word[word])
        prefixes: set[str] = set()
        for length, group in self._prefix_groups:
            prefixes.update({word[:length] for word in words} & group)
        for prefix in prefixes:
            candidates.update(self._by_prefix.get(prefix, ()))
        if not candidates:
            return []
        doc = _Doc(
            tokens if isinstance(tokens, list) else list(tokens),
            words,
            prefixes,
            language=language,
            source=source,
            platform=platform,
        )
        predicates, rules = self._predicates, self._rules
        return [rules[i] for i in sorted(candidates) if predicates[i](doc)]
