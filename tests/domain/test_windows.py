"""Tests for deployment windows (puerta.domain.windows).

Deterministic tests pin each documented semantic (parsing, the seed
scenario, DST gaps and repeats, closed dates, freezes, min_remaining, the
horizon); property tests compare the module with brute-force oracles that
know nothing about candidate instants: one converts an instant to local
time and looks it up in a weekday x minute table, the other steps minute by
minute.  Minute stepping is exact for the zones used because every
boundary is a whole local minute, every offset is a whole number of
minutes and every transition happens on a whole UTC minute, so the status
can only change at whole-UTC-minute instants.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from puerta.domain import windows
from puerta.domain.windows import (
    EXTRA_HOLIDAY,
    HORIZON,
    OUTSIDE_WINDOW,
    AllowRule,
    DenyPeriod,
    HolidayCalendar,
    RecurringDeny,
    TimeRange,
    WindowSchedule,
    WindowState,
    describe,
    evaluate,
    is_open,
    next_change,
    next_open,
    parse_days,
)

JLM = ZoneInfo("Asia/Jerusalem")
NYC = ZoneInfo("America/New_York")
LDN = ZoneInfo("Europe/London")
LHI = ZoneInfo("Australia/Lord_Howe")
CHT = ZoneInfo("Pacific/Chatham")
SCL = ZoneInfo("America/Santiago")

SUN_THU = frozenset({6, 0, 1, 2, 3})
EVERY_DAY = frozenset(range(7))
MINUTE = timedelta(minutes=1)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def at_local(day: date, clock: time, zone: ZoneInfo, fold: int = 0) -> datetime:
    return datetime.combine(day, clock, tzinfo=zone).replace(fold=fold)


def as_utc(moment: datetime | None) -> datetime | None:
    """Normalise for comparison.

    ``==`` between aware datetimes in different zones is always False when one
    of them lies in a repeated (fall-back) hour (PEP 495), and between two
    datetimes sharing a ZoneInfo it ignores ``fold``; comparing in UTC avoids
    both traps.
    """
    return None if moment is None else moment.astimezone(UTC)


def utc_state(state: WindowState) -> WindowState:
    return WindowState(
        state.open, state.closed_because, as_utc(state.opens_at), as_utc(state.closes_at)
    )


def daily(zone: ZoneInfo, *ranges: str, **kwargs: object) -> WindowSchedule:
    rule = AllowRule(EVERY_DAY, tuple(TimeRange.parse(r) for r in ranges))
    return WindowSchedule(zone, (rule,), **kwargs)  # type: ignore[arg-type]


def seed_schedule(**kwargs: object) -> WindowSchedule:
    """Sun-Thu 09:00-21:00 Asia/Jerusalem, the schedule from the product brief."""
    return WindowSchedule(JLM, (AllowRule.parse("Sun-Thu", "09:00-21:00"),), **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# Parsing and validation
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sun-Thu", {6, 0, 1, 2, 3}),
        ("Mon-Fri", {0, 1, 2, 3, 4}),
        ("Sat", {5}),
        ("Mon,Wed,Fri", {0, 2, 4}),
        ("Fri-Mon", {4, 5, 6, 0}),
        ("sun-THU", {6, 0, 1, 2, 3}),
        (" Mon , Wed-Thu ", {0, 2, 3}),
        ("Mon-Mon", {0}),
        ("Mon-Sun", set(range(7))),
        ("Sat-Fri", set(range(7))),
    ],
)
def test_parse_days_valid(text: str, expected: set[int]) -> None:
    assert parse_days(text) == frozenset(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty day specification"),
        ("   ", "empty day specification"),
        ("Monday", "unknown day 'Monday'"),
        ("Mo", "unknown day 'Mo'"),
        ("1-5", "unknown day '1'"),
        ("Mon;Tue", "unknown day 'Mon;Tue'"),
        ("Mon-", "unknown day ''"),
        ("Mon-Wed-Fri", "invalid day range 'Mon-Wed-Fri'"),
        ("Mon,,Tue", "empty item"),
        ("Mon,", "empty item"),
    ],
)
def test_parse_days_invalid(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        parse_days(text)
    if "unknown day" in message:
        assert "Mon, Tue, Wed, Thu, Fri, Sat, Sun" in str(info.value)


def test_every_day_set_round_trips_through_its_text() -> None:
    for mask in range(1, 128):
        days = frozenset(d for d in range(7) if mask >> d & 1)
        text = str(AllowRule(days, (TimeRange.parse("09:00-10:00"),))).split(" ")[0]
        assert parse_days(text) == days, text
    assert str(AllowRule(SUN_THU, (TimeRange.parse("09:00-21:00"),))) == "Sun-Thu 09:00-21:00"
    assert str(AllowRule(frozenset({0, 2, 4}), (TimeRange.parse("09:00-21:00"),))).startswith(
        "Mon,Wed,Fri "
    )


@pytest.mark.parametrize(
    ("text", "start", "end", "crosses", "rendered"),
    [
        ("09:00-21:00", time(9), time(21), False, "09:00-21:00"),
        ("22:00-02:00", time(22), time(2), True, "22:00-02:00"),
        ("00:00-24:00", time(0), time(0), True, "00:00-24:00"),
        ("09:00-24:00", time(9), time(0), True, "09:00-24:00"),
        ("9:30 - 17:45", time(9, 30), time(17, 45), False, "09:30-17:45"),
        ("23:59-00:00", time(23, 59), time(0), True, "23:59-24:00"),
    ],
)
def test_time_range_parse_valid(
    text: str, start: time, end: time, crosses: bool, rendered: str
) -> None:
    parsed = TimeRange.parse(text)
    assert parsed == TimeRange(start, end)
    assert parsed.crosses_midnight is crosses
    assert str(parsed) == rendered


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected 'HH:MM-HH:MM'"),
        ("09:00", "expected 'HH:MM-HH:MM'"),
        ("09:00-21:00-22:00", "expected 'HH:MM-HH:MM'"),
        ("09:00-09:00", "start equals end"),
        ("00:00-00:00", "write '00:00-24:00' for the whole day"),
        ("24:00-09:00", "24:00 is only allowed as an end time"),
        ("25:00-26:00", "hours must be 00-23"),
        ("09:60-10:00", "minutes 00-59"),
        ("09:00-24:30", "hours must be 00-23"),
        ("9-17", "invalid time '9'"),
        ("ab:cd-ef:gh", "expected HH:MM"),
        ("09:00-21:0", "invalid time '21:0'"),
        ("09:00-21:00:00", "invalid time '21:00:00'"),
    ],
)
def test_time_range_parse_invalid(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        TimeRange.parse(text)


def test_time_range_constructor_validation() -> None:
    with pytest.raises(ValueError, match="start equals end"):
        TimeRange(time(9), time(9))
    with pytest.raises(ValueError, match="naive local wall-clock time"):
        TimeRange(time(9, tzinfo=UTC), time(10))
    whole_day = TimeRange(time(0), time(0))
    assert str(whole_day) == "00:00-24:00"
    assert whole_day == TimeRange.parse("00:00-24:00")


def test_allow_rule_validation() -> None:
    nine_to_five = (TimeRange.parse("09:00-17:00"),)
    with pytest.raises(ValueError, match="days must not be empty"):
        AllowRule(frozenset(), nine_to_five)
    with pytest.raises(ValueError, match=r"weekday numbers 0-6, got \[7\]"):
        AllowRule(frozenset({0, 7}), nine_to_five)
    with pytest.raises(ValueError, match="at least one TimeRange"):
        AllowRule(frozenset({0}), ())
    assert AllowRule.parse("Mon-Fri", "09:00-12:00", "13:00-17:00").ranges == (
        TimeRange(time(9), time(12)),
        TimeRange(time(13), time(17)),
    )


def test_deny_period_validation() -> None:
    with pytest.raises(ValueError, match=re.escape("DenyPeriod.start must be timezone-aware")):
        DenyPeriod(datetime(2026, 1, 1), utc(2026, 1, 2), "x")
    with pytest.raises(ValueError, match=re.escape("DenyPeriod.end must be timezone-aware")):
        DenyPeriod(utc(2026, 1, 1), datetime(2026, 1, 2), "x")
    with pytest.raises(ValueError, match="must be after start"):
        DenyPeriod(utc(2026, 1, 2), utc(2026, 1, 2), "x")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((13, 1, 1, 2), "start month must be 1-12, got 13"),
        ((12, 24, 0, 2), "end month must be 1-12, got 0"),
        ((4, 31, 5, 1), "start day must be 1-30 for month 4, got 31"),
        ((12, 24, 1, 0), "end day must be 1-31 for month 1, got 0"),
    ],
)
def test_recurring_deny_validation(args: tuple[int, int, int, int], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        RecurringDeny(*args, reason="x")


def test_recurring_deny_accepts_feb_29_and_wraps_the_year() -> None:
    leap = RecurringDeny(2, 29, 3, 1, "leap")
    assert leap.covers(date(2028, 2, 29))
    assert not leap.covers(date(2027, 2, 28))
    year_end = RecurringDeny(12, 24, 1, 2, "year end")
    assert [year_end.covers(d) for d in (date(2026, 12, 23), date(2026, 12, 24))] == [False, True]
    assert [year_end.covers(d) for d in (date(2027, 1, 2), date(2027, 1, 3))] == [True, False]
    summer = RecurringDeny(8, 1, 8, 15, "summer")
    assert summer.covers(date(2026, 8, 15))
    assert not summer.covers(date(2026, 8, 16))
    assert not summer.covers(date(2026, 1, 1))


def test_holiday_calendar_validation() -> None:
    with pytest.raises(ValueError, match="unknown holiday country 'XX'"):
        HolidayCalendar("XX")
    with pytest.raises(ValueError, match=re.escape("did you mean 'IL'?")):
        HolidayCalendar("il")
    with pytest.raises(ValueError, match="unknown subdivision 'ZZ' for holiday country 'US'"):
        HolidayCalendar("US", "ZZ")
    with pytest.raises(ValueError, match=re.escape("did you mean 'CA'?")):
        HolidayCalendar("US", "ca")
    with pytest.raises(ValueError, match="known subdivisions: none"):
        HolidayCalendar("IL", "TA")
    assert HolidayCalendar("US", "CA").holiday_name(date(2026, 3, 31)) is not None  # Cesar Chavez
    assert HolidayCalendar("US").holiday_name(date(2026, 3, 31)) is None


def test_window_schedule_validation() -> None:
    with pytest.raises(ValueError, match="min_remaining must not be negative"):
        WindowSchedule(JLM, min_remaining=timedelta(minutes=-1))
    with pytest.raises(ValueError, match=re.escape("dates (not datetimes)")):
        WindowSchedule(JLM, extra_holidays=frozenset({datetime(2026, 1, 1)}))
    with pytest.raises(TypeError, match=re.escape("zoneinfo.ZoneInfo")):
        WindowSchedule(UTC)  # type: ignore[arg-type]
    listed = WindowSchedule(JLM, [AllowRule.parse("Mon", "09:00-10:00")])  # type: ignore[arg-type]
    assert isinstance(listed.allow, tuple)
    hash(listed)


@pytest.mark.parametrize(
    "call",
    [
        lambda s, t: is_open(s, t),
        lambda s, t: evaluate(s, t),
        lambda s, t: next_open(s, t),
        lambda s, t: next_change(s, t),
    ],
    ids=["is_open", "evaluate", "next_open", "next_change"],
)
def test_naive_instants_are_rejected(call: object) -> None:
    with pytest.raises(ValueError, match="must be timezone-aware"):
        call(seed_schedule(), datetime(2026, 11, 27, 14, 0))  # type: ignore[operator]


# --------------------------------------------------------------------------
# Seed scenario: Sun-Thu 09:00-21:00 Asia/Jerusalem
# --------------------------------------------------------------------------


def test_friday_afternoon_is_closed_until_sunday_morning() -> None:
    friday = datetime(2026, 11, 27, 14, 0, tzinfo=JLM)
    assert friday.weekday() == 4
    state = evaluate(seed_schedule(), friday)
    sunday_nine = datetime(2026, 11, 29, 9, 0, tzinfo=JLM)
    assert state == WindowState(False, OUTSIDE_WINDOW, sunday_nine, None)
    assert next_open(seed_schedule(), friday) == sunday_nine
    assert next_open(seed_schedule(), friday).tzinfo is JLM  # type: ignore[union-attr]
    assert next_change(seed_schedule(), friday) == sunday_nine
    assert not is_open(seed_schedule(), friday)


def test_thursday_evening_boundary_is_exclusive() -> None:
    schedule = seed_schedule()
    before = datetime(2026, 11, 26, 20, 59, tzinfo=JLM)
    closing = datetime(2026, 11, 26, 21, 0, tzinfo=JLM)
    assert is_open(schedule, before)
    assert is_open(schedule, closing - timedelta(microseconds=1))
    assert not is_open(schedule, closing)
    assert evaluate(schedule, before) == WindowState(True, None, None, closing)
    assert next_change(schedule, before) == closing
    assert evaluate(schedule, closing).opens_at == datetime(2026, 11, 29, 9, 0, tzinfo=JLM)


def test_opening_instant_is_inclusive_and_instants_in_other_zones_work() -> None:
    schedule = seed_schedule()
    sunday_nine = datetime(2026, 11, 29, 9, 0, tzinfo=JLM)
    as_utc = sunday_nine.astimezone(UTC)
    assert is_open(schedule, as_utc)
    assert not is_open(schedule, as_utc - timedelta(microseconds=1))
    opened = next_open(schedule, as_utc)
    assert opened == sunday_nine
    assert opened is not None and opened.tzinfo is JLM


def _next_il_work_day(after: date, il: holidays.HolidayBase) -> date:
    day = after + timedelta(days=1)
    while day.weekday() not in SUN_THU or day in il:
        day += timedelta(days=1)
    return day


def test_israeli_holiday_on_a_sunday_moves_the_opening_to_the_next_work_day() -> None:
    il = holidays.country_holidays("IL", years=2027)
    sundays = sorted(day for day in il if day.weekday() == 6)
    assert sundays, "expected at least one Israeli holiday on a Sunday in 2027"
    holiday = sundays[0]
    friday_before = datetime.combine(holiday - timedelta(days=2), time(14), tzinfo=JLM)
    plain = seed_schedule()
    with_holidays = seed_schedule(holidays=(HolidayCalendar("IL"),))
    assert next_open(plain, friday_before) == at_local(holiday, time(9), JLM)
    expected = at_local(_next_il_work_day(holiday, il), time(9), JLM)
    assert next_open(with_holidays, friday_before) == expected
    assert expected.date() > holiday
    state = evaluate(with_holidays, at_local(holiday, time(12), JLM))
    assert state == WindowState(False, f"holiday: {il[holiday]}", expected, None)


def test_every_2027_israeli_work_day_holiday_is_skipped() -> None:
    il = holidays.country_holidays("IL", years=2027)
    schedule = seed_schedule(holidays=(HolidayCalendar("IL"),))
    work_day_holidays = sorted(day for day in il if day.weekday() in SUN_THU)
    assert work_day_holidays
    for holiday in work_day_holidays:
        morning = at_local(holiday, time(8), JLM)
        assert next_open(schedule, morning) == at_local(
            _next_il_work_day(holiday, il), time(9), JLM
        )
        assert not is_open(schedule, at_local(holiday, time(12), JLM))


def test_describe() -> None:
    assert describe(seed_schedule()) == "Sun-Thu 09:00-21:00 Asia/Jerusalem"
    assert describe(WindowSchedule(ZoneInfo("UTC"))) == "any time UTC"
    busy = WindowSchedule(
        NYC,
        (
            AllowRule.parse("Mon-Fri", "09:00-12:00", "13:00-17:00"),
            AllowRule.parse("Sat", "22:00-02:00"),
        ),
        deny=(DenyPeriod(utc(2026, 1, 1), utc(2026, 1, 2), "x"),),
        recurring_deny=(RecurringDeny(12, 24, 1, 2, "year end"),),
        holidays=(HolidayCalendar("US", "CA"),),
        extra_holidays=frozenset({date(2026, 7, 3)}),
        min_remaining=timedelta(hours=1, minutes=30),
    )
    assert describe(busy) == (
        "Mon-Fri 09:00-12:00,13:00-17:00; Sat 22:00-02:00 America/New_York "
        "(holidays US-CA; 1 extra closed date; freeze Dec 24-Jan 2; 1 freeze period; "
        "min 1h30m remaining)"
    )


# --------------------------------------------------------------------------
# Closed dates, freezes, reasons
# --------------------------------------------------------------------------

FRI_NIGHT = AllowRule.parse("Fri", "22:00-02:00")


def test_range_crossing_midnight_belongs_to_the_day_it_starts_on() -> None:
    schedule = WindowSchedule(JLM, (FRI_NIGHT,))
    friday, saturday = date(2026, 11, 27), date(2026, 11, 28)
    assert is_open(schedule, at_local(friday, time(23), JLM))
    assert is_open(schedule, at_local(saturday, time(1, 59), JLM))
    assert not is_open(schedule, at_local(saturday, time(2), JLM))
    # Friday 00:00-02:00 is the tail of Thursday, which is not allowed.
    assert not is_open(schedule, at_local(friday, time(1), JLM))
    assert evaluate(schedule, at_local(friday, time(23), JLM)).closes_at == at_local(
        saturday, time(2), JLM
    )


def test_holiday_closes_the_after_midnight_tail_of_the_previous_day() -> None:
    friday, saturday = date(2026, 11, 27), date(2026, 11, 28)
    schedule = WindowSchedule(JLM, (FRI_NIGHT,), extra_holidays=frozenset({saturday}))
    state = evaluate(schedule, at_local(friday, time(23), JLM))
    assert state == WindowState(True, None, None, at_local(saturday, time(0), JLM))
    tail = evaluate(schedule, at_local(saturday, time(1), JLM))
    assert tail.closed_because == EXTRA_HOLIDAY
    assert tail.opens_at == at_local(date(2026, 12, 4), time(22), JLM)


def test_holiday_closes_only_its_own_date() -> None:
    friday, saturday = date(2026, 11, 27), date(2026, 11, 28)
    schedule = WindowSchedule(JLM, (FRI_NIGHT,), extra_holidays=frozenset({friday}))
    state = evaluate(schedule, at_local(friday, time(23), JLM))
    assert state == WindowState(False, EXTRA_HOLIDAY, at_local(saturday, time(0), JLM), None)
    assert evaluate(schedule, at_local(saturday, time(0), JLM)).closes_at == at_local(
        saturday, time(2), JLM
    )


def test_holiday_closes_the_whole_local_date_without_allow_rules() -> None:
    holiday = date(2026, 12, 25)
    schedule = WindowSchedule(NYC, holidays=(HolidayCalendar("US"),))
    eve = at_local(holiday - timedelta(days=1), time(23, 59), NYC)
    state = evaluate(schedule, eve)
    assert state == WindowState(True, None, None, at_local(holiday, time(0), NYC))
    closed = evaluate(schedule, at_local(holiday, time(12), NYC))
    assert (
        closed.closed_because == f"holiday: {holidays.country_holidays('US', years=2026)[holiday]}"
    )
    assert closed.opens_at == at_local(holiday + timedelta(days=1), time(0), NYC)


def test_freeze_inside_the_window() -> None:
    thursday = date(2026, 11, 26)
    freeze = DenyPeriod(
        at_local(thursday, time(12), JLM),
        at_local(thursday, time(15), JLM).astimezone(UTC),
        "release freeze",
    )
    schedule = seed_schedule(deny=(freeze,))
    assert evaluate(schedule, at_local(thursday, time(11), JLM)).closes_at == at_local(
        thursday, time(12), JLM
    )
    state = evaluate(schedule, at_local(thursday, time(13), JLM))
    assert state == WindowState(
        False, "freeze: release freeze", at_local(thursday, time(15), JLM), None
    )
    assert state.opens_at is not None and state.opens_at.tzinfo is JLM
    assert is_open(schedule, at_local(thursday, time(15), JLM))


def test_freeze_reason_wins_over_holiday_and_outside_window() -> None:
    friday = at_local(date(2026, 11, 27), time(14), JLM)
    freeze = DenyPeriod(friday - timedelta(hours=1), friday + timedelta(hours=1), "incident")
    schedule = seed_schedule(deny=(freeze,), extra_holidays=frozenset({friday.date()}))
    assert evaluate(schedule, friday).closed_because == "freeze: incident"
    assert (
        evaluate(seed_schedule(extra_holidays=frozenset({friday.date()})), friday).closed_because
        == EXTRA_HOLIDAY
    )


def test_freeze_that_ends_outside_the_window_opens_at_the_next_range_start() -> None:
    sunday = date(2026, 11, 29)
    freeze = DenyPeriod(
        at_local(date(2026, 11, 26), time(10), JLM), at_local(sunday, time(9, 30), JLM), "audit"
    )
    schedule = seed_schedule(deny=(freeze,))
    state = evaluate(schedule, at_local(date(2026, 11, 27), time(12), JLM))
    assert state.closed_because == "freeze: audit"
    assert state.opens_at == at_local(sunday, time(9, 30), JLM)


def test_recurring_freeze_wraps_the_year_end() -> None:
    schedule = seed_schedule(recurring_deny=(RecurringDeny(12, 24, 1, 2, "year end"),))
    before = at_local(date(2026, 12, 23), time(20), JLM)
    assert evaluate(schedule, before).closes_at == at_local(date(2026, 12, 23), time(21), JLM)
    state = evaluate(schedule, at_local(date(2026, 12, 24), time(10), JLM))
    assert date(2027, 1, 3).weekday() == 6
    assert state == WindowState(
        False, "freeze: year end", at_local(date(2027, 1, 3), time(9), JLM), None
    )
    assert not is_open(schedule, at_local(date(2026, 12, 31), time(10), JLM))


# --------------------------------------------------------------------------
# min_remaining
# --------------------------------------------------------------------------


def test_min_remaining_shortens_the_window_by_its_length() -> None:
    schedule = seed_schedule(min_remaining=timedelta(hours=2))
    thursday = date(2026, 11, 26)
    assert evaluate(schedule, at_local(thursday, time(18, 59), JLM)) == WindowState(
        True, None, None, at_local(thursday, time(19), JLM)
    )
    assert is_open(schedule, at_local(thursday, time(19), JLM))  # raw membership
    exactly = evaluate(schedule, at_local(thursday, time(19), JLM))
    assert exactly == WindowState(
        False,
        "only 2h left in the window (closes 21:00 IST), need more than 2h",
        at_local(date(2026, 11, 29), time(9), JLM),
        None,
    )
    later = evaluate(schedule, at_local(thursday, time(19, 30), JLM))
    assert (
        later.closed_because
        == "only 1h30m left in the window (closes 21:00 IST), need more than 2h"
    )
    assert next_change(schedule, at_local(thursday, time(18), JLM)) == at_local(
        thursday, time(19), JLM
    )


def test_min_remaining_counts_a_stretch_continuing_past_midnight() -> None:
    schedule = daily(JLM, "20:00-24:00", "00:00-03:00", min_remaining=timedelta(hours=4))
    day = date(2026, 11, 26)
    state = evaluate(schedule, at_local(day, time(22, 30), JLM))
    assert state == WindowState(True, None, None, at_local(day, time(23), JLM))
    tomorrow = day + timedelta(days=1)
    late = evaluate(schedule, at_local(day, time(23, 30), JLM))
    assert late.closed_because == (
        "only 3h30m left in the window (closes 2026-11-27 03:00 IST), need more than 4h"
    )
    assert late.opens_at == at_local(tomorrow, time(20), JLM)


def test_stretch_exactly_min_remaining_long_never_opens() -> None:
    schedule = WindowSchedule(
        JLM,
        (AllowRule.parse("Mon", "09:00-11:00"), AllowRule.parse("Tue", "09:00-11:01")),
        min_remaining=timedelta(hours=2),
    )
    monday = at_local(date(2026, 11, 23), time(8), JLM)
    tuesday_nine = at_local(date(2026, 11, 24), time(9), JLM)
    assert next_open(schedule, monday) == tuesday_nine
    assert evaluate(schedule, tuesday_nine).closes_at == tuesday_nine + MINUTE


def test_stretch_shorter_than_min_remaining_never_opens() -> None:
    schedule = WindowSchedule(
        JLM,
        (AllowRule.parse("Mon-Fri", "09:00-10:00"), AllowRule.parse("Sun", "09:00-12:00")),
        min_remaining=timedelta(hours=2),
    )
    monday = at_local(date(2026, 11, 23), time(8), JLM)
    assert next_open(schedule, monday) == at_local(date(2026, 11, 29), time(9), JLM)
    state = evaluate(schedule, at_local(date(2026, 11, 23), time(9), JLM))
    assert not state.open
    assert state.closed_because is not None and state.closed_because.startswith("only 1h left")


# --------------------------------------------------------------------------
# Horizon
# --------------------------------------------------------------------------


def test_always_open_schedule_never_closes_within_the_horizon() -> None:
    state = evaluate(WindowSchedule(JLM), utc(2026, 5, 1))
    assert state == WindowState(True, None, None, None)
    assert next_change(WindowSchedule(JLM), utc(2026, 5, 1)) is None


def test_freeze_beyond_the_horizon_is_not_reported() -> None:
    start = utc(2026, 5, 1)
    near = DenyPeriod(start + timedelta(days=300), start + timedelta(days=301), "late")
    far = DenyPeriod(start + HORIZON + timedelta(minutes=1), start + HORIZON * 2, "far")
    assert evaluate(WindowSchedule(JLM, deny=(near,)), start).closes_at == near.start
    assert evaluate(WindowSchedule(JLM, deny=(far,)), start).closes_at is None
    at_edge = DenyPeriod(start + HORIZON, start + HORIZON * 2, "edge")
    assert evaluate(WindowSchedule(JLM, deny=(at_edge,)), start).closes_at == at_edge.start


def test_never_opening_within_the_horizon_gives_none() -> None:
    start = utc(2026, 5, 1)
    long_freeze = DenyPeriod(start, start + timedelta(days=400), "long")
    schedule = seed_schedule(deny=(long_freeze,))
    state = evaluate(schedule, start)
    assert state == WindowState(False, "freeze: long", None, None)
    assert next_open(schedule, start) is None
    short = seed_schedule(deny=(DenyPeriod(start, start + timedelta(days=360), "long"),))
    assert date(2027, 4, 26).weekday() == 0
    assert next_open(short, start) == at_local(date(2027, 4, 26), time(9), JLM)


# --------------------------------------------------------------------------
# DST
# --------------------------------------------------------------------------

# (zone, local date of the 2026 transition); offsets are asserted to differ
# across each date so a tzdata change cannot silently empty the test.
TRANSITION_DAYS = [
    (JLM, date(2026, 3, 27)),
    (JLM, date(2026, 10, 25)),
    (NYC, date(2026, 3, 8)),
    (NYC, date(2026, 11, 1)),
    (LDN, date(2026, 3, 29)),
    (LDN, date(2026, 10, 25)),
    (LHI, date(2026, 4, 5)),
    (LHI, date(2026, 10, 4)),
    (CHT, date(2026, 4, 5)),
    (CHT, date(2026, 9, 27)),
]


@pytest.mark.parametrize(("zone", "day"), TRANSITION_DAYS, ids=lambda v: str(v))
def test_daytime_window_stays_local_across_transitions(zone: ZoneInfo, day: date) -> None:
    schedule = daily(zone, "09:00-21:00")
    before, after = day - timedelta(days=1), day + timedelta(days=1)
    assert at_local(before, time(9), zone).utcoffset() != at_local(after, time(9), zone).utcoffset()
    for current in (before, day, after):
        nine, nine_pm = at_local(current, time(9), zone), at_local(current, time(21), zone)
        assert evaluate(schedule, nine - MINUTE).opens_at == nine
        assert evaluate(schedule, nine) == WindowState(True, None, None, nine_pm)
        assert is_open(schedule, nine_pm - MINUTE)
        assert not is_open(schedule, nine_pm)
        assert nine_pm.astimezone(UTC) - nine.astimezone(UTC) == timedelta(hours=12)
        opened = next_open(schedule, nine - timedelta(hours=3))
        assert opened is not None and opened.tzinfo is zone
        assert (opened.hour, opened.minute) == (9, 0)


@pytest.mark.parametrize(
    ("zone", "ranges", "jump_utc", "local_after"),
    [
        (NYC, "02:30-05:00", utc(2026, 3, 8, 7), time(3)),  # 02:00 EST -> 03:00 EDT
        (JLM, "02:15-05:00", utc(2026, 3, 27, 0), time(3)),  # 02:00 IST -> 03:00 IDT
        (LHI, "02:15-06:00", utc(2026, 10, 3, 15, 30), time(2, 30)),  # 02:00 -> 02:30
        (CHT, "03:00-08:00", utc(2026, 9, 26, 14), time(3, 45)),  # 02:45 -> 03:45
    ],
)
def test_range_starting_in_a_skipped_hour_opens_at_the_jump(
    zone: ZoneInfo, ranges: str, jump_utc: datetime, local_after: time
) -> None:
    schedule = daily(zone, ranges)
    assert jump_utc.astimezone(zone).time() == local_after
    assert not is_open(schedule, jump_utc - timedelta(seconds=1))
    assert is_open(schedule, jump_utc)
    state = evaluate(schedule, jump_utc - timedelta(hours=1))
    assert state.opens_at == jump_utc
    assert next_change(schedule, jump_utc - timedelta(minutes=1)) == jump_utc


@pytest.mark.parametrize(
    ("zone", "ranges", "jump_utc"),
    [
        (NYC, "22:00-02:30", utc(2026, 3, 8, 7)),
        (LHI, "22:00-02:15", utc(2026, 10, 3, 15, 30)),
        (CHT, "22:00-03:00", utc(2026, 9, 26, 14)),
    ],
)
def test_range_ending_in_a_skipped_hour_closes_at_the_jump(
    zone: ZoneInfo, ranges: str, jump_utc: datetime
) -> None:
    schedule = daily(zone, ranges)
    assert is_open(schedule, jump_utc - timedelta(seconds=1))
    assert not is_open(schedule, jump_utc)
    assert evaluate(schedule, jump_utc - timedelta(hours=1)).closes_at == jump_utc


# Fall-back instants: NYC 2026-11-01 06:00 UTC (02:00 EDT -> 01:00 EST),
# Lord Howe 2026-04-04 15:00 UTC (02:00 +11 -> 01:30 +10:30),
# Chatham 2026-04-04 14:00 UTC (03:45 +13:45 -> 02:45 +12:45).
REPEATS = [
    # zone, boundary inside the repeated span, first and second occurrence (UTC), jump back
    (NYC, "01:30", utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 6, 30), utc(2026, 11, 1, 6)),
    (LHI, "01:45", utc(2026, 4, 4, 14, 45), utc(2026, 4, 4, 15, 15), utc(2026, 4, 4, 15)),
    (CHT, "03:00", utc(2026, 4, 4, 13, 15), utc(2026, 4, 4, 14, 15), utc(2026, 4, 4, 14)),
]


@pytest.mark.parametrize(("zone", "boundary", "first", "second", "jump"), REPEATS)
def test_range_starting_in_a_repeated_hour_follows_the_wall_clock_twice(
    zone: ZoneInfo, boundary: str, first: datetime, second: datetime, jump: datetime
) -> None:
    schedule = daily(zone, f"{boundary}-09:00")
    assert first.astimezone(zone).time() == second.astimezone(zone).time()
    assert as_utc(evaluate(schedule, first - timedelta(minutes=10)).opens_at) == first
    opened = evaluate(schedule, first)
    assert utc_state(opened) == WindowState(True, None, None, jump)  # closes at the jump back
    assert opened.closes_at is not None and opened.closes_at.tzinfo is zone
    closed = evaluate(schedule, jump)
    assert utc_state(closed) == WindowState(False, OUTSIDE_WINDOW, second, None)
    assert closed.opens_at is not None and closed.opens_at.fold == 1
    assert evaluate(schedule, second).open
    assert as_utc(next_open(schedule, jump)) == second
    assert as_utc(next_change(schedule, first)) == jump


@pytest.mark.parametrize(("zone", "boundary", "first", "second", "jump"), REPEATS)
def test_range_ending_in_a_repeated_hour_reopens_for_the_second_pass(
    zone: ZoneInfo, boundary: str, first: datetime, second: datetime, jump: datetime
) -> None:
    schedule = daily(zone, f"22:00-{boundary}")
    assert as_utc(evaluate(schedule, first - timedelta(minutes=10)).closes_at) == first
    assert utc_state(evaluate(schedule, first)) == WindowState(False, OUTSIDE_WINDOW, jump, None)
    assert utc_state(evaluate(schedule, jump)) == WindowState(True, None, None, second)
    assert not is_open(schedule, second)
    evening = at_local(second.astimezone(zone).date(), time(22), zone)
    assert as_utc(next_change(schedule, second)) == as_utc(evening)


def test_midnight_gap_starts_the_new_local_date_at_the_jump() -> None:
    # America/Santiago 2026-09-06: 24:00 -04 -> 01:00 -03 at 04:00 UTC.
    jump = utc(2026, 9, 6, 4)
    assert jump.astimezone(SCL).replace(tzinfo=None) == datetime(2026, 9, 6, 1)
    schedule = WindowSchedule(SCL, extra_holidays=frozenset({date(2026, 9, 6)}))
    assert utc_state(evaluate(schedule, jump - timedelta(hours=2))) == WindowState(
        True, None, None, jump
    )
    assert evaluate(schedule, jump).opens_at == at_local(date(2026, 9, 7), time(0), SCL)


def test_midnight_fall_back_repeats_the_last_hour_of_the_old_date() -> None:
    # America/Santiago 2026-04-05 03:00 UTC: 24:00 -03 -> 23:00 -04 (Apr 4).
    schedule = WindowSchedule(SCL, extra_holidays=frozenset({date(2026, 4, 5)}))
    jump = utc(2026, 4, 5, 3)
    assert jump.astimezone(SCL).replace(tzinfo=None) == datetime(2026, 4, 4, 23)
    assert as_utc(evaluate(schedule, jump - MINUTE).closes_at) == utc(2026, 4, 5, 4)
    late = daily(SCL, "23:30-23:45")
    assert as_utc(evaluate(late, utc(2026, 4, 5, 2, 40)).closes_at) == utc(2026, 4, 5, 2, 45)
    assert as_utc(evaluate(late, utc(2026, 4, 5, 2, 50)).opens_at) == utc(2026, 4, 5, 3, 30)


# --------------------------------------------------------------------------
# The search does not step minute by minute
# --------------------------------------------------------------------------


def _count_status_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    real = windows._closed_reason

    def counting(schedule: WindowSchedule, instant: datetime) -> str | None:
        calls[0] += 1
        return real(schedule, instant)

    monkeypatch.setattr(windows, "_closed_reason", counting)
    return calls


def test_search_checks_only_candidate_instants(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_status_checks(monkeypatch)
    friday = datetime(2026, 11, 27, 14, 0, tzinfo=JLM)
    assert next_open(seed_schedule(), friday) == datetime(2026, 11, 29, 9, 0, tzinfo=JLM)
    # Minute stepping would need ~2,580 checks for these 43 hours.
    assert calls[0] <= 20


def test_year_long_search_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    start = utc(2026, 5, 1)
    schedule = seed_schedule(deny=(DenyPeriod(start, start + timedelta(days=400), "long"),))
    calls = _count_status_checks(monkeypatch)
    assert next_open(schedule, start) is None
    assert calls[0] <= 367 * 4  # three wall marks a day plus a few edges


# --------------------------------------------------------------------------
# Property-based comparison with brute-force oracles
# --------------------------------------------------------------------------

PROPERTY_ZONES = [
    "Asia/Jerusalem",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "UTC",
    "America/Santiago",
]
SPAN_START = utc(2026, 1, 1)
SPAN_MINUTES = 2 * 365 * 24 * 60 - 10 * 24 * 60  # keep the oracle horizon inside 2026-2027
ORACLE_DAYS = 9


@functools.cache
def zone_transitions(name: str) -> tuple[datetime, ...]:
    """UTC instants in 2026-2027 where the zone's offset changes (brute force)."""
    zone = ZoneInfo(name)
    found: list[datetime] = []
    moment = SPAN_START
    previous = moment.astimezone(zone).utcoffset()
    while moment < utc(2028, 1, 1):
        later = moment + timedelta(hours=1)
        offset = later.astimezone(zone).utcoffset()
        if offset != previous:
            minute = moment
            while minute.astimezone(zone).utcoffset() == previous:
                minute += MINUTE
            found.append(minute)
        moment, previous = later, offset
    return tuple(found)


@functools.cache
def holiday_dates(country: str, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays(country, years=year))


class Spec:
    """A random schedule in raw form, plus the oracle that reads it directly."""

    def __init__(
        self,
        zone: ZoneInfo,
        rules: list[tuple[frozenset[int], list[tuple[int, int]]]],
        deny: list[tuple[datetime, datetime]],
        extra: frozenset[date],
        recurring: list[tuple[date, date]],
        country: str | None,
        min_remaining_minutes: int,
    ) -> None:
        self.zone = zone
        self.rules = rules
        self.deny = deny
        self.extra = extra
        self.recurring = recurring
        self.recurring_keys = {
            (d.month, d.day)
            for first, last in recurring
            for d in (first + timedelta(days=i) for i in range((last - first).days + 1))
        }
        self.country = country
        self.min_remaining_minutes = min_remaining_minutes
        # table[weekday][minute of day] for the local date an instant shows
        self.table = [[False] * 1440 for _ in range(7)]
        for days, ranges in rules:
            for day in days:
                for start, end in ranges:
                    if end > start:
                        self._mark(day, start, end)
                    else:
                        self._mark(day, start, 1440)
                        self._mark((day + 1) % 7, 0, end)

    def _mark(self, day: int, start: int, end: int) -> None:
        for minute in range(start, end):
            self.table[day][minute] = True

    def schedule(self) -> WindowSchedule:
        def clock(minute: int) -> time:
            return time(minute // 60 % 24, minute % 60)

        return WindowSchedule(
            self.zone,
            tuple(
                AllowRule(days, tuple(TimeRange(clock(s), clock(e)) for s, e in ranges))
                for days, ranges in self.rules
            ),
            deny=tuple(DenyPeriod(s, e, f"deny {i}") for i, (s, e) in enumerate(self.deny)),
            recurring_deny=tuple(
                RecurringDeny(a.month, a.day, b.month, b.day, "recurring")
                for a, b in self.recurring
            ),
            holidays=(HolidayCalendar(self.country),) if self.country else (),
            extra_holidays=self.extra,
            min_remaining=timedelta(minutes=self.min_remaining_minutes),
        )

    def open_at(self, instant: datetime) -> bool:
        if any(start <= instant < end for start, end in self.deny):
            return False
        local = instant.astimezone(self.zone)
        day = local.date()
        if day in self.extra or (day.month, day.day) in self.recurring_keys:
            return False
        if self.country and day in holiday_dates(self.country, day.year):
            return False
        if not self.rules:
            return True
        return self.table[day.weekday()][local.hour * 60 + local.minute]

    def __repr__(self) -> str:
        return (
            f"Spec({self.zone.key}, rules={self.rules}, deny={self.deny}, extra={set(self.extra)},"
            f" recurring={self.recurring}, country={self.country},"
            f" min_remaining={self.min_remaining_minutes})"
        )


# Boundaries are biased towards the small hours, where the DST changes are.
minute_of_day = st.one_of(st.integers(0, 1439), st.integers(0, 300))
time_ranges = st.one_of(
    st.tuples(minute_of_day, minute_of_day).filter(lambda r: r[0] != r[1]),
    st.just((0, 0)),
)
allow_rules = st.tuples(
    st.frozensets(st.integers(0, 6), min_size=1), st.lists(time_ranges, min_size=1, max_size=3)
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Spec, datetime]:
    zone_name = draw(st.sampled_from(PROPERTY_ZONES))
    zone = ZoneInfo(zone_name)
    transitions = zone_transitions(zone_name)
    kind = draw(st.sampled_from(["uniform", "dst", "dst", "year end"]))
    if kind == "dst" and transitions:
        near = draw(st.sampled_from(transitions))
        base = near + timedelta(minutes=draw(st.integers(-3 * 1440, 3 * 1440)))
    elif kind == "year end":  # recurring denies wrap here
        base = utc(2026, 12, 31) + timedelta(minutes=draw(st.integers(-5 * 1440, 3 * 1440)))
    else:
        base = SPAN_START + timedelta(minutes=draw(st.integers(0, SPAN_MINUTES)))
    at = base + timedelta(seconds=draw(st.one_of(st.just(0), st.integers(1, 59))))
    local_day = base.astimezone(zone).date()

    rules = draw(st.lists(allow_rules, max_size=2))
    deny = [
        (base + timedelta(minutes=offset), base + timedelta(minutes=offset + length))
        for offset, length in draw(
            st.lists(
                st.tuples(st.integers(-2 * 1440, 8 * 1440), st.integers(1, 3 * 1440)),
                max_size=2,
            )
        )
    ]
    extra = frozenset(
        local_day + timedelta(days=n) for n in draw(st.sets(st.integers(-1, 8), max_size=2))
    )
    recurring = [
        (local_day + timedelta(days=first), local_day + timedelta(days=first + length))
        for first, length in draw(
            st.lists(st.tuples(st.integers(-2, 8), st.integers(0, 3)), max_size=1)
        )
    ]
    country = draw(st.sampled_from([None, None, "US", "IL"]))
    min_remaining = draw(st.one_of(st.just(0), st.integers(1, 6 * 60)))
    use_range_length = draw(st.booleans())
    if rules and use_range_length:
        # exactly the length of a range: a stretch that long must not open
        start, end = rules[0][1][0]
        min_remaining = (end - start) % 1440 or 1440
    spec = Spec(zone, rules, deny, extra, recurring, country, min_remaining)
    return spec, at


@settings(max_examples=500, deadline=None, database=None)
@given(scenarios())
def test_is_open_matches_local_time_oracle(scenario: tuple[Spec, datetime]) -> None:
    spec, at = scenario
    schedule = spec.schedule()
    for probe in (at, at + timedelta(minutes=37), at + timedelta(hours=5, minutes=1)):
        assert is_open(schedule, probe) == spec.open_at(probe), probe


def _evaluate_oracle(raw: list[bool], minimum: int, count: int) -> list[bool]:
    """Minute i is open iff minutes i .. i + minimum are all raw-open."""
    next_closed = [len(raw)] * (len(raw) + 1)
    for i in range(len(raw) - 1, -1, -1):
        next_closed[i] = i if not raw[i] else next_closed[i + 1]
    return [next_closed[i] > i + minimum for i in range(count)]


def _assert_matches(
    actual: datetime | None, expected: datetime | None, horizon: datetime, zone: ZoneInfo
) -> None:
    if expected is None:
        assert actual is None or actual >= horizon, actual
    else:
        assert as_utc(actual) == expected
        assert actual is not None and actual.tzinfo is zone


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(scenarios())
def test_search_matches_minute_stepping_oracle(scenario: tuple[Spec, datetime]) -> None:
    spec, at = scenario
    schedule = spec.schedule()
    base = at.replace(second=0, microsecond=0)
    count = ORACLE_DAYS * 1440
    minimum = spec.min_remaining_minutes
    raw = [spec.open_at(base + i * MINUTE) for i in range(count + minimum + 1)]
    flips = [i for i in range(1, count) if raw[i] != raw[i - 1]]
    for i in sorted({*range(0, count, 7), *flips, *(i - 1 for i in flips)}):
        assert is_open(schedule, base + i * MINUTE) == raw[i], base + i * MINUTE
    usable = _evaluate_oracle(raw, minimum, count)

    state = evaluate(schedule, at)
    assert state.open == usable[0]
    first_open = next((j for j in range(1, count) if usable[j]), None)
    first_flip = next((j for j in range(1, count) if usable[j] != usable[0]), None)
    expected_open = at if usable[0] else None if first_open is None else base + first_open * MINUTE
    expected_change = None if first_flip is None else base + first_flip * MINUTE
    horizon = base + count * MINUTE
    _assert_matches(next_open(schedule, at), expected_open, horizon, spec.zone)
    _assert_matches(next_change(schedule, at), expected_change, horizon, spec.zone)

    if state.open:
        assert state.closed_because is None and state.opens_at is None
        assert as_utc(state.closes_at) == as_utc(next_change(schedule, at))
    else:
        assert state.closed_because and state.closes_at is None
        assert as_utc(state.opens_at) == as_utc(next_open(schedule, at))
        if raw[0] and is_open(schedule, at):
            assert state.closed_because.startswith("only ")
