"""Reply drafting behind one interface, and the checks every reply passes before it is offered.

``base`` is the interface, ``offline`` the saved-reply templates (no model), ``llm`` the model
drafter, ``tweaks`` the redraft vocabulary every frontend offers; ``guards`` checks every text
before it may be posted, with ``textscan`` (links, e-mail addresses, phone numbers, invisible
characters) and ``offers`` (percentages off, promo codes, gift cards) finding what it looks for.
"""
