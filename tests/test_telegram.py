"""The Telegram frontend: the real PTB Application against a fake Bot API server on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr
from telegram.ext import AIORateLimiter

from bot.config import ParleyConfig
from bot.domain.states import MentionState, ReplyState
from bot.drafting.tweaks import TWEAKS
from bot.frontends.telegram.keyboards import Action, decode, encode
from bot.frontends.telegram.render import MESSAGE_LIMIT, tg_len
from bot.services.throttle import Rate, ThrottleLimits
from bot.settings import Settings
from fakes.telegram import FakeTelegram
from tests import telegram_harness
from tests.conftest import ROOT
from tests.telegram_harness import ANN, BOB, CHAT, TOKEN, alert, message_of, running

# The harness's fixtures (pytest finds fixtures by module attribute).
fake = telegram_harness.fake
tg_settings = telegram_harness.tg_settings


async def test_alert_approve_posted_edits_the_alert_twice(
    fake: FakeTelegram, tg_settings: Settings, config: ParleyConfig
) -> None:
    async with running(tg_settings, config, fake) as (core, _frontend):
        # setMyCommands: the full list, as sent
        (commands,) = fake.of("setMyCommands")
        names = [c["command"] for c in commands.json("commands")]
        assert names == [
            "start", "help", "pending", "queue", "sources", "mention", "stats", "watch",
            "redraft", "reload", "pause", "resume",
        ]  # fmt: skip
        (mid,) = await alert(core, "Acme Cloud is lovely, how do I export?")
        (sent,) = await fake.wait_for("sendMessage")
        assert sent.params["chat_id"] == str(CHAT)
        assert sent.params["parse_mode"] == "HTML"
        assert sent.json("link_preview_options") == {"is_disabled": True}
        assert f"<b>Mention #{mid}</b>" in sent.params["text"]
        assert "rule <i>product</i>" in sent.params["text"]
        await core.settle()  # the draft follows the alert and edits it in place
        (sent,) = fake.of("editMessageText")
        assert all(len(d.encode()) <= 64 for d in sent.callback_data)
        assert encode(Action.APPROVE, mid) in sent.callback_data
        mention = await core.store.mentions.get(mid)
        ref = mention.alert_refs["telegram"]
        alert_message = message_of(fake, ref)

        pressed = len(fake.calls)
        query = await fake.press(ANN, alert_message, encode(Action.APPROVE, mid))
        await fake.wait_for("answerCallbackQuery")
        await core.settle()
        assert fake.answers()[query] == "Approved: the reply is queued for posting."
        # the answer is the press's first request
        first = next(
            c
            for c in fake.calls[pressed:]
            if c.method in ("answerCallbackQuery", "editMessageText")
        )
        assert first.method == "answerCallbackQuery"

        edits = fake.of("editMessageText")[1:]  # after the draft's
        assert len(edits) == 2
        assert "approved by telegram:@ann" in edits[0].params["text"]
        assert "Posted" in edits[1].params["text"]
        assert edits[1].params["message_id"] == str(alert_message["message_id"])
        assert "reply_markup" not in edits[1].params or edits[1].callback_data == []
        reply = await core.store.replies.for_mention(mid)
        assert reply is not None and reply.state is ReplyState.SENT
        assert (await core.store.mentions.get(mid)).state is MentionState.POSTED
        trail = await core.store.audit.trail("mention", mid)
        assert any(e.action == "approve" and e.actor == "telegram:@ann" for e in trail)


async def test_edit_flow_force_reply_preview_and_approve(
    fake: FakeTelegram, tg_settings: Settings, config: ParleyConfig
) -> None:
    async with running(tg_settings, config, fake) as (core, _frontend):
        (mid,) = await alert(core, "Is acme cloud able to export PDFs?")
        await fake.wait_for("sendMessage")
        await core.settle()
        alert_message = message_of(
            fake, (await core.store.mentions.get(mid)).alert_refs["telegram"]
        )

        await fake.press(ANN, alert_message, encode(Action.EDIT, mid))
        prompt_call = (await fake.wait_for("sendMessage", 2))[1]
        markup = prompt_call.json("reply_markup")
        assert markup["force_reply"] is True and markup["selective"] is True
        assert 'href="tg://user?id=111"' in prompt_call.params["text"]
        prompt = fake.messages[(CHAT, max(k[1] for k in fake.messages if k[0] == CHAT))]

        # Bob answering Ann's prompt is ignored; Ann's answer is taken.
        await fake.say(BOB, CHAT, "Bob's text", reply_to=prompt)
        await fake.say(ANN, CHAT, "Yes: Settings → Export → PDF. <3 & thanks!", reply_to=prompt)
        preview_call = (await fake.wait_for("sendMessage", 3))[2]
        assert len(fake.of("sendMessage")) == 3
        assert "Yes: Settings → Export → PDF. &lt;3 &amp; thanks!" in preview_call.params["text"]
        draft = await core.store.drafts.selected(mid)
        assert draft is not None and draft.text.startswith("Yes: Settings")
        assert preview_call.callback_data == [
            encode(Action.APPROVE, mid, draft.variant),
            encode(Action.CANCEL_EDIT, mid),
        ]
        preview = fake.messages[(CHAT, max(k[1] for k in fake.messages if k[0] == CHAT))]
        await fake.press(ANN, preview, encode(Action.APPROVE, mid, draft.variant))
        await fake.wait_for("answerCallbackQuery", 2)  # the Edit press was answered first
        await core.settle()
        reply = await core.store.replies.for_mention(mid)
        assert reply is not None and reply.text == draft.text and reply.state is ReplyState.SENT
        assert "queued" in fake.messages[(CHAT, preview["message_id"])]["text"]


async def test_non_approver_forged_and_double_tap_get_toasts_and_queue_one_reply(
    fake: FakeTelegram, tg_settings: Settings, config: ParleyConfig
) -> None:
    async with running(tg_settings, config, fake) as (core, _frontend):
        (mid,) = await alert(core, "acme cloud question")
        await fake.wait_for("sendMessage")
        await core.settle()
        alert_message = message_of(
            fake, (await core.store.mentions.get(mid)).alert_refs["telegram"]
        )

        bob = await fake.press(BOB, alert_message, encode(Action.APPROVE, mid))
        forged = await fake.press(ANN, alert_message, "p1:ap:99999")
        junk = await fake.press(ANN, alert_message, "p1:ap:1;DROP TABLE mentions")
        old = await fake.press(ANN, alert_message, "p0:approve:1")
        await fake.wait_for("answerCallbackQuery", 4)
        answers = fake.answers()
        assert "only approvers" in (answers[bob] or "")
        assert "no mention #99999" in (answers[forged] or "")
        assert "out of date" in (answers[junk] or "")
        assert "out of date" in (answers[old] or "")
        assert all(len(text or "") <= 200 for text in answers.values())
        assert await core.store.replies.for_mention(mid) is None

        first = await fake.press(ANN, alert_message, encode(Action.APPROVE, mid))
        second = await fake.press(ANN, alert_message, encode(Action.APPROVE, mid))
        await fake.wait_for("answerCallbackQuery", 6)
        await core.settle()
        answers = fake.answers()
        toasts = sorted([answers[first] or "", answers[second] or ""])
        assert toasts[0].startswith("Approved")
        assert "is approved" in toasts[1] or "already" in toasts[1] or "posted" in toasts[1]
        replies = await core.store.replies.in_states(list(ReplyState), limit=10)
        assert len(replies) == 1


async def test_429_retry_after_is_honoured(
    fake: FakeTelegram, tg_settings: Settings, config: ParleyConfig
) -> None:
    payload = json.loads((ROOT / "tests" / "fixtures" / "telegram_429.json").read_text())
    fake.fail_next(
        "sendMessage",
        payload["error_code"],
        "Too Many Requests: retry after 1",
        retry_after=1,
    )
    async with running(tg_settings, config, fake) as (core, _frontend):
        await alert(core, "acme cloud is down")
        calls = await fake.wait_for("sendMessage", 2)
        assert calls[1].at - calls[0].at >= 1.0
        await core.settle()
        assert len(fake.messages) == 1


async def test_burst_of_200_alerts_none_lost_limits_kept(
    fake: FakeTelegram, tg_settings: Settings, config: ParleyConfig
) -> None:
    limits = ThrottleLimits(
        per_destination=(Rate(20, 1.0), Rate(1, 0.2)),
        global_limits=(Rate(30, 0.5),),
        digest_horizon=1.0,
        digest_size=25,
    )
    async with running(
        tg_settings,
        config,
        fake,
        limits=limits,
        rate_limiter=AIORateLimiter(overall_max_rate=1000, group_max_rate=1000),
    ) as (core, frontend):
        texts = [f"acme cloud burst number {i} with distinct words {i * 7919}" for i in range(200)]
        ids = await alert(core, *texts)
        assert len(ids) == 200
        # every alert was queued in the store before alert() returned; the queue empties
        await asyncio.wait_for(frontend.delivery.drain(), 30)
        sends = fake.of("sendMessage")
        shown: set[int] = set()
        for call in sends:
            text = call.params["text"]
            shown.update(i for i in ids if f"#{i}</b>" in text)
        assert shown == set(ids), sorted(set(ids) - shown)
        times = [c.at for c in sends]
        # Measured on arrival at the fake server: a loaded machine delays single requests, so
        # check the rate over windows (1 per 0.2 s → at most 5 per second, plus jitter) and
        # over the whole burst, not the gap between two neighbours. The throttle's own
        # release times are checked exactly, with a fake clock, in test_throttle.py.
        assert times[-1] - times[0] >= 0.9 * 0.2 * (len(times) - 1)
        for start in times:
            in_second = [round(t - start, 3) for t in times if start <= t < start + 1.0]
            assert len(in_second) <= 7, in_second
        assert len(sends) < 200  # overflow went into digests


async def test_restart_old_buttons_still_work(
    fake: FakeTelegram, tg_settings: Settings, config: ParleyConfig
) -> None:
    async with running(tg_settings, config, fake) as (core, _frontend):
        ids = await alert(core, "acme cloud first", "acme cloud second")
        await fake.wait_for("sendMessage", 2)
        await core.settle()
        refs = {i: (await core.store.mentions.get(i)).alert_refs["telegram"] for i in ids}
    # a new Application on the same database
    async with running(tg_settings, config, fake) as (core, _frontend):
        message = message_of(fake, refs[ids[1]])
        query = await fake.press(ANN, message, encode(Action.REJECT, ids[1]))
        await fake.wait_for("answerCallbackQuery")
        await core.settle()
        assert fake.answers()[query] == "Rejected."
        assert (await core.store.mentions.get(ids[1])).state is MentionState.REJECTED
        edit = fake.of("editMessageText")[-1]
        assert edit.params["message_id"] == refs[ids[1]].rpartition(":")[2]
        assert "rejected by telegram:@ann" in edit.params["text"]


async def test_hostile_mention_is_escaped_and_defused(
    fake: FakeTelegram, tg_settings: Settings, config: ParleyConfig
) -> None:
    hostile = (
        'acme cloud <b>bold</b> & <a href="https://evil.example">Approve</a> '
        "@everyone /pause@parley_test_bot " + "x" * 5000 + " <<<&&&>>>" * 300
    )
    async with running(tg_settings, config, fake) as (core, _frontend):
        (mid,) = await alert(core, hostile, handle="<i>mallory</i>")
        (sent,) = await fake.wait_for("sendMessage")
        text = sent.params["text"]
        assert tg_len(text) <= MESSAGE_LIMIT
        # (the word joiner after "/" keeps "</b" from reading as a /command, too)
        assert (
            "&lt;b&gt;bold&lt;/\u2060b&gt; &amp; "
            "&lt;a href=&quot;https://evil.example&quot;&gt;Approve&lt;/\u2060a&gt;"
        ) in text
        assert "<a href" not in text and "<b>bold" not in text
        assert "@\u2060everyone" in text and "/\u2060pause" in text
        assert "&lt;i&gt;mallory&lt;/\u2060i&gt;" in text
        assert "…</blockquote>" in text
        entities = {e for e in __import__("re").findall(r"&([a-z#0-9]+);", text)}
        assert entities <= {"lt", "gt", "amp", "quot"}
        await core.settle()
        assert (await core.store.mentions.get(mid)).alert_refs["telegram"]


async def test_commands_and_token_never_logged(
    fake: FakeTelegram,
    tg_settings: Settings,
    config: ParleyConfig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running(tg_settings, config, fake) as (core, frontend):
        ids = await alert(core, "acme cloud one", "globex two")
        await fake.wait_for("sendMessage", 2)
        await core.settle()

        async def ask(who: dict[str, Any], chat_id: int, text: str) -> str:
            count = len(fake.of("sendMessage"))
            await fake.say(who, chat_id, text)
            return (await fake.wait_for("sendMessage", count + 1))[count].params["text"]

        pending = await ask(BOB, CHAT, "/pending")
        assert f"<b>#{ids[0]}</b>" in pending and f"<b>#{ids[1]}</b>" in pending
        assert "ask them to add your user id (222)" in await ask(BOB, 222, "/pending")
        assert "only approvers can pause" in await ask(BOB, CHAT, "/pause")
        added = await ask(ANN, CHAT, "/watch add acme pricing acme (price OR pricing)")
        assert "Added rule <b>acme/pricing</b>" in added
        assert [r.name for r in await core.watch.rules("acme")][-1] == "pricing"
        assert "unknown period" in await ask(ANN, CHAT, "/stats 1y")
        shown = await ask(ANN, CHAT, f"/mention {ids[1]}")
        assert f"Mention #{ids[1]}</b>" in shown
        ref = (await core.store.mentions.get(ids[1])).alert_refs["telegram"]
        assert fake.messages[(CHAT, int(ref.rpartition(":")[2]))]["text"] == shown
        assert f"Your user id: <code>{ANN['id']}</code>" in await ask(ANN, CHAT, "/start")
        assert "Alerts paused" in await ask(ANN, CHAT, "/pause")
        assert core.alerts.paused
        # files go to the same server: base_file_url is honoured
        tg_file = await frontend.bot.get_file("abc")
        assert tg_file.file_path == f"{fake.base_url}/file/bot{TOKEN}/docs/a.txt"
        logging.getLogger("httpx").warning("POST %s/bot%s/getMe", fake.base_url, TOKEN)
    assert fake.calls  # the frontend did talk to the server
    assert TOKEN not in caplog.text
    leaked = [(r.name, r.getMessage()[:150]) for r in caplog.records if TOKEN in r.getMessage()]
    assert not leaked
    assert logging.getLogger("httpx").level >= logging.WARNING


def test_callback_codec_rejects_anything_else() -> None:
    assert decode(encode(Action.SELECT, 12, 3)) is not None
    assert decode("p1:se:12") is None  # select needs a variant
    assert decode("p1:rj:12:3") is None  # reject takes none
    assert decode("p1:ap:0") is None
    assert decode("p1:ap:" + "9" * 60) is None
    assert decode(None) is None
    assert len(encode(Action.APPROVE, 999_999_999_999, 999).encode()) <= 64


async def test_webhook_mode_checks_the_secret_token(
    fake: FakeTelegram, tg_settings: Settings, config: ParleyConfig, unused_tcp_port: int
) -> None:
    url = f"http://127.0.0.1:{unused_tcp_port}/tg-hook"
    settings = tg_settings.model_copy(
        update={
            "telegram_webhook_url": url,
            "telegram_webhook_listen": "127.0.0.1",
            "telegram_webhook_port": unused_tcp_port,
            "telegram_webhook_secret": SecretStr("s3cret-token"),
        }
    )
    update = {
        "update_id": 1,
        "message": {
            "message_id": 5,
            "from": ANN,
            "chat": {"id": CHAT, "type": "supergroup", "title": "Team"},
            "date": 1700000000,
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }
    async with running(settings, config, fake), aiohttp.ClientSession() as http:
        (hook,) = fake.of("setWebhook")
        assert hook.params["url"] == url and hook.params["secret_token"] == "s3cret-token"
        assert not fake.of("getUpdates")
        forged = await http.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "x"})
        assert forged.status == 403
        ok = await http.post(
            url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-token"}
        )
        assert ok.status == 200
        (answer,) = await fake.wait_for("sendMessage")
        assert f"Your user id: <code>{ANN['id']}</code>" in answer.params["text"]


async def test_tweak_buttons_redraft_and_reload(
    fake: FakeTelegram, tg_settings: Settings, config: ParleyConfig, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts"
    shutil.copytree(ROOT / "prompts", prompts)
    settings = tg_settings.model_copy(update={"parley_prompts_dir": prompts})
    async with running(settings, config, fake) as (core, _frontend):
        (mid,) = await alert(core, "How do I export from acme cloud?")
        await fake.wait_for("sendMessage")
        await core.settle()  # the draft follows the alert and edits it in place
        (sent,) = fake.of("editMessageText")
        tweaks = [encode(Action.TWEAK, mid, n) for n in range(1, len(TWEAKS) + 1)]
        assert all(t in sent.callback_data for t in tweaks)
        alert_message = message_of(
            fake, (await core.store.mentions.get(mid)).alert_refs["telegram"]
        )

        query = await fake.press(ANN, alert_message, tweaks[0])
        await fake.wait_for("answerCallbackQuery")
        await core.settle()
        assert fake.answers()[query] == "Redrafting: shorter…"
        trail = await core.store.audit.trail("mention", mid)
        assert trail[-1].action == "redraft" and trail[-1].actor == "telegram:@ann"
        forged = await fake.press(ANN, alert_message, f"p1:tw:{mid}:9")
        await fake.wait_for("answerCallbackQuery", 2)
        assert "out of date" in (fake.answers()[forged] or "")
        refused = await fake.press(BOB, alert_message, tweaks[1])
        await fake.wait_for("answerCallbackQuery", 3)
        assert "only approvers" in (fake.answers()[refused] or "")

        async def ask(who: dict[str, Any], text: str) -> str:
            count = len(fake.of("sendMessage"))
            await fake.say(who, CHAT, text)
            return (await fake.wait_for("sendMessage", count + 1))[count].params["text"]

        assert await ask(ANN, f"/redraft {mid} mention the export menu") == (
            f"Redrafted #{mid}: the alert shows the new drafts."
        )
        assert "write /redraft ID and how" in await ask(ANN, "/redraft soon")
        assert "only approvers can redraft" in await ask(BOB, f"/redraft {mid} x")
        assert await ask(ANN, "/reload") == "Prompts and templates reloaded."
        (prompts / "templates" / "praise.md").write_text("Thanks {nonsense}!", encoding="utf-8")
        broken = await ask(ANN, "/reload")
        assert "praise.md" in broken and "previous prompts stay in use" in broken
        assert "only approvers can reload" in await ask(BOB, "/reload")
        reloads = await core.store.audit.trail("prompts", 0)
        assert [e.actor for e in reloads] == ["telegram:@ann"]


async def test_a_429_logs_one_warning_line_and_no_traceback(
    fake: FakeTelegram,
    tg_settings: Settings,
    config: ParleyConfig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    with caplog.at_level(logging.INFO):
        async with running(tg_settings, config, fake) as (core, _frontend):
            await alert(core, "acme cloud is down")
            await fake.wait_for("sendMessage", 2)
            await core.settle()
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert all(r.exc_info is None and r.exc_text is None for r in loud), loud
    [line] = [r.getMessage() for r in loud if "rate limited" in r.getMessage().lower()]
    assert "rate limited for 1 s" in line
    assert not [r for r in loud if r.name.startswith("telegram")]
