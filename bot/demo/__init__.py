"""Bundled demo data for `parley demo`: a fictional brand, Nimbus Notes (made by Nimbus Labs).

``parley.demo.toml`` configures the brand, its watch rules and three local feed sources;
``feeds/`` holds about three dozen sample mentions from 16 to 19 Nov 2026 in the real wire formats
of Google Alerts (Atom), Reddit search (Atom) and a Mastodon tag (RSS 2.0). They include
questions, complaints, praise, press, a sales lead, French/Spanish/German posts, homonyms the
rules exclude (the Nimbus 2000 broomstick, nimbus clouds), duplicates, one prompt-injection
attempt and one post full of pings and markup, so every safety path gets exercised.
"""
