"""Review decisions, written once for every frontend: draft, select, edit, approve, reject,
ignore, retry, confirm. Each re-checks permission and state; each is audited by the store.

A CM's own text goes through the same guards as a draft (bot/drafting/guards.py). When they find
something (a link outside ``allowed_links``, a phone number, a promo code…), :meth:`edit`
audits the text as held (``edit_held``) and raises :class:`NeedsConfirmation` with the reasons;
the CM then confirms a second time ("post anyway": :meth:`confirm_edit`, or :meth:`edit` with
``confirm=True``), which saves the text flagged with those reasons and audits
``post_anyway``. Approval re-runs the guards and refuses a text with a finding nobody
confirmed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from bot.changes import Changes
from bot.config import BrandConfig, ParleyConfig
from bot.connectors.catalog import reply_length, reply_limit
from bot.connectors.registry import Publishers
from bot.domain.limits import DEFAULT_REPLY_LIMIT
from bot.domain.models import Actor, Draft, Mention, Reply
from bot.domain.states import MentionState, ReplyState
from bot.drafting.base import Drafter
from bot.drafting.guards import DraftGuard
from bot.drafting.textscan import clean
from bot.errors import InvalidTransition, NotFound, PermissionDenied, UserFacingError
from bot.presentation import Decision
from bot.services.permissions import ApproverPolicy
from bot.storage.store import Store

log = logging.getLogger(__name__)

_DRAFTABLE = (MentionState.NEW, MentionState.BACKLOG, MentionState.ALERTED, MentionState.DRAFTED)
_CLOSABLE = _DRAFTABLE
HELD_EDIT = "edit_held"
"""Audit action of a CM's text the guards held back (its text is the entry's after_text)."""
POSTED_ANYWAY = "post_anyway"
"""Audit action of a held text the CM confirmed; the detail lists the reasons."""


class NeedsConfirmation(UserFacingError):
    """A CM's own reply has findings: it is held until they confirm it ("post anyway")."""

    def __init__(self, mention_id: int, reasons: tuple[str, ...]) -> None:
        self.mention_id = mention_id
        self.reasons = reasons
        super().__init__(
            f"your reply to #{mention_id} {'; '.join(reasons)}. "
            "Check it, then confirm to post it anyway, or send a corrected text"
        )


class DraftsRefused(UserFacingError):
    """Every draft written for a mention was refused by the guards (``reasons`` says why)."""

    def __init__(self, mention_id: int, reasons: tuple[str, ...]) -> None:
        self.mention_id = mention_id
        self.reasons = reasons
        super().__init__(f"no draft passed the checks ({'; '.join(reasons)}); try again or edit")


class ReviewService:
    """What a community manager can do to a mention, whatever chat they use."""

    def __init__(
        self,
        store: Store,
        config: ParleyConfig,
        drafter: Drafter,
        policy: ApproverPolicy,
        publishers: Publishers,
        changes: Changes,
        *,
        variants: int = 3,
        default_limit: int = DEFAULT_REPLY_LIMIT,
        guard: DraftGuard | None = None,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.config = config
        self.drafter = drafter
        self.policy = policy
        self.publishers = publishers
        self.changes = changes
        self.variants = variants
        self.default_limit = default_limit
        self.guard = guard or DraftGuard(default_limit=default_limit)
        """Checks every draft before it is offered (build_core gives it the prompt files)."""
        self.on_queued = on_queued
        """Called after a reply is queued (build_core passes the outbox's ``wake``)."""

    async def require_approver(self, actor: Actor, mention_id: int, action: str) -> None:
        """A global approver, or an approver of this mention's brand (parley.toml)."""
        if self.policy.is_approver(actor):
            return
        if self.policy.approved_brands(actor):
            mention = await self.store.mentions.get(mention_id)
            if self.policy.is_approver(actor, mention.brand):
                return
        raise PermissionDenied(f"only approvers can {action}; ask a team lead to add you")

    async def draft(
        self,
        mention_id: int,
        actor: Actor,
        *,
        instruction: str | None = None,
        notify: bool = True,
        owed_only: bool = False,
    ) -> list[Draft]:
        """Write (or rewrite) reply variants for a mention. With ``owed_only`` (automatic
        drafts) they are saved only if the mention still owes a draft, else [] is returned."""
        mention = await self.check_draftable(mention_id)
        brand = self._brand(mention)
        texts = await self.drafter.draft(
            mention, brand, variants=self.variants, instruction=instruction
        )
        checked = [(t, self.guard.check(t.text, mention, brand)) for t in texts]
        fitting = [(t, c.text, c.flags) for t, c in checked if c.text is not None]
        if not fitting:
            reasons = sorted({p for _, c in checked for p in c.problems}) or ["no text"]
            raise DraftsRefused(mention_id, tuple(reasons))
        drafts = await self.store.drafts.save(
            mention_id,
            [
                (text, t.origin or self.drafter.name, t.model, t.prompt_hash, t.tokens)
                for t, text, _ in fitting
            ],
            actor,
            "redraft" if instruction else "draft",
            flags=[flags for _, _, flags in fitting],
            owed_only=owed_only,
        )
        if notify:
            await self.changes.publish(mention_id, actor, "draft")
        return drafts

    async def check_draftable(self, mention_id: int) -> Mention:
        """The mention, if drafts may be written for it (InvalidTransition otherwise)."""
        mention = await self.store.mentions.get(mention_id)
        if mention.state not in _DRAFTABLE:
            raise InvalidTransition(
                f"mention #{mention_id} is {mention.state}; it cannot be drafted"
            )
        return mention

    async def decision(self, mention: Mention, reply: Reply | None) -> Decision | None:
        """The decision an alert shows: the approval, or the rejection/ignore from the audit
        log (None while undecided)."""
        if reply is not None:
            return Decision("approved", reply.approved_by, reply.created_at)
        if mention.state in (MentionState.REJECTED, MentionState.IGNORED):
            trail = await self.store.audit.trail("mention", mention.id)
            entry = next((e for e in reversed(trail) if e.to_state == mention.state.value), None)
            if entry is not None:
                return Decision(mention.state.value, entry.actor, entry.at, entry.detail)
        return None

    async def select(self, mention_id: int, variant: int, actor: Actor) -> Draft:
        """Choose which draft variant approval will post."""
        await self.require_approver(actor, mention_id, "choose a variant")
        mention = await self.store.mentions.get(mention_id)
        if mention.state is not MentionState.DRAFTED:
            raise InvalidTransition(f"mention #{mention_id} is {mention.state}; nothing to choose")
        draft = await self.store.drafts.select(mention_id, variant, actor)
        await self.changes.publish(mention_id, actor, "select")
        return draft

    def _brand(self, mention: Mention) -> BrandConfig:
        brand = self.config.brand(mention.brand)
        if brand is None:
            raise UserFacingError(
                f"brand {mention.brand!r} of mention #{mention.id} is no longer in parley.toml"
            )
        return brand

    async def edit(
        self, mention_id: int, text: str, actor: Actor, *, confirm: bool = False
    ) -> Draft:
        """Replace the reply text with the CM's own (invisible characters removed); it becomes
        the selected draft. A text the guards find something in raises
        :class:`NeedsConfirmation` and is held, unless ``confirm`` ("post anyway"): then it is
        saved flagged with the reasons and the audit records it."""
        await self.require_approver(actor, mention_id, "edit replies")
        text = clean(text).strip()
        if not text:
            raise UserFacingError("the new text is empty; type the reply after the id")
        mention = await self.store.mentions.get(mention_id)
        await self._check_editable(mention, text)
        reasons = self.guard.findings(text, mention, self._brand(mention))
        if reasons and not confirm:
            await self.store.audit.note(
                actor, "mention", mention_id, HELD_EDIT, "; ".join(reasons), after_text=text
            )
            raise NeedsConfirmation(mention_id, reasons)
        drafts = await self.store.drafts.save(
            mention_id,
            [(text, f"edit:{actor.label}", None, None, None)],
            actor,
            "edit",
            flags=[reasons],
        )
        if reasons:
            await self.store.audit.note(
                actor, "mention", mention_id, POSTED_ANYWAY, "; ".join(reasons)
            )
        await self.changes.publish(mention_id, actor, "edit")
        return drafts[0]

    async def _check_editable(self, mention: Mention, text: str) -> None:
        limit = reply_limit(mention.platform, self.default_limit, handle=mention.author.handle)
        length = reply_length(text, mention.platform)
        if length > limit:
            raise UserFacingError(
                f"that reply is {length} characters; {mention.platform} allows {limit}. "
                "Shorten it and try again"
            )
        if mention.state is MentionState.APPROVED:
            reply = await self.store.replies.for_mention(mention.id)
            if reply is None or reply.state is not ReplyState.DEAD:
                raise InvalidTransition(
                    f"mention #{mention.id} is approved and its reply is on its way; "
                    "it can no longer be edited"
                )
        elif mention.state not in _DRAFTABLE:
            raise InvalidTransition(
                f"mention #{mention.id} is {mention.state}; it cannot be edited"
            )

    async def confirm_edit(self, mention_id: int, actor: Actor) -> Draft:
        """ "Post anyway": save the text ``actor`` last had held for this mention, flagged and
        audited. Refused when nothing is held, or when the mention changed since."""
        await self.require_approver(actor, mention_id, "confirm an edit")
        trail = await self.store.audit.trail("mention", mention_id)
        mine = [i for i, e in enumerate(trail) if e.action == HELD_EDIT and e.actor == actor.label]
        if not mine or trail[mine[-1]].after_text is None:
            raise NotFound(f"you have no held reply for #{mention_id}; send your text again")
        if any(e.action != HELD_EDIT for e in trail[mine[-1] + 1 :]):
            raise InvalidTransition(
                f"mention #{mention_id} changed after your edit; send your text again"
            )
        return await self.edit(mention_id, trail[mine[-1]].after_text or "", actor, confirm=True)

    async def approve(self, mention_id: int, actor: Actor, *, variant: int | None = None) -> Reply:
        """Queue the selected draft (or ``variant``) for posting. Twice is refused, not doubled."""
        await self.require_approver(actor, mention_id, "approve replies")
        mention = await self.store.mentions.get(mention_id)
        if mention.state is not MentionState.DRAFTED:
            hint = " (draft it first)" if mention.state in _DRAFTABLE else ""
            raise InvalidTransition(f"mention #{mention_id} is {mention.state}{hint}")
        if variant is not None:
            await self.store.drafts.select(mention_id, variant, actor)
        draft = await self.store.drafts.selected(mention_id)
        if draft is None:
            raise NotFound(f"mention #{mention_id} has no draft to approve")
        unconfirmed = [
            reason
            for reason in self.guard.findings(draft.text, mention, self._brand(mention))
            if reason not in draft.flags
        ]
        if unconfirmed:
            raise UserFacingError(
                f"the reply to #{mention_id} {'; '.join(unconfirmed)}; edit or redraft it first"
            )
        if mention.intent == "crisis_legal" and not draft.origin.startswith("edit:"):
            raise UserFacingError(
                f"mention #{mention_id} is marked crisis/legal: a person must write or edit the "
                f"reply before it is approved (edit {mention_id} <text>, then approve)"
            )
        publisher = self.publishers.name_for(
            mention.platform, mention.source, answerable=mention.answerable
        )
        key = f"parley-{mention_id}-{uuid.uuid4().hex[:16]}"
        reply = await self.store.replies.approve(mention_id, draft.text, publisher, key, actor)
        self.on_queued()
        await self.changes.publish(mention_id, actor, "approve")
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
        await self.require_approver(actor, mention_id, f"{action} mentions")
        await self.store.mentions.transition(
            mention_id, target, actor, action, expect=_CLOSABLE, detail=reason or None
        )
        return await self.changes.publish(mention_id, actor, action)

    async def retry(self, mention_id: int, actor: Actor) -> Reply:
        """Send a dead reply again (after the cause was fixed)."""
        await self.require_approver(actor, mention_id, "retry replies")
        reply = await self.store.replies.for_mention(mention_id)
        if reply is None:
            raise NotFound(f"mention #{mention_id} has no reply to retry")
        reply = await self.store.replies.transition(
            reply.id, ReplyState.QUEUED, actor, "retry", expect=[ReplyState.DEAD]
        )
        self.on_queued()
        await self.changes.publish(mention_id, actor, "retry")
        return reply

    async def confirm_posted(self, mention_id: int, actor: Actor, url: str | None = None) -> Reply:
        """A CM posted a manual reply by hand and confirms it."""
        await self.require_approver(actor, mention_id, "confirm replies")
        reply = await self.store.replies.for_mention(mention_id)
        if reply is None:
            raise NotFound(f"mention #{mention_id} has no reply waiting")
        reply = await self.store.replies.transition(
            reply.id,
            ReplyState.SENT,
            actor,
            "confirm",
            expect=[ReplyState.AWAITING_MANUAL],
            posted_url=url,
            mention_target=MentionState.POSTED,
        )
        await self.changes.publish(mention_id, actor, "confirm")
        return reply
