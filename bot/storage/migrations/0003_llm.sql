-- Parley schema v3: triage results on mentions, checks on drafts, LLM token accounting.
BEGIN;

-- Triage (LLM or rules). NULL triage_by: not triaged yet. The intent goes to mentions.intent.
ALTER TABLE mentions ADD COLUMN relevant      INTEGER;
ALTER TABLE mentions ADD COLUMN sentiment     TEXT;
ALTER TABLE mentions ADD COLUMN urgency       TEXT;
ALTER TABLE mentions ADD COLUMN needs_reply   INTEGER;
ALTER TABLE mentions ADD COLUMN triage_reason TEXT;
ALTER TABLE mentions ADD COLUMN triage_by     TEXT;

-- Checks a CM should look at before approving a draft (JSON list of short sentences).
ALTER TABLE drafts ADD COLUMN flags TEXT;

-- One row per LLM call (a repair retry is its own row), for the daily budget and stats.
CREATE TABLE llm_usage (
    id                 INTEGER PRIMARY KEY,
    at                 TEXT NOT NULL,
    day                TEXT NOT NULL,
    purpose            TEXT NOT NULL,
    model              TEXT NOT NULL,
    brand              TEXT,
    mention_id         INTEGER,
    mentions           INTEGER NOT NULL DEFAULT 1,
    prompt_tokens      INTEGER NOT NULL,
    completion_tokens  INTEGER NOT NULL,
    cached_tokens      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX llm_usage_day ON llm_usage (day);

PRAGMA user_version = 3;
COMMIT;
