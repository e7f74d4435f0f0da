"""End to end, as `parley run` runs: a mention found on Mastodon (the real mastodon-mock server)
is approved from Telegram (fakes/telegram.py), and one found on Bluesky
(fakes/bluesky.py) from Discord (fakes/discord.py). The core is built from a
parley.toml whose ``[[sources]]`` point at the loopback servers (secrets in the environment);
its runners poll, Approve is pressed twice through the fakes, and the reply appears on the
platform exactly once, with its link shown in the edited alert.

The same for the networks of issue 7: a complaint @mentioning the brand on X (fakes/x.py)
with its posting cost in /stats, an X search hit X forbids answering (copied by hand and
confirmed), a Facebook comment pushed by a signed Meta webhook and answered from Discord, an
Instagram comment found by polling (fakes/graph.py), and an X reply whose answer was lost
in a crash, reconciled after the restart instead of posted twice."""

from __future__ import annotations

import asyncio
import copy
import html
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.app import Core, build_core, run_core
from bot.config import ParleyConfig, load_config
from bot.connectors.facebook.connector import FacebookSource
from bot.connectors.webhook.connector import sign
from bot.domain.models import Mention
from bot.domain.states import MentionState, ReplyState
from bot.frontends.telegram import TelegramConfig, TelegramFrontend
from bot.frontends.telegram.keyboards import Action, encode
from bot.settings import Settings
from fakes.bluesky import BOT_DID, BOT_HANDLE, PASSWORD, make_post, serve_fake_bluesky
from fakes.discord import ANN as DISCORD_ANN
from fakes.discord import APP_ID, APPROVER_ROLE_ID, CHANNEL_ID, GUILD_ID, Call, FakeDiscord
from fakes.discord import BOB as DISCORD_BOB
from fakes.graph import IG_TOKEN, IG_USER_ID, PAGE_ID, PAGE_TOKEN, VERSION, FakeGraph, fixture
from fakes.mastodon_mock import BRAND, BRAND_TOKEN, CUSTOMER, MastodonMock
from fakes.telegram import FakeTelegram
from fakes.x import BRAND as X_BRAND
from fakes.x import BRAND_ID as X_BRAND_ID
from fakes.x import FakeX, serve_fake_x
from tests import discord_harness, telegram_harness
from tests.discord_harness import custom_ids
from tests.helpers import eventually, set_x_keys
from tests.telegram_harness import ANN, CHAT, message_of

# Fixtures, found by module attribute: the fake Telegram server and its settings, the fake
# Discord server and discord.py's endpoints (the mastodon-mock process and the fake Graph API
# come from conftest.py).
fake = telegram_harness.fake
tg_settings = telegram_harness.tg_settings
discord_fake = discord_harness.fake
endpoints = discord_harness.endpoints

APP_SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
"""The Meta app's App Secret, which signs webhook deliveries."""
VERIFY_TOKEN = "parley-verify-2718"


def parley_toml(folder: Path, source: str) -> ParleyConfig:
    """A parley.toml with one brand and the given ``[[sources]]`` section, loaded as at start."""
    path = folder / "parley.toml"
    brand = '[[brands]]\nname = "acme"\ndisplay_name = "Acme Cloud"\n'
    rule = '[[brands.rules]]\nname = "any"\nquery = "acme"\n'
    # allow_private: the fake servers are on loopback.
    sources = f"[[sources]]\ninterval = 3600\nallow_private = true\n{source}"
    path.write_text(f"{brand}\n{rule}\n{sources}", encoding="utf-8")
    return load_config(path)


async def started(core: Core, source: str) -> None:
    """Wait for the runner's own first poll (run_core starts every source at once)."""

    async def polled() -> bool:
        status = await core.store.sources.status(source)
        assert status.last_error is None, status.last_error
        return status.last_ok_at is not None

    await eventually(polled, f"source {source} to poll")


async def only_mention(core: Core) -> int:
    (mention,) = await core.store.mentions.newest()
    return mention.id


async def telegram_alert(
    core: Core, fake: FakeTelegram, frontend: TelegramFrontend
) -> tuple[int, dict[str, Any]]:
    """The only mention's id and its alert message, once the alert is out."""
    await core.settle()
    mid = await only_mention(core)
    return mid, message_of(fake, (await core.store.mentions.get(mid)).alert_refs["telegram"])


def shown_text(fake: FakeTelegram, alert: dict[str, Any]) -> str:
    """The text of the ``alert`` message as it is now (after edits)."""
    return str(fake.messages[(CHAT, alert["message_id"])]["text"])


async def approve_twice_in_telegram(
    core: Core, fake: FakeTelegram, frontend: TelegramFrontend, alert: dict[str, Any], mid: int
) -> list[str]:
    """ANN taps Approve twice in a row; the two toasts, sorted."""
    first = await fake.press(ANN, alert, encode(Action.APPROVE, mid))
    second = await fake.press(ANN, alert, encode(Action.APPROVE, mid))
    await fake.wait_for("answerCallbackQuery", 2)
    await core.settle()
    return sorted(fake.answers()[q] or "" for q in (first, second))


def discord_settings(tmp_path: Path, discord_fake: FakeDiscord) -> Settings:
    """Settings for the fake Discord: the alert channel, and ANN's role may approve."""
    return discord_harness.settings_with(
        tmp_path,
        parley_default_publisher="log",
        discord_bot_token=discord_harness.TOKEN,
        discord_guild_id=str(GUILD_ID),
        discord_alert_channel_id=str(CHANNEL_ID),
        discord_approver_role_ids=str(APPROVER_ROLE_ID),
        discord_api_base_url=discord_fake.api_url,
        discord_gateway_url=discord_fake.gateway_url,
    )


async def discord_alert(core: Core) -> tuple[Mention, str]:
    """The only mention and the id of its alert message in the channel."""
    await discord_harness.settle(core)
    mention = await core.store.mentions.get(await only_mention(core))
    return mention, mention.alert_refs["discord"].partition(":")[2]


async def click_approve(
    core: Core, discord_fake: FakeDiscord, who: dict[str, Any], message_id: str, mid: int,
    times: int = 1,
) -> list[Call]:  # fmt: skip
    """``who`` clicks Approve ``times`` in a row; the private follow-ups the clicks got."""
    clicks = [await discord_fake.click(who, message_id, f"p1:ap:{mid}") for _ in range(times)]
    for click in clicks:
        await discord_fake.wait_for("POST", rf"/interactions/{click.id}/[^/]+/callback")
    if times > 1:  # each later click is refused in a follow-up, sent after its (deferred) callback
        tokens = "|".join(re.escape(c.token) for c in clicks)
        await discord_fake.wait_for("POST", rf"/webhooks/{APP_ID}/({tokens})", count=times - 1)
    await discord_harness.settle(core)
    return [f for c in clicks for f in discord_fake.followups(c.token)]


async def test_mastodon_mention_approved_in_telegram_is_replied_once_with_its_link(
    mastodon: MastodonMock,
    fake: FakeTelegram,
    tg_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MASTODON_ACCESS_TOKEN", BRAND_TOKEN)
    config = parley_toml(
        tmp_path, f'type = "mastodon"\nname = "masto"\nbase_url = "{mastodon.base_url}"\n'
    )
    async with telegram_harness.running(tg_settings, config, fake) as (core, frontend):
        await started(core, "masto")
        status = await mastodon.post(f"@{BRAND} how do I export my notes to PDF?", language="en")
        await core.poll_all_once()
        (sent,) = await fake.wait_for("sendMessage")
        assert "how do I export my notes to PDF?" in sent.params["text"]
        assert "mastodon (masto)" in sent.params["text"]
        mid, alert = await telegram_alert(core, fake, frontend)

        toasts = await approve_twice_in_telegram(core, fake, frontend, alert, mid)

        (posted,) = await mastodon.replies_to(status["id"])
        assert posted["account"]["acct"] == BRAND
        assert posted["in_reply_to_id"] == status["id"]
        assert f"@{CUSTOMER} " in posted["content"]
        reply = await core.store.replies.for_mention(mid)
        assert reply is not None and reply.state is ReplyState.SENT
        assert (reply.posted_id, reply.posted_url) == (posted["id"], posted["url"])
        assert (await core.store.mentions.get(mid)).state is MentionState.POSTED
        assert toasts[0] == "Approved: the reply is queued for posting."
        assert "cannot become approved" in toasts[1]

        shown = shown_text(fake, alert)
        assert "Posted" in shown and f'href="{posted["url"]}"' in shown
        last_edit = [
            c
            for c in fake.of("editMessageText")
            if c.params["message_id"] == str(alert["message_id"])
        ][-1]
        assert f'href="{posted["url"]}"' in last_edit.params["text"]

        # A press after posting, and the next poll, change nothing.
        late = await fake.press(ANN, alert, encode(Action.APPROVE, mid))
        await fake.wait_for("answerCallbackQuery", 3)
        await core.poll_all_once()
        await core.settle()
        assert fake.answers()[late] == f"Sorry: mention #{mid} is posted."
        assert len(await mastodon.replies_to(status["id"])) == 1
        alerts = [c for c in fake.of("sendMessage") if "Mention #" in c.params["text"]]
        assert len(alerts) == 1
        assert len(await core.store.replies.in_states(list(ReplyState))) == 1


async def test_bluesky_mention_approved_in_discord_is_replied_once_with_its_link(
    discord_fake: FakeDiscord, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", PASSWORD)
    settings = discord_settings(tmp_path, discord_fake)
    async with serve_fake_bluesky() as bsky:
        config = parley_toml(
            tmp_path,
            f'type = "bluesky"\nname = "bsky"\nbase_url = "{bsky.url}"\n'
            f'identifier = "{BOT_HANDLE}"\nqueries = ["acme"]\n',
        )
        async with discord_harness.running(settings, config) as (core, _frontend):
            await started(core, "bsky")
            now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            post = make_post(
                "3kcustomer01",
                "Does acme cloud sync work offline?",
                now,
                did="did:plc:dana",
                handle="dana.bsky.social",
            )
            bsky.posts.append(post)
            await core.poll_all_once()
            channel_posts = rf"/channels/{CHANNEL_ID}/messages"
            (sent,) = await discord_fake.wait_for("POST", channel_posts)
            assert "Does acme cloud sync work offline?" in json.dumps(sent.body["embeds"])
            mention, message_id = await discord_alert(core)
            mid = mention.id

            # one click approves; the other is told, privately, that it already is
            (refused,) = await click_approve(core, discord_fake, DISCORD_ANN, message_id, mid, 2)
            assert "cannot become approved" in refused.body["content"]
            assert refused.body["flags"] & 64

            (created,) = bsky.created
            assert created["repo"] == BOT_DID
            parent = {"uri": post["uri"], "cid": post["cid"]}
            assert created["record"]["reply"] == {"root": parent, "parent": parent}
            reply = await core.store.replies.for_mention(mid)
            assert reply is not None and reply.state is ReplyState.SENT
            url = f"https://bsky.app/profile/{BOT_HANDLE}/post/3parley00001"
            assert reply.posted_url == url
            assert (await core.store.mentions.get(mid)).state is MentionState.POSTED
            shown = json.dumps(discord_fake.message(message_id)["embeds"])
            assert "Posted" in shown and f"[see the reply]({url})" in shown

            # The buttons are gone from the posted alert; the next poll changes nothing.
            assert f"p1:ap:{mid}" not in custom_ids(discord_fake.message(message_id))
            await core.poll_all_once()
            await discord_harness.settle(core)
            assert len(bsky.created) == 1
            assert len(discord_fake.of("POST", channel_posts)) == 1
            assert len(await core.store.replies.in_states(list(ReplyState))) == 1


# --- X, Facebook Page and Instagram (issue 7) ----------------------------------------------


@pytest.fixture
async def x(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeX]:
    """The fake X on loopback, with the four OAuth 1.0a keys it accepts in the environment."""
    set_x_keys(monkeypatch)
    async with serve_fake_x() as server:
        yield server


def x_section(url: str, *extra: str) -> str:
    """The ``[[sources]]`` body of an X source on the fake X (keys: the ``x`` fixture)."""
    return "\n".join(('type = "x"', 'name = "xsrc"', f'base_url = "{url}"', *extra)) + "\n"


def buttons(message: dict[str, Any]) -> list[str]:
    """The callback_data of every inline button under a Telegram message."""
    rows = message.get("reply_markup", {}).get("inline_keyboard", [])
    return [b["callback_data"] for row in rows for b in row if "callback_data" in b]


async def drafted_alert(
    core: Core, fake: FakeTelegram, frontend: TelegramFrontend
) -> tuple[int, dict[str, Any], str]:
    """The only mention's id, its alert message and the draft Approve would post."""
    mid, alert = await telegram_alert(core, fake, frontend)
    (draft,) = [d for d in await core.store.drafts.current(mid) if d.selected]
    assert draft.text and encode(Action.APPROVE, mid) in buttons(alert)
    assert "<b>Draft" in shown_text(fake, alert)
    return mid, alert, draft.text


async def deliver_to_facebook(port: int, body: bytes) -> httpx.Response:
    """Meta's delivery of the webhook ``body`` to Parley's listener, signed with the App Secret."""
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(APP_SECRET, body)}
    async with httpx.AsyncClient() as http:
        return await http.post(
            f"http://127.0.0.1:{port}/meta/facebook", content=body, headers=headers
        )


async def test_x_complaint_approved_in_telegram_is_replied_once_and_its_cost_is_in_stats(
    x: FakeX, fake: FakeTelegram, tg_settings: Settings, tmp_path: Path
) -> None:
    config = parley_toml(tmp_path, x_section(x.url))
    async with telegram_harness.running(tg_settings, config, fake) as (core, frontend):
        await started(core, "xsrc")
        post = x.add_post(f"@{X_BRAND} acme cloud lost my invoices again, I want a refund")
        await core.poll_all_once()
        (sent,) = await fake.wait_for("sendMessage")
        link = f"https://x.com/dana_w/status/{post['id']}"
        assert "I want a refund" in sent.params["text"]
        assert "📡 x (xsrc)" in sent.params["text"].lower() and link in sent.params["text"]
        mid, alert, draft = await drafted_alert(core, fake, frontend)
        assert (await core.store.mentions.get(mid)).answerable

        toasts = await approve_twice_in_telegram(core, fake, frontend, alert, mid)

        (body,) = x.post_bodies  # one POST /2/tweets, as a reply to the complaint
        assert body == {"text": draft, "reply": {"in_reply_to_tweet_id": post["id"]}}
        (posted,) = x.own_posts()
        assert posted["referenced_tweets"] == [{"type": "replied_to", "id": post["id"]}]
        url = f"https://x.com/{X_BRAND}/status/{posted['id']}"
        reply = await core.store.replies.for_mention(mid)
        assert reply is not None and reply.state is ReplyState.SENT
        assert (reply.publisher, reply.posted_id, reply.posted_url) == (
            "x:xsrc", posted["id"], url,
        )  # fmt: skip
        assert reply.cost_usd == 0.01  # X's price of a reply to a post naming the brand
        assert (await core.store.mentions.get(mid)).state is MentionState.POSTED
        assert toasts[0] == "Approved: the reply is queued for posting."
        assert "cannot become approved" in toasts[1]
        shown = shown_text(fake, alert)
        assert "Posted" in shown and f'href="{url}"' in shown
        assert buttons(fake.messages[(CHAT, alert["message_id"])]) == []

        await fake.say(ANN, CHAT, "/stats")
        (stats,) = await fake.wait_for("sendPhoto")
        assert "Posting cost: $0.01 (x:xsrc 1 replies $0.01)" in stats.params["caption"]

        # The next poll changes nothing: the brand's own reply is not a mention.
        await core.poll_all_once()
        await core.settle()
        assert len(x.post_bodies) == 1 and len(await core.store.mentions.newest()) == 1


async def test_x_search_hit_that_does_not_name_the_brand_is_answered_by_hand(
    x: FakeX, fake: FakeTelegram, tg_settings: Settings, tmp_path: Path
) -> None:
    config = parley_toml(tmp_path, x_section(x.url, 'search_queries = ["acme"]'))
    async with telegram_harness.running(tg_settings, config, fake) as (core, frontend):
        await started(core, "xsrc")
        post = x.add_post("acme cloud is down again, third time this week", author="bob")
        await core.poll_all_once()
        (sent,) = await fake.wait_for("sendMessage")
        link = f"https://x.com/bob/status/{post['id']}"
        assert link in sent.params["text"]
        assert "does not let Parley answer this post" in sent.params["text"]
        mid, alert, draft = await drafted_alert(core, fake, frontend)
        assert not (await core.store.mentions.get(mid)).answerable

        approved = await fake.press(ANN, alert, encode(Action.APPROVE, mid))
        await fake.wait_for("answerCallbackQuery")
        await core.settle()
        assert fake.answers()[approved] == "Approved: the reply is queued for posting."
        assert x.post_bodies == []
        assert not [r for r in x.requests if r.startswith("POST ")]
        reply = await core.store.replies.for_mention(mid)
        assert reply is not None and reply.state is ReplyState.AWAITING_MANUAL
        assert (reply.publisher, reply.posted_url) == ("manual", None)  # not posted yet
        shown = shown_text(fake, alert)
        assert f'Post this by hand</b> under <a href="{link}">the post</a>' in shown
        copyable = html.escape(draft, quote=False).replace('"', "&quot;")
        assert f"<pre>{copyable}</pre>" in shown  # the text to copy, as it will be posted
        assert buttons(fake.messages[(CHAT, alert["message_id"])]) == [encode(Action.CONFIRM, mid)]

        done = await fake.press(ANN, alert, encode(Action.CONFIRM, mid))
        await fake.wait_for("answerCallbackQuery", 2)
        await core.settle()
        assert fake.answers()[done] == "Marked as posted. Thanks!"
        reply = await core.store.replies.for_mention(mid)
        assert reply is not None and reply.state is ReplyState.SENT
        assert reply.cost_usd is None  # posted by hand: X charged nothing
        assert (await core.store.mentions.get(mid)).state is MentionState.POSTED
        assert reply.posted_url is None  # no link given: the customer's post is not "the reply"
        assert "Posted" in shown_text(fake, alert)
        assert "see the reply" not in shown_text(fake, alert)
        assert x.post_bodies == []


async def test_facebook_comment_pushed_by_webhook_approved_in_discord_is_answered_once(
    graph: tuple[FakeGraph, str],
    discord_fake: FakeDiscord,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("META_PAGE_ACCESS_TOKEN", PAGE_TOKEN)
    monkeypatch.setenv("META_WEBHOOK_VERIFY_TOKEN", VERIFY_TOKEN)
    monkeypatch.setenv("META_APP_SECRET", APP_SECRET)
    settings = discord_settings(tmp_path, discord_fake)
    graph_fake, url = graph
    page_post = graph_fake.add_post("Our January invoices are out")
    config = parley_toml(
        tmp_path,
        f'type = "facebook"\nname = "fb"\npage_id = "{PAGE_ID}"\nbase_url = "{url}"\n'
        f'api_version = "{VERSION}"\n[sources.webhook]\nport = 0\n'
        "drain_interval = 3600\npoll_interval = 3600\n",
    )
    async with discord_harness.running(settings, config) as (core, _frontend):
        await started(core, "fb")
        source = core.runners[0].source
        assert isinstance(source, FacebookSource) and source.webhook is not None
        port = source.webhook.port
        assert port is not None
        polled = len(graph_fake.requests)
        comment = graph_fake.add_comment(page_post, "My invoice is wrong again, Acme! Fix it.")
        payload = copy.deepcopy(fixture("graph_webhook_page_feed.json"))
        payload["entry"][0]["changes"][0]["value"].update(
            comment_id=comment["id"], post_id=page_post["id"], parent_id=page_post["id"],
            message=comment["message"],
        )  # fmt: skip
        body = json.dumps(payload).encode()
        delivered = await deliver_to_facebook(port, body)
        assert delivered.json() == {"accepted": 1, "duplicates": 0, "ignored": 0}
        await core.poll_all_once()
        channel_posts = rf"/channels/{CHANNEL_ID}/messages"
        (sent,) = await discord_fake.wait_for("POST", channel_posts)
        assert "Fix it." in json.dumps(sent.body["embeds"])
        # Read through the webhook: one look-up of the comment, no fallback poll.
        assert [r.split("?")[0] for r in graph_fake.requests[polled:]] == [
            f"GET /{VERSION}/{comment['id']}"
        ]
        mention, message_id = await discord_alert(core)
        mid = mention.id
        assert (mention.platform, mention.external_id) == ("facebook", comment["id"])

        # A member without the approver role cannot approve; Ann (who has it) taps twice.
        await click_approve(core, discord_fake, DISCORD_BOB, message_id, mid)
        assert await core.store.replies.for_mention(mid) is None
        (refused,) = await click_approve(core, discord_fake, DISCORD_ANN, message_id, mid, 2)
        assert "cannot become approved" in refused.body["content"]

        (answer,) = graph_fake.by(PAGE_ID)  # one comment, by the Page, under the complaint
        assert answer["_parent"] == comment["id"]
        assert f"POST /{VERSION}/{comment['id']}/comments" in [
            r.split("?")[0] for r in graph_fake.requests
        ]
        reply = await core.store.replies.for_mention(mid)
        assert reply is not None and reply.state is ReplyState.SENT
        assert answer["message"] == reply.text
        assert (reply.posted_id, reply.posted_url) == (answer["id"], answer["permalink_url"])
        shown = json.dumps(discord_fake.message(message_id)["embeds"])
        assert "Posted" in shown and f"[see the reply]({answer['permalink_url']})" in shown
        assert f"p1:ap:{mid}" not in custom_ids(discord_fake.message(message_id))

        # Meta delivers the same event again: nothing new.
        again = await deliver_to_facebook(port, body)
        assert again.status_code == 200
        await core.poll_all_once()
        await discord_harness.settle(core)
        assert len(graph_fake.by(PAGE_ID)) == 1
        assert len(discord_fake.of("POST", channel_posts)) == 1


async def test_instagram_comment_found_by_polling_approved_in_telegram_is_answered_once(
    graph: tuple[FakeGraph, str],
    fake: FakeTelegram,
    tg_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("META_IG_ACCESS_TOKEN", IG_TOKEN)
    graph_fake, url = graph
    media = graph_fake.add_media("New dark mode is here")
    config = parley_toml(
        tmp_path,
        f'type = "instagram"\nname = "ig"\nig_user_id = "{IG_USER_ID}"\n'
        f'base_url = "{url}"\napi_version = "{VERSION}"\n',
    )
    async with telegram_harness.running(tg_settings, config, fake) as (core, frontend):
        await started(core, "ig")
        comment = graph_fake.add_ig_comment(media, "acme, the app crashes since the update")
        await core.poll_all_once()
        (sent,) = await fake.wait_for("sendMessage")
        assert "the app crashes since the update" in sent.params["text"]
        mid, alert, draft = await drafted_alert(core, fake, frontend)
        mention = await core.store.mentions.get(mid)
        assert (mention.external_id, mention.url) == (comment["id"], media["permalink"])
        assert "📡 instagram (ig)" in sent.params["text"].lower()
        assert f"🔗 {mention.canonical_url or mention.url}\n" in sent.params["text"]

        toasts = await approve_twice_in_telegram(core, fake, frontend, alert, mid)

        (answer,) = graph_fake.by(IG_USER_ID)
        assert answer["parent_id"] == comment["id"] and answer["text"] == draft
        posts = [r for r in graph_fake.requests if r.startswith("POST ")]
        assert posts == [f"POST /{VERSION}/{comment['id']}/replies"]
        reply = await core.store.replies.for_mention(mid)
        assert reply is not None and reply.state is ReplyState.SENT
        assert (reply.posted_id, reply.posted_url) == (answer["id"], media["permalink"])
        assert toasts[0].startswith("Approved")
        shown = shown_text(fake, alert)
        assert "Posted" in shown and f'href="{media["permalink"]}"' in shown

        # The account's own reply, read on the next poll, is not a new mention.
        await core.poll_all_once()
        await core.settle()
        assert len(graph_fake.by(IG_USER_ID)) == 1 and len(await core.store.mentions.newest()) == 1


async def test_x_reply_whose_answer_was_lost_in_a_crash_is_reconciled_after_restart(
    x: FakeX, fake: FakeTelegram, tg_settings: Settings, tmp_path: Path
) -> None:
    config = parley_toml(tmp_path, x_section(x.url))
    async with build_core(tg_settings, config) as core:
        frontend = TelegramFrontend(core, TelegramConfig.from_settings(tg_settings))
        process = asyncio.create_task(run_core(core, [frontend], asyncio.Event()))
        await started(core, "xsrc")
        post = x.add_post(f"@{X_BRAND} acme billing charged me twice")
        await core.poll_all_once()
        await fake.wait_for("sendMessage")
        mid, alert, draft = await drafted_alert(core, fake, frontend)
        x.post_delay = 30.0  # X stores the post; its answer never comes back
        await fake.press(ANN, alert, encode(Action.APPROVE, mid))
        await asyncio.wait_for(x.post_stored.wait(), 30)
        process.cancel()  # the process dies before it learns the post's id
        with pytest.raises(asyncio.CancelledError):
            await process
        reply = await core.store.replies.for_mention(mid)
        assert reply is not None and reply.state is ReplyState.SENDING
    x.post_delay = 0.0
    (posted,) = x.own_posts()
    url = f"https://x.com/{X_BRAND}/status/{posted['id']}"

    reply_id = reply.id
    async with telegram_harness.running(tg_settings, config, fake) as (core, frontend):

        async def sent() -> bool:
            return (await core.store.replies.get(reply_id)).state is ReplyState.SENT

        await eventually(sent, f"reply #{reply_id} to be sent")
        reply = await core.store.replies.get(reply_id)
        await core.settle()
        assert (reply.posted_id, reply.posted_url, reply.cost_usd) == (posted["id"], url, 0.01)
        assert (await core.store.mentions.get(mid)).state is MentionState.POSTED
        shown = shown_text(fake, alert)
        assert "Posted" in shown and f'href="{url}"' in shown
        # Reconciled, not resent: X saw one POST, and the brand has one reply.
        assert [b["reply"]["in_reply_to_tweet_id"] for b in x.post_bodies] == [post["id"]]
        assert x.post_bodies[0]["text"] == draft
        assert any(r.startswith(f"GET /2/users/{X_BRAND_ID}/tweets?") for r in x.requests)
        trail = [e.action for e in await core.store.audit.trail("reply", reply.id)]
        assert trail.count("send") == 1 and trail[-1] == "reconciled"
        assert len(x.own_posts()) == 1
