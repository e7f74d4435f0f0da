-- Parley schema v6: what a chat frontend must catch up on after being unreachable, and where a
-- Telegram chat moved.
BEGIN;

-- Alerts already posted whose mention changed while the chat could not be reached (or while
-- Parley was stopping): each is edited to its current state at the next connection, after a
-- restart too. One row per (frontend, mention); removed once the edit went through.
CREATE TABLE alert_refresh (
    frontend    TEXT NOT NULL,
    mention_id  INTEGER NOT NULL REFERENCES mentions (id),
    marked_at   TEXT NOT NULL,
    PRIMARY KEY (frontend, mention_id)
);

-- A chat that changed its id (a Telegram group upgraded to a supergroup): alerts and routing
-- for ``old_id`` go to ``new_id`` from then on, and the configured old id maps to the new one.
CREATE TABLE chat_migrations (
    frontend     TEXT NOT NULL,
    old_id       TEXT NOT NULL,
    new_id       TEXT NOT NULL,
    migrated_at  TEXT NOT NULL,
    PRIMARY KEY (frontend, old_id)
);

PRAGMA user_version = 6;
COMMIT;
