"""`parley demo`: the real pipeline, store and console on bundled sample mentions."""

from __future__ import annotations

import asyncio
import signal
import tempfile
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

from bot.app import Core, build_core, run_core
from bot.config import load_config
from bot.domain.models import utcnow
from bot.errors import DatabaseInUse
from bot.frontends.console.frontend import ConsoleFrontend
from bot.settings import Settings

SAMPLES_NEWEST = datetime(2026, 11, 19, 14, 17, 26, tzinfo=UTC)
"""Time of the newest bundled sample; the look-back window is measured back from it, so the
demo behaves the same whatever day it runs."""

DEMO_WINDOW = timedelta(days=3)
"""The samples span three and a half days: the oldest few show the quiet-backlog rule."""


def demo_dir() -> Path:
    """The folder holding the demo config and feeds."""
    return Path(str(resources.files("bot.demo")))


def demo_lookback() -> timedelta:
    """The look-back window, shifted so it ends at the newest sample rather than now."""
    return (utcnow() - SAMPLES_NEWEST) + DEMO_WINDOW


async def run_demo(settings: Settings, db_path: Path | None) -> None:
    """Run the demo until quit, end of input, or Ctrl-C (refused if ``db_path`` is in use)."""
    try:
        await _run_demo(settings, db_path)
    except DatabaseInUse as exc:
        raise exc.with_remedy("stop that one first, or give --db another file") from None


async def _run_demo(settings: Settings, db_path: Path | None) -> None:
    with tempfile.TemporaryDirectory(prefix="parley-demo-") as tmp:
        path = db_path or Path(tmp) / "demo.db"
        settings = settings.model_copy(
            update={"parley_db_path": path, "parley_default_publisher": "log"}
        )
        base = demo_dir()
        config = load_config(base / "parley.demo.toml")
        async with build_core(settings, config, base_dir=base, lookback=demo_lookback()) as core:
            console = ConsoleFrontend(
                core, on_end_of_input=core.settle, greeting=lambda: _greeting(core)
            )
            console.write(
                [
                    f"Parley demo · {len(config.sources)} sample feeds · database {path}"
                    + ("" if db_path else " (temporary)"),
                    f"Drafting: {core.drafter.name} · replies are 'posted' to the log publisher",
                    "",
                ]
            )
            await core.poll_all_once()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await run_core(core, [console], stop, polled_once=True)


async def _greeting(core: Core) -> list[str]:
    """The console's first line: how many sample mentions were alerted and kept quiet."""
    counts = await core.store.stats.count_by("state", datetime.min.replace(tzinfo=UTC))
    quiet = counts.get("backlog", 0)
    return [
        f"{sum(counts.values()) - quiet} mentions alerted; {quiet} older ones stored "
        "quietly ('list backlog'). Type 'help' for commands, 'quit' to leave."
    ]
