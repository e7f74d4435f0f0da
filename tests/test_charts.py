"""Stats charts: the SQL series (exact numbers per bucket and sentiment), the PNG itself, the
console's `stats … chart FILE`, and that importing Parley does not import matplotlib."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.app import Core
from bot.frontends.console.frontend import ConsoleFrontend
from bot.services import charts
from bot.services.charts import UNTRIAGED, VolumeSeries, render_stats_chart, volume_series
from bot.services.stats import Stats, compute_stats
from bot.storage.store import Store
from tests.conftest import ROOT
from tests.helpers import put_mention, raw

NOW = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk (which must come first)."""
    assert png[:8] == PNG_SIGNATURE
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


async def test_hourly_buckets_split_by_sentiment(store: Store) -> None:
    at = NOW.replace(minute=0)  # 12:00 on May 1st
    await put_mention(store, NOW - timedelta(hours=24, minutes=20))  # 12:10 the day before: too old
    await put_mention(store, NOW - timedelta(hours=23, minutes=45))  # 12:45 → the first bucket
    await put_mention(store, at.replace(hour=9, minute=5), "negative")
    await put_mention(store, at.replace(hour=9, minute=30), "negative")
    await put_mention(store, at.replace(hour=9, minute=59), "positive")
    await put_mention(store, at.replace(hour=12, minute=20), "neutral", brand="globex")

    series = await volume_series(store, "24h", now=NOW)
    assert series.bucket == "hour"
    assert len(series.starts) == 25  # 12:00 yesterday … 12:00 today
    assert series.starts[0] == datetime(2024, 4, 30, 12, tzinfo=UTC)
    assert series.starts[-1] == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert list(series.counts) == ["negative", "neutral", "positive", UNTRIAGED]
    assert series.triaged
    nine = series.starts.index(datetime(2024, 5, 1, 9, tzinfo=UTC))
    assert series.counts["negative"][nine] == 2
    assert series.counts["positive"][nine] == 1
    assert series.counts["neutral"][-1] == 1
    assert series.counts[UNTRIAGED][0] == 1
    assert sum(series.totals) == 5
    assert {i for i, n in enumerate(series.totals) if n} == {0, nine, 24}

    acme = await volume_series(store, "24h", "acme", now=NOW)
    assert "neutral" not in acme.counts
    assert sum(acme.totals) == 4


async def test_daily_buckets_and_the_untriaged_only_case(store: Store) -> None:
    for day, count in ((24, 1), (28, 2), (30, 0)):
        for i in range(count):
            await put_mention(store, datetime(2024, 4, day, 13 + i, tzinfo=UTC))
    await put_mention(store, datetime(2024, 5, 1, 0, 1, tzinfo=UTC))
    await put_mention(store, datetime(2024, 4, 24, 11, tzinfo=UTC))  # before 12:30 on the 24th

    series = await volume_series(store, "7d", now=NOW)
    assert series.bucket == "day"
    assert [f"{s:%m-%d}" for s in series.starts] == [
        "04-24", "04-25", "04-26", "04-27", "04-28", "04-29", "04-30", "05-01"
    ]  # fmt: skip
    assert series.counts == {UNTRIAGED: (1, 0, 0, 0, 2, 0, 0, 1)}
    assert not series.triaged

    month = await volume_series(store, "30d", now=NOW)
    assert len(month.starts) == 31 and sum(month.totals) == 5
    empty = await volume_series(store, "30d", "globex", now=NOW)
    assert empty.counts == {} and empty.totals == (0,) * 31


async def test_chart_is_a_phone_sized_png_over_the_text_figures_window(store: Store) -> None:
    for sentiment in ("negative", "positive", None):
        await put_mention(store, datetime.now(UTC) - timedelta(hours=2), sentiment)
    stats = await compute_stats(store, "7d", "acme")
    series = await volume_series(store, "7d", "acme", since=stats.since)
    assert sum(series.totals) == stats.total == 3

    png = await charts.chart_png(store, stats, label="Acme $Cloud$ 100%")
    assert png_size(png) == (charts.WIDTH_PX, charts.HEIGHT_PX) == (1000, 700)
    assert len(png) > 10_000  # drawn, not blank


def test_chart_without_data_renders() -> None:
    stats = Stats("24h", None, 0, {}, {}, {}, {"failed": 2, "weird": 1}, 0, None, None)
    series = VolumeSeries("hour", tuple(NOW - timedelta(hours=h) for h in range(24, -1, -1)), {})
    assert png_size(render_stats_chart(stats, series)) == (1000, 700)


async def test_console_stats_chart_file(core: Core, tmp_path: Path) -> None:
    console = ConsoleFrontend(core, out=io.StringIO())
    await core.ingestor.store_batch([raw("a", "acme cloud is nice"), raw("b", "globex thing")])
    target = tmp_path / "stats.png"
    lines = await console.handle_line(f"stats 7d acme chart {target}")
    assert lines[0] == "Last 7d for acme: 1 mentions"
    assert lines[-1].startswith(f"Chart saved to {target} (")
    assert png_size(target.read_bytes()) == (1000, 700)

    assert (await console.handle_line("stats"))[0] == "Last 24h: 2 mentions"
    assert (await console.handle_line("stats 7d chart"))[0].startswith("Sorry: name the file")
    missing = await console.handle_line(f"stats chart {tmp_path / 'no' / 'such' / 'x.png'}")
    assert missing[0] == "Last 24h: 2 mentions"
    assert missing[-1].startswith("Sorry: cannot write the chart")


async def test_console_prints_the_figures_when_the_chart_fails(
    core: Core, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: object, **kwargs: object) -> bytes:
        raise RuntimeError("no fonts")

    monkeypatch.setattr("bot.frontends.console.reports.chart_png", broken)
    lines = await ConsoleFrontend(core, out=io.StringIO()).handle_line(
        f"stats 24h chart {tmp_path / 'x.png'}"
    )
    assert lines[0] == "Last 24h: 0 mentions"
    assert lines[-1] == "Sorry, the chart failed; the log has the details."
    assert "stats chart failed" in caplog.text and "no fonts" in caplog.text
    assert not (tmp_path / "x.png").exists()


def test_importing_parley_does_not_import_matplotlib() -> None:
    code = (
        "import sys, bot.services.charts, bot.frontends.console.frontend, "
        "bot.frontends.telegram.handlers; print('matplotlib' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
