"""The store: every repository Parley reads and writes through, built over one ``Database``
(one connection) and sharing one audit log writer.

A change that spans concerns stays one transaction: a repository that moves another's rows
(approval queues a reply and moves its mention) calls that repository's ``…_in(conn, …)``
method inside its own transaction.
"""

from __future__ import annotations

from bot.storage.alert_queue import AlertQueueRepo
from bot.storage.audit import AuditLog
from bot.storage.controls import ControlRepo
from bot.storage.db import Database
from bot.storage.drafts import DraftRepo
from bot.storage.llm_health import LlmHealthRepo
from bot.storage.llm_usage import LlmUsageRepo
from bot.storage.mentions import MentionRepo
from bot.storage.replies import ReplyRepo
from bot.storage.source_health import SourceHealthRepo
from bot.storage.stats import StatsRepo


class Store:
    """The repositories by concern: ``store.mentions.get(id)``, ``store.replies.for_mention(id)``,
    ``store.audit.trail("reply", id)``, …"""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.audit = AuditLog(db)
        self.mentions = MentionRepo(db, self.audit)
        self.drafts = DraftRepo(db, self.audit, self.mentions)
        self.replies = ReplyRepo(db, self.audit, self.mentions)
        self.controls = ControlRepo(db, self.audit)
        self.alert_queue = AlertQueueRepo(db)
        self.sources = SourceHealthRepo(db)
        self.llm_usage = LlmUsageRepo(db)
        self.llm_health = LlmHealthRepo(db)
        self.stats = StatsRepo(db)
