"""End to end, as `parley run` runs: a mention found on Mastodon (the real mastodon-mock server)
is approved from Telegram (tests/fake_telegram.py), and one found on Bluesky
(tests/fake_bluesky.py) from Discord (tests/fake_discord.py). The core is built from a
parley.toml whose ``[[sources]]`` point at the loopback servers (secrets in the environment);
its runners poll, Approve is pressed twice through the fakes, and the reply appears on the
platform exactly once, with its link shown in the edited alert."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.app import Core
from bot.config import ParleyConfig, load_config
from bot.domain.states import MentionState, ReplyState
from bot.frontends.telegram.keyboards import Action, encode
from bot.settings import Settings
from tests import mastodon_mock_server, test_discord, test_telegram
from tests.fake_bluesky import BOT_DID, BOT_HANDLE, PASSWORD, make_post, serve_fake_bluesky
from tests.fake_discord import ANN as DISCORD_ANN
from tests.fake_discord import APPROVER_ROLE_ID, CHANNEL_ID, GUILD_ID, FakeDiscord
from tests.fake_telegram import FakeTelegram
from tests.mastodon_mock_server import BRAND, BRAND_TOKEN, CUSTOMER, MastodonMock
from tests.test_telegram import ANN, CHAT, message_of

# Fixtures, found by module attribute: the mastodon-mock process (one for this module), the
# fake Telegram server and its settings, the fake Discord server and discord.py's endpoints.
mastodon_instance = mastodon_mock_server.mastodon_instance
mastodon = mastodon_mock_server.mastodon
fake = test_telegram.fake
tg_settings = test_telegram.tg_settings
discord_fake = test_discord.fake
endpoints = test_discord.endpoints


def parley_toml(folder: Path, source: str) -> ParleyConfig:
    """A parley.toml with one brand and the given ``[[sources]]`` section, loaded as at start."""
    path = folder / "parley.toml"
    brand = '[[brands]]\nname = "acme"\ndisplay_name = "Acme Cloud"\n'
    rule = '[[brands.rules]]\nname = "any"\nquery = "acme"\n'
    path.write_text(f"{brand}\n{rule}\n[[sources]]\ninterval = 3600\n{source}", encoding="utf-8")
    return load_config(path)


async def started(core: Core, source: str) -> None:
    """Wait for the runner's own first poll (run_core starts every source at once)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while (status := await core.store.source_status(source)).last_ok_at is None:
        assert status.last_error is None, status.last_error
        assert loop.time() < deadline, f"source {source} never polled"
        await asyncio.sleep(0.02)


async def only_mention(core: Core) -> int:
    (mention,) = await core.store.list_mentions()
    return mention.id


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
    async with test_telegram.running(tg_settings, config, fake) as (core, frontend):
        await started(core, "masto")
        status = await mastodon.post(f"@{BRAND} how do I export my notes to PDF?", language="en")
        await core.poll_all_once()
        (sent,) = await fake.wait_for("sendMessage")
        assert "how do I export my notes to PDF?" in sent.params["text"]
        assert "mastodon (masto)" in sent.params["text"]
        await test_telegram.settle(core, frontend)
        mid = await only_mention(core)
        alert = message_of(fake, (await core.store.get_mention(mid)).alert_refs["telegram"])

        first = await fake.press(ANN, alert, encode(Action.APPROVE, mid))
        second = await fake.press(ANN, alert, encode(Action.APPROVE, mid))
        await fake.wait_for("answerCallbackQuery", 2)
        await test_telegram.settle(core, frontend)

        (posted,) = await mastodon.replies_to(status["id"])
        assert posted["account"]["acct"] == BRAND
        assert posted["in_reply_to_id"] == status["id"]
        assert f"@{CUSTOMER} " in posted["content"]
        reply = await core.store.reply_for_mention(mid)
        assert reply is not None and reply.state is ReplyState.SENT
        assert (reply.posted_id, reply.posted_url) == (posted["id"], posted["url"])
        assert (await core.store.get_mention(mid)).state is MentionState.POSTED
        toasts = sorted(fake.answers()[q] or "" for q in (first, second))
        assert toasts[0] == "Approved: the reply is queued for posting."
        assert "cannot become approved" in toasts[1]

        shown = fake.messages[(CHAT, alert["message_id"])]["text"]
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
        await test_telegram.settle(core, frontend)
        assert fake.answers()[late] == f"Sorry: mention #{mid} is posted."
        assert len(await mastodon.replies_to(status["id"])) == 1
        alerts = [c for c in fake.of("sendMessage") if "Mention #" in c.params["text"]]
        assert len(alerts) == 1
        assert len(await core.store.replies(list(ReplyState))) == 1


async def test_bluesky_mention_approved_in_discord_is_replied_once_with_its_link(
    discord_fake: FakeDiscord, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", PASSWORD)
    settings = test_discord.settings_with(
        tmp_path,
        parley_default_publisher="log",
        discord_bot_token=test_discord.TOKEN,
        discord_guild_id=str(GUILD_ID),
        discord_alert_channel_id=str(CHANNEL_ID),
        discord_approver_role_ids=str(APPROVER_ROLE_ID),
        discord_api_base_url=discord_fake.api_url,
        discord_gateway_url=discord_fake.gateway_url,
    )
    async with serve_fake_bluesky() as bsky:
        config = parley_toml(
            tmp_path,
            f'type = "bluesky"\nname = "bsky"\nbase_url = "{bsky.url}"\n'
            f'identifier = "{BOT_HANDLE}"\nqueries = ["acme"]\n',
        )
        async with test_discord.running(settings, config) as (core, _frontend):
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
            await test_discord.settle(core)
            mid = await only_mention(core)
            ref = (await core.store.get_mention(mid)).alert_refs["discord"]
            message_id = ref.partition(":")[2]

            clicks = [await discord_fake.click(DISCORD_ANN, message_id, f"p1:ap:{mid}")]
            clicks.append(await discord_fake.click(DISCORD_ANN, message_id, f"p1:ap:{mid}"))
            for click in clicks:
                await discord_fake.wait_for("POST", rf"/interactions/{click.id}/[^/]+/callback")
            await test_discord.settle(core)
            # one click approves; the other is told, privately, that it already is
            (refused,) = [f for c in clicks for f in discord_fake.followups(c.token)]
            assert "cannot become approved" in refused.body["content"]
            assert refused.body["flags"] & 64

            (created,) = bsky.created
            assert created["repo"] == BOT_DID
            parent = {"uri": post["uri"], "cid": post["cid"]}
            assert created["record"]["reply"] == {"root": parent, "parent": parent}
            reply = await core.store.reply_for_mention(mid)
            assert reply is not None and reply.state is ReplyState.SENT
            url = f"https://bsky.app/profile/{BOT_HANDLE}/post/3parley00001"
            assert reply.posted_url == url
            assert (await core.store.get_mention(mid)).state is MentionState.POSTED
            shown = json.dumps(discord_fake.message(message_id)["embeds"])
            assert "Posted" in shown and f"[see the reply]({url})" in shown

            # The buttons are gone from the posted alert; the next poll changes nothing.
            assert f"p1:ap:{mid}" not in test_discord.custom_ids(discord_fake.message(message_id))
            await core.poll_all_once()
            await test_discord.settle(core)
            assert len(bsky.created) == 1
            assert len(discord_fake.of("POST", channel_posts)) == 1
            assert len(await core.store.replies(list(ReplyState))) == 1
