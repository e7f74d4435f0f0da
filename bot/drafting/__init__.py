"""Reply drafting behind one interface (offline templates now, an LLM later)."""
