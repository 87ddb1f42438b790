"""Instants given to the API: they must name their time zone and stay within years Puerta can
reason about (window maths looks a year ahead; the database stores UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

from puerta.errors import BadRequest

_FIRST_YEAR, _LAST_YEAR = 1971, 9000


def check_instant(value: datetime | None, label: str) -> datetime | None:
    """The instant in UTC; :class:`BadRequest` naming ``label`` when naive or out of range."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise BadRequest(f"{label}: give a time zone, e.g. 2026-11-27T14:00:00+02:00")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not _FIRST_YEAR <= utc.year <= _LAST_YEAR:
        raise BadRequest(f"{label}: must be between {_FIRST_YEAR} and {_LAST_YEAR}")
    return utc
