"""Ingest benchmark: 100,000 synthetic mentions against 100 rules through match → dedupe → store.

Measured in the same run, on the same rows:
- raw:   a bare ``executemany`` insert of the rows into a fresh SQLite file (the ceiling);
- naive: what typical feed bots do, one regular expression per rule tested on every mention,
         then the same bare insert of the matches.

Run: ``python bench/ingest.py [--mentions N] [--rules N] [--batch N]``. The last line is
``mentions_per_s=<n> raw_ratio=<r> naive_speedup=<s> peak_rss_mb=<m>``.
Targets on a 2-core machine: ≥ 10,000 mentions/s, raw_ratio ≥ 0.15, naive_speedup ≥ 5,
peak RSS ≤ 200 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import resource
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.domain.models import Author, RawMention
from bot.matching.matcher import Matcher, RuleSpec
from bot.pipeline.ingest import Ingestor
from bot.storage.db import Database
from bot.storage.store import Store

_VOCABULARY = """
the a to and of in is it for on with this that my your our app sync notes team update today
really love hate broken slow fast support help please why how when price plan refund login
crash bug feature release mobile desktop web api export import share file folder search
offline online account password email billing invoice customer service review great terrible
works again still never always maybe issue problem fixed thanks week month year time data
cloud server outage status page down back up new old
"""
WORDS = tuple(_VOCABULARY.split())


def make_rules(count: int) -> tuple[list[RuleSpec], list[re.Pattern[str]]]:
    """``count`` rules (4 per brand) and, for the naive pipeline, one regex per rule."""
    rules, patterns = [], []
    for i in range(count):
        brand, kind = f"brand{i // 4}", i % 4
        name = f"{brand}x{kind}"
        query = [
            f'"{name} cloud" OR {name}app -job{i}',
            f"{name} (outage OR down OR refund)",
            f'"{name} notes" OR {name}hq',
            f"{name} -spam{i}",
        ][kind]
        regex = [
            rf"^(?!.*\bjob{i}\b).*\b(?:{name} cloud|{name}app)\b",
            rf"\b{name}\b.*\b(?:outage|down|refund)\b|\b(?:outage|down|refund)\b.*\b{name}\b",
            rf"\b(?:{name} notes|{name}hq)\b",
            rf"^(?!.*\bspam{i}\b).*\b{name}\b",
        ][kind]
        rules.append(RuleSpec(brand=brand, rule=name, query=query, urgent=kind == 1))
        patterns.append(re.compile(regex, re.IGNORECASE | re.DOTALL))
    return rules, patterns


def make_mentions(
    count: int, rule_count: int, batch: int, seed: int = 7
) -> Iterator[list[RawMention]]:
    """Synthetic mentions in batches, the same for the same seed: ~55% name a watched brand,
    ~5% repost an earlier text, ~5% link an earlier article with tracking parameters.
    Generated lazily, so the benchmark's memory is the pipeline's, not the test data's."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    recent: list[tuple[str, str]] = []  # (text, url) of earlier items, for reposts
    items: list[RawMention] = []
    for n in range(count):
        roll = rng.random()
        if recent and roll < 0.05:
            text, url = "RT " + rng.choice(recent)[0], f"https://social.example/p/{n}"
        elif recent and roll < 0.10:
            text = " ".join(rng.choices(WORDS, k=40))
            url = f"{rng.choice(recent)[1]}?utm_source=feed&utm_medium=rss"
        else:
            words = rng.choices(WORDS, k=rng.randint(35, 60))
            if rng.random() < 0.6:
                i = rng.randrange(rule_count)
                name = f"brand{i // 4}x{i % 4}"
                words.insert(
                    rng.randrange(len(words)),
                    rng.choice(
                        [f"{name} cloud", f"{name}app", f"{name} down", f"{name} notes", name]
                    ),
                )
            text = " ".join(words)
            url = f"https://news.example/{n}/article"
        if len(recent) < 2_000:
            recent.append((text, url))
        else:
            recent[rng.randrange(len(recent))] = (text, url)
        items.append(
            RawMention(
                source=f"feed{n % 5}",
                platform="rss",
                external_id=f"id-{n}",
                url=url,
                author=Author(handle=f"user{n % 997}", reach=n % 5000),
                text=text,
                language="en",
                created_at=start + timedelta(seconds=n),
            )
        )
        if len(items) == batch:
            yield items
            items = []
    if items:
        yield items


def _row(m: RawMention) -> tuple[object, ...]:
    return (
        m.source,
        m.platform,
        m.external_id,
        m.url,
        m.url,
        m.author.handle,
        None,
        None,
        m.author.reach,
        None,
        m.text,
        m.language,
        m.created_at.isoformat() if m.created_at else None,
        "2026-11-01T00:00:00+00:00",
        "brand",
        "rule",
        None,
        None,
        "new",
        0,
        None,
        0,
        0,
        "2026-11-01T00:00:00+00:00",
    )


_RAW_SQL = (
    "INSERT INTO mentions (source, platform, external_id, url, canonical_url, author_handle,"
    " author_name, author_url, author_reach, title, text, language, created_at, fetched_at,"
    " brand, rule, parent_ref, thread_context, state, urgent, intent, fingerprint, duplicates,"
    " updated_at) VALUES (" + ",".join("?" * 24) + ")"
)


def _fresh_db(path: Path) -> sqlite3.Connection:
    """A fresh file with Parley's schema (applied by the real migrations)."""
    asyncio.run(_migrate(path))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


async def _migrate(path: Path) -> None:
    async with Database.open(path):
        pass


def raw_insert(batches: Iterable[list[RawMention]], path: Path) -> float:
    """Seconds to insert every row with bare executemany, one transaction per batch
    (building the rows is not counted)."""
    conn = _fresh_db(path)
    elapsed = 0.0
    for items in batches:
        rows = [_row(m) for m in items]
        began = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany(_RAW_SQL, rows)
        conn.execute("COMMIT")
        elapsed += time.perf_counter() - began
    conn.close()
    return elapsed


def naive(
    batches: Iterable[list[RawMention]], patterns: list[re.Pattern[str]], path: Path
) -> tuple[float, int]:
    """Seconds for one regex per rule per mention, then the same bare insert of matches."""
    conn = _fresh_db(path)
    elapsed = 0.0
    matched = 0
    for items in batches:
        began = time.perf_counter()
        rows = [_row(m) for m in items if any(p.search(m.text) for p in patterns)]
        matched += len(rows)
        conn.execute("BEGIN")
        conn.executemany(_RAW_SQL, rows)
        conn.execute("COMMIT")
        elapsed += time.perf_counter() - began
    conn.close()
    return elapsed, matched


async def pipeline(
    batches: Iterable[list[RawMention]], rules: list[RuleSpec], path: Path
) -> tuple[float, int, int]:
    """Seconds for Parley's match → dedupe → store, plus how many were stored and collapsed."""
    async with Database.open(path) as db:
        ingestor = Ingestor(Store(db), Matcher(rules))
        stored = copies = 0
        elapsed = 0.0
        for items in batches:
            began = time.perf_counter()
            result = await ingestor.store_batch(items)
            elapsed += time.perf_counter() - began
            stored += len(result.new)
            copies += len(result.copies)
        return elapsed, stored, copies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mentions", type=int, default=100_000)
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument("--batch", type=int, default=1_000, help="items per poll/transaction")
    args = parser.parse_args()
    rules, patterns = make_rules(args.rules)
    n = args.mentions

    def data() -> Iterator[list[RawMention]]:
        return make_mentions(n, args.rules, args.batch)

    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp:
        t_pipe, stored, copies = asyncio.run(pipeline(data(), rules, Path(tmp) / "pipeline.db"))
        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t_raw = raw_insert(data(), Path(tmp) / "raw.db")
        t_naive, naive_matched = naive(data(), patterns, Path(tmp) / "naive.db")
    rate, raw_rate, naive_rate = n / t_pipe, n / t_raw, n / t_naive
    print(f"mentions={n} rules={len(rules)} batch={args.batch}")
    print(
        f"pipeline: {t_pipe:.2f}s, {rate:,.0f} mentions/s, stored {stored}, "
        f"collapsed {copies} copies"
    )
    print(f"raw executemany: {t_raw:.2f}s, {raw_rate:,.0f} rows/s")
    print(
        f"naive regex-per-rule: {t_naive:.2f}s, {naive_rate:,.0f} mentions/s, "
        f"matched {naive_matched}"
    )
    print(
        f"mentions_per_s={rate:.0f} raw_ratio={rate / raw_rate:.3f} "
        f"naive_speedup={rate / naive_rate:.2f} peak_rss_mb={peak_rss_mb:.0f}"
    )


if __name__ == "__main__":
    main()
