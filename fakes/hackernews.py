"""A fake Algolia HN Search API on loopback (``search_by_date``), built from the real comment hit
in fakes/payloads/hn_algolia_comment_hit.json."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

COMMENT_HIT: dict[str, Any] = json.loads(
    (Path(__file__).parent / "payloads" / "hn_algolia_comment_hit.json").read_text()
)


def comment(object_id: int, created: int, text: str = "nimbus notes is great") -> dict[str, Any]:
    """A comment hit from the real payload, with this id, time and text."""
    hit = copy.deepcopy(COMMENT_HIT)
    hit.update(objectID=str(object_id), created_at_i=created, comment_text=text)
    return hit


def story(
    object_id: int, created: int, title: str, story_text: str | None = None
) -> dict[str, Any]:
    """A story hit as Algolia returns it."""
    return {
        "created_at_i": created,
        "title": title,
        "url": "https://example.com/post",
        "author": "pg",
        "points": 120,
        "num_comments": 40,
        "story_text": story_text,
        "comment_text": None,
        "_tags": ["story", "author_pg", f"story_{object_id}"],
        "objectID": str(object_id),
    }


@dataclass
class FakeAlgolia:
    """Serves ``hits`` like search_by_date: newest first, ``numericFilters``, pages."""

    hits: list[dict[str, Any]] = field(default_factory=list)
    queries: list[dict[str, str]] = field(default_factory=list)
    failures: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    base: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v1/search_by_date``: a scripted failure, or the page asked for."""
        self.queries.append(dict(request.query))
        if self.failures:
            status, headers = self.failures.pop(0)
            return web.Response(status=status, text="busy", headers=headers)
        since = 0
        numeric = request.query.get("numericFilters", "")
        if numeric:
            assert numeric.startswith("created_at_i>=")
            since = int(numeric.removeprefix("created_at_i>="))
        per_page = int(request.query["hitsPerPage"])
        page = int(request.query.get("page", "0"))
        hits = sorted((h for h in self.hits if _stamp(h) >= since), key=_stamp, reverse=True)
        nb_pages = max(1, -(-len(hits) // per_page))
        chunk = hits[page * per_page : (page + 1) * per_page]
        return web.json_response(
            {"hits": chunk, "nbHits": len(hits), "page": page, "nbPages": nb_pages}
        )


def _stamp(hit: dict[str, Any]) -> int:
    """A hit's time; a malformed one is served first, as if it were the newest."""
    stamp = hit.get("created_at_i")
    return stamp if isinstance(stamp, int) else 1_000_000_000_000
