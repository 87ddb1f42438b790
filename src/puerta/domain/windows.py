"""Deployment windows: may a production rollout start at a given instant?

Production may only roll out inside *deployment windows*: allowed days of the
week with one or more local time ranges per day, in an IANA time zone, never
during freezes (deny periods) or holidays.  This module answers, for an
instant, whether the window is open, and if closed why and when it next
opens; if open, when it closes.

It is pure: no I/O, and it never reads the wall clock.  Every function takes
the instant as an argument, which must be a timezone-aware ``datetime``
(naive datetimes raise ``ValueError``: guessing a zone for a gate that guards
production is exactly the kind of bug this module exists to prevent).  All
returned datetimes are aware and expressed in ``schedule.zone``; one in the
second pass of a repeated hour carries ``fold=1``.  Compare such values in
UTC (``x.astimezone(UTC)``): PEP 495 makes ``==`` between datetimes of
different zones False inside a repeated hour, and ``==`` between two
datetimes of the same ZoneInfo ignores ``fold``.

Semantics
=========

Wall-clock membership
    An instant ``t`` is inside an allow rule iff its *local wall-clock time*
    in ``schedule.zone`` (``t.astimezone(zone)``, ignoring ``fold``) falls in
    one of the rule's ranges on one of the rule's days.  Ranges are half-open
    ``[start, end)``.  A range with ``end <= start`` crosses midnight: the
    part from ``start`` to 24:00 belongs to an allowed day ``D`` and the part
    from 00:00 to ``end`` is on ``D + 1`` (it is allowed because ``D`` is,
    whatever ``D + 1`` is).  ``end == 00:00`` means 24:00, so ``09:00-24:00``
    is stored as ``TimeRange(time(9), time(0))``; ``00:00-24:00`` (the whole
    day) is the one range allowed to have ``start == end`` (both 00:00).
    With no allow rules at all the schedule is open at any time and only the
    closures below apply.

DST consequences (all follow from wall-clock membership, nothing is special-cased)
    * ``09:00-21:00`` stays 09:00-21:00 local on both sides of a DST change;
      the elapsed duration of a range that does not contain the change is
      unchanged, one that does contain it is an hour (or 30 minutes on
      Lord Howe) longer or shorter.
    * Skipped local hour (spring forward, e.g. 02:00 -> 03:00): no instant
      has a local time inside the gap, so a boundary inside it (say 02:30)
      takes effect at the first instant whose local time is past it, i.e. at
      the moment of the jump.  A range starting at 02:30 opens at the jump
      (local 03:00); a range ending at 02:30 closes at the jump.
    * Repeated local hour (fall back, e.g. 02:00 -> 01:00): both occurrences
      of a repeated local time are treated identically, so the window
      follows the wall clock through both passes.  With the repeated hour
      01:00-02:00 and a boundary at 01:30:

      - a range *starting* at 01:30 opens at the first 01:30, closes again
        at the jump back (local time becomes 01:00, which is before its
        start) and reopens at the second 01:30;
      - a range *ending* at 01:30 closes at the first 01:30, reopens at the
        jump back (local 01:00 is inside it again) and closes for good at
        the second 01:30.

      Where a change happens at midnight the local *date* follows the same
      rule: when America/Santiago springs forward from 24:00 to 01:00, the
      new date begins at the jump (its 00:00-01:00 never happens), and when
      it falls back from 24:00 to 23:00 the last hour of the old date is
      repeated.  Day-of-week and closed-date checks always use the local
      date the instant shows.

Closed dates
    Holidays (``holidays``, looked up with the ``holidays`` package on the
    local date), ``extra_holidays`` and recurring denies close the entire
    LOCAL calendar date, 00:00 to 24:00 local, including the after-midnight
    part of a range that started the day before.  Only that date is closed:
    if Friday is a holiday, the 00:00-02:00 tail of a Friday 22:00-02:00
    range on Saturday is still open (unless Saturday is closed too).
    Observed holidays are included (the package default).

Deny periods
    ``DenyPeriod`` is an absolute half-open interval of instants
    ``[start, end)`` and overrides everything.  ``RecurringDeny`` covers
    whole local dates from (start_month, start_day) to (end_month, end_day)
    inclusive, every year, wrapping the year end when the end is before the
    start (Dec 24 - Jan 2).  A Feb 29 bound is allowed; in non-leap years
    the range simply contains no Feb 29.

Reasons (``WindowState.closed_because``), first match wins
    ``"freeze: <reason>"`` (deny period, then recurring deny),
    ``"holiday: <name>"`` (``extra_holidays`` give
    ``"holiday: extra closed date"``, calendars give the package's name,
    several names on one date joined by ``"; "``),
    ``"outside the deployment window"``, and finally the ``min_remaining``
    reason ``"only 1h30m left in the window (closes 21:00 IST), need more
    than 2h"``.

min_remaining
    A rollout must not start when too little window is left.  ``evaluate``
    is open at ``at`` iff the raw schedule (``is_open``) is open at *every*
    instant of the closed interval ``[at, at + min_remaining]``: the raw
    window must still be open at ``at + min_remaining``.  Because raw
    stretches are half-open ``[a, b)``, a stretch is usable on
    ``[a, b - min_remaining)``, so 09:00-21:00 with a 2h minimum behaves
    exactly like 09:00-19:00 (19:00 itself is closed: only 2h left, which
    is not *more* than 2h).  Raw stretches are joined across range and day
    boundaries when they touch (22:00-24:00 followed by 00:00-03:00 is one
    5h stretch).  A stretch shorter than ``min_remaining`` never opens.

Search horizon
    ``next_open``, ``next_change`` and the ``opens_at``/``closes_at`` of
    ``evaluate`` look 366 days ahead (``HORIZON``).  An answer later than
    ``at + HORIZON`` is reported as ``None`` ("not within the horizon").

How the search works (why it is fast)
    The raw status is piecewise constant and can only change at a small set
    of candidate instants: each local date's midnight and range boundaries
    (converted to instants per constant-offset segment of the zone, which
    handles skipped and repeated hours uniformly), the zone's UTC offset
    transitions, and deny period edges.  The search walks those candidates
    one UTC day at a time and evaluates the status only there, so a week of
    closed days costs a few dozen status checks rather than ten thousand
    minute steps.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from zoneinfo import ZoneInfo

import holidays as holidays_lib

__all__ = [
    "DAY_NAMES",
    "HORIZON",
    "AllowRule",
    "DenyPeriod",
    "HolidayCalendar",
    "RecurringDeny",
    "TimeRange",
    "WindowSchedule",
    "WindowState",
    "describe",
    "evaluate",
    "is_open",
    "next_change",
    "next_open",
    "parse_days",
]

#: How far ahead the search looks before answering ``None``.
HORIZON = timedelta(days=366)

#: Three-letter English day names, indexed like ``datetime.weekday()``.
DAY_NAMES: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

OUTSIDE_WINDOW = "outside the deployment window"
EXTRA_HOLIDAY = "holiday: extra closed date"

_MIDNIGHT = time(0, 0)
_DAY = timedelta(days=1)
_ONE_SECOND = timedelta(seconds=1)
# Step used to detect UTC offset transitions; no real zone has two
# transitions within 6 hours, so none can hide between two samples.
_TRANSITION_SCAN_STEP = timedelta(hours=6)
# Fixed English names: calendar.month_abbr follows the process locale.
_MONTH_NAMES = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
)  # fmt: skip
_DAY_INDEX = {name.lower(): index for index, name in enumerate(DAY_NAMES)}
_CLOCK_RE = re.compile(r"([0-9]{1,2}):([0-9]{2})")


# --------------------------------------------------------------------------
# Parsing and value objects
# --------------------------------------------------------------------------


def _day_index(token: str, text: str) -> int:
    index = _DAY_INDEX.get(token.strip().lower())
    if index is None:
        raise ValueError(
            f"unknown day {token.strip()!r} in {text!r}: use three-letter English "
            f"day names ({', '.join(DAY_NAMES)}), e.g. 'Sun-Thu' or 'Mon,Wed,Fri'"
        )
    return index


def parse_days(text: str) -> frozenset[int]:
    """Parse a day set such as ``"Sun-Thu"``, ``"Mon,Wed,Fri"`` or ``"Fri-Mon"``.

    Items are separated by commas; each item is a day or an inclusive range
    ``A-B`` that wraps around the week end when ``B`` comes before ``A``
    (``"Fri-Mon"`` is Fri, Sat, Sun, Mon).  ``"Mon-Mon"`` is just Monday.
    Names are case-insensitive three-letter English abbreviations.  Returns
    ``datetime.weekday()`` numbers (0 = Monday).
    """
    if not isinstance(text, str):
        raise TypeError(f"day specification must be a str, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(
            "empty day specification: expected e.g. 'Mon-Fri', 'Sun-Thu' or 'Mon,Wed,Fri'"
        )
    days: set[int] = set()
    for item in text.split(","):
        if not item.strip():
            raise ValueError(f"empty item in day specification {text!r}")
        bounds = item.split("-")
        if len(bounds) == 1:
            days.add(_day_index(bounds[0], text))
        elif len(bounds) == 2:
            first, last = _day_index(bounds[0], text), _day_index(bounds[1], text)
            day = first
            days.add(day)
            while day != last:
                day = (day + 1) % 7
                days.add(day)
        else:
            raise ValueError(
                f"invalid day range {item.strip()!r} in {text!r}: a range is 'First-Last', "
                "e.g. 'Sun-Thu'"
            )
    return frozenset(days)


def _format_days(days: frozenset[int]) -> str:
    """Inverse of :func:`parse_days`, compressing consecutive days into ranges."""
    if len(days) == 7:
        return "Mon-Sun"
    runs: list[tuple[int, int]] = []
    for first in sorted(days):
        if (first - 1) % 7 in days:
            continue  # not the start of a run
        last = first
        while (last + 1) % 7 in days:
            last = (last + 1) % 7
        runs.append((first, last))
    return ",".join(
        DAY_NAMES[first] if first == last else f"{DAY_NAMES[first]}-{DAY_NAMES[last]}"
        for first, last in runs
    )


def _since_midnight(value: time) -> timedelta:
    return timedelta(
        hours=value.hour,
        minutes=value.minute,
        seconds=value.second,
        microseconds=value.microsecond,
    )


def _format_clock(value: time, *, end: bool = False) -> str:
    if end and value == _MIDNIGHT:
        return "24:00"
    text = f"{value.hour:02d}:{value.minute:02d}"
    if value.second or value.microsecond:
        text += f":{value.second:02d}"
        if value.microsecond:
            text += f".{value.microsecond:06d}"
    return text


def _parse_clock(token: str, text: str, *, is_end: bool) -> tuple[int, int]:
    match = _CLOCK_RE.fullmatch(token.strip())
    if match is None:
        raise ValueError(
            f"invalid time {token.strip()!r} in time range {text!r}: expected HH:MM, e.g. '09:00'"
        )
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour == 24 and minute == 0:
        if not is_end:
            raise ValueError(f"invalid time range {text!r}: 24:00 is only allowed as an end time")
        return hour, minute
    if hour > 23 or minute > 59:
        raise ValueError(
            f"invalid time {token.strip()!r} in time range {text!r}: "
            "hours must be 00-23 (or 24:00 as an end) and minutes 00-59"
        )
    return hour, minute


@dataclass(frozen=True)
class TimeRange:
    """A half-open local wall-clock range ``[start, end)``.

    ``end <= start`` means the range crosses midnight into the next day, and
    ``end == time(0, 0)`` means 24:00.  ``start == end`` would be empty and is
    rejected, except 00:00-00:00, which is how the whole day ``00:00-24:00``
    is represented (there is no other way to write a 24h range).
    """

    start: time
    end: time

    def __post_init__(self) -> None:
        for name, value in (("start", self.start), ("end", self.end)):
            if not isinstance(value, time):
                raise TypeError(f"TimeRange.{name} must be a datetime.time, got {value!r}")
            if value.tzinfo is not None:
                raise ValueError(
                    f"TimeRange.{name} must be a naive local wall-clock time, got {value!r}; "
                    "the zone belongs to the WindowSchedule"
                )
        if self.start == self.end and self.start != _MIDNIGHT:
            raise ValueError(
                f"empty time range {_format_clock(self.start)}-{_format_clock(self.end)}: "
                "start equals end"
            )

    @classmethod
    def parse(cls, text: str) -> TimeRange:
        """Parse ``"HH:MM-HH:MM"``; ``24:00`` is accepted as an end only.

        ``"22:00-02:00"`` crosses midnight, ``"00:00-24:00"`` is the whole
        day, and ``"00:00-00:00"`` is rejected as ambiguous.
        """
        if not isinstance(text, str):
            raise TypeError(f"time range must be a str, got {type(text).__name__}")
        parts = text.split("-")
        if len(parts) != 2:
            raise ValueError(
                f"invalid time range {text!r}: expected 'HH:MM-HH:MM', e.g. '09:00-21:00'"
            )
        start = _parse_clock(parts[0], text, is_end=False)
        end = _parse_clock(parts[1], text, is_end=True)
        if start == end:
            hint = " (write '00:00-24:00' for the whole day)" if start == (0, 0) else ""
            raise ValueError(f"empty time range {text!r}: start equals end{hint}")
        end_time = _MIDNIGHT if end == (24, 0) else time(*end)
        return cls(time(*start), end_time)

    @property
    def crosses_midnight(self) -> bool:
        """True when the range runs to 24:00 or beyond (``end <= start``)."""
        return self.end <= self.start

    def __str__(self) -> str:
        return f"{_format_clock(self.start)}-{_format_clock(self.end, end=True)}"


@dataclass(frozen=True)
class AllowRule:
    """Days of the week (0 = Monday) and the local time ranges allowed on them.

    A range crossing midnight belongs to the day it starts on.
    """

    days: frozenset[int]
    ranges: tuple[TimeRange, ...]

    def __post_init__(self) -> None:
        days = frozenset(self.days)
        ranges = tuple(self.ranges)
        if not days:
            raise ValueError("AllowRule.days must not be empty")
        bad = sorted(d for d in days if not isinstance(d, int) or not 0 <= d <= 6)
        if bad:
            raise ValueError(f"AllowRule.days must be weekday numbers 0-6, got {bad}")
        if not ranges:
            raise ValueError("AllowRule.ranges must contain at least one TimeRange")
        for item in ranges:
            if not isinstance(item, TimeRange):
                raise TypeError(f"AllowRule.ranges must hold TimeRange objects, got {item!r}")
        object.__setattr__(self, "days", days)
        object.__setattr__(self, "ranges", ranges)

    @classmethod
    def parse(cls, days: str, *ranges: str) -> AllowRule:
        """Build a rule from text, e.g. ``AllowRule.parse("Sun-Thu", "09:00-21:00")``."""
        return cls(parse_days(days), tuple(TimeRange.parse(r) for r in ranges))

    def __str__(self) -> str:
        return f"{_format_days(self.days)} {','.join(str(r) for r in self.ranges)}"


def _require_aware(value: datetime, name: str) -> datetime:
    """Return ``value`` in UTC, refusing naive datetimes."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive datetime {value.isoformat()}")
    return value.astimezone(UTC)


@dataclass(frozen=True)
class DenyPeriod:
    """An absolute freeze ``[start, end)`` between two aware instants."""

    start: datetime
    end: datetime
    reason: str

    def __post_init__(self) -> None:
        # Compare in UTC: two datetimes sharing one ZoneInfo compare by wall
        # clock and ignore ``fold``, which misorders instants in a repeated hour.
        if _require_aware(self.end, "DenyPeriod.end") <= _require_aware(
            self.start, "DenyPeriod.start"
        ):
            raise ValueError(
                f"DenyPeriod end {self.end.isoformat()} must be after start "
                f"{self.start.isoformat()}"
            )

    def contains(self, instant: datetime) -> bool:
        """Whether the aware ``instant`` falls in ``[start, end)``."""
        moment = instant.astimezone(UTC)  # see __post_init__ on comparing in UTC
        return self.start <= moment < self.end


def _check_month_day(month: int, day: int, what: str) -> None:
    if not 1 <= month <= 12:
        raise ValueError(f"RecurringDeny {what} month must be 1-12, got {month}")
    # 2000 is a leap year, so Feb 29 is accepted.
    last = calendar.monthrange(2000, month)[1]
    if not 1 <= day <= last:
        raise ValueError(f"RecurringDeny {what} day must be 1-{last} for month {month}, got {day}")


@dataclass(frozen=True)
class RecurringDeny:
    """A deny range that repeats every year on local dates, e.g. Dec 24 - Jan 2.

    Both dates are inclusive; the range wraps the year end when the end date
    comes before the start date.
    """

    start_month: int
    start_day: int
    end_month: int
    end_day: int
    reason: str

    def __post_init__(self) -> None:
        _check_month_day(self.start_month, self.start_day, "start")
        _check_month_day(self.end_month, self.end_day, "end")

    def covers(self, day: date) -> bool:
        key = (day.month, day.day)
        first = (self.start_month, self.start_day)
        last = (self.end_month, self.end_day)
        if first <= last:
            return first <= key <= last
        return key >= first or key <= last


@lru_cache(maxsize=256)
def _holiday_names(country: str, subdivision: str | None, year: int) -> Mapping[date, str]:
    """Holidays of one country/subdivision and year, computed once per process.

    The ``holidays`` package files observed holidays under the year of the
    observed date (US New Year's Day 2028 observed on 2027-12-31 is in 2027),
    so looking a date up in its own year is complete.
    """
    found = holidays_lib.country_holidays(country, subdiv=subdivision, years=year)
    return {day: str(name) for day, name in found.items()}


@dataclass(frozen=True)
class HolidayCalendar:
    """Public holidays of a country (and optional subdivision) per ``holidays``."""

    country: str
    subdivision: str | None = None

    def __post_init__(self) -> None:
        supported = holidays_lib.list_supported_countries()
        if self.country not in supported:
            hint = ""
            if isinstance(self.country, str) and self.country.upper() in supported:
                hint = f" (did you mean {self.country.upper()!r}?)"
            raise ValueError(
                f"unknown holiday country {self.country!r}{hint}: use an ISO 3166 code "
                "supported by the holidays package, e.g. 'IL' or 'US'"
            )
        subdivisions = supported[self.country]
        if self.subdivision is not None and self.subdivision not in subdivisions:
            hint = ""
            matches = [s for s in subdivisions if s.lower() == str(self.subdivision).lower()]
            if matches:
                hint = f" (did you mean {matches[0]!r}?)"
            known = ", ".join(subdivisions) if subdivisions else "none"
            raise ValueError(
                f"unknown subdivision {self.subdivision!r} for holiday country "
                f"{self.country!r}{hint}; known subdivisions: {known}"
            )

    def holiday_name(self, day: date) -> str | None:
        """The holiday name on ``day``, or None when it is not a holiday."""
        return _holiday_names(self.country, self.subdivision, day.year).get(day)

    def __str__(self) -> str:
        return self.country if self.subdivision is None else f"{self.country}-{self.subdivision}"


@dataclass(frozen=True)
class WindowSchedule:
    """Everything that decides whether a rollout may start; see the module docs."""

    zone: ZoneInfo
    allow: tuple[AllowRule, ...] = ()
    deny: tuple[DenyPeriod, ...] = ()
    recurring_deny: tuple[RecurringDeny, ...] = ()
    holidays: tuple[HolidayCalendar, ...] = ()
    extra_holidays: frozenset[date] = frozenset()
    min_remaining: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        if not isinstance(self.zone, ZoneInfo):
            raise TypeError(f"WindowSchedule.zone must be a zoneinfo.ZoneInfo, got {self.zone!r}")
        # Accept lists for convenience but store tuples so the schedule stays hashable.
        for name in ("allow", "deny", "recurring_deny", "holidays"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        extra = frozenset(self.extra_holidays)
        bad = sorted(str(d) for d in extra if isinstance(d, datetime) or not isinstance(d, date))
        if bad:
            raise ValueError(
                f"WindowSchedule.extra_holidays must hold dates (not datetimes), got {bad}"
            )
        object.__setattr__(self, "extra_holidays", extra)
        if not isinstance(self.min_remaining, timedelta):
            raise TypeError(
                f"WindowSchedule.min_remaining must be a timedelta, got {self.min_remaining!r}"
            )
        if self.min_remaining < timedelta(0):
            raise ValueError(
                f"WindowSchedule.min_remaining must not be negative, got {self.min_remaining}"
            )


@dataclass(frozen=True)
class WindowState:
    """The answer of :func:`evaluate`."""

    open: bool
    closed_because: str | None
    opens_at: datetime | None
    closes_at: datetime | None


# --------------------------------------------------------------------------
# Raw membership
# --------------------------------------------------------------------------


def _in_allow(rules: Iterable[AllowRule], day: date, clock: time) -> bool:
    weekday = day.weekday()
    yesterday = (weekday - 1) % 7
    for rule in rules:
        today_allowed = weekday in rule.days
        yesterday_allowed = yesterday in rule.days
        for span in rule.ranges:
            if span.end > span.start:
                if today_allowed and span.start <= clock < span.end:
                    return True
            else:
                if today_allowed and clock >= span.start:
                    return True
                if yesterday_allowed and clock < span.end:
                    return True
    return False


def _date_closed_reason(schedule: WindowSchedule, day: date) -> str | None:
    for recurring in schedule.recurring_deny:
        if recurring.covers(day):
            return f"freeze: {recurring.reason}"
    if day in schedule.extra_holidays:
        return EXTRA_HOLIDAY
    for cal in schedule.holidays:
        name = cal.holiday_name(day)
        if name is not None:
            return f"holiday: {name}"
    return None


def _closed_reason(schedule: WindowSchedule, instant: datetime) -> str | None:
    """Why the raw schedule is closed at ``instant`` (aware), or None if open."""
    for period in schedule.deny:
        if period.contains(instant):
            return f"freeze: {period.reason}"
    local = instant.astimezone(schedule.zone)
    day = local.date()
    reason = _date_closed_reason(schedule, day)
    if reason is not None:
        return reason
    if schedule.allow and not _in_allow(schedule.allow, day, local.time()):
        return OUTSIDE_WINDOW
    return None


def is_open(schedule: WindowSchedule, at: datetime) -> bool:
    """Raw membership at ``at``: allow rules minus closures, ignoring min_remaining."""
    return _closed_reason(schedule, _require_aware(at, "at")) is None


# --------------------------------------------------------------------------
# Candidate instants where the raw status may change
# --------------------------------------------------------------------------


def _utc_offset(zone: ZoneInfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    if offset is None:  # pragma: no cover - ZoneInfo always knows its offset
        raise ValueError(f"zone {zone.key} has no UTC offset at {instant.isoformat()}")
    return offset


@lru_cache(maxsize=512)
def _transitions_in_year(zone: ZoneInfo, year: int) -> tuple[datetime, ...]:
    """UTC instants in ``(Jan 1 year, Jan 1 year+1]`` where the zone's offset changes.

    ``zoneinfo`` has no public transition list, so sample every few hours
    and bisect to the second (tz transitions happen on whole seconds).
    """
    found: list[datetime] = []
    low = datetime(year, 1, 1, tzinfo=UTC)
    stop = datetime(year + 1, 1, 1, tzinfo=UTC)
    low_offset = _utc_offset(zone, low)
    while low < stop:
        high = min(low + _TRANSITION_SCAN_STEP, stop)
        high_offset = _utc_offset(zone, high)
        if high_offset != low_offset:
            before, after = low, high
            while after - before > _ONE_SECOND:
                middle = before + timedelta(seconds=(after - before) // _ONE_SECOND // 2)
                if _utc_offset(zone, middle) == low_offset:
                    before = middle
                else:
                    after = middle
            found.append(after)
        low, low_offset = high, high_offset
    return tuple(found)


def _transitions_between(zone: ZoneInfo, start: datetime, stop: datetime) -> list[datetime]:
    """Offset transitions in ``[start, stop)`` (UTC)."""
    return sorted(
        {
            moment
            for year in range(start.year - 1, stop.year + 1)
            for moment in _transitions_in_year(zone, year)
            if start <= moment < stop
        }
    )


def _wall_marks(schedule: WindowSchedule) -> tuple[timedelta, ...]:
    """Local times of day at which membership can change: midnight and range edges."""
    marks = {timedelta(0)}
    for rule in schedule.allow:
        for span in rule.ranges:
            marks.add(_since_midnight(span.start))
            marks.add(_since_midnight(span.end))
    return tuple(sorted(marks))


def _candidates(
    schedule: WindowSchedule,
    marks: tuple[timedelta, ...],
    start: datetime,
    stop: datetime,
) -> list[datetime]:
    """Every instant in ``[start, stop)`` (UTC) where the raw status may change.

    The UTC span is cut at offset transitions into segments of constant
    offset; inside one, local time is UTC plus that offset, so each local
    boundary maps to at most one instant per segment.  The transition
    instants themselves are candidates too: that is where a boundary lying
    in a skipped hour takes effect, and where a repeated hour starts over.
    """
    zone = schedule.zone
    cuts = _transitions_between(zone, start, stop)
    found: set[datetime] = set(cuts)
    edges = [start, *cuts, stop]
    for seg_start, seg_stop in pairwise(edges):
        if seg_start >= seg_stop:
            continue
        offset = _utc_offset(zone, seg_start)
        local_start = seg_start.replace(tzinfo=None) + offset
        local_stop = seg_stop.replace(tzinfo=None) + offset
        midnight = datetime.combine(local_start.date(), _MIDNIGHT)
        while midnight < local_stop:
            for mark in marks:
                local = midnight + mark
                if local_start <= local < local_stop:
                    found.add((local - offset).replace(tzinfo=UTC))
            midnight += _DAY
    for period in schedule.deny:
        for edge in (period.start, period.end):
            if start <= edge < stop:
                found.add(edge.astimezone(UTC))
    return sorted(found)


def _changes(
    schedule: WindowSchedule, start: datetime, now_open: bool, limit: datetime
) -> Iterator[datetime]:
    """Instants ``x`` with ``start < x <= limit`` where the raw status flips.

    ``now_open`` is the raw status at ``start``; the yielded instants
    alternate between closing and opening accordingly.
    """
    marks = _wall_marks(schedule)
    status = now_open
    chunk = start
    while chunk <= limit:
        chunk_end = chunk + _DAY
        for moment in _candidates(schedule, marks, chunk, chunk_end):
            if moment <= start:
                continue
            if moment > limit:
                return
            moment_open = _closed_reason(schedule, moment) is None
            if moment_open != status:
                status = moment_open
                yield moment
        chunk = chunk_end


# --------------------------------------------------------------------------
# Public queries
# --------------------------------------------------------------------------


def _next_open_utc(schedule: WindowSchedule, after: datetime, raw_open: bool) -> datetime | None:
    minimum = schedule.min_remaining
    horizon_end = after + HORIZON
    flips = _changes(schedule, after, raw_open, horizon_end + minimum)
    if raw_open:
        candidate: datetime | None = after
    else:
        candidate = next(flips, None)
    while candidate is not None and candidate <= horizon_end:
        if not minimum:
            return candidate  # any open instant qualifies
        closing = next(flips, None)
        if closing is None or candidate + minimum < closing:
            return candidate
        candidate = next(flips, None)  # this stretch is too short: try the next one
    return None


def _format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    units = ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s"))
    parts = [f"{amount}{unit}" for amount, unit in units if amount]
    return "".join(parts) or "0s"


def _format_local(moment: datetime, reference: datetime) -> str:
    """``HH:MM ZZZ``, with the date when it differs from ``reference``'s local date."""
    if moment.date() == reference.date():
        return moment.strftime("%H:%M %Z")
    return moment.strftime("%Y-%m-%d %H:%M %Z")


def evaluate(schedule: WindowSchedule, at: datetime) -> WindowState:
    """Is a rollout allowed at ``at``, and until/from when?

    Open only if :func:`is_open` holds at every instant of
    ``[at, at + min_remaining]``.  When open, ``closes_at`` is the first
    instant that is no longer open (the raw close minus ``min_remaining``);
    when closed, ``opens_at`` is :func:`next_open`.  Either is None when it
    lies beyond ``at + HORIZON``.
    """
    at_utc = _require_aware(at, "at")
    zone = schedule.zone
    reason = _closed_reason(schedule, at_utc)
    raw_open = reason is None
    if raw_open:
        minimum = schedule.min_remaining
        closing = next(_changes(schedule, at_utc, True, at_utc + HORIZON + minimum), None)
        if closing is None:
            return WindowState(True, None, None, None)
        if at_utc + minimum < closing:
            return WindowState(True, None, None, (closing - minimum).astimezone(zone))
        local_at = at_utc.astimezone(zone)
        reason = (
            f"only {_format_duration(closing - at_utc)} left in the window "
            f"(closes {_format_local(closing.astimezone(zone), local_at)}), "
            f"need more than {_format_duration(minimum)}"
        )
    opening = _next_open_utc(schedule, at_utc, raw_open)
    return WindowState(False, reason, None if opening is None else opening.astimezone(zone), None)


def next_open(schedule: WindowSchedule, after: datetime) -> datetime | None:
    """Earliest instant ``>= after`` where :func:`evaluate` is open (None beyond the horizon)."""
    after_utc = _require_aware(after, "after")
    raw_open = _closed_reason(schedule, after_utc) is None
    opening = _next_open_utc(schedule, after_utc, raw_open)
    return None if opening is None else opening.astimezone(schedule.zone)


def next_change(schedule: WindowSchedule, at: datetime) -> datetime | None:
    """Earliest instant ``> at`` where :func:`evaluate`'s ``open`` differs from now."""
    state = evaluate(schedule, at)
    return state.closes_at if state.open else state.opens_at


def describe(schedule: WindowSchedule) -> str:
    """Short human text, e.g. ``"Sun-Thu 09:00-21:00 Asia/Jerusalem"``."""
    rules = "; ".join(str(rule) for rule in schedule.allow) or "any time"
    text = f"{rules} {schedule.zone.key}"
    extras: list[str] = []
    if schedule.holidays:
        extras.append("holidays " + ", ".join(str(cal) for cal in schedule.holidays))
    if schedule.extra_holidays:
        count = len(schedule.extra_holidays)
        extras.append(f"{count} extra closed date{'s' if count != 1 else ''}")
    for recurring in schedule.recurring_deny:
        extras.append(
            f"freeze {_MONTH_NAMES[recurring.start_month - 1]} {recurring.start_day}"
            f"-{_MONTH_NAMES[recurring.end_month - 1]} {recurring.end_day}"
        )
    if schedule.deny:
        count = len(schedule.deny)
        extras.append(f"{count} freeze period{'s' if count != 1 else ''}")
    if schedule.min_remaining:
        extras.append(f"min {_format_duration(schedule.min_remaining)} remaining")
    if extras:
        text += f" ({'; '.join(extras)})"
    return text
