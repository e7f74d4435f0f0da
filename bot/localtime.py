"""The time zone every time shown to people is written in (``PARLEY_TIMEZONE``).

Chat messages, ``/sources`` and ``parley status`` lines and the days of stats charts use it.
It is set once at start from the settings (:func:`set_zone`, called by the composition root);
until then, and without the setting, it is the machine's own zone. Storage and comparisons
stay in UTC: only what is shown is converted. Discord alerts use Discord's own timestamps
instead, which each reader's app shows in their own zone.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import tzlocal

EXAMPLE = "Europe/Paris"


def machine_zone() -> tzinfo:
    """The machine's zone (the TZ variable, /etc/localtime or Windows' setting)."""
    return tzlocal.get_localzone()


def parse_zone(name: str) -> ZoneInfo:
    """An IANA zone by name; ValueError in words when there is none by that name."""
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"not a time zone name: use an IANA name such as {EXAMPLE} or America/New_York"
        ) from None


_zone: tzinfo = machine_zone()


def set_zone(zone: tzinfo) -> None:
    """Show every later time in ``zone``."""
    global _zone  # one display zone per process, set once at start
    _zone = zone


def zone() -> tzinfo:
    """The zone times are shown in."""
    return _zone


def local(at: datetime) -> datetime:
    """``at`` (timezone-aware) in the display zone."""
    return at.astimezone(_zone)


def stamp(at: datetime) -> str:
    """Date and time with the zone's abbreviation, e.g. '2026-11-25 15:02 CET'."""
    return f"{local(at):%Y-%m-%d %H:%M %Z}"


def clock(at: datetime) -> str:
    """Time of day with the zone's abbreviation, e.g. '15:02 CET'."""
    return f"{local(at):%H:%M %Z}"
