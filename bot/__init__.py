"""Parley: a self-hosted copilot for community managers (platform-agnostic core)."""

__version__ = "0.1.0"
