-- Parley schema v4: what the X and Meta connectors and source health need.
BEGIN;

-- 0 when the platform lets Parley answer only by hand (an X post that neither @mentioned nor
-- quoted the brand account): such a mention gets the manual publisher (copy and open).
ALTER TABLE mentions ADD COLUMN answerable INTEGER NOT NULL DEFAULT 1;

-- What the platform charged for posting the reply (X pay-per-use), in US dollars.
ALTER TABLE replies ADD COLUMN cost_usd REAL;

-- Source health: calls left in the platform's rate-limit window after the last poll, and
-- whether the last failure was a rejected credential (expired or revoked token).
ALTER TABLE source_state ADD COLUMN rate_limit_remaining INTEGER;
ALTER TABLE source_state ADD COLUMN credentials_rejected INTEGER NOT NULL DEFAULT 0;

PRAGMA user_version = 4;
COMMIT;
