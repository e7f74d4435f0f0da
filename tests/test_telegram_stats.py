"""Telegram /stats: the figures plus the chart as a multipart sendPhoto, and the fallbacks
(figures too long for a caption; chart rendering failing)."""

from __future__ import annotations

import struct

import pytest

from bot.config import ParleyConfig
from bot.settings import Settings
from fakes.telegram import FakeTelegram
from tests import telegram_harness
from tests.telegram_harness import ANN, CHAT, alert, running

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# The fixtures of tests/telegram_harness.py (pytest finds fixtures by module attribute).
fake = telegram_harness.fake
tg_settings = telegram_harness.tg_settings


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == PNG_SIGNATURE and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


async def test_stats_sends_the_chart_with_the_figures_as_caption(
    fake: FakeTelegram, tg_settings: Settings, config: ParleyConfig
) -> None:
    async with running(tg_settings, config, fake) as (core, _frontend):
        await alert(core, "acme cloud one", "acme cloud two", "globex three")
        await fake.wait_for("sendMessage", 3)
        await core.settle()
        alerts = len(fake.of("sendMessage"))

        await fake.say(ANN, CHAT, "/stats 7d acme")
        (photo,) = await fake.wait_for("sendPhoto")
        assert photo.params["chat_id"] == str(CHAT)
        assert photo.params["parse_mode"] == "HTML"
        assert photo.params["caption"].startswith("<pre>Last 7d for acme: 2 mentions\n")
        (upload,) = [u for u in fake.uploads if u.method == "sendPhoto"]
        assert list(upload.files) == ["photo"]  # the file itself, in the photo field
        _, _, png = upload.files["photo"]
        assert png_size(png) == (1000, 700)
        assert len(fake.of("sendMessage")) == alerts  # the caption carried the figures


async def test_stats_too_long_for_a_caption_goes_as_its_own_message(
    fake: FakeTelegram,
    tg_settings: Settings,
    config: ParleyConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = ["Last 24h: 0 mentions", *(f"filler line {i:03} " + "x" * 40 for i in range(30))]
    monkeypatch.setattr("bot.frontends.telegram.reports.stats_lines", lambda stats: lines)
    async with running(tg_settings, config, fake):
        await fake.say(ANN, CHAT, "/stats")
        (photo,) = await fake.wait_for("sendPhoto")
        (text,) = await fake.wait_for("sendMessage")
        assert photo.params["caption"] == "Last 24h: 0 mentions"
        assert text.params["text"].startswith("<pre>Last 24h: 0 mentions\nfiller line 000")
        assert "filler line 029" in text.params["text"]


async def test_stats_falls_back_to_text_when_the_chart_fails(
    fake: FakeTelegram,
    tg_settings: Settings,
    config: ParleyConfig,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(*args: object, **kwargs: object) -> bytes:
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr("bot.frontends.telegram.reports.chart_png", broken)
    async with running(tg_settings, config, fake):
        await fake.say(ANN, CHAT, "/stats 30d")
        (text,) = await fake.wait_for("sendMessage")
        assert text.params["text"].startswith("<pre>Last 30d: 0 mentions")
        assert text.params["chat_id"] == str(CHAT)
    assert not fake.of("sendPhoto")
    assert "stats chart failed" in caplog.text and "renderer exploded" in caplog.text


async def test_stats_falls_back_to_text_when_telegram_refuses_the_photo(
    fake: FakeTelegram, tg_settings: Settings, config: ParleyConfig
) -> None:
    fake.fail_next("sendPhoto", 400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
    async with running(tg_settings, config, fake):
        await fake.say(ANN, CHAT, "/stats")
        (text,) = await fake.wait_for("sendMessage")
        assert text.params["text"].startswith("<pre>Last 24h: 0 mentions")
    assert len(fake.of("sendPhoto")) == 1
