-- Parley schema v2: watch rules added from chat, and small persisted switches (alert pause).
BEGIN;

-- Rules added from a chat command; parley.toml rules are never copied here. Matched after the
-- config rules, in creation (id) order.
CREATE TABLE watch_rules (
    id          INTEGER PRIMARY KEY,
    brand       TEXT NOT NULL,
    name        TEXT NOT NULL,
    query       TEXT NOT NULL,
    urgent      INTEGER NOT NULL DEFAULT 0,
    added_by    TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (brand, name)
);

-- Runtime switches that must survive a restart ('alerts_paused' = '1' or '0').
CREATE TABLE control_state (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_by  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

PRAGMA user_version = 2;
COMMIT;
