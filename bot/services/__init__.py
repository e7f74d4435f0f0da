"""Use cases the frontends call: review decisions, the outbox, stats. No platform imports."""
