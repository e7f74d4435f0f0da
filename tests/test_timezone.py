"""PARLEY_TIMEZONE: stats days start at local midnight, chat and status lines show local time,
and a zone name that does not exist is refused by `check` and `run` in one plain line
(tests/test_check.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bot import localtime
from bot.app import build_core
from bot.config import ParleyConfig
from bot.domain.models import Actor
from bot.frontends.telegram.render import decision_line, render_alert
from bot.llm.client import BudgetExhausted
from bot.presentation import alert_view
from bot.services.charts import volume_series
from bot.services.health import describe
from bot.settings import Settings
from bot.storage.source_health import SourceStatus
from bot.storage.store import Store
from fakes.openai import FakeOpenAI
from tests.helpers import put_mention, raw
from tests.llm_harness import draft_call, llm_client

PARIS = ZoneInfo("Europe/Paris")
CM = Actor(platform="console", user_id="cm", display_name="Ann")


async def test_a_mention_at_23_30_utc_counts_on_the_next_day_in_paris(store: Store) -> None:
    now = datetime(2024, 5, 3, 12, tzinfo=UTC)
    await put_mention(store, datetime(2024, 4, 30, 23, 30, tzinfo=UTC))  # May 1st, 01:30 in Paris
    await put_mention(store, datetime(2024, 4, 30, 21, 30, tzinfo=UTC))  # still April 30th there

    paris = await volume_series(store, "7d", now=now, zone=PARIS)
    days = [f"{start:%m-%d}" for start in paris.starts]
    assert paris.starts[0] == datetime(2024, 4, 26, tzinfo=PARIS)  # local midnight
    assert paris.totals[days.index("04-30")] == 1
    assert paris.totals[days.index("05-01")] == 1

    utc = await volume_series(store, "7d", now=now, zone=UTC)
    assert utc.totals[[f"{s:%m-%d}" for s in utc.starts].index("04-30")] == 2

    hourly = await volume_series(store, "24h", now=datetime(2024, 5, 1, 12, tzinfo=UTC), zone=PARIS)
    one_thirty = hourly.starts.index(datetime(2024, 5, 1, 1, tzinfo=PARIS))
    assert hourly.totals[one_thirty] == 1


async def test_an_alert_and_the_health_lines_show_paris_time(
    settings: Settings, config: ParleyConfig
) -> None:
    paris = settings.model_copy(update={"parley_timezone": "Europe/Paris"})
    async with build_core(paris, config) as core:
        batch = await core.ingestor.store_batch([raw("m1", "acme is down", handle="bob")])
        (alerted,) = await core.alerter.alert(batch, first_poll=False)
        mention = await core.review.reject(alerted.id, CM, "not for us")
        decision = await core.review.decision(mention, None)
        assert decision is not None
        view = alert_view(mention, [], None, "Acme")
        html = render_alert(view, decision=decision_line(decision))
    local = decision.at.astimezone(PARIS)
    assert f"rejected by console:Ann at {local:%Y-%m-%d %H:%M %Z} (not for us)" in html
    ok_at = datetime(2024, 7, 1, 22, 5, tzinfo=UTC)
    status = SourceStatus("rss:news", {}, True, ok_at, None, None, 0, 3)
    assert "last success 2024-07-02 00:05 CEST" in describe(status)


async def test_the_llm_budget_says_when_it_resumes_in_local_time(store: Store) -> None:
    localtime.set_zone(ZoneInfo("Asia/Tokyo"))  # UTC midnight is 09:00 there, all year
    fake = await FakeOpenAI().start()
    llm = llm_client(fake, store, daily_tokens=20)
    try:
        await draft_call(llm)  # the first call spends more than the budget
        with pytest.raises(BudgetExhausted, match="paused until 09:00 JST and triage"):
            await draft_call(llm)
    finally:
        await llm.aclose()
        await fake.stop()
