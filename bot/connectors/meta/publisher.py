"""What the Facebook Page and Instagram publishers share: the comment length check, posting a
comment, Graph errors turned into PublishError, and the look-up of an earlier reply after a
crash (Graph has no idempotency key)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar, Generic

from bot.connectors.meta.graph import (
    GraphApiError,
    GraphClient,
    graph_id,
    parse_time,
    publish_error,
)
from bot.connectors.meta.source import ConfigT
from bot.domain.models import Mention, Reply
from bot.errors import PublishError


class MetaPublisher(Generic[ConfigT]):
    """The common part of the Facebook and Instagram publishers."""

    platform: ClassVar[str]
    reply_limit: ClassVar[int]
    """The longest comment the platform accepts, in characters."""
    comment_id_kind: ClassVar[str]
    """How error messages name the comment ids of this platform ("a Facebook comment id")."""

    def __init__(self, config: ConfigT, client: GraphClient, *, name: str | None = None) -> None:
        self.config = config
        self.client = client
        self.name = name or self.platform

    @property
    def reply_permission(self) -> str:
        """The permission posting a reply needs (named when Meta refuses it)."""
        raise NotImplementedError

    def check_length(self, reply: Reply) -> None:
        """Refuse, for good, a reply longer than the platform's comments allow."""
        limit = self.reply_limit
        if len(reply.text) > limit:
            raise PublishError(
                f"{self.platform}: the reply is {len(reply.text)} characters; comments allow "
                f"{limit}",
                permanent=True,
            )

    def target(self, mention: Mention) -> str:
        """The comment (or post) a reply goes under: a reply's top-level comment, else the
        mention itself."""
        try:
            return graph_id(mention.parent_ref or mention.external_id)
        except ValueError:
            raise PublishError(
                f"{self.platform}: {mention.external_id[:40]!r} is not {self.comment_id_kind}",
                permanent=True,
            ) from None

    async def post_comment(self, path: str, data: dict[str, str]) -> str:
        """``POST {path}`` with a form body; the new comment's id."""
        try:
            body = await self.client.post(path, data)
        except GraphApiError as exc:
            raise self.error(exc) from None
        posted = body.get("id")
        if not isinstance(posted, str) or not posted:
            raise PublishError(f"{self.platform}: Meta answered without a comment id")
        return posted

    def raise_if_unknown(self, exc: GraphApiError) -> None:
        """After a failed look-up for an earlier reply: a transient or rate-limit error leaves
        the outcome unknown, so it raises (the reply stays unsent and is asked about later);
        a gone or refused object returns (the next attempt fails with the reason)."""
        if exc.kind in ("transient", "rate"):
            raise self.error(exc) from None

    def error(self, exc: GraphApiError) -> PublishError:
        """The PublishError for a failed Graph call."""
        return publish_error(
            exc,
            self.platform,
            token_env=self.config.token_env,
            permission=self.reply_permission,
            usage=self.client.usage,
        )


def is_earlier_reply(
    item: dict[str, Any], reply: Reply, *, time_field: str, text_field: str
) -> bool:
    """Whether ``item`` has an id, ``reply``'s text (spaces folded) and was posted after the
    reply was approved (a minute's leeway for clocks)."""
    created = parse_time(item.get(time_field))
    return (
        created is not None
        and created >= reply.created_at - timedelta(minutes=1)
        and " ".join(str(item.get(text_field) or "").split()) == " ".join(reply.text.split())
        and isinstance(item.get("id"), str)
    )
