"""Connectors that find mentions, one module per platform."""
