"""What happens to an item after a source yields it: cleaning, canonical links, dedupe, storage."""
