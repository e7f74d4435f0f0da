"""Posting approved replies back where the mention was said."""
