"""Keyword query language, text folding, the fast rule matcher and the rule-based intent."""
