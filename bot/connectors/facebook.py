"""Facebook Page connector: comments on the Page's posts and Page mentions as a source, replies
as the Page as a publisher (Graph API, Page access token).

Polling reads the Page's newest posts (``GET /{page-id}/posts``, ``recent_posts`` of them) and,
for each, ``GET /{post-id}/comments?order=reverse_chronological&filter=stream`` (replies
included), paging with ``paging.cursors.after`` until it reaches the post's watermark (the
newest comment time read before, kept in the cursor as ``post:<id>``). Page mentions come from
``GET /{page-id}/tagged`` with their own watermark (``tagged``). The very first poll of the
source reads only the newest page of each route (the core's look-back rule does the rest); a
post that appears later is read in full, up to ``max_pages`` pages. The Page's own comments are
skipped. A poll stops early once Meta's usage headers reach ``usage_threshold``.

With ``[sources.webhook]`` set, Meta pushes ``feed`` (a comment was added) and ``mention``
events to a :class:`~bot.connectors.meta_webhook.MetaWebhook`; ``fetch`` reads each pushed
comment through the API (the same normalisation as polling, and a signed event still only
names an id) and polling becomes a fallback every ``webhook.poll_interval`` seconds.

A mention is a comment (its parent comment's text, else the post's, is the thread context) or a
post the Page was tagged in. The publisher answers with ``POST /{id}/comments`` (``message``)
under the comment, under its top-level comment when it is a reply (Facebook threads are two
levels deep), or under the tagged post. Graph has no idempotency key: after a crash,
``reconcile`` looks for the Page's own comment with the reply's text under that target, posted
after approval, before anything is sent again.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Literal

import httpx
from pydantic import Field

from bot.connectors.graph import (
    GraphApiError,
    GraphClient,
    Watermark,
    graph_id,
    http_url,
    page_of,
    parse_time,
    publish_error,
)
from bot.connectors.meta_source import Add, Gone, MetaSource, MetaSourceConfig
from bot.connectors.meta_webhook import Change, MetaWebhook
from bot.domain.limits import reply_limit
from bot.domain.models import Author, Mention, RawMention, Reply
from bot.errors import PublishError
from bot.pipeline.clean import clean_text
from bot.publishers.base import PublishResult
from bot.sources.base import Cursor

log = logging.getLogger(__name__)

PLATFORM = "facebook"
MAX_COMMENT_CHARS = reply_limit(PLATFORM)
READ_PERMISSION = "pages_read_engagement"
USER_PERMISSION = "pages_read_user_engagement"
REPLY_PERMISSION = "pages_manage_engagement"
COMMENT_FIELDS = "id,message,created_time,from,permalink_url,parent{id,message}"
POST_FIELDS = "id,message,created_time,from,permalink_url"


class FacebookSourceConfig(MetaSourceConfig):
    """One Facebook Page (``[[sources]]`` with ``type = "facebook"``)."""

    type: Literal["facebook"]
    page_id: str = Field(pattern=r"^\d{1,30}$", description="the Page's numeric id")
    token_env: str = Field(
        default="META_PAGE_ACCESS_TOKEN",
        min_length=1,
        description="environment variable holding the long-lived Page access token",
    )
    comments: bool = Field(default=True, description="poll comments on the Page's newest posts")
    mentions: bool = Field(default=True, description="poll posts the Page is tagged in")


class FacebookSource(MetaSource):
    """Polls one Page's comments and mentions, and drains its webhook (module docstring)."""

    platform = PLATFORM

    def __init__(
        self,
        config: FacebookSourceConfig,
        client: GraphClient,
        *,
        webhook: MetaWebhook | None = None,
    ) -> None:
        super().__init__(config, client, webhook=webhook)
        self.config = config

    @classmethod
    def create(
        cls,
        config: FacebookSourceConfig,
        token: str,
        *,
        verify_token: str = "",
        app_secret: str = "",
        http: httpx.AsyncClient | None = None,
    ) -> FacebookSource:
        """A source with its own client (and webhook endpoint, when configured)."""
        client = GraphClient(
            config.base_url, config.api_version, token, timeout=config.timeout, client=http
        )
        source = cls(config, client)
        source.attach_webhook(verify_token, app_secret)
        return source

    # --- polling --------------------------------------------------------------------------

    async def poll(self, cursor: Cursor, new_cursor: Cursor, add: Add) -> None:
        """Page mentions, then the comments on each watched post."""
        first = not any(key.startswith("post:") or key == "tagged" for key in cursor)
        pages = 1 if first else self.config.max_pages
        if self.config.mentions and not self.usage_high():
            posts, mark = await self.read_edge(
                f"/{self.config.page_id}/tagged",
                {"fields": POST_FIELDS, "limit": str(self.config.page_size)},
                mark=Watermark.parse(cursor.get("tagged")),
                pages=pages,
                permission=READ_PERMISSION,
                time_field="created_time",
                newest_first=True,
            )
            new_cursor["tagged"] = mark.dump()
            for post in posts:
                add(self._post_mention(post))
        if not self.config.comments or self.usage_high():
            return
        params = {"fields": POST_FIELDS, "limit": str(self.config.recent_posts)}
        posts, _ = await self.page(f"/{self.config.page_id}/posts", params, READ_PERMISSION)
        watched: dict[str, str | None] = {}
        for post in posts:
            try:
                watched[graph_id(post["id"])] = _text(post.get("message")) or None
            except (KeyError, ValueError):
                log.warning("facebook source %r: skipped a post without a usable id", self.name)
        for key in [k for k in new_cursor if k.startswith("post:")]:
            if key.removeprefix("post:") not in watched:
                del new_cursor[key]  # out of the watched window (webhooks still cover it)
        for post_id, post_text in watched.items():
            self.remember_text(post_id, post_text)
            if self.usage_high():
                return
            key = f"post:{post_id}"
            try:
                comments, mark = await self.read_edge(
                    f"/{post_id}/comments",
                    {
                        "order": "reverse_chronological",
                        "filter": "stream",
                        "fields": COMMENT_FIELDS,
                        "limit": str(self.config.page_size),
                    },
                    mark=Watermark.parse(cursor.get(key)),
                    pages=pages,
                    permission=USER_PERMISSION,
                    time_field="created_time",
                    newest_first=True,
                    gone_ok=True,
                )
            except Gone:
                new_cursor.pop(key, None)
                continue
            new_cursor[key] = mark.dump()
            for comment in comments:
                add(self._comment_mention(comment, post_text))

    # --- webhook events -------------------------------------------------------------------

    def accept(self, change: Change) -> str | None:
        """The key of a webhook change this Page's source wants, else None: added comments
        (``feed``, not the Page's own) and mentions of the Page in posts or comments."""
        if change.object != "page" or change.entry_id != self.config.page_id:
            return None
        value = change.value
        if change.field == "feed":
            if value.get("item") != "comment" or value.get("verb") != "add":
                return None  # edits, removals, reactions, posts
            sender = value.get("from")
            if isinstance(sender, dict) and str(sender.get("id")) == self.config.page_id:
                return None  # the Page's own comment (Parley's replies among them)
            return f"comment:{graph_id(value['comment_id'])}"
        if change.field == "mention" and value.get("verb") == "add":
            if value.get("item") == "comment":
                return f"comment:{graph_id(value['comment_id'])}"
            if value.get("item") == "post":
                return f"post:{graph_id(value['post_id'])}"
        return None

    async def resolve(self, change: Change) -> RawMention | None:
        """Read a pushed comment or post through the API and normalise it like polling."""
        value = change.value
        if change.field == "mention" and value.get("item") == "post":
            post = await self.lookup(f"/{graph_id(value['post_id'])}", POST_FIELDS, READ_PERMISSION)
            return None if post is None else self._post_mention(post)
        comment_id = graph_id(value["comment_id"])
        comment = await self.lookup(f"/{comment_id}", COMMENT_FIELDS, USER_PERMISSION)
        if comment is None:
            return None
        parent_post = value.get("post_id")
        post_text = await self._post_text(graph_id(parent_post)) if parent_post else None
        return self._comment_mention(comment, post_text)

    async def _post_text(self, post_id: str) -> str | None:
        """The post's text for thread context, cached; None when it cannot be read."""
        known, text = self.cached_text(post_id)
        if not known:
            post = await self.lookup(f"/{post_id}", "id,message", READ_PERMISSION)
            text = (_text(post.get("message")) or None) if post else None
            self.remember_text(post_id, text)
        return text

    # --- normalisation --------------------------------------------------------------------

    def _comment_mention(self, comment: dict[str, Any], post_text: str | None) -> RawMention | None:
        try:
            if self._own(comment):
                return None
            parent = comment.get("parent")
            parent_id = graph_id(parent["id"]) if isinstance(parent, dict) else None
            context = _text(parent.get("message")) if isinstance(parent, dict) else post_text
            return self._raw(comment, parent_ref=parent_id, context=context or None)
        except (KeyError, TypeError, ValueError) as exc:
            self.skipped(comment, exc)
            return None

    def _post_mention(self, post: dict[str, Any]) -> RawMention | None:
        try:
            return None if self._own(post) else self._raw(post, parent_ref=None, context=None)
        except (KeyError, TypeError, ValueError) as exc:
            self.skipped(post, exc)
            return None

    def _own(self, item: dict[str, Any]) -> bool:
        sender = item.get("from")
        return isinstance(sender, dict) and str(sender.get("id")) == self.config.page_id

    def _raw(
        self, item: dict[str, Any], *, parent_ref: str | None, context: str | None
    ) -> RawMention | None:
        item_id = graph_id(item["id"])
        created = parse_time(item["created_time"])
        if created is None:
            raise ValueError("created_time")
        text = _text(item.get("message"))
        if not text:
            log.debug("facebook source %r: %s has no text (sticker or photo)", self.name, item_id)
            return None
        sender = item.get("from")
        name = _text(sender.get("name"), limit=200) if isinstance(sender, dict) else ""
        return RawMention(
            source=self.name,
            platform=PLATFORM,
            external_id=item_id,
            url=http_url(item.get("permalink_url")),
            author=Author(handle=name, display_name=name or None),
            text=text,
            created_at=created,
            parent_ref=parent_ref,
            thread_context=context,
        )


class FacebookPublisher:
    """Posts approved replies as the Page, under the comment (or post) they answer."""

    def __init__(
        self, config: FacebookSourceConfig, client: GraphClient, *, name: str = PLATFORM
    ) -> None:
        self.config = config
        self.client = client
        self._name = name

    @property
    def name(self) -> str:
        """The publisher's registry name."""
        return self._name

    async def publish(self, reply: Reply, mention: Mention) -> PublishResult:
        """``POST /{target}/comments`` with the reply's text; the Page token makes the Page
        its author."""
        target = _target(mention)
        if len(reply.text) > MAX_COMMENT_CHARS:
            raise PublishError(
                f"facebook: the reply is {len(reply.text)} characters; comments allow "
                f"{MAX_COMMENT_CHARS}",
                permanent=True,
            )
        try:
            body = await self.client.post(f"/{target}/comments", {"message": reply.text})
        except GraphApiError as exc:
            raise self._error(exc) from None
        posted = body.get("id")
        if not isinstance(posted, str) or not posted:
            raise PublishError("facebook: Meta answered without a comment id")
        return PublishResult(posted_id=posted, url=await self._permalink(posted, mention))

    async def reconcile(self, reply: Reply, mention: Mention) -> PublishResult | None:
        """The Page's comment with this reply's text under the target, posted after approval."""
        target = _target(mention)
        params = {
            "order": "reverse_chronological",
            "fields": "id,message,created_time,from,permalink_url",
            "limit": "100",
        }
        try:
            body = await self.client.get(f"/{target}/comments", params)
            comments, _ = page_of(body)
        except GraphApiError as exc:
            if exc.kind in ("transient", "rate"):
                raise self._error(exc) from None  # unknown: stay unsent, ask again later
            return None  # gone or refused: the next attempt fails with the reason
        not_before = reply.created_at - timedelta(minutes=1)
        wanted = " ".join(reply.text.split())
        for comment in comments:
            sender = comment.get("from")
            created = parse_time(comment.get("created_time"))
            if (
                isinstance(sender, dict)
                and str(sender.get("id")) == self.config.page_id
                and created is not None
                and created >= not_before
                and " ".join(str(comment.get("message") or "").split()) == wanted
                and isinstance(comment.get("id"), str)
            ):
                url = http_url(comment.get("permalink_url")) or mention.url
                return PublishResult(posted_id=comment["id"], url=url)
        return None

    async def _permalink(self, comment_id: str, mention: Mention) -> str | None:
        """The new comment's link (best effort: the mention's link if Meta does not say)."""
        try:
            body = await self.client.get(f"/{graph_id(comment_id)}", {"fields": "permalink_url"})
        except (GraphApiError, ValueError):
            return mention.url
        return http_url(body.get("permalink_url")) or mention.url

    def _error(self, exc: GraphApiError) -> PublishError:
        return publish_error(
            exc,
            PLATFORM,
            token_env=self.config.token_env,
            permission=REPLY_PERMISSION,
            usage=self.client.usage,
        )


def _target(mention: Mention) -> str:
    """Where the reply goes: the top-level comment of a reply, else the comment or post."""
    try:
        return graph_id(mention.parent_ref or mention.external_id)
    except ValueError:
        raise PublishError(
            f"facebook: {mention.external_id[:40]!r} is not a Facebook comment id", permanent=True
        ) from None


def _text(value: Any, *, limit: int | None = None) -> str:
    if not isinstance(value, str):
        return ""
    return clean_text(value) if limit is None else clean_text(value, limit=limit)
