"""What happened, in order: Puerta's answers, Flagger's actions, notes. Recorded as it happens,
with repeated answers folded.

Flagger asks a waiting canary the same question every interval, and Puerta answers the same
thing (only a countdown such as "in 1d 19h" changes), so a weekend of polls would bury the
three lines that matter. An answer identical to the previous answer of the same webhook of the
same canary (same status, same text once the countdown is removed) is folded into it:
``repeats`` counts the extra polls and ``last_at`` says when the last one was.

Polls the simulation skips while fast-forwarding are folded in too (:meth:`Timeline.extend`):
the counts are what Flagger would do, not what the simulation did to find out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

_COUNTDOWN = re.compile(r",? in \d+[dhms](?: \d+[dhms])?")


def fold_key(text: str) -> str:
    """The text with countdowns (``, in 1d 19h``) removed, to compare two answers."""
    return _COUNTDOWN.sub("", text)


@dataclass
class Entry:
    """One line of the timeline.

    ``kind`` is the Flagger hook type of a webhook call, or what Flagger or the simulation did
    (``arrived``, ``weight``, ``promote``, ``approve``, ``result``, ``note``). ``effects`` lists
    what Puerta would have triggered outside itself for this answer (CI runs, notifications);
    the simulation never carries them out and reports them as dry runs.
    """

    seq: int
    at: datetime
    canary: str
    kind: str
    text: str
    status: str = ""
    webhook: str | None = None
    endpoint: str | None = None
    phase: str | None = None
    checksum: str | None = None
    http_status: int | None = None
    repeats: int = 0
    last_at: datetime | None = None
    effects: tuple[str, ...] = ()

    @property
    def is_call(self) -> bool:
        return self.http_status is not None


@dataclass
class Timeline:
    """The entries in the order they happened; answers folded as they come in."""

    entries: list[Entry] = field(default_factory=list)
    _runs: dict[tuple[str, str, str], Entry] = field(default_factory=dict)
    _last_tick: dict[str, list[Entry]] = field(default_factory=dict)

    def _add(self, entry: Entry) -> Entry:
        self.entries.append(entry)
        return entry

    def begin_tick(self, canary: str) -> None:
        """Flagger starts a new check of ``canary``: its answers from now on are this tick's."""
        self._last_tick[canary] = []

    def answer(
        self,
        at: datetime,
        canary: str,
        kind: str,
        *,
        webhook: str,
        endpoint: str,
        phase: str,
        checksum: str,
        status: str,
        http_status: int,
        text: str,
        effects: tuple[str, ...] = (),
    ) -> Entry:
        """Record one answer of Puerta, folding it into the previous one if it is the same."""
        key = (canary, webhook, kind)
        run = self._runs.get(key)
        same = (
            run is not None
            and run.status == status
            and run.http_status == http_status
            and run.effects == effects
            and fold_key(run.text) == fold_key(text)
        )
        if run is not None and same:
            run.repeats += 1
            run.last_at = at
            entry = run
        else:
            entry = self._add(
                Entry(
                    len(self.entries),
                    at,
                    canary,
                    kind,
                    text,
                    status=status,
                    webhook=webhook,
                    endpoint=endpoint,
                    phase=phase,
                    checksum=checksum,
                    http_status=http_status,
                    effects=effects,
                )
            )
            self._runs[key] = entry
        if kind != "event":  # an event is a one-off notification, not a poll
            self._last_tick.setdefault(canary, []).append(entry)
        return entry

    def action(self, at: datetime, canary: str, kind: str, text: str, status: str = "") -> Entry:
        """Record something Flagger or the simulation did (never folded)."""
        return self._add(Entry(len(self.entries), at, canary, kind, text, status=status))

    def extend(self, canary: str, polls: int, last_at: datetime) -> None:
        """Flagger would have polled ``canary`` ``polls`` more times until ``last_at`` and got
        the answers of its last tick again: fold them into those answers."""
        if polls <= 0:
            return
        for entry in self._last_tick.get(canary, []):
            entry.repeats += polls
            entry.last_at = last_at
