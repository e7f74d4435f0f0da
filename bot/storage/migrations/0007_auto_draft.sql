-- Parley schema v7: alerts go out before their drafts; the mention remembers the draft it awaits.
BEGIN;

-- ``drafting``: an automatic draft is owed (set when the alert is queued, cleared once drafts
-- are saved or drafting gave up); a mention still owing one after a restart is drafted again
-- if its alert was posted on its own. ``draft_refused``: why every automatic draft was refused
-- by the guards, shown on the alert until drafts are saved.
ALTER TABLE mentions ADD COLUMN drafting INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mentions ADD COLUMN draft_refused TEXT;
CREATE INDEX mentions_drafting ON mentions (drafting) WHERE drafting = 1;

PRAGMA user_version = 7;
COMMIT;
