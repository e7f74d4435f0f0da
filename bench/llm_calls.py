"""LLM cost benchmark: the demo sample through the real pipeline, with triage and drafting
against the local fake OpenAI-compatible server (fakes/openai.py).

Run: ``python bench/llm_calls.py``. It prints the mentions alerted, the LLM calls per 100
mentions for triage, the calls per drafted mention and the tokens per drafted mention, and
checks the targets: triage ≤ 10 calls per 100 mentions, exactly 1 call per draft (variants
included), and a byte-identical static prefix (system message) across calls of one kind.
The last line is ``triage_calls_per_100=<n> calls_per_draft=<n> tokens_per_draft=<n>``;
the exit status is 1 if a target is missed. Token counts are the fake's (characters / 4).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

# The fake server lives with the tests, at the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.app import build_core
from bot.config import load_config
from bot.demo.runner import demo_dir, demo_lookback
from bot.settings import Settings
from fakes.openai import FakeOpenAI

ROOT = Path(__file__).resolve().parent.parent


async def main() -> int:
    """Replay the demo and print the figures; 1 when a target is missed."""
    fake = await FakeOpenAI().start()
    try:
        with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp:
            settings = Settings(
                _env_file=None,
                parley_db_path=Path(tmp) / "bench.db",
                parley_prompts_dir=ROOT / "prompts",
                parley_default_publisher="log",
                openai_base_url=fake.base_url,
                openai_api_key="bench",
            )
            config = load_config(demo_dir() / "parley.demo.toml")
            async with build_core(
                settings, config, base_dir=demo_dir(), lookback=demo_lookback()
            ) as core:
                await core.poll_all_once()
                await core.settle()  # the model's triage and the drafts follow the alerts
                rows = await core.store.db.fetchall(
                    "SELECT COUNT(*) FROM mentions WHERE triage_by IS NOT NULL"
                )
                triaged = int(rows[0][0])
                usage = await core.store.db.fetchall(
                    "SELECT purpose, COUNT(*), SUM(prompt_tokens + completion_tokens),"
                    " SUM(cached_tokens) FROM llm_usage GROUP BY purpose"
                )
                drafted = await core.store.db.fetchall(
                    "SELECT COUNT(DISTINCT mention_id) FROM drafts WHERE origin = 'llm'"
                )
    finally:
        await fake.stop()
    by_purpose = {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in usage}
    triage_calls = sum(c for p, (c, _, _) in by_purpose.items() if p.startswith("triage"))
    draft_calls = sum(c for p, (c, _, _) in by_purpose.items() if p.startswith("draft"))
    draft_tokens = sum(t for p, (_, t, _) in by_purpose.items() if p.startswith("draft"))
    drafts = int(drafted[0][0])
    prefixes: dict[str, set[str]] = {}
    for request in fake.requests:
        kind = request["response_format"]["json_schema"]["name"]
        prefixes.setdefault(kind, set()).add(request["messages"][0]["content"])
    per_100 = 100 * triage_calls / max(triaged, 1)
    per_draft = draft_calls / max(drafts, 1)
    tokens_per_draft = draft_tokens / max(drafts, 1)
    print(f"mentions triaged: {triaged}; mentions drafted by the LLM: {drafts}")
    for purpose, (calls, tokens, cached) in sorted(by_purpose.items()):
        print(f"  {purpose:<14} {calls:>3} calls {tokens:>8,} tokens ({cached:,} cached)")
    checks = {
        "triage ≤ 10 calls per 100 mentions": per_100 <= 10,
        "exactly 1 call per draft": draft_calls == drafts,
        "identical static prefix per kind": all(len(p) == 1 for p in prefixes.values()),
    }
    for name, ok in checks.items():
        print(f"  {'OK    ' if ok else 'MISSED'} {name}")
    print(
        f"triage_calls_per_100={per_100:.1f} calls_per_draft={per_draft:.2f} "
        f"tokens_per_draft={tokens_per_draft:.0f}"
    )
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
