"""The query parser: every construct, precedence, error positions, and the canonical printer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    format_query,
    is_anchored,
    parse_query,
)

acme, cloud, job = Term("acme"), Term("cloud"), Term("job")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("acme", acme),
        ("  ACME  ", acme),
        ("Café", Term("cafe")),
        ("acme*", Term("acme", prefix=True)),
        ('"acme cloud"', Phrase(("acme", "cloud"))),
        ("“Acme  Cloud”", Phrase(("acme", "cloud"))),
        ('"acme"', acme),
        ("acme.com", Phrase(("acme", "com"))),
        ("#acme", acme),
        ("acme cloud", And((acme, cloud))),
        ("acme AND cloud", And((acme, cloud))),
        ("acme OR cloud", Or((acme, cloud))),
        ("acme or cloud", And((acme, Term("or"), cloud))),
        ("-job acme", And((Not(job), acme))),
        ('acme -"job offer"', And((acme, Not(Phrase(("job", "offer")))))),
        ("acme -(job OR hiring)", And((acme, Not(Or((job, Term("hiring"))))))),
        ("acme lang:fr", And((acme, Filter("lang", "fr")))),
        ("acme LANG:pt_BR", And((acme, Filter("lang", "pt-br")))),
        ("acme -source:Reddit", And((acme, Not(Filter("source", "reddit"))))),
        (
            "acme (lang:fr OR lang:de)",
            And((acme, Or((Filter("lang", "fr"), Filter("lang", "de"))))),
        ),
        ("(acme)", acme),
        ("((acme cloud) job)", And((acme, cloud, job))),
        ("acme OR (cloud OR job)", Or((acme, cloud, job))),
        ("-(-acme)", acme),
        ("阿克美", Phrase(("阿", "克", "美"))),
    ],
)
def test_parses_each_construct(text: str, expected: Query) -> None:
    assert parse_query(text) == expected


def test_or_binds_tighter_than_implicit_and() -> None:
    q = parse_query('"acme cloud" OR acmecloud -job')
    assert q == And((Or((Phrase(("acme", "cloud")), Term("acmecloud"))), Not(job)))
    assert parse_query("a b OR c d") == And((Term("a"), Or((Term("b"), Term("c"))), Term("d")))
    assert parse_query("-a OR b c") == And((Or((Not(Term("a")), Term("b"))), Term("c")))


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("", 0, "empty"),
        ("   ", 0, "empty"),
        ('acme "cloud', 5, "unclosed quote"),
        ("acme)", 4, "')' without '('"),
        ("(acme", 0, "unclosed '('"),
        ("acme ()", 5, "empty group"),
        ("acme OR", 5, "'OR' needs a word on both sides"),
        ("OR acme", 0, "'OR' needs a word on both sides"),
        ("acme OR OR cloud", 5, "'OR' needs a word on both sides"),
        ("(acme OR) cloud", 6, "'OR' needs a word on both sides"),
        ("acme AND", 5, "'AND' needs a word on both sides"),
        ("acme NOT job", 5, "'-'"),
        ("acme -", 5, "'-' must be directly followed"),
        ("acme - job", 5, "'-' must be directly followed"),
        ("acme --job", 5, "'--'"),
        ("ac*me", 2, "'*' can only end a word"),
        ("acme *", 5, "'*' must follow a word"),
        ("a*", 1, "at least 2 letters"),
        ("acme.c*", 6, "single word"),
        ('"acme clo*"', 9, "inside quotes"),
        ('acme ""', 5, "no words"),
        ("acme &", 5, "no letters or digits"),
        ("acme lang:", 5, "needs a value"),
        ("acme lang:french!", 10, "language code"),
        ("acme source:my*feed", 12, "source or platform name"),
        ("-job", 0, "at least one word or phrase"),
        ("lang:fr source:hn", 0, "at least one word or phrase"),
        ("-(acme cloud)", 0, "at least one word or phrase"),
        ("acme OR -job", 0, "every side of 'OR'"),
        ("acme OR lang:fr", 0, "every side of 'OR'"),
        ("(" * 40 + "acme" + ")" * 40, 32, "nested"),
    ],
)
def test_errors_name_a_position(text: str, position: int, message: str) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(text)
    assert info.value.position == position
    assert message in info.value.message


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ('"acme cloud" OR acmecloud -job', '"acme cloud" OR acmecloud -job'),
        ("(a b) OR c", "(a b) OR c"),
        ("-(a OR b) c", "-(a OR b) c"),
        ("-(a b) c", "-(a b) c"),
        ("A AND (b) AND \uff23\uff4c\uff4f*", "a b clo*"),
        ("x -LANG:FR_ca source:HN", "x -lang:fr-ca source:hn"),
    ],
)
def test_format_is_canonical(text: str, canonical: str) -> None:
    assert format_query(parse_query(text)) == canonical


@pytest.mark.parametrize(
    "build",
    [
        lambda: Term("Acme"),
        lambda: Term("acme cloud"),
        lambda: Term("a", prefix=True),
        lambda: Phrase(("acme",)),
        lambda: Filter("lang", "FR"),
        lambda: Not(Not(acme)),
        lambda: And((acme,)),
        lambda: And((And((acme, cloud)), job)),
        lambda: Or((Or((acme, cloud)), job)),
    ],
)
def test_nodes_refuse_non_canonical_shapes(build: object) -> None:
    assert callable(build)
    with pytest.raises(ValueError):
        build()


# --- properties ----------------------------------------------------------------------------

words = (
    st.text(st.characters(categories=("Ll", "Lu", "Lo", "Nd", "Mn")), min_size=1, max_size=6)
    .map(tokenize)
    .filter(bool)
    .map(lambda tokens: tokens[0])
)
terms = words.map(Term) | words.filter(lambda w: len(w) >= 2).map(lambda w: Term(w, prefix=True))
phrases = st.lists(words, min_size=2, max_size=4).map(lambda ws: Phrase(tuple(ws)))
filters = st.from_regex(r"[a-z]{2,3}(-[a-z0-9]{2,4})?", fullmatch=True).map(
    lambda v: Filter("lang", v)
) | st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,8}", fullmatch=True).map(lambda v: Filter("source", v))


def _negate(q: Query) -> Query:
    return q.operand if isinstance(q, Not) else Not(q)


def _combine(kind: type[And] | type[Or], items: list[Query]) -> Query:
    flat: list[Query] = []
    for item in items:
        flat.extend(item.operands if isinstance(item, kind) else (item,))
    return kind(tuple(flat))


trees = st.recursive(
    terms | phrases | filters,
    lambda kids: (
        kids.map(_negate)
        | st.lists(kids, min_size=2, max_size=3).map(lambda ks: _combine(And, ks))
        | st.lists(kids, min_size=2, max_size=3).map(lambda ks: _combine(Or, ks))
    ),
    max_leaves=12,
)
queries = trees.filter(is_anchored) | st.tuples(terms | phrases, trees).map(
    lambda pair: _combine(And, list(pair))
)


@given(queries)
def test_format_then_parse_round_trips(q: Query) -> None:
    assert parse_query(format_query(q)) == q


query_ish = st.text(alphabet=st.sampled_from(list('ab é*-()"“”:OR ANDlangsource_.\t')), max_size=30)


@settings(max_examples=300)
@given(st.text(max_size=40) | query_ish)
def test_arbitrary_text_parses_or_raises_query_syntax_error(text: str) -> None:
    try:
        q = parse_query(text)
    except QuerySyntaxError as exc:
        assert 0 <= exc.position <= len(text)
        assert exc.message
    else:
        assert is_anchored(q)
        assert parse_query(format_query(q)) == q
