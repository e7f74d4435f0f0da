"""Review decisions, written once for every frontend: draft, select, edit, approve, reject,
ignore, retry, confirm. Each re-checks permission and state; each is audited by the store."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from bot.config import ParleyConfig
from bot.domain.limits import DEFAULT_REPLY_LIMIT, reply_length, reply_limit
from bot.domain.models import Actor, Draft, Mention, Reply
from bot.domain.states import MentionState, ReplyState
from bot.drafting.base import Drafter
from bot.errors import InvalidTransition, NotFound, PermissionDenied, UserFacingError
from bot.events import EventBus, MentionChanged
from bot.llm.guards import DraftGuard
from bot.presentation import Decision
from bot.publishers.registry import Publishers
from bot.services.permissions import ApproverPolicy
from bot.storage.repo import Store

log = logging.getLogger(__name__)

_DRAFTABLE = (MentionState.NEW, MentionState.BACKLOG, MentionState.ALERTED, MentionState.DRAFTED)
_CLOSABLE = _DRAFTABLE


class ReviewService:
    """What a community manager can do to a mention, whatever chat they use."""

    def __init__(
        self,
        store: Store,
        config: ParleyConfig,
        drafter: Drafter,
        policy: ApproverPolicy,
        publishers: Publishers,
        bus: EventBus,
        *,
        variants: int = 3,
        default_limit: int = DEFAULT_REPLY_LIMIT,
    ) -> None:
        self.store = store
        self.config = config
        self.drafter = drafter
        self.policy = policy
        self.publishers = publishers
        self.bus = bus
        self.variants = variants
        self.default_limit = default_limit
        self.guard = DraftGuard(default_limit=default_limit)
        """Checks every draft before it is offered (build_core gives it the prompt files)."""
        self.on_queued: Callable[[], None] = lambda: None
        """Called after a reply is queued; the outbox sets it to wake its worker."""

    def _require_approver(self, actor: Actor, action: str) -> None:
        if not self.policy.is_approver(actor):
            raise PermissionDenied(f"only approvers can {action}; ask a team lead to add you")

    async def _changed(self, mention_id: int, actor: Actor, action: str) -> Mention:
        mention = await self.store.get_mention(mention_id)
        drafts = await self.store.current_drafts(mention_id)
        reply = await self.store.reply_for_mention(mention_id)
        self.bus.publish(MentionChanged(mention, drafts, reply, actor, action))
        return mention

    async def draft(
        self, mention_id: int, actor: Actor, *, instruction: str | None = None, notify: bool = True
    ) -> list[Draft]:
        """Write (or rewrite) reply variants for a mention."""
        mention = await self.store.get_mention(mention_id)
        if mention.state not in _DRAFTABLE:
            raise InvalidTransition(
                f"mention #{mention_id} is {mention.state}; it cannot be drafted"
            )
        brand = self.config.brand(mention.brand)
        if brand is None:
            raise UserFacingError(
                f"brand {mention.brand!r} of mention #{mention_id} is no longer in parley.toml"
            )
        texts = await self.drafter.draft(
            mention, brand, variants=self.variants, instruction=instruction
        )
        checked = [(t, self.guard.check(t.text, mention, brand)) for t in texts]
        fitting = [(t, c.text, c.flags) for t, c in checked if c.text is not None]
        if not fitting:
            reasons = sorted({p for _, c in checked for p in c.problems}) or ["no text"]
            raise UserFacingError(
                f"no draft passed the checks ({'; '.join(reasons)}); try again or edit"
            )
        drafts = await self.store.save_drafts(
            mention_id,
            [
                (text, t.origin or self.drafter.name, t.model, t.prompt_hash, t.tokens)
                for t, text, _ in fitting
            ],
            actor,
            "redraft" if instruction else "draft",
            flags=[flags for _, _, flags in fitting],
        )
        if notify:
            await self._changed(mention_id, actor, "draft")
        return drafts

    async def decision(self, mention: Mention, reply: Reply | None) -> Decision | None:
        """The decision an alert shows: the approval, or the rejection/ignore from the audit
        log (None while undecided)."""
        if reply is not None:
            return Decision("approved", reply.approved_by, reply.created_at)
        if mention.state in (MentionState.REJECTED, MentionState.IGNORED):
            trail = await self.store.audit_trail("mention", mention.id)
            entry = next((e for e in reversed(trail) if e.to_state == mention.state.value), None)
            if entry is not None:
                return Decision(mention.state.value, entry.actor, entry.at, entry.detail)
        return None

    async def select(self, mention_id: int, variant: int, actor: Actor) -> Draft:
        """Choose which draft variant approval will post."""
        self._require_approver(actor, "choose a variant")
        mention = await self.store.get_mention(mention_id)
        if mention.state is not MentionState.DRAFTED:
            raise InvalidTransition(f"mention #{mention_id} is {mention.state}; nothing to choose")
        draft = await self.store.select_draft(mention_id, variant, actor)
        await self._changed(mention_id, actor, "select")
        return draft

    async def edit(self, mention_id: int, text: str, actor: Actor) -> Draft:
        """Replace the reply text with the CM's own; it becomes the selected draft."""
        self._require_approver(actor, "edit replies")
        text = text.strip()
        if not text:
            raise UserFacingError("the new text is empty; type the reply after the id")
        mention = await self.store.get_mention(mention_id)
        limit = reply_limit(mention.platform, self.default_limit, handle=mention.author.handle)
        length = reply_length(text, mention.platform)
        if length > limit:
            raise UserFacingError(
                f"that reply is {length} characters; {mention.platform} allows {limit}. "
                "Shorten it and try again"
            )
        if mention.state is MentionState.APPROVED:
            reply = await self.store.reply_for_mention(mention_id)
            if reply is None or reply.state is not ReplyState.DEAD:
                raise InvalidTransition(
                    f"mention #{mention_id} is approved and its reply is on its way; "
                    "it can no longer be edited"
                )
        elif mention.state not in _DRAFTABLE:
            raise InvalidTransition(
                f"mention #{mention_id} is {mention.state}; it cannot be edited"
            )
        drafts = await self.store.save_drafts(
            mention_id, [(text, f"edit:{actor.label}", None, None, None)], actor, "edit"
        )
        await self._changed(mention_id, actor, "edit")
        return drafts[0]

    async def approve(self, mention_id: int, actor: Actor, *, variant: int | None = None) -> Reply:
        """Queue the selected draft (or ``variant``) for posting. Twice is refused, not doubled."""
        self._require_approver(actor, "approve replies")
        mention = await self.store.get_mention(mention_id)
        if mention.state is not MentionState.DRAFTED:
            hint = " (draft it first)" if mention.state in _DRAFTABLE else ""
            raise InvalidTransition(f"mention #{mention_id} is {mention.state}{hint}")
        if variant is not None:
            await self.store.select_draft(mention_id, variant, actor)
        draft = await self.store.selected_draft(mention_id)
        if draft is None:
            raise NotFound(f"mention #{mention_id} has no draft to approve")
        if mention.intent == "crisis_legal" and not draft.origin.startswith("edit:"):
            raise UserFacingError(
                f"mention #{mention_id} is marked crisis/legal: a person must write or edit the "
                f"reply before it is approved (edit {mention_id} <text>, then approve)"
            )
        publisher = self.publishers.name_for(
            mention.platform, mention.source, answerable=mention.answerable
        )
        key = f"parley-{mention_id}-{uuid.uuid4().hex[:16]}"
        reply = await self.store.approve(mention_id, draft.text, publisher, key, actor)
        self.on_queued()
        await self._changed(mention_id, actor, "approve")
        return reply

    async def reject(self, mention_id: int, actor: Actor, reason: str | None = None) -> Mention:
        """Decide not to answer (the draft was wrong or the mention needs no reply)."""
        return await self._close(mention_id, actor, MentionState.REJECTED, "reject", reason)

    async def ignore(self, mention_id: int, actor: Actor, reason: str | None = None) -> Mention:
        """Dismiss a mention as noise."""
        return await self._close(mention_id, actor, MentionState.IGNORED, "ignore", reason)

    async def _close(
        self, mention_id: int, actor: Actor, target: MentionState, action: str, reason: str | None
    ) -> Mention:
        self._require_approver(actor, f"{action} mentions")
        await self.store.transition_mention(
            mention_id, target, actor, action, expect=_CLOSABLE, detail=reason or None
        )
        return await self._changed(mention_id, actor, action)

    async def retry(self, mention_id: int, actor: Actor) -> Reply:
        """Send a dead reply again (after the cause was fixed)."""
        self._require_approver(actor, "retry replies")
        reply = await self.store.reply_for_mention(mention_id)
        if reply is None:
            raise NotFound(f"mention #{mention_id} has no reply to retry")
        reply = await self.store.transition_reply(
            reply.id, ReplyState.QUEUED, actor, "retry", expect=[ReplyState.DEAD]
        )
        self.on_queued()
        await self._changed(mention_id, actor, "retry")
        return reply

    async def confirm_posted(self, mention_id: int, actor: Actor, url: str | None = None) -> Reply:
        """A CM posted a manual reply by hand and confirms it."""
        self._require_approver(actor, "confirm replies")
        reply = await self.store.reply_for_mention(mention_id)
        if reply is None:
            raise NotFound(f"mention #{mention_id} has no reply waiting")
        reply = await self.store.transition_reply(
            reply.id,
            ReplyState.SENT,
            actor,
            "confirm",
            expect=[ReplyState.AWAITING_MANUAL],
            posted_url=url,
            mention_target=MentionState.POSTED,
        )
        await self._changed(mention_id, actor, "confirm")
        return reply
