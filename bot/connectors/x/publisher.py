"""X (API v2) publisher: replies to answerable mentions with ``POST /2/tweets``.

X has no idempotency key. So when an earlier attempt may have landed (a retry, a restart after
a crash, or X calling the text a duplicate), Parley first looks for the brand's own reply to
that post made after approval (``GET /2/users/{id}/tweets``) and never sends blindly twice.
A post whose author neither @mentioned nor quoted the brand is refused before any request.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import httpx

from bot.connectors.base import PublishResult
from bot.connectors.http.outbound_limits import failure
from bot.connectors.x.client import (
    PLATFORM,
    REPLY_LIMIT,
    Identity,
    XClient,
    XSourceConfig,
    json_object,
    problem,
    problem_type,
)
from bot.domain.limits import LINK_WEIGHT, x_weighted_length
from bot.domain.models import Mention, Reply
from bot.errors import PublishError

RECONCILE_PAGES = 3
NOT_ANSWERABLE = (
    "x: X lets self-serve apps reply only where the author @mentioned or quoted the brand "
    "account, and this post did neither: copy the text and reply by hand on X"
)
_LINK = re.compile(r"https?://\S", re.IGNORECASE)


class XPublisher:
    """Replies on X to answerable mentions found by the X source."""

    def __init__(self, config: XSourceConfig, client: XClient, *, name: str = PLATFORM) -> None:
        self.config = config
        self.client = client
        self.name = name

    def cost(self, text: str) -> float:
        """What X charges for this reply: the link price when the text holds a link."""
        if _LINK.search(text):
            return self.config.link_reply_cost_usd
        return self.config.reply_cost_usd

    async def publish(self, reply: Reply, mention: Mention) -> PublishResult:
        """Reply under ``mention``; refused before any request when X would not allow it."""
        if not mention.answerable:
            raise PublishError(NOT_ANSWERABLE, permanent=True)
        length = x_weighted_length(reply.text)
        if length > REPLY_LIMIT:
            raise PublishError(
                f"x: reply is {length} characters as X counts them; X allows "
                f"{REPLY_LIMIT} (links count {LINK_WEIGHT}, emoji and CJK 2)",
                permanent=True,
            )
        if not reply.text.strip():
            raise PublishError("x: the reply is empty", permanent=True)
        if reply.attempts > 1:  # an earlier attempt may have landed without an answer
            earlier = await self.reconcile(reply, mention)
            if earlier is not None:
                return earlier
        body = {"text": reply.text, "reply": {"in_reply_to_tweet_id": mention.external_id}}
        try:
            response = await self.client.request("POST", "/2/tweets", "post", json=body)
        except httpx.TimeoutException:
            raise PublishError(
                "x: timed out; Parley checks whether the reply went out before trying again"
            ) from None
        except httpx.HTTPError as exc:
            raise PublishError(f"x: {failure(exc)}") from None
        if response.status_code in (200, 201):
            data = _data(response)
            if not isinstance(data.get("id"), str):
                raise PublishError("x: X answered without a post id")
            return await self._result(data["id"], reply.text)
        if response.status_code == 403 and "duplicate" in problem(response).lower():
            earlier = await self.reconcile(reply, mention)
            if earlier is not None:
                return earlier
        raise self._failure(response)

    async def reconcile(self, reply: Reply, mention: Mention) -> PublishResult | None:
        """The brand's own reply to ``mention`` posted after approval, if there is one.

        Raises PublishError when X cannot be asked: with no idempotency key, a blind resend
        could post twice."""
        me = await self._me()
        not_before = reply.created_at - timedelta(minutes=1)
        params = [
            ("since_id", mention.external_id),
            ("max_results", "100"),
            ("tweet.fields", "created_at,referenced_tweets,conversation_id"),
            ("exclude", "retweets"),
        ]
        token: str | None = None
        for _ in range(RECONCILE_PAGES):
            paged = [*params, ("pagination_token", token)] if token else params
            try:
                response = await self.client.request(
                    "GET", f"/2/users/{me.user_id}/tweets", "own_posts", params=paged
                )
            except httpx.HTTPError as exc:
                raise PublishError(
                    f"x: cannot check for an earlier reply ({type(exc).__name__})"
                ) from None
            if response.status_code != 200:
                raise self._failure(response, checking=True)
            body = json_object(response)
            data = body.get("data")
            for post in data if isinstance(data, list) else []:
                if _replies_to(post, mention.external_id, not_before):
                    return await self._result(post["id"], reply.text)
            meta = body.get("meta")
            token = meta.get("next_token") if isinstance(meta, dict) else None
            if not isinstance(token, str) or not token:
                break
        return None

    async def _result(self, post_id: str, text: str) -> PublishResult:
        me = await self._me()
        who = me.username or "i/web"
        return PublishResult(
            posted_id=post_id,
            url=f"https://x.com/{who}/status/{post_id}",
            cost_usd=self.cost(text),
        )

    async def _me(self) -> Identity:
        try:
            me, failed = await self.client.identity()
        except httpx.HTTPError as exc:
            raise PublishError(f"x: cannot reach X ({type(exc).__name__})") from None
        if me is None:
            assert failed is not None
            raise self._failure(failed, checking=True)
        return me

    def _failure(self, response: httpx.Response, *, checking: bool = False) -> PublishError:
        """The PublishError for a failed call; ``checking``: a look-up, never permanent except
        for credentials (the reply may still need sending)."""
        status = response.status_code
        detail = problem(response)
        said = f": {detail}" if detail else ""
        lowered = detail.lower()
        if status == 401:
            return PublishError(
                f"x: X refused the keys in {self.config.secret_envs} (revoked, regenerated or "
                "mistyped): copy fresh ones from the app's Keys and tokens page",
                permanent=True,
            )
        doing = " while checking for an earlier reply" if checking else ""
        if status == 429:
            return PublishError(
                f"x: rate limited{doing} (HTTP 429)", retry_after=self.client.retry_after(response)
            )
        if checking:
            return PublishError(f"x: cannot check for an earlier reply (HTTP {status}{said})")
        if status >= 500:
            return PublishError(f"x: X server error (HTTP {status})")
        if status == 404 or "deleted" in lowered or "not visible" in lowered:
            return PublishError("x: the post was deleted or is no longer visible", permanent=True)
        if status == 402:
            return PublishError(
                "x: the X developer account is out of credits; add credits in the Developer "
                "Console, then retry the reply",
                permanent=True,
            )
        if status == 403 and "oauth1-permissions" in problem_type(response):
            return PublishError(
                "x: the app may only read: set its permissions to Read and write, then "
                f"regenerate the access token and secret ({self.config.access_token_env}, "
                f"{self.config.access_token_secret_env})",
                permanent=True,
            )
        if status == 403 and ("mentioned" in lowered or "engaged" in lowered):
            return PublishError(NOT_ANSWERABLE, permanent=True)
        if status == 403 and "duplicate" in lowered:
            return PublishError(
                "x: X refused the text as a duplicate of an earlier post; edit the reply and "
                "approve again",
                permanent=True,
            )
        return PublishError(f"x: X refused the reply (HTTP {status}{said})", permanent=True)


def _replies_to(post: Any, parent_id: str, not_before: datetime) -> bool:
    """Whether ``post`` (one of the brand's) replies to ``parent_id`` and is recent enough."""
    if not isinstance(post, dict) or not isinstance(post.get("id"), str):
        return False
    refs = post.get("referenced_tweets")
    replies = isinstance(refs, list) and any(
        isinstance(r, dict) and r.get("type") == "replied_to" and r.get("id") == parent_id
        for r in refs
    )
    try:
        created = datetime.fromisoformat(str(post.get("created_at")))
    except ValueError:
        return False
    return replies and created.tzinfo is not None and created >= not_before


def _data(response: httpx.Response) -> dict[str, Any]:
    data = json_object(response).get("data")
    return data if isinstance(data, dict) else {}
