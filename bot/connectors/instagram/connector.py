"""Instagram connector (a professional account, Graph API): comments on the account's media and
@mentions as a source, replies as a publisher.

Polling reads the account's newest media (``GET /{ig-user-id}/media``, ``recent_posts`` of them)
and each one's comments (``GET /{ig-media-id}/comments`` with their ``replies``), keeping per
media the newest comment time read (cursor key ``media:<id>``). Meta does not document the
order of that edge, so up to ``max_pages`` pages are read and filtered by the watermark (only
the newest page on the source's very first poll). @mentions in other people's comments and
captions cannot be polled: they come by webhook (``mentions`` field) and are read with
``GET /{ig-user-id}?fields=mentioned_comment.comment_id(…){…}`` (or ``mentioned_media``);
``comments`` webhook events are read with ``GET /{ig-comment-id}``. The account's own comments
are skipped. ``base_url = "https://graph.instagram.com"`` selects the Instagram Login API
(permissions ``instagram_business_*``); the default host is Facebook Login's.

Ids: a comment on the account's media is its comment id (``parent_ref`` is its top-level
comment when it is a reply); a mention is ``mention:<media id>:<comment id>`` (or
``mention:<media id>`` for a caption). The publisher answers a comment with
``POST /{ig-comment-id}/replies`` (``message``) — only top-level comments take replies, so a
reply to a reply goes under its top-level comment — and a mention with
``POST /{ig-user-id}/mentions`` (``media_id``, ``comment_id``, ``message``). Graph has no
idempotency key: after a crash ``reconcile`` looks for the account's reply with the same text,
posted after approval, before sending again.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Literal

from pydantic import Field

from bot.connectors.base import Cursor, PublishResult
from bot.connectors.meta.graph import (
    GraphApiError,
    GraphClient,
    graph_id,
    http_url,
    page_of,
    parse_time,
    text_of,
)
from bot.connectors.meta.publisher import MetaPublisher, is_earlier_reply
from bot.connectors.meta.source import Add, MetaSource, MetaSourceConfig, forget_unwatched
from bot.connectors.meta.webhook import Change, MetaWebhookConfig
from bot.domain.models import Author, Mention, RawMention, Reply
from bot.errors import PublishError

log = logging.getLogger(__name__)

PLATFORM = "instagram"
REPLY_LIMIT = 2_200
"""The longest comment Instagram accepts, in characters."""
COMMENT_FIELDS = "id,text,timestamp,username,from,parent_id"
MEDIA_FIELDS = "id,caption,timestamp,permalink,username"
MENTION_PREFIX = "mention:"
_USERNAME = re.compile(r"^[A-Za-z0-9._]{1,30}$")


class InstagramWebhookConfig(MetaWebhookConfig):
    """Meta webhooks for Instagram (``comments`` and ``mentions`` fields)."""

    port: int = Field(default=8789, ge=0, le=65_535, description="0 picks a free port (tests)")
    path: str = Field(default="/meta/instagram", pattern=r"^/[A-Za-z0-9/_.-]*$")


class InstagramSourceConfig(MetaSourceConfig):
    """One Instagram professional account (``[[sources]]`` with ``type = "instagram"``)."""

    type: Literal["instagram"]
    ig_user_id: str = Field(pattern=r"^\d{1,30}$", description="the account's numeric id")
    token_env: str = Field(
        default="META_IG_ACCESS_TOKEN",
        min_length=1,
        description="environment variable holding the access token",
    )
    comments: bool = Field(default=True, description="poll comments on the newest media")
    webhook: InstagramWebhookConfig | None = Field(
        default=None, description="receive Meta webhooks (comments, mentions) on this endpoint"
    )

    @property
    def instagram_login(self) -> bool:
        """True for the Instagram Login API (graph.instagram.com)."""
        return "graph.instagram.com" in self.base_url

    def permission(self, kind: Literal["basic", "comments"]) -> str:
        """The permission a call needs, named as this login type names it."""
        if self.instagram_login:
            return f"instagram_business_{'basic' if kind == 'basic' else 'manage_comments'}"
        return "instagram_basic" if kind == "basic" else "instagram_manage_comments"


class InstagramSource(MetaSource[InstagramSourceConfig]):
    """Polls one account's media comments and drains its webhook (module docstring)."""

    platform = PLATFORM

    def __init__(
        self,
        config: InstagramSourceConfig,
        client: GraphClient,
        *,
        verify_token: str = "",
        app_secret: str = "",
    ) -> None:
        super().__init__(config, client, verify_token=verify_token, app_secret=app_secret)
        self._username: str | None = None

    # --- polling --------------------------------------------------------------------------

    async def poll(self, cursor: Cursor, new_cursor: Cursor, add: Add) -> None:
        """The comments (and their replies) on each of the newest media."""
        if not self.config.comments or self.graph.usage_high():
            return
        first = not any(key.startswith("media:") for key in cursor)
        pages = 1 if first else self.config.max_pages
        params = {"fields": MEDIA_FIELDS, "limit": str(self.config.recent_posts)}
        media_list, _ = await self.graph.page(
            f"/{self.config.ig_user_id}/media", params, self.config.permission("basic")
        )
        watched: dict[str, dict[str, Any]] = {}
        for media in media_list:
            try:
                watched[graph_id(media["id"])] = media
            except (KeyError, ValueError):
                log.warning("instagram source %r: skipped media without a usable id", self.name)
            owner = media.get("username")
            if self._username is None and isinstance(owner, str) and owner:
                self._username = owner
        forget_unwatched(new_cursor, "media:", watched)
        for media_id, media in watched.items():
            self.graph.remember_text(media_id, text_of(media.get("caption")) or None)
            if self.graph.usage_high():
                return
            comments = await self.graph.read_route(
                f"media:{media_id}",
                f"/{media_id}/comments",
                {
                    "fields": f"{COMMENT_FIELDS},replies{{{COMMENT_FIELDS}}}",
                    "limit": str(self.config.page_size),
                },
                cursor,
                new_cursor,
                pages=pages,
                permission=self.config.permission("comments"),
                time_field="timestamp",
                newest_first=False,
                gone_ok=True,
                expand=self._with_replies,
            )
            for comment in comments:
                add(await self._comment_mention(comment, media))

    def _with_replies(self, entry: dict[str, Any]) -> list[dict[str, Any]]:
        """A top-level comment and the replies nested in it (their parent is remembered for
        thread context)."""
        replies = entry.get("replies")
        nested = replies.get("data") if isinstance(replies, dict) else None
        if not isinstance(nested, list) or not isinstance(entry.get("id"), str):
            return [entry]
        self.graph.remember_text(entry["id"], text_of(entry.get("text")) or None)
        return [entry, *(r for r in nested if isinstance(r, dict))]

    # --- webhook events -------------------------------------------------------------------

    def accept(self, change: Change) -> str | None:
        """The key of a webhook change this account's source wants, else None: comments on
        its media and @mentions in comments or captions."""
        if change.object != "instagram" or change.entry_id != self.config.ig_user_id:
            return None
        value = change.value
        if change.field == "comments":
            return f"comment:{graph_id(value['id'])}"
        if change.field == "mentions":
            media_id = graph_id(value["media_id"])
            comment_id = value.get("comment_id")
            if comment_id is None:
                return f"{MENTION_PREFIX}{media_id}"
            return f"{MENTION_PREFIX}{media_id}:{graph_id(comment_id)}"
        return None

    async def resolve(self, change: Change) -> RawMention | None:
        """Read a pushed comment or mention through the API and normalise it."""
        value = change.value
        if change.field == "comments":
            fields = f"{COMMENT_FIELDS},media{{{MEDIA_FIELDS}}}"
            path = f"/{graph_id(value['id'])}"
            comment = await self.graph.lookup(path, fields, self.config.permission("comments"))
            if comment is None:
                return None
            media = comment.get("media")
            return await self._comment_mention(comment, media if isinstance(media, dict) else {})
        media_id = graph_id(value["media_id"])
        if value.get("comment_id") is None:
            spec = f"mentioned_media.media_id({media_id}){{{MEDIA_FIELDS}}}"
            found = await self._mentioned(spec, "mentioned_media")
            return None if found is None else self._caption_mention(found)
        comment_id = graph_id(value["comment_id"])
        wanted = f"id,text,timestamp,media{{{MEDIA_FIELDS}}}"
        spec = f"mentioned_comment.comment_id({comment_id}){{{wanted}}}"
        found = await self._mentioned(spec, "mentioned_comment")
        return None if found is None else self._comment_mention_elsewhere(found, media_id)

    async def _mentioned(self, spec: str, key: str) -> dict[str, Any] | None:
        body = await self.graph.lookup(
            f"/{self.config.ig_user_id}", spec, self.config.permission("comments")
        )
        found = body.get(key) if body else None
        return found if isinstance(found, dict) else None

    async def _own_username(self) -> str | None:
        """The account's username (to skip its own comments); asked once."""
        if self._username is None:
            body = await self.graph.lookup(
                f"/{self.config.ig_user_id}", "id,username", self.config.permission("basic")
            )
            name = body.get("username") if body else None
            self._username = name if isinstance(name, str) and name else None
        return self._username

    # --- normalisation --------------------------------------------------------------------

    async def _comment_mention(
        self, comment: dict[str, Any], media: dict[str, Any]
    ) -> RawMention | None:
        """A comment on the account's own media (a top-level comment or a reply)."""
        try:
            username = _username_of(comment)
            own = await self._own_username()
            if own and username.lower() == own.lower():
                return None
            parent = comment.get("parent_id")
            parent_ref = graph_id(parent) if parent is not None else None
            if parent_ref is not None:
                context = await self.graph.object_text(
                    parent_ref, "text", self.config.permission("comments")
                )
            else:
                context = text_of(media.get("caption")) or None
            return self._raw(
                comment,
                media,
                external_id=graph_id(comment["id"]),
                username=username,
                parent_ref=parent_ref,
                context=context,
            )
        except (KeyError, TypeError, ValueError) as exc:
            self.skipped(comment, exc)
            return None

    def _comment_mention_elsewhere(
        self, comment: dict[str, Any], media_id: str
    ) -> RawMention | None:
        """A comment on someone else's media that @mentions the account (its author is not
        given by Meta)."""
        try:
            media = comment.get("media")
            media = media if isinstance(media, dict) else {}
            comment_id = graph_id(comment["id"])
            return self._raw(
                comment,
                media,
                external_id=f"{MENTION_PREFIX}{media_id}:{comment_id}",
                username="",
                parent_ref=None,
                context=text_of(media.get("caption")) or None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            self.skipped(comment, exc)
            return None

    def _caption_mention(self, media: dict[str, Any]) -> RawMention | None:
        """A media caption by someone else that @mentions the account."""
        try:
            media_id = graph_id(media["id"])
            return self._raw(
                {**media, "text": media.get("caption")},
                media,
                external_id=f"{MENTION_PREFIX}{media_id}",
                username=_username_of(media),
                parent_ref=None,
                context=None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            self.skipped(media, exc)
            return None

    def _raw(
        self,
        item: dict[str, Any],
        media: dict[str, Any],
        *,
        external_id: str,
        username: str,
        parent_ref: str | None,
        context: str | None,
    ) -> RawMention | None:
        """``item`` (a comment, or a caption as ``text``) on ``media`` as a RawMention."""
        created = parse_time(item["timestamp"])
        if created is None:
            raise ValueError("timestamp")
        text = text_of(item.get("text"))
        if not text:
            log.debug("instagram source %r: %s has no text", self.name, external_id)
            return None
        profile = f"https://www.instagram.com/{username}/" if username else None
        return RawMention(
            source=self.name,
            platform=PLATFORM,
            external_id=external_id,
            url=http_url(media.get("permalink")),
            author=Author(handle=username, profile_url=profile),
            text=text,
            created_at=created,
            parent_ref=parent_ref,
            thread_context=context,
        )


class InstagramPublisher(MetaPublisher[InstagramSourceConfig]):
    """Posts approved replies as the account: under the comment, or to a mention."""

    platform = PLATFORM
    reply_limit = REPLY_LIMIT
    comment_id_kind = "an Instagram comment id"

    def __init__(
        self, config: InstagramSourceConfig, client: GraphClient, *, name: str = PLATFORM
    ) -> None:
        super().__init__(config, client, name=name)
        self._username: str | None = None

    @property
    def reply_permission(self) -> str:
        """The permission posting a reply needs, as this login type names it."""
        return self.config.permission("comments")

    async def publish(self, reply: Reply, mention: Mention) -> PublishResult:
        """``POST /{comment}/replies``, or ``POST /{ig-user-id}/mentions`` for a mention."""
        self.check_length(reply)
        media_id, comment_id = _mention_ids(mention)
        if media_id is not None:
            path = f"/{self.config.ig_user_id}/mentions"
            data = {"media_id": media_id, "message": reply.text}
            if comment_id is not None:
                data["comment_id"] = comment_id
        else:
            path, data = f"/{self.target(mention)}/replies", {"message": reply.text}
        posted = await self.post_comment(path, data)
        return PublishResult(posted_id=posted, url=mention.url)

    async def reconcile(self, reply: Reply, mention: Mention) -> PublishResult | None:
        """The account's reply with this text under the comment, posted after approval."""
        fields = "id,username,timestamp,text"
        media_id, comment_id = _mention_ids(mention)
        try:
            own = await self._own_username()
            if media_id is None:
                body = await self.client.get(f"/{self.target(mention)}/replies", {"fields": fields})
                replies, _ = page_of(body)
            elif comment_id is not None:
                spec = f"mentioned_comment.comment_id({comment_id}){{replies{{{fields}}}}}"
                replies = await self._nested(spec, "mentioned_comment", "replies")
            else:
                spec = f"mentioned_media.media_id({media_id}){{comments{{{fields}}}}}"
                replies = await self._nested(spec, "mentioned_media", "comments")
        except GraphApiError as exc:
            self.raise_if_unknown(exc)
            return None
        if own is None:
            return None
        return _find_own(replies, own, reply, mention)

    async def _nested(self, spec: str, node: str, edge: str) -> list[dict[str, Any]]:
        body = await self.client.get(f"/{self.config.ig_user_id}", {"fields": spec})
        found = body.get(node)
        listing = found.get(edge) if isinstance(found, dict) else None
        if not isinstance(listing, dict):
            return []
        items, _ = page_of(listing)
        return items

    async def _own_username(self) -> str | None:
        if self._username is None:
            body = await self.client.get(f"/{self.config.ig_user_id}", {"fields": "id,username"})
            name = body.get("username")
            self._username = name if isinstance(name, str) and name else None
        return self._username


def _find_own(
    replies: list[dict[str, Any]], own: str, reply: Reply, mention: Mention
) -> PublishResult | None:
    """The account's comment with the reply's text, posted after the reply was approved."""
    for item in replies:
        if str(item.get("username") or "").lower() == own.lower() and is_earlier_reply(
            item, reply, time_field="timestamp", text_field="text"
        ):
            return PublishResult(posted_id=item["id"], url=mention.url)
    return None


def _mention_ids(mention: Mention) -> tuple[str | None, str | None]:
    """(media id, comment id) of a mention elsewhere; (None, None) for a comment on our media."""
    if not mention.external_id.startswith(MENTION_PREFIX):
        return None, None
    media, _, comment = mention.external_id.removeprefix(MENTION_PREFIX).partition(":")
    try:
        return graph_id(media), graph_id(comment) if comment else None
    except ValueError:
        raise PublishError(
            f"instagram: {mention.external_id[:60]!r} is not an Instagram mention id",
            permanent=True,
        ) from None


def _username_of(item: dict[str, Any]) -> str:
    """The author's username (``username``, else ``from.username``), checked."""
    name = item.get("username")
    sender = item.get("from")
    if not name and isinstance(sender, dict):
        name = sender.get("username")
    if name is None or name == "":
        return ""
    if not isinstance(name, str) or not _USERNAME.match(name):
        raise ValueError("username")
    return name
