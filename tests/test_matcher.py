"""Folding, tokenizing and the indexed rule matcher, checked against a plain AST evaluation."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.errors import QuerySyntaxError
from bot.matching.matcher import Matcher, RuleSpec
from bot.matching.normalize import fold, tokenize
from bot.matching.query import And, Filter, Not, Or, Phrase, Query, Term, parse_query


def matches(query: str, text: str, *, language: str | None = "en", source: str = "feed") -> bool:
    matcher = Matcher([RuleSpec("acme", "r", query)])
    return bool(matcher.match(text, language=language, source=source, platform="rss"))


# --- normalize -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Café", "CAFE"),
        ("\uff21\uff43\uff4d\uff45", "acme"),
        ("ﬁne", "FINE"),
        ("Straße", "STRASSE"),
        ("Ωmega", "ωMEGA"),
    ],
)
def test_fold_makes_variants_equal(a: str, b: str) -> None:
    assert fold(a) == fold(b)


def test_tokenize_splits_on_punctuation_and_keeps_digits_and_underscores() -> None:
    tokens = tokenize("Acme's acme-cloud @acme_support #Acme v2.0 l'Acmé")
    assert tokens == ["acme", "s", "acme", "cloud", "acme_support", "acme", "v2", "0", "l", "acme"]


def test_tokenize_gives_one_token_per_character_in_scripts_without_spaces() -> None:
    assert tokenize("我喜欢Acme") == ["我", "喜", "欢", "acme"]
    assert tokenize("アクメ社") == ["ア", "ク", "メ", "社"]


def test_tokenize_keeps_indic_words_whole() -> None:
    assert len(tokenize("हिन्दी भाषा")) == 2


@given(st.text())
def test_fold_is_idempotent_and_tokens_are_stable(text: str) -> None:
    assert fold(fold(text)) == fold(text)
    for token in tokenize(text):
        assert tokenize(token) == [token]


# --- matching ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ("acme", "I love Acme!", True),
        ("acme", "#acme rocks", True),
        ("acme", "Acme's new plan", True),
        ("acme", "acmeology is a word", False),
        ("acme", "myacme app", False),
        ("acme*", "acmeology is a word", True),
        ("acme*", "ACME", True),
        ("acme*", "myacme app", False),
        ('"acme cloud"', "try Acme-Cloud today", True),
        ('"acme cloud"', "acme   cloud", True),
        ('"acme cloud"', "cloud acme", False),
        ('"acme cloud"', "acme big cloud", False),
        ('"acme cloud"', "acme acme cloud", True),
        ("acme.com", "visit ACME.COM now", True),
        ("cafe", "Le CAFÉ est bon", True),
        ("café", "cafe", True),
        ("acme", "\uff21\uff43\uff4d\uff45 rocks", True),
        ("\uff21\uff43\uff4d\uff45*", "acmeology", True),
        ("阿里巴巴", "我在阿里巴巴工作", True),
        ("阿里巴巴", "阿里 巴巴", True),
        ("acme -job", "acme is great", True),
        ("acme -job", "acme job offer", False),
        ('acme -"job offer"', "acme job", True),
        ('acme -"job offer"', "acme job offer", False),
        ("acme -(job OR hiring)", "acme is hiring", False),
        ('"acme cloud" OR acmecloud -job', "AcmeCloud is down", True),
        ('"acme cloud" OR acmecloud -job', "acme cloud job", False),
        ('"acme cloud" OR acmecloud -job', "acme and cloud", False),
        ("acme (outage OR down*)", "acme downtime again", True),
        ("acme (outage OR down*)", "acme is fine", False),
    ],
)
def test_text_matching(query: str, text: str, expected: bool) -> None:
    assert matches(query, text) is expected


@pytest.mark.parametrize(
    ("query", "language", "expected"),
    [
        ("acme lang:fr", "fr", True),
        ("acme lang:fr", "fr-CA", True),
        ("acme lang:fr", "FR_ca", True),
        ("acme lang:fr", "fra", False),
        ("acme lang:fr", "en", False),
        ("acme lang:fr", None, False),
        ("acme lang:fr-ca", "fr", False),
        ("acme lang:fr-ca", "fr-CA", True),
        ("acme -lang:fr", None, True),
        ("acme -lang:fr", "fr-BE", False),
        ("acme (lang:fr OR lang:de)", "de-AT", True),
    ],
)
def test_language_filter(query: str, language: str | None, expected: bool) -> None:
    assert matches(query, "acme news", language=language) is expected


def test_source_filter_matches_source_name_or_platform() -> None:
    matcher = Matcher([RuleSpec("acme", "r", "acme (source:Google-Alerts OR source:RSS)")])
    assert matcher.match("acme", language=None, source="google-alerts", platform="web")
    assert matcher.match("acme", language=None, source="blog", platform="rss")
    assert not matcher.match("acme", language=None, source="hn", platform="hackernews")
    excluded = Matcher([RuleSpec("acme", "r", "acme -source:reddit")])
    assert not excluded.match("acme", language=None, source="subs", platform="Reddit")
    assert excluded.match("acme", language=None, source="subs", platform="mastodon")


def test_all_matching_rules_in_rule_order_across_brands() -> None:
    rules = [
        RuleSpec("globex", "name", "globex"),
        RuleSpec("acme", "outage", "acme (down OR outage)", urgent=True),
        RuleSpec("acme", "name", "acme*"),
        RuleSpec("acme", "fr", "acme lang:fr"),
        RuleSpec("initech", "name", "initech"),
    ]
    matcher = Matcher(rules)
    found = matcher.match("Acme and Globex are down", language="en", source="s", platform="p")
    assert found == [rules[0], rules[1], rules[2]]
    assert matcher.match("nothing here", language="en", source="s", platform="p") == []
    assert matcher.rules == tuple(rules)


def test_match_tokens_equals_match() -> None:
    matcher = Matcher([RuleSpec("acme", "a", '"acme cloud"'), RuleSpec("acme", "b", "clo*")])
    text = "The Acme Cloud is cloudy"
    meta = {"language": "en", "source": "s", "platform": "p"}
    assert matcher.match_tokens(tokenize(text), **meta) == matcher.match(text, **meta)
    assert matcher.match_tokens(tuple(tokenize(text)), **meta) == matcher.match(text, **meta)


def test_invalid_rule_names_the_rule() -> None:
    with pytest.raises(QuerySyntaxError) as info:
        Matcher([RuleSpec("acme", "ok", "acme"), RuleSpec("acme", "broken", "acme OR")])
    assert "acme/broken" in info.value.message
    assert info.value.position == 5


# --- the index agrees with a plain evaluation -----------------------------------------------

VOCAB = ["acme", "acmeology", "cloud", "clouds", "job", "cafe", "ac", "x", "offer"]
LANGS = [None, "en", "fr", "fr-CA", "de"]


def evaluate(q: Query, tokens: Sequence[str], language: str | None, names: set[str]) -> bool:
    """The obvious, unindexed meaning of a query."""
    match q:
        case Term(word, prefix):
            return any(t.startswith(word) if prefix else t == word for t in tokens)
        case Phrase(words):
            n = len(words)
            return any(tuple(tokens[i : i + n]) == words for i in range(len(tokens)))
        case Filter("lang", value):
            lang = (language or "").lower()
            return bool(lang) and (lang == value or lang.startswith(value + "-"))
        case Filter(_, value):
            return value in names
        case Not(operand):
            return not evaluate(operand, tokens, language, names)
        case And(operands):
            return all(evaluate(o, tokens, language, names) for o in operands)
        case Or(operands):
            return any(evaluate(o, tokens, language, names) for o in operands)
    raise AssertionError(q)


LEAVES = [
    *VOCAB,
    *("ac*", "acme*", "clo*", '"acme cloud"', '"cloud job offer"'),
    *("lang:fr", "lang:fr-ca", "source:hn", "source:rss"),
]
leaf_text = st.sampled_from(LEAVES)
query_texts = st.recursive(
    leaf_text,
    lambda kids: (
        kids.map(lambda k: f"-({k})")
        | st.lists(kids, min_size=2, max_size=3).map(lambda ks: " ".join(f"({k})" for k in ks))
        | st.lists(kids, min_size=2, max_size=3).map(lambda ks: " OR ".join(f"({k})" for k in ks))
    ),
    max_leaves=8,
)


def _anchor(text: str) -> str:
    """``text`` itself if it is a valid query, else ``acme (text)``, which always is."""
    try:
        parse_query(text)
    except QuerySyntaxError:
        return f"acme ({text})"
    return text


@given(
    st.lists(query_texts.map(_anchor), min_size=1, max_size=6),
    st.lists(st.lists(st.sampled_from([*VOCAB, "Acme", "CLOUD", "acm"]), max_size=12), max_size=5),
    st.sampled_from(LANGS),
    st.sampled_from(["hn", "feed"]),
)
def test_index_agrees_with_plain_evaluation(
    queries: list[str], texts: list[list[str]], language: str | None, source: str
) -> None:
    rules = [RuleSpec("b", f"r{i}", q) for i, q in enumerate(queries)]
    matcher = Matcher(rules)
    for words in texts:
        text = " ".join(words)
        tokens = tokenize(text)
        expected = [
            r for r in rules if evaluate(parse_query(r.query), tokens, language, {source, "rss"})
        ]
        assert matcher.match(text, language=language, source=source, platform="rss") == expected
