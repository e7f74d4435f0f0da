"""Keyword query language, text folding and the fast rule matcher."""
