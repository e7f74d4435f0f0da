"""The core's alert delivery around the throttle: alerts queued in the store survive a restart,
a change that arrives while its alert is being sent is applied right after, and an alert is
rendered as the mention is when its turn comes."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

from bot.app import Core, build_core
from bot.config import ParleyConfig
from bot.domain.models import SYSTEM, Draft, Mention, Reply
from bot.domain.states import MentionState
from bot.events import MentionChanged
from bot.services.alert_delivery import AlertDelivery
from bot.services.throttle import OutgoingAlert, Rate, ThrottleLimits
from bot.settings import Settings
from tests.helpers import raw

FAST = ThrottleLimits(per_destination=(Rate(1_000, 1.0),), digest_horizon=1.0)
LEAD_TIME = 30.0  # seconds; a fast run never comes close


class Chat:
    """An adapter that records what it posts and edits; ``gate`` holds every send until set."""

    def __init__(self) -> None:
        self.sent: list[OutgoingAlert] = []
        self.edits: list[tuple[str, Mention]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.sending = asyncio.Event()

    def route(self, brand: str) -> Hashable | None:
        return "team"

    async def send(self, dest: Hashable, alert: OutgoingAlert) -> str | None:
        self.sending.set()
        await self.gate.wait()
        self.sent.append(alert)
        return f"team:{alert.mention.id}"

    async def send_digest(self, dest: Hashable, alerts: list[OutgoingAlert]) -> None:
        self.sent.extend(alerts)

    async def edit(
        self, ref: str, mention: Mention, drafts: list[Draft], reply: Reply | None
    ) -> None:
        self.edits.append((ref, mention))

    async def notice(self, text: str) -> None:
        pass


async def _alert(core: Core, *texts: str) -> list[int]:
    batch = await core.ingestor.store_batch([raw(f"p{i}", t) for i, t in enumerate(texts)])
    return [m.id for m in await core.alerter.alert(batch, first_poll=False)]


async def _deliver(delivery: AlertDelivery) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(delivery.run(stop))
    await asyncio.wait_for(delivery.drain(), LEAD_TIME)
    stop.set()
    await asyncio.wait_for(task, LEAD_TIME)


async def test_alerts_not_posted_before_a_restart_are_posted_after_it(
    settings: Settings, config: ParleyConfig
) -> None:
    texts = [f"acme cloud question number {i} about exporting {i * 31} notes" for i in range(30)]
    async with build_core(settings, config) as core:
        before = Chat()
        core.deliveries.register(AlertDelivery(core.store, "chat", before, FAST))
        ids = await _alert(core, *texts)  # the chat never got to post them: the process stops
        assert len(ids) == 30 and before.sent == []
    async with build_core(settings, config) as core:
        after = Chat()
        delivery = AlertDelivery(core.store, "chat", after, FAST)
        core.deliveries.register(delivery)
        await _deliver(delivery)
        assert sorted(a.mention.id for a in after.sent) == ids  # each once, none lost
        for mention_id in ids:
            assert (await core.store.mentions.get(mention_id)).alert_refs == {
                "chat": f"team:{mention_id}"
            }
        assert await delivery.throttle.backlog.total() == 0


async def test_a_change_while_the_alert_is_sent_is_applied_right_after(core: Core) -> None:
    chat = Chat()
    chat.gate.clear()
    delivery = AlertDelivery(core.store, "chat", chat, FAST)
    core.deliveries.register(delivery)
    (mention_id,) = await _alert(core, "How do I export from acme cloud?")
    stop = asyncio.Event()
    task = asyncio.create_task(delivery.run(stop))
    await asyncio.wait_for(chat.sending.wait(), LEAD_TIME)
    # Rejected while its alert is on its way: no reference yet, so nothing to edit now…
    await core.store.mentions.transition(mention_id, MentionState.REJECTED, SYSTEM, "reject")
    mention = await core.store.mentions.get(mention_id)
    await delivery.on_change(MentionChanged(mention, [], None, SYSTEM, "reject"))
    assert chat.edits == [] and delivery.held == 2  # the alert being sent, and its change
    chat.gate.set()
    await asyncio.wait_for(delivery.drain(), LEAD_TIME)
    stop.set()
    await asyncio.wait_for(task, LEAD_TIME)
    # …and once it is posted, it is edited to the mention's state.
    ((ref, edited),) = chat.edits
    assert ref == f"team:{mention_id}" and edited.state is MentionState.REJECTED
    assert delivery.held == 0


async def test_an_alert_waiting_in_the_queue_is_rendered_as_the_mention_is_then(
    core: Core,
) -> None:
    chat = Chat()
    delivery = AlertDelivery(core.store, "chat", chat, FAST)
    core.deliveries.register(delivery)
    (mention_id,) = await _alert(core, "Acme cloud is great, thanks for the sync fix")
    await core.store.mentions.transition(mention_id, MentionState.IGNORED, SYSTEM, "ignore")
    mention = await core.store.mentions.get(mention_id)
    await delivery.on_change(MentionChanged(mention, [], None, SYSTEM, "ignore"))
    await _deliver(delivery)
    (alert,) = chat.sent
    assert alert.mention.state is MentionState.IGNORED
    assert chat.edits == []  # no edit needed: it was posted as it is
