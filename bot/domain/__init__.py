"""Domain models and state machines: plain data, no I/O."""
