"""Freezes created on demand ("nothing goes to production until incident 142 is closed").

A freeze covers an environment, or only some namespaces of it (globs), from ``starts_at`` until
``ends_at`` (or until someone lifts it). While one applies, confirm-rollout waits: no new
rollout starts, and the waiting ones keep their place in the release train. Rollouts already
under way go on; halt one to stop it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from fnmatch import fnmatchcase


@dataclass(frozen=True, slots=True)
class Freeze:
    id: int
    environment: str
    namespaces: tuple[str, ...]  # empty: the whole environment
    reason: str
    created_by: str
    starts_at: datetime
    ends_at: datetime | None

    def applies(self, environment: str, namespace: str, now: datetime) -> bool:
        if environment != self.environment or now < self.starts_at:
            return False
        if self.ends_at is not None and now >= self.ends_at:
            return False
        return not self.namespaces or any(fnmatchcase(namespace, p) for p in self.namespaces)

    def describe(self, zone: tzinfo) -> str:
        """``frozen by alice: incident 142 (until Fri 2026-11-27 18:00 IST)``."""
        until = (
            f" (until {self.ends_at.astimezone(zone):%a %Y-%m-%d %H:%M %Z})"
            if self.ends_at is not None
            else " (until lifted)"
        )
        scope = f" for {', '.join(self.namespaces)}" if self.namespaces else ""
        return f"{self.environment}{scope} is frozen by {self.created_by}: {self.reason}{until}"


def lifts_at(freezes: tuple[Freeze, ...]) -> datetime | None:
    """When every one of these freezes has ended by itself (None: one has no end)."""
    ends = [f.ends_at for f in freezes]
    if not ends or any(end is None for end in ends):
        return None
    return max(end for end in ends if end is not None)
