-- Parley schema v5: alerts waiting to be posted live in the database, not in memory.
BEGIN;

-- One row per (frontend, mention) whose alert that frontend has not posted yet. The alerter
-- adds a row for every running chat frontend; the frontend's alert-delivery service reads the
-- oldest rows per destination in small batches and deletes a row once the alert is posted
-- (alone or in a digest) or given up. Rows survive a restart, so nothing queued is lost.
-- ``id`` is the queue order (urgent alerts of a poll first); ``brand`` and ``urgent`` are
-- copied from the mention so the queue is read through its own index.
CREATE TABLE alert_queue (
    id          INTEGER PRIMARY KEY,
    frontend    TEXT NOT NULL,
    mention_id  INTEGER NOT NULL REFERENCES mentions (id),
    brand       TEXT NOT NULL,
    urgent      INTEGER NOT NULL DEFAULT 0,
    attempts    INTEGER NOT NULL DEFAULT 0,
    queued_at   TEXT NOT NULL,
    UNIQUE (frontend, mention_id)
);
CREATE INDEX alert_queue_next ON alert_queue (frontend, brand, urgent, id);

PRAGMA user_version = 5;
COMMIT;
