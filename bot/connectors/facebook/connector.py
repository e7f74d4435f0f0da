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
events to a :class:`~bot.connectors.meta.webhook.MetaWebhook`; ``fetch`` reads each pushed
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
from typing import Any, Literal

from pydantic import Field

from bot.connectors.base import Cursor, PublishResult
from bot.connectors.meta.graph import (
    GraphApiError,
    graph_id,
    http_url,
    page_of,
    parse_time,
    text_of,
)
from bot.connectors.meta.publisher import MetaPublisher, is_earlier_reply
from bot.connectors.meta.source import Add, MetaSource, MetaSourceConfig, forget_unwatched
from bot.connectors.meta.webhook import Change
from bot.domain.models import Author, Mention, RawMention, Reply

log = logging.getLogger(__name__)

PLATFORM = "facebook"
REPLY_LIMIT = 8_000
"""The longest comment a Page may post, in characters."""
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


class FacebookSource(MetaSource[FacebookSourceConfig]):
    """Polls one Page's comments and mentions, and drains its webhook (module docstring)."""

    platform = PLATFORM

    # --- polling --------------------------------------------------------------------------

    async def poll(self, cursor: Cursor, new_cursor: Cursor, add: Add) -> None:
        """Page mentions, then the comments on each watched post."""
        first = not any(key.startswith("post:") or key == "tagged" for key in cursor)
        pages = 1 if first else self.config.max_pages
        if self.config.mentions and not self.graph.usage_high():
            posts = await self.graph.read_route(
                "tagged",
                f"/{self.config.page_id}/tagged",
                {"fields": POST_FIELDS, "limit": str(self.config.page_size)},
                cursor,
                new_cursor,
                pages=pages,
                permission=READ_PERMISSION,
                time_field="created_time",
                newest_first=True,
            )
            for post in posts:
                add(self._post_mention(post))
        if not self.config.comments or self.graph.usage_high():
            return
        params = {"fields": POST_FIELDS, "limit": str(self.config.recent_posts)}
        posts, _ = await self.graph.page(f"/{self.config.page_id}/posts", params, READ_PERMISSION)
        watched: dict[str, str | None] = {}
        for post in posts:
            try:
                watched[graph_id(post["id"])] = text_of(post.get("message")) or None
            except (KeyError, ValueError):
                log.warning("facebook source %r: skipped a post without a usable id", self.name)
        forget_unwatched(new_cursor, "post:", watched)
        for post_id, post_text in watched.items():
            self.graph.remember_text(post_id, post_text)
            if self.graph.usage_high():
                return
            comments = await self.graph.read_route(
                f"post:{post_id}",
                f"/{post_id}/comments",
                {
                    "order": "reverse_chronological",
                    "filter": "stream",
                    "fields": COMMENT_FIELDS,
                    "limit": str(self.config.page_size),
                },
                cursor,
                new_cursor,
                pages=pages,
                permission=USER_PERMISSION,
                time_field="created_time",
                newest_first=True,
                gone_ok=True,
            )
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
            if _from_page(value, self.config.page_id):
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
            post = await self.graph.lookup(
                f"/{graph_id(value['post_id'])}", POST_FIELDS, READ_PERMISSION
            )
            return None if post is None else self._post_mention(post)
        comment_id = graph_id(value["comment_id"])
        comment = await self.graph.lookup(f"/{comment_id}", COMMENT_FIELDS, USER_PERMISSION)
        if comment is None:
            return None
        parent_post = value.get("post_id")
        post_text = (
            await self.graph.object_text(graph_id(parent_post), "message", READ_PERMISSION)
            if parent_post
            else None
        )
        return self._comment_mention(comment, post_text)

    # --- normalisation --------------------------------------------------------------------

    def _comment_mention(self, comment: dict[str, Any], post_text: str | None) -> RawMention | None:
        try:
            if _from_page(comment, self.config.page_id):
                return None
            parent = comment.get("parent")
            parent_id = graph_id(parent["id"]) if isinstance(parent, dict) else None
            context = text_of(parent.get("message")) if isinstance(parent, dict) else post_text
            return self._raw(comment, parent_ref=parent_id, context=context or None)
        except (KeyError, TypeError, ValueError) as exc:
            self.skipped(comment, exc)
            return None

    def _post_mention(self, post: dict[str, Any]) -> RawMention | None:
        try:
            if _from_page(post, self.config.page_id):
                return None
            return self._raw(post, parent_ref=None, context=None)
        except (KeyError, TypeError, ValueError) as exc:
            self.skipped(post, exc)
            return None

    def _raw(
        self, item: dict[str, Any], *, parent_ref: str | None, context: str | None
    ) -> RawMention | None:
        item_id = graph_id(item["id"])
        created = parse_time(item["created_time"])
        if created is None:
            raise ValueError("created_time")
        text = text_of(item.get("message"))
        if not text:
            log.debug("facebook source %r: %s has no text (sticker or photo)", self.name, item_id)
            return None
        sender = item.get("from")
        name = text_of(sender.get("name"), limit=200) if isinstance(sender, dict) else ""
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


class FacebookPublisher(MetaPublisher[FacebookSourceConfig]):
    """Posts approved replies as the Page, under the comment (or post) they answer."""

    platform = PLATFORM
    reply_limit = REPLY_LIMIT
    comment_id_kind = "a Facebook comment id"

    @property
    def reply_permission(self) -> str:
        """The permission posting a reply needs."""
        return REPLY_PERMISSION

    async def publish(self, reply: Reply, mention: Mention) -> PublishResult:
        """``POST /{target}/comments`` with the reply's text; the Page token makes the Page
        its author."""
        target = self.target(mention)
        self.check_length(reply)
        posted = await self.post_comment(f"/{target}/comments", {"message": reply.text})
        return PublishResult(posted_id=posted, url=await self._permalink(posted, mention))

    async def reconcile(self, reply: Reply, mention: Mention) -> PublishResult | None:
        """The Page's comment with this reply's text under the target, posted after approval."""
        target = self.target(mention)
        params = {
            "order": "reverse_chronological",
            "fields": "id,message,created_time,from,permalink_url",
            "limit": "100",
        }
        try:
            body = await self.client.get(f"/{target}/comments", params)
            comments, _ = page_of(body)
        except GraphApiError as exc:
            self.raise_if_unknown(exc)
            return None
        for comment in comments:
            if _from_page(comment, self.config.page_id) and is_earlier_reply(
                comment, reply, time_field="created_time", text_field="message"
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


def _from_page(item: dict[str, Any], page_id: str) -> bool:
    """Whether the Page itself wrote ``item`` (its ``from`` is the Page)."""
    sender = item.get("from")
    return isinstance(sender, dict) and str(sender.get("id")) == page_id
