"""Facebook Page connector against a loopback fake Graph API (fakes/graph.py): polling
with watermarks and cursor paging, usage headers, Graph error codes, and the publisher's
exactly-once behaviour across a crash."""

from __future__ import annotations

import logging
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.connectors.facebook.connector import FacebookPublisher, FacebookSource
from bot.domain.models import Mention, Reply
from bot.errors import CredentialsRejected, PublishError, SourceError, SourceRateLimited
from fakes.graph import PAGE_ID, PAGE_TOKEN, VERSION, FakeGraph, fixture, graph_error
from tests.connectors import facebook_config
from tests.helpers import approved_mention, opened, publish_answer_lost, sending_reply


def source(url: str, **overrides: Any) -> FacebookSource:
    return FacebookSource.create(facebook_config(url, **overrides), PAGE_TOKEN)


def publisher(url: str, *, timeout: float = 5.0) -> FacebookPublisher:
    src = source(url, timeout=timeout)  # as in Parley: the publisher shares its source's client
    return FacebookPublisher(src.config, src.client, name="facebook:fb")


async def poll(url: str, cursor: dict[str, str] | None = None, **overrides: Any) -> Any:
    async with aclosing(source(url, **overrides)) as src:
        return await src.fetch(cursor or {})


def as_mention(comment: dict[str, Any], *, parent_ref: str | None = None) -> Mention:
    return approved_mention(
        platform="facebook", source="fb", external_id=comment["id"],
        url=comment.get("permalink_url"), handle="Dana Customer", text=comment["message"],
        parent_ref=parent_ref,
    )  # fmt: skip


def make_reply(text: str = "Sorry Dana! We have refunded the invoice.") -> Reply:
    return sending_reply(text, publisher="facebook:fb")


# --- source -------------------------------------------------------------------------------


async def test_an_app_requiring_the_app_secret_gets_its_proof_on_every_call(
    graph: tuple[FakeGraph, str],
) -> None:
    fake, url = graph
    fake.app_secret = "meta-app-secret-0123456789"
    fake.add_comment(fake.add_post("Launch day"), "acme cloud rocks")
    async with aclosing(source(url)) as without:
        with pytest.raises(SourceError, match="appsecret_proof"):
            await without.fetch({})
    signed = FacebookSource.create(facebook_config(url), PAGE_TOKEN, app_secret=fake.app_secret)
    async with aclosing(signed):
        result = await signed.fetch({})
    assert [m.text for m in result.items] == ["acme cloud rocks"]
    assert fake.app_secret not in " ".join(fake.requests)  # the proof, never the secret


async def test_first_poll_takes_the_newest_page_and_normalises(
    graph: tuple[FakeGraph, str],
) -> None:
    fake, url = graph
    post = fake.add_post("New pricing is live!")
    for n in range(7):
        fake.add_comment(post, f"old comment {n}")
    complaint = fake.add_comment(post, "Acme double-charged me", author=("5550009", "Lee Buyer"))
    fake.add_comment(complaint, "We're on it, Lee", author=(PAGE_ID, "Acme Cloud"))
    reply = fake.add_comment(complaint, "Still waiting!!", author=("5550009", "Lee Buyer"))
    tagged = fake.add_tagged("Anyone else seeing Acme Cloud outages?")
    result = await poll(url)
    texts = [m.text for m in result.items]
    # Newest page only (5 per page): the Page's own reply is skipped, older ones are left
    # to the core's look-back rule. Oldest first.
    assert texts == [
        "old comment 5",
        "old comment 6",
        "Acme double-charged me",
        "Still waiting!!",
        "Anyone else seeing Acme Cloud outages?",
    ]
    by_id = {m.external_id: m for m in result.items}
    top = by_id[complaint["id"]]
    assert top.platform == "facebook" and top.source == "fb"
    assert top.author.handle == "Lee Buyer" and top.author.display_name == "Lee Buyer"
    assert top.url == complaint["permalink_url"]
    assert top.thread_context == "New pricing is live!" and top.parent_ref is None
    assert top.created_at is not None and top.created_at.tzinfo is not None
    nested = by_id[reply["id"]]
    assert nested.parent_ref == complaint["id"]
    assert nested.thread_context == "Acme double-charged me"
    mention = by_id[tagged["id"]]
    assert mention.author.handle == "Jo Customer" and mention.parent_ref is None
    assert set(result.cursor) == {"tagged", f"post:{post['id']}"}
    # The token travels as a header (the fake refuses ?access_token=), fields are explicit.
    comments_call = next(r for r in fake.requests if "/comments" in r)
    assert "order=reverse_chronological" in comments_call and "filter=stream" in comments_call


async def test_cursor_resumes_after_restart_with_cursor_paging(
    graph: tuple[FakeGraph, str],
) -> None:
    fake, url = graph
    post = fake.add_post("Launch day")
    fake.add_comment(post, "first!")
    cursor = (await poll(url)).cursor
    for n in range(12):  # more than two pages of 5
        fake.add_comment(post, f"new {n}")
    later = fake.add_post("Second post")
    fake.add_comment(later, "on the new post")
    fake.requests.clear()
    result = await poll(url, cursor)  # a fresh source object: as after a restart
    assert [m.text for m in result.items] == [f"new {n}" for n in range(12)] + ["on the new post"]
    assert any("after=" in r for r in fake.requests)
    again = await poll(url, result.cursor)
    assert again.items == []


async def test_same_second_comments_are_not_lost_or_repeated(
    graph: tuple[FakeGraph, str],
) -> None:
    fake, url = graph
    post = fake.add_post("Status update")
    when = fake.tick()
    fake.add_comment(post, "one", at=when)
    cursor = (await poll(url)).cursor
    fake.add_comment(post, "two, same second", at=when)
    result = await poll(url, cursor)
    assert [m.text for m in result.items] == ["two, same second"]


async def test_usage_at_90_percent_stops_the_poll_early(
    graph: tuple[FakeGraph, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = graph
    post = fake.add_post("Hello")
    fake.add_comment(post, "Acme is down")
    fake.app_usage = {"call_count": 90, "total_cputime": 12, "total_time": 20}
    async with aclosing(source(url)) as src:
        with caplog.at_level(logging.WARNING):
            result = await src.fetch({"tagged": ""})
        assert src.rate_limit_remaining == 10
    assert result.items == []
    assert not any("/comments" in r or "/posts" in r for r in fake.requests)
    assert "90% of the allowance used" in caplog.text
    # A business use case header counts too.
    fake.app_usage = {"call_count": 1, "total_cputime": 1, "total_time": 1}
    fake.buc_usage = {"type": "pages", "call_count": 95, "total_cputime": 3, "total_time": 4,
                      "estimated_time_to_regain_access": 0}  # fmt: skip
    fake.requests.clear()
    await poll(url, {"tagged": ""})
    assert len(fake.requests) == 1


@pytest.mark.parametrize("code", [4, 32, 80001])
async def test_rate_limit_codes_wait_the_time_meta_estimates(
    graph: tuple[FakeGraph, str], code: int
) -> None:
    fake, url = graph
    fake.buc_usage = {"type": "pages", "call_count": 100, "total_cputime": 10, "total_time": 10,
                      "estimated_time_to_regain_access": 7}  # fmt: skip
    fake.fail("GET", "/tagged", 400, graph_error("(#4) Application request limit reached", code))
    with pytest.raises(SourceRateLimited) as info:
        await poll(url)
    assert info.value.retry_after is not None and 400 < info.value.retry_after <= 420
    assert f"Graph error {code}" in str(info.value)


async def test_expired_token_is_rejected_credentials_with_a_plain_message(
    graph: tuple[FakeGraph, str],
) -> None:
    fake, url = graph
    fake.actors[PAGE_TOKEN].expired = True
    with pytest.raises(CredentialsRejected) as info:
        await poll(url)
    message = str(info.value)
    assert "META_PAGE_ACCESS_TOKEN" in message and "expired" in message
    assert "Graph error 190/463" in message and "docs/meta.md" in message
    assert PAGE_TOKEN not in message and "access_token=" not in message


async def test_recorded_expiry_answer_names_the_variable(graph: tuple[FakeGraph, str]) -> None:
    fake, url = graph
    fake.fail("GET", "/tagged", 400, fixture("graph_error_token_expired.json")["error"])
    with pytest.raises(
        CredentialsRejected, match="refused the access token in META_PAGE_ACCESS_TOKEN"
    ):
        await poll(url, token_env="META_PAGE_ACCESS_TOKEN")


async def test_permission_errors_name_the_permission(graph: tuple[FakeGraph, str]) -> None:
    fake, url = graph
    fake.add_post("Hi")
    fake.actors[PAGE_TOKEN].permissions = frozenset({"pages_read_engagement"})
    with pytest.raises(CredentialsRejected) as info:  # code 200 on the comments edge
        await poll(url, mentions=False)
    assert "lacks the pages_read_user_engagement permission" in str(info.value)
    assert "Graph error 200" in str(info.value)
    fake.fail("GET", "/tagged", 403, fixture("graph_error_permission.json")["error"])
    with pytest.raises(CredentialsRejected) as info:  # code 10, from Meta's own wording
        await poll(url)
    assert "lacks the pages_read_engagement permission (Graph error 10)" in str(info.value)


async def test_server_errors_then_recovery(graph: tuple[FakeGraph, str]) -> None:
    fake, url = graph
    post = fake.add_post("Hi")
    cursor = (await poll(url)).cursor
    fake.add_comment(post, "during the outage")
    fake.fail("GET", "/comments", 500, graph_error("An unknown error occurred", 1))
    with pytest.raises(SourceError) as info:
        await poll(url, cursor)
    assert not isinstance(info.value, CredentialsRejected)
    assert "Meta is not answering properly (Graph error 1" in str(info.value)
    fake.fail("GET", "/tagged", 503, {"message": "x"})
    with pytest.raises(SourceError, match=r"HTTP 503|Graph error"):
        await poll(url, cursor)
    result = await poll(url, cursor)
    assert [m.text for m in result.items] == ["during the outage"]


async def test_malformed_items_are_skipped_with_a_log_line(
    graph: tuple[FakeGraph, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = graph
    post = fake.add_post("Hi")
    bad_time = fake.add_comment(post, "when?")
    bad_time["created_time"] = "yesterday"
    bad_id = fake.add_comment(post, "sneaky")
    bad_id["id"] = "../../me/feed"
    fake.add_comment(post, "Acme support is great")
    with caplog.at_level(logging.WARNING):
        result = await poll(url, mentions=False)
    assert [m.text for m in result.items] == ["Acme support is great"]
    assert caplog.text.count("skipped a malformed item") == 2


async def test_a_recorded_answer_normalises(graph: tuple[FakeGraph, str]) -> None:
    fake, url = graph
    post = fake.add_post("Invoices")
    fake.canned[f"/{post['id']}/comments"] = fixture("graph_comments_page.json")
    result = await poll(url, mentions=False)
    # The sticker (no text) and the Page's own answer are left out.
    assert [(m.external_id, m.parent_ref, m.thread_context) for m in result.items] == [
        ("1001_1002", None, "Invoices"),
        ("1001_1005", "1001_1002", "My invoice is wrong again, Acme!"),
    ]
    assert result.items[0].created_at == datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


async def test_a_post_deleted_mid_poll_is_dropped_from_the_cursor(
    graph: tuple[FakeGraph, str],
) -> None:
    fake, url = graph
    post = fake.add_post("Oops")
    keep = fake.add_post("Keep")
    fake.add_comment(keep, "still here")
    fake.fail("GET", f"/{post['id']}/comments", 400,
              graph_error("Object does not exist", 100, 33, "GraphMethodException"))  # fmt: skip
    result = await poll(url, {"tagged": ""}, mentions=False)
    assert [m.text for m in result.items] == ["still here"]
    assert f"post:{post['id']}" not in result.cursor


# --- publisher ----------------------------------------------------------------------------


async def test_publish_comments_as_the_page(graph: tuple[FakeGraph, str]) -> None:
    fake, url = graph
    post = fake.add_post("Hi")
    comment = fake.add_comment(post, "Acme double-charged me")
    async with opened(publisher(url)) as pub:
        result = await pub.publish(make_reply(), as_mention(comment))
    [posted] = fake.created
    assert posted["_parent"] == comment["id"]
    assert posted["message"] == "Sorry Dana! We have refunded the invoice."
    assert posted["from"] == {"id": PAGE_ID, "name": "Acme Cloud"}
    assert result.posted_id == posted["id"] and result.url == posted["permalink_url"]
    assert any(r.startswith(f"POST /{VERSION}/{comment['id']}/comments") for r in fake.requests)


async def test_a_reply_to_a_reply_goes_under_the_top_level_comment(
    graph: tuple[FakeGraph, str],
) -> None:
    fake, url = graph
    top = fake.add_comment(fake.add_post("Hi"), "question")
    nested = fake.add_comment(top, "Acme, answer please")
    async with opened(publisher(url)) as pub:
        await pub.publish(make_reply(), as_mention(nested, parent_ref=top["id"]))
    assert [c["_parent"] for c in fake.created] == [top["id"]]


async def test_crash_after_posting_is_reconciled_without_a_second_post(
    graph: tuple[FakeGraph, str],
) -> None:
    fake, url = graph
    comment = fake.add_comment(fake.add_post("Hi"), "Acme double-charged me")
    mention = as_mention(comment)
    # The comment is made but the answer never arrives: outcome unknown, not permanent.
    lost = await publish_answer_lost(fake, publisher(url, timeout=0.3), make_reply(), mention)
    assert not lost.permanent
    async with opened(publisher(url)) as restarted:  # a new process: no memory of the attempt
        found = await restarted.reconcile(make_reply(), mention)
    assert found is not None and found.posted_id == fake.created[0]["id"]
    assert found.url == fake.created[0]["permalink_url"]
    assert len(fake.by(PAGE_ID)) == 1


async def test_reconcile_ignores_other_answers(graph: tuple[FakeGraph, str]) -> None:
    fake, url = graph
    comment = fake.add_comment(fake.add_post("Hi"), "help")
    fake.add_comment(comment, "Someone else answered", author=("5550003", "Kim"))
    fake.add_comment(comment, "A colleague's own words", author=(PAGE_ID, "Acme Cloud"))
    async with opened(publisher(url)) as pub:
        assert await pub.reconcile(make_reply(), as_mention(comment)) is None


async def test_deleted_comment_is_a_permanent_failure(graph: tuple[FakeGraph, str]) -> None:
    fake, url = graph
    comment = fake.add_comment(fake.add_post("Hi"), "rude words")
    comment["_deleted"] = True
    async with opened(publisher(url)) as pub:
        assert await pub.reconcile(make_reply(), as_mention(comment)) is None
        with pytest.raises(PublishError, match="deleted or is no longer visible") as info:
            await pub.publish(make_reply(), as_mention(comment))
    assert info.value.permanent and fake.created == []


@pytest.mark.parametrize(
    ("error", "permanent", "match"),
    [
        (graph_error("Session has expired", 190, 463), True, "META_PAGE_ACCESS_TOKEN"),
        (graph_error("(#200) Permissions error", 200), True, "lacks the pages_manage_engagement"),
        (graph_error("(#32) Page request limit reached", 32), False, "rate limit"),
        (graph_error("Please retry your request later.", 2), False, "not answering"),
        (graph_error("(#368) The action attempted has been deemed abusive", 368), True, "368"),
    ],
)
async def test_publish_errors(
    graph: tuple[FakeGraph, str], error: dict[str, Any], permanent: bool, match: str
) -> None:
    fake, url = graph
    comment = fake.add_comment(fake.add_post("Hi"), "help")
    fake.fail("POST", "/comments", 400, error)
    async with opened(publisher(url)) as pub:
        with pytest.raises(PublishError, match=match) as info:
            await pub.publish(make_reply(), as_mention(comment))
    assert info.value.permanent is permanent
    assert PAGE_TOKEN not in str(info.value)
    if error["code"] == 32:
        assert info.value.retry_after is not None and info.value.retry_after > 0
    assert fake.created == []


async def test_too_long_reply_is_refused_before_sending(graph: tuple[FakeGraph, str]) -> None:
    fake, url = graph
    comment = fake.add_comment(fake.add_post("Hi"), "help")
    async with opened(publisher(url)) as pub:
        with pytest.raises(PublishError, match="8000") as info:
            await pub.publish(make_reply("x" * 8001), as_mention(comment))
    assert info.value.permanent and not any(r.startswith("POST") for r in fake.requests)


def test_config_checks_ids_and_version() -> None:
    cfg = facebook_config("https://graph.facebook.com/")
    assert cfg.base_url == "https://graph.facebook.com" and cfg.webhook is None
    with pytest.raises(ValueError, match="page_id"):
        facebook_config("https://graph.facebook.com", page_id="acme")
    with pytest.raises(ValueError, match="api_version"):
        facebook_config("https://graph.facebook.com", api_version="21")
