"""Near-duplicate detection: copies and reposts collapse, different texts do not."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import pytest

from bot.pipeline.fingerprint import (
    NO_FINGERPRINT,
    NearDupIndex,
    different_nibbles,
    text_fingerprint,
)

ORIGINAL = (
    "Three weeks waiting for a refund from @AcmeCloud and support keeps closing my ticket "
    "without an answer. I was charged twice for the annual plan and nobody will even look at "
    "the invoice. Is anyone else having this problem? https://t.co/Ab12Cd34"
)

COPIES = [
    # A retweet
    "RT @angry_dev: " + ORIGINAL,
    # Another link, other handles, a credit at the end
    ORIGINAL.replace("https://t.co/Ab12Cd34", "https://example.com/x?utm_source=tw")
    + " via @newsbot",
    ORIGINAL.replace("@AcmeCloud", "@acme@mastodon.social"),
    # Case, punctuation and emoji
    ORIGINAL.upper(),
    ORIGINAL.replace("answer.", "answer!!! 😡😡").replace("?", "?? 🙄").replace(" I ", " — I "),
    ORIGINAL.replace(" and ", ", and ").replace("Three weeks", "Three weeks…"),
]

# Real-sounding complaints about the same brand, sharing its name and common phrases.
DIFFERENT = [
    ORIGINAL,
    "@AcmeCloud your app has been down all morning and I can't log in to pay my team. This is "
    "the third outage this month, fix it please",
    "@AcmeCloud your app has been down all morning and I can't transfer the files my client "
    "needs by noon, what is going on with your status page",
    "Acme Cloud support closed my ticket again without reading it. The dashboard shows the wrong "
    "region for our database and nobody will escalate it to an engineer",
    "Was charged twice by Acme Cloud this month. Support says the refund takes ten business days "
    "but my card is maxed out now and I need that money back today",
    "Migrating off Acme Cloud after four years. Pricing doubled, the API keeps timing out under "
    "load and the account manager stopped answering our emails",
    "Does anyone know if Acme Cloud has an outage right now? Our checkout page is returning 502 "
    "errors for every customer since about ten minutes ago",
    "Acme Cloud billing is a mess: the invoice lists servers we deleted in March and support "
    "keeps asking me to open a new ticket for each one of them",
]


def test_copies_have_the_same_fingerprint() -> None:
    expected = text_fingerprint(ORIGINAL)
    assert expected != NO_FINGERPRINT
    for copy in COPIES:
        assert text_fingerprint(copy) == expected, copy


def test_copies_are_found_in_the_index() -> None:
    index = NearDupIndex()
    index.add(text_fingerprint(ORIGINAL), 41)
    for copy in COPIES:
        assert index.find(text_fingerprint(copy)) == 41


@pytest.mark.parametrize(
    "edited",
    [
        ORIGINAL.replace("Three weeks", "Four weeks"),
        ORIGINAL.replace("nobody will", "no one will"),
        ORIGINAL.replace("Is anyone else", "Anyone else"),
        ORIGINAL.replace("the annual plan", "the annual pro plan"),
    ],
)
def test_a_few_changed_words_still_collapse(edited: str) -> None:
    index = NearDupIndex()
    index.add(text_fingerprint(ORIGINAL), 7)
    assert index.find(text_fingerprint(edited)) == 7


def test_different_complaints_about_one_brand_do_not_collapse() -> None:
    fingerprints = [text_fingerprint(text) for text in DIFFERENT]
    for (i, a), (j, b) in itertools.combinations(enumerate(fingerprints), 2):
        assert different_nibbles(a, b) > 3, (DIFFERENT[i], DIFFERENT[j])
    index = NearDupIndex()
    for mention_id, fingerprint in enumerate(fingerprints):
        assert index.find(fingerprint) is None, DIFFERENT[mention_id]
        index.add(fingerprint, mention_id)
    assert len(index) == len(DIFFERENT)


@pytest.mark.parametrize(
    "text", ["love @acme", "RT @x: acme sucks", "thanks acme!", "", "🙂🙂", "a b c d"]
)
def test_short_texts_never_collapse(text: str) -> None:
    assert text_fingerprint(text) == NO_FINGERPRINT
    index = NearDupIndex()
    index.add(text_fingerprint(text), 1)
    assert len(index) == 0
    assert index.find(text_fingerprint(text)) is None


def test_one_line_posts_collapse_only_when_their_words_are_identical() -> None:
    post = "Acme cloud is down again for everyone in Europe"
    index = NearDupIndex()
    index.add(text_fingerprint(post), 1)
    assert (
        index.find(
            text_fingerprint("RT @someone: acme CLOUD is down again, for everyone in Europe!!")
        )
        == 1
    )
    assert index.find(text_fingerprint("Acme cloud is down again for everyone in Asia")) is None
    assert index.find(text_fingerprint("Acme cloud is up again for everyone in Europe")) is None


def test_scripts_without_spaces_are_compared_by_character() -> None:
    comma, stop, bang = "\uff0c", "\u3002", "\uff01"  # full-width punctuation
    rt = "RT @wb:"
    text = f"Acme云服务今天又宕机了{comma}我们的网站一整个上午都打不开{comma}客服电话也一直占线"
    copy = f"{rt} Acme云服务今天又宕机了{bang}我们的网站一整个上午都打不开{stop}客服电话也一直占线"
    other = f"Acme云服务的价格今年涨了两倍{comma}我们正在考虑换到别的供应商{comma}有没有人能推荐"
    assert text_fingerprint(text) == text_fingerprint(copy)
    assert different_nibbles(text_fingerprint(text), text_fingerprint(other)) > 3


def test_fingerprints_are_signed_64_bit_and_stable_across_processes() -> None:
    values = [text_fingerprint(text) for text in DIFFERENT]
    assert all(-(2**63) <= v < 2**63 for v in values)
    assert any(v < 0 for v in values)  # the full unsigned range is folded, not truncated
    script = (
        "import sys; from bot.pipeline.fingerprint import text_fingerprint; "
        "print(text_fingerprint(sys.argv[1]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script, ORIGINAL],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert int(out.stdout) == text_fingerprint(ORIGINAL)


def test_index_returns_the_closest_then_earliest_match() -> None:
    base = text_fingerprint(ORIGINAL)
    one_off = base ^ (0x5 << 8)  # one nibble differs
    two_off = base ^ (0x3 << 20) ^ (0x9 << 44)
    four_off = base ^ 0x1 ^ (0x1 << 16) ^ (0x1 << 32) ^ (0x1 << 48)
    index = NearDupIndex()
    index.add(two_off, -1)  # ids are opaque (the pipeline uses negatives within a batch)
    index.add(one_off, -2)
    index.add(one_off, -3)  # same fingerprint again: the first id wins
    assert len(index) == 2
    assert index.find(base) == -2
    assert index.find(four_off) is None
    assert index.find(two_off) == -1
    index.add(base, 99)
    assert index.find(base) == 99


def test_huge_and_hostile_texts_do_not_break_it() -> None:
    for text in [
        "word " * 2_000_000,
        "\x00\ud800 bad surrogate text with enough words here ok",
        "@" * 10_000,
    ]:
        value = text_fingerprint(text)
        assert -(2**63) <= value < 2**63
