"""Chat frontends: turn chat input into core calls and core events into chat messages."""
