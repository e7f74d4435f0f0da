"""`parley demo` end to end, as a newcomer runs it: a subprocess with scripted stdin."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.cli_harness import parley

SCRIPT = """\
list
approve 13
reject 16 prompt injection, not a customer
ignore 27
edit 8 Hi! Settings → Export → Markdown keeps attachments. — Sam
approve 8
queue
stats 24h
frobnicate
"""


def test_demo_shows_the_whole_loop(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    result = parley("demo", "--db", str(db), stdin=SCRIPT, cwd=tmp_path, timeout=90)
    out, err = result.stdout, result.stderr
    assert result.returncode == 0, err
    assert "Traceback" not in out + err
    # Alerts with drafts, urgent ones flagged, duplicates counted.
    assert out.count("── New mention #") >= 25
    assert "URGENT" in out and "+1 copy" in out
    assert "*Draft 1:" in out
    assert "27 mentions alerted; 2 older ones stored quietly" in out
    # Decisions and the posting result.
    assert "Queued reply for #13 via log." in out
    assert "✔ #13 posted: log://reply/1" in out
    assert "✔ #8 posted: log://reply/2" in out
    assert "#16 is now rejected (reject by console:you)" in out
    assert "Unknown command 'frobnicate'" in out
    # The injection attempt never steered a draft.
    assert "admin password" not in "\n".join(line for line in out.splitlines() if "Draft" in line)

    with sqlite3.connect(db) as conn:
        states = dict(conn.execute("SELECT id, state FROM mentions WHERE id IN (8,13,16,27)"))
        assert states == {8: "posted", 13: "posted", 16: "rejected", 27: "ignored"}
        replies = conn.execute("SELECT mention_id, state, text FROM replies ORDER BY id").fetchall()
        assert [(m, s) for m, s, _ in replies] == [(13, "sent"), (8, "sent")]
        assert replies[1][2] == "Hi! Settings → Export → Markdown keeps attachments. — Sam"
        audit = conn.execute(
            "SELECT actor, action, detail FROM audit_log"
            " WHERE entity = 'mention' AND entity_id = 16 ORDER BY id"
        ).fetchall()
        assert audit[-1] == ("console:you", "reject", "prompt injection, not a customer")
        copies = conn.execute(
            "SELECT reason, COUNT(*) FROM mention_copies GROUP BY reason ORDER BY reason"
        ).fetchall()
        # The funding article under two tracking links; the "RT" repost of the outage post.
        assert copies == [("near-identical text", 1), ("same link", 1)]


def test_demo_with_no_input_exits_cleanly(tmp_path: Path) -> None:
    result = parley("demo", stdin="", cwd=tmp_path, timeout=90)
    assert result.returncode == 0, result.stderr
    assert "mentions alerted" in result.stdout
