"""Triage of new mentions: relevance, sentiment, intent, urgency and whether to reply.

``rules`` triages by keyword rules at once (no model, no I/O) and holds the routing rule;
``model`` is the :class:`~bot.triage.model.Triager` that stores those verdicts and, with a
model, asks it in the background, in batches that ``batching`` shares between polls.
"""
