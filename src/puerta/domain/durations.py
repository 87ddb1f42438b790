"""Durations as people write them in a policy file or on the command line ("90s", "10m",
"2h", "1h30m", "3d"), and as Puerta writes them back in reasons ("1d 19h", "25m")."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)([dhms])")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> timedelta:
    """Parse ``1h30m``-style text; ValueError names what is wrong."""
    cleaned = text.strip().replace(" ", "")
    if not cleaned:
        raise ValueError("empty duration; write e.g. 90s, 10m, 2h, 1h30m or 3d")
    position = 0
    seconds = 0
    for match in _PART.finditer(cleaned):
        if match.start() != position:
            break
        seconds += int(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(cleaned):
        raise ValueError(f"invalid duration {text!r}; write e.g. 90s, 10m, 2h, 1h30m or 3d")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Short human form, two units at most: ``1d 19h``, ``3h 5m``, ``25m``, ``40s``."""
    total = max(int(value.total_seconds()), 0)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m"
    return f"{seconds}s"


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st..."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
