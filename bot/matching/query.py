"""The keyword query language of watch rules: parser, immutable AST and canonical printer.

Grammar (``docs/query-language.md`` explains it for people who write rules)::

    query    := all EOF
    all      := any (["AND"] any)*          implicit AND; the lowest precedence
    any      := unary ("OR" unary)*         OR binds tighter than AND, as in Google
    unary    := "-" atom | atom
    atom     := WORD ["*"] | '"' words '"' | FILTER | "(" all ")"
    FILTER   := ("lang" | "source") ":" value

Words and phrases are folded and split with :func:`bot.matching.normalize.tokenize`, so a bare
word that contains punctuation (``acme.com``) is a phrase of its pieces. The parser returns a
canonical AST: nested ANDs and ORs are flattened, one-word phrases are terms, single-item groups
vanish and double negations cancel, so ``parse_query(format_query(q)) == q`` for every ``q`` that
``parse_query`` returns. Every node validates that canonical shape when constructed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from bot.errors import QuerySyntaxError
from bot.matching.normalize import tokenize

MIN_PREFIX_CHARS = 2
"""``a*`` would match almost every mention, so a prefix needs at least this many letters."""

MAX_DEPTH = 32
"""Deepest nesting of parentheses accepted; keeps the recursive parser and printer bounded."""

FilterField = Literal["lang", "source"]

_LANG_VALUE = re.compile(r"[a-z]{2,8}(?:-[a-z0-9]{1,8})*")
_SOURCE_VALUE = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_FILTER = re.compile(r"(lang|source):(.*)", re.IGNORECASE | re.DOTALL)
_QUOTES = frozenset('"“”„')  # straight and typographic quotes, as pasted from documents
_WORD_END = frozenset("()") | _QUOTES


def _is_word(word: str) -> bool:
    return tokenize(word) == [word]


@dataclass(frozen=True, slots=True)
class Term:
    """One whole word, or every word starting with ``word`` when ``prefix`` is set."""

    word: str
    prefix: bool = False

    def __post_init__(self) -> None:
        if not _is_word(self.word):
            raise ValueError(f"not a single folded word: {self.word!r}")
        if self.prefix and len(self.word) < MIN_PREFIX_CHARS:
            raise ValueError(f"prefix shorter than {MIN_PREFIX_CHARS} characters: {self.word!r}")


@dataclass(frozen=True, slots=True)
class Phrase:
    """Two or more words appearing consecutively."""

    words: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.words) < 2 or not all(_is_word(w) for w in self.words):
            raise ValueError(f"a phrase needs two or more folded words: {self.words!r}")


@dataclass(frozen=True, slots=True)
class Filter:
    """A condition on the mention's language (``lang``) or its source or platform (``source``)."""

    field: FilterField
    value: str

    def __post_init__(self) -> None:
        pattern = _LANG_VALUE if self.field == "lang" else _SOURCE_VALUE
        if pattern.fullmatch(self.value) is None:
            raise ValueError(f"invalid {self.field} value: {self.value!r}")


@dataclass(frozen=True, slots=True)
class Not:
    """Matches when ``operand`` does not."""

    operand: Query

    def __post_init__(self) -> None:
        if isinstance(self.operand, Not):
            raise ValueError("double negation is not canonical")


@dataclass(frozen=True, slots=True)
class And:
    """Matches when every operand does."""

    operands: tuple[Query, ...]

    def __post_init__(self) -> None:
        if len(self.operands) < 2 or any(isinstance(o, And) for o in self.operands):
            raise ValueError("And needs two or more operands, none of them And")


@dataclass(frozen=True, slots=True)
class Or:
    """Matches when at least one operand does."""

    operands: tuple[Query, ...]

    def __post_init__(self) -> None:
        if len(self.operands) < 2 or any(isinstance(o, Or) for o in self.operands):
            raise ValueError("Or needs two or more operands, none of them Or")


Query = Term | Phrase | Filter | Not | And | Or


def is_anchored(q: Query) -> bool:
    """Whether every match of ``q`` must contain one of its positive words or phrases.

    Only anchored queries are valid: the matcher indexes rules by those words, and a rule that
    could match without any of them (``-job``, ``lang:fr``, ``acme OR -job``) would match
    nearly everything.
    """
    match q:
        case Term() | Phrase():
            return True
        case Filter() | Not():
            return False
        case And(operands):
            return any(is_anchored(o) for o in operands)
        case Or(operands):
            return all(is_anchored(o) for o in operands)


def _has_positive_word(q: Query, negated: bool = False) -> bool:
    match q:
        case Term() | Phrase():
            return not negated
        case Filter():
            return False
        case Not(operand):
            return _has_positive_word(operand, not negated)
        case And(operands) | Or(operands):
            return any(_has_positive_word(o, negated) for o in operands)


# --- parsing -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: Literal["(", ")", "-", "OR", "AND", "item"]
    pos: int
    node: Query | None = None


def _lex(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            tokens.append(_Token("(" if ch == "(" else ")", i))
            i += 1
        elif ch == "-":
            if i + 1 >= n or text[i + 1].isspace() or text[i + 1] == ")":
                raise QuerySyntaxError(
                    "'-' must be directly followed by a word, phrase or group (e.g. -job)", i
                )
            if text[i + 1] == "-":
                raise QuerySyntaxError("'--' is not allowed; put a single '-' before a word", i)
            tokens.append(_Token("-", i))
            i += 1
        elif ch in _QUOTES:
            end = next((j for j in range(i + 1, n) if text[j] in _QUOTES), -1)
            if end < 0:
                raise QuerySyntaxError("unclosed quote", i)
            tokens.append(_Token("item", i, _phrase(text[i + 1 : end], i)))
            i = end + 1
        else:
            end = i
            while end < n and not text[end].isspace() and text[end] not in _WORD_END:
                end += 1
            tokens.append(_word_token(text[i:end], i))
            i = end
    return tokens


def _phrase(inner: str, pos: int) -> Query:
    star = inner.find("*")
    if star >= 0:
        raise QuerySyntaxError("'*' does not work inside quotes", pos + 1 + star)
    words = tokenize(inner)
    if not words:
        raise QuerySyntaxError("quotes with no words inside", pos)
    return Term(words[0]) if len(words) == 1 else Phrase(tuple(words))


def _word_token(raw: str, pos: int) -> _Token:
    if raw == "OR":
        return _Token("OR", pos)
    if raw == "AND":
        return _Token("AND", pos)
    if raw == "NOT":
        raise QuerySyntaxError("'NOT' is not a keyword; put '-' before a word to exclude it", pos)
    filt = _FILTER.fullmatch(raw)
    if filt is not None:
        return _Token("item", pos, _filter(filt.group(1).lower(), filt.group(2), pos))
    body, prefix = (raw[:-1], True) if raw.endswith("*") else (raw, False)
    star = body.find("*")
    if star >= 0:
        raise QuerySyntaxError("'*' can only end a word", pos + star)
    words = tokenize(body)
    if not words:
        message = "'*' must follow a word" if prefix else f"'{raw}' has no letters or digits"
        raise QuerySyntaxError(message, pos)
    if prefix:
        if len(words) > 1:
            raise QuerySyntaxError("'*' only works after a single word", pos + len(body))
        if len(words[0]) < MIN_PREFIX_CHARS:
            raise QuerySyntaxError(
                f"put at least {MIN_PREFIX_CHARS} letters before '*'", pos + len(body)
            )
    node: Query = Term(words[0], prefix) if len(words) == 1 else Phrase(tuple(words))
    return _Token("item", pos, node)


def _filter(field: str, raw_value: str, pos: int) -> Filter:
    if not raw_value:
        example = "lang:fr" if field == "lang" else "source:reddit"
        raise QuerySyntaxError(f"'{field}:' needs a value, e.g. {example}", pos)
    value = raw_value.lower().replace("_", "-") if field == "lang" else raw_value.lower()
    pattern = _LANG_VALUE if field == "lang" else _SOURCE_VALUE
    if not value.isascii() or pattern.fullmatch(value) is None:
        what = "language code (e.g. fr or pt-BR)" if field == "lang" else "source or platform name"
        raise QuerySyntaxError(f"'{raw_value}' is not a valid {what}", pos + len(field) + 1)
    return Filter("lang" if field == "lang" else "source", value)


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def parse_all(self) -> Query:
        items: list[Query] = []
        while (tok := self.peek()) is not None and tok.kind != ")":
            if tok.kind == "AND":
                nxt = self.tokens[self.i + 1] if self.i + 1 < len(self.tokens) else None
                if not items or nxt is None or nxt.kind in (")", "OR", "AND"):
                    raise QuerySyntaxError("'AND' needs a word on both sides", tok.pos)
                self.i += 1
                continue
            items.append(self.parse_any())
        if not items:  # only a ')' can stop the loop before the first item
            raise QuerySyntaxError("')' without '('", tok.pos if tok is not None else 0)
        return _combine(And, items)

    def parse_any(self) -> Query:
        items = [self.parse_unary()]
        while (tok := self.peek()) is not None and tok.kind == "OR":
            self.i += 1
            nxt = self.peek()
            if nxt is None or nxt.kind in (")", "OR", "AND"):
                raise QuerySyntaxError("'OR' needs a word on both sides", tok.pos)
            items.append(self.parse_unary())
        return _combine(Or, items)

    def parse_unary(self) -> Query:
        tok = self.peek()
        if tok is not None and tok.kind == "-":
            self.i += 1
            operand = self.parse_atom()
            return operand.operand if isinstance(operand, Not) else Not(operand)
        return self.parse_atom()

    def parse_atom(self) -> Query:
        tok = self.peek()
        assert tok is not None  # callers only descend when a token is left
        self.i += 1
        if tok.node is not None:
            return tok.node
        if tok.kind == "(":
            if self.depth >= MAX_DEPTH:
                raise QuerySyntaxError("too many nested parentheses", tok.pos)
            self.depth += 1
            close = self.peek()
            if close is not None and close.kind == ")":
                raise QuerySyntaxError("empty group", tok.pos)
            inner = self.parse_all()
            close = self.peek()
            if close is None:
                raise QuerySyntaxError("unclosed '('", tok.pos)
            self.i += 1
            self.depth -= 1
            return inner
        if tok.kind == ")":
            raise QuerySyntaxError("')' without '('", tok.pos)
        raise QuerySyntaxError(f"'{tok.kind}' needs a word on both sides", tok.pos)


def _combine(kind: type[And] | type[Or], items: list[Query]) -> Query:
    flat: list[Query] = []
    for item in items:
        flat.extend(item.operands if isinstance(item, kind) else (item,))
    return flat[0] if len(flat) == 1 else kind(tuple(flat))


def parse_query(text: str) -> Query:
    """Parse a rule query; raise :class:`QuerySyntaxError` with a 0-based position if malformed."""
    tokens = _lex(text)
    if not tokens:
        raise QuerySyntaxError("the query is empty", 0)
    parser = _Parser(tokens)
    query = parser.parse_all()
    stray = parser.peek()
    if stray is not None:
        raise QuerySyntaxError("')' without '('", stray.pos)
    if not is_anchored(query):
        if _has_positive_word(query):
            raise QuerySyntaxError(
                "this query could match mentions containing none of its words; every side of "
                "'OR' needs a word or phrase to look for",
                0,
            )
        raise QuerySyntaxError(
            "a query needs at least one word or phrase to look for, not only exclusions or filters",
            0,
        )
    return query


# --- printing ------------------------------------------------------------------------------


def format_query(q: Query) -> str:
    """The canonical text of ``q``: ``parse_query(format_query(q)) == q``."""
    match q:
        case Term(word, prefix):
            return f"{word}*" if prefix else word
        case Phrase(words):
            return '"' + " ".join(words) + '"'
        case Filter(field, value):
            return f"{field}:{value}"
        case Not(operand):
            return "-" + _grouped(operand, isinstance(operand, And | Or))
        case Or(operands):
            return " OR ".join(_grouped(o, isinstance(o, And)) for o in operands)
        case And(operands):
            return " ".join(format_query(o) for o in operands)


def _grouped(q: Query, parens: bool) -> str:
    return f"({format_query(q)})" if parens else format_query(q)
