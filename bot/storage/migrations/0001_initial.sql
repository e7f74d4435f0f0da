-- Parley schema v1: mentions, their copies, drafts, the outbox, the audit log, source cursors.
BEGIN;

CREATE TABLE mentions (
    id              INTEGER PRIMARY KEY,
    source          TEXT NOT NULL,
    platform        TEXT NOT NULL,
    external_id     TEXT NOT NULL,
    url             TEXT,
    canonical_url   TEXT,
    author_handle   TEXT NOT NULL DEFAULT '',
    author_name     TEXT,
    author_url      TEXT,
    author_reach    INTEGER,
    title           TEXT,
    text            TEXT NOT NULL,
    language        TEXT,
    created_at      TEXT,
    fetched_at      TEXT NOT NULL,
    brand           TEXT NOT NULL,
    rule            TEXT NOT NULL,
    parent_ref      TEXT,
    thread_context  TEXT,
    state           TEXT NOT NULL,
    urgent          INTEGER NOT NULL DEFAULT 0,
    intent          TEXT,
    fingerprint     INTEGER,
    duplicates      INTEGER NOT NULL DEFAULT 0,
    updated_at      TEXT NOT NULL
);
CREATE UNIQUE INDEX mentions_source_external ON mentions (source, external_id);
CREATE INDEX mentions_canonical_url ON mentions (canonical_url) WHERE canonical_url IS NOT NULL;
CREATE INDEX mentions_state ON mentions (state);
CREATE INDEX mentions_fetched_at ON mentions (fetched_at);

-- Items that collapsed into an earlier mention (same URL elsewhere, or a near-identical copy).
CREATE TABLE mention_copies (
    source       TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    mention_id   INTEGER NOT NULL REFERENCES mentions (id),
    url          TEXT,
    reason       TEXT NOT NULL,
    seen_at      TEXT NOT NULL,
    PRIMARY KEY (source, external_id)
);
CREATE INDEX mention_copies_mention ON mention_copies (mention_id);

CREATE TABLE drafts (
    id           INTEGER PRIMARY KEY,
    mention_id   INTEGER NOT NULL REFERENCES mentions (id),
    variant      INTEGER NOT NULL,
    text         TEXT NOT NULL,
    origin       TEXT NOT NULL,
    model        TEXT,
    prompt_hash  TEXT,
    tokens       INTEGER,
    created_at   TEXT NOT NULL,
    selected     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX drafts_mention ON drafts (mention_id);

-- The outbox. At most one live (not dead) reply per mention: a double click cannot queue two.
CREATE TABLE replies (
    id               INTEGER PRIMARY KEY,
    mention_id       INTEGER NOT NULL REFERENCES mentions (id),
    text             TEXT NOT NULL,
    publisher        TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL UNIQUE,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT,
    posted_id        TEXT,
    posted_url       TEXT,
    error            TEXT,
    approved_by      TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE UNIQUE INDEX replies_one_live_per_mention ON replies (mention_id) WHERE state <> 'dead';
CREATE INDEX replies_state ON replies (state, next_attempt_at);

CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY,
    at           TEXT NOT NULL,
    actor        TEXT NOT NULL,
    entity       TEXT NOT NULL,
    entity_id    INTEGER NOT NULL,
    action       TEXT NOT NULL,
    from_state   TEXT,
    to_state     TEXT,
    before_text  TEXT,
    after_text   TEXT,
    detail       TEXT
);
CREATE INDEX audit_log_entity ON audit_log (entity, entity_id);

CREATE TABLE source_state (
    source                TEXT PRIMARY KEY,
    cursor                TEXT NOT NULL DEFAULT '{}',
    first_poll_done       INTEGER NOT NULL DEFAULT 0,
    last_ok_at            TEXT,
    last_error            TEXT,
    last_error_at         TEXT,
    consecutive_failures  INTEGER NOT NULL DEFAULT 0,
    items_seen            INTEGER NOT NULL DEFAULT 0
);

-- Where each frontend posted a mention's alert, so it can be edited in place later.
CREATE TABLE alert_messages (
    mention_id  INTEGER NOT NULL REFERENCES mentions (id),
    frontend    TEXT NOT NULL,
    ref         TEXT NOT NULL,
    PRIMARY KEY (mention_id, frontend)
);

PRAGMA user_version = 1;
COMMIT;
