"""The ``window`` gate: roll out only inside deployment windows (see ``domain/windows.py``).

While the window is closed the gate waits, saying why and when it opens, e.g.::

    outside the production deployment window (Sun-Thu 09:00-21:00 Asia/Jerusalem);
    opens Sun 2026-11-29 09:00 IST, in 1d 19h

A break-glass override (``puerta override``) given to the waiting rollout passes the gate,
and the answer says so. The release-train place ("3rd in line") is added by the evaluator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from puerta.domain import windows
from puerta.domain.decisions import GateResult, Outcome
from puerta.domain.durations import format_duration, parse_duration
from puerta.domain.gates.base import GateContext, GateOptions
from puerta.domain.gates.registry import register
from puerta.domain.hooks import CONFIRM_HOOKS, HookType


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AllowSpec(_Strict):
    days: str = Field(description="e.g. Sun-Thu, Mon-Fri, Sat, Mon,Wed,Fri")
    hours: list[str] = Field(
        default_factory=lambda: ["00:00-24:00"],
        min_length=1,
        description="local time ranges, e.g. 09:00-21:00; 22:00-02:00 crosses midnight",
    )

    @field_validator("hours", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def build(self) -> windows.AllowRule:
        return windows.AllowRule.parse(self.days, *self.hours)

    @model_validator(mode="after")
    def _valid(self) -> AllowSpec:
        self.build()  # raises ValueError with a message naming the bad part
        return self


def _local(value: date | datetime | str, zone: ZoneInfo, *, end: bool) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=zone)
    # a date: the whole local day (an end date is inclusive)
    moment = datetime.combine(value, time(0), tzinfo=zone)
    return moment + timedelta(days=1) if end else moment


class DenySpec(_Strict):
    """A one-off freeze written in the policy: from/to are local dates or date-times."""

    from_: date | datetime | str = Field(alias="from")
    to: date | datetime | str
    reason: str = Field(min_length=1)

    def build(self, zone: ZoneInfo) -> windows.DenyPeriod:
        return windows.DenyPeriod(
            _local(self.from_, zone, end=False), _local(self.to, zone, end=True), self.reason
        )


class RecurringDenySpec(_Strict):
    """A freeze every year on the same local dates, e.g. from: 12-24, to: 01-02."""

    from_: str = Field(alias="from", pattern=r"^\d{2}-\d{2}$", description="MM-DD")
    to: str = Field(pattern=r"^\d{2}-\d{2}$", description="MM-DD, inclusive")
    reason: str = Field(min_length=1)

    def build(self) -> windows.RecurringDeny:
        sm, sd = (int(x) for x in self.from_.split("-"))
        em, ed = (int(x) for x in self.to.split("-"))
        return windows.RecurringDeny(sm, sd, em, ed, self.reason)

    @model_validator(mode="after")
    def _valid(self) -> RecurringDenySpec:
        self.build()
        return self


class HolidaySpec(_Strict):
    country: str = Field(description="ISO 3166 code known to the holidays package, e.g. IL")
    subdivision: str | None = Field(default=None, description="e.g. CA for US")

    @model_validator(mode="after")
    def _valid(self) -> HolidaySpec:
        windows.HolidayCalendar(self.country, self.subdivision)
        return self


@register
class WindowOptions(GateOptions):
    allowed_hooks: ClassVar[frozenset[HookType]] = CONFIRM_HOOKS
    type: Literal["window"] = "window"
    timezone: str | None = Field(
        default=None, description="IANA zone; defaults to the environment's timezone"
    )
    allow: list[AllowSpec] = Field(
        default_factory=list, description="when rollouts may start; empty: any time"
    )
    deny: list[DenySpec] = Field(default_factory=list)
    recurring_deny: list[RecurringDenySpec] = Field(default_factory=list)
    holidays: list[HolidaySpec] = Field(default_factory=list)
    extra_holidays: list[date] = Field(default_factory=list, description="closed local dates")
    min_remaining: str = Field(
        default="0s", description="do not start with less than this left in the window"
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ValueError, KeyError, OSError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("min_remaining")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @model_validator(mode="after")
    def _needs_zone(self) -> WindowOptions:
        if self.timezone is None:
            raise ValueError("timezone: required (set it on the gate or on the environment)")
        zone = ZoneInfo(self.timezone)
        for spec in self.deny:
            period = spec.build(zone)  # raises when to <= from
            del period
        return self

    def schedule(self) -> windows.WindowSchedule:
        assert self.timezone is not None
        zone = ZoneInfo(self.timezone)
        return windows.WindowSchedule(
            zone=zone,
            allow=tuple(spec.build() for spec in self.allow),
            deny=tuple(spec.build(zone) for spec in self.deny),
            recurring_deny=tuple(spec.build() for spec in self.recurring_deny),
            holidays=tuple(
                windows.HolidayCalendar(h.country, h.subdivision) for h in self.holidays
            ),
            extra_holidays=frozenset(self.extra_holidays),
            min_remaining=parse_duration(self.min_remaining),
        )

    def build(self) -> WindowGate:
        return WindowGate(self.schedule())


def _when(moment: datetime, now: datetime) -> str:
    return f"{moment:%a %Y-%m-%d %H:%M %Z}, in {format_duration(moment - now)}"


@dataclass(frozen=True)
class WindowGate:
    schedule: windows.WindowSchedule
    kind: str = "window"

    def describe(self) -> str:
        """``Sun-Thu 09:00-21:00 Asia/Jerusalem; holidays IL`` (flat, to sit in parentheses)."""
        text = windows.describe(self.schedule)
        head, sep, extras = text.partition(" (")
        return f"{head}; {extras.removesuffix(')')}" if sep else text

    def evaluate(self, ctx: GateContext) -> GateResult:
        state = windows.evaluate(self.schedule, ctx.now)
        env = ctx.environment or "this"
        text = self.describe()
        if state.open:
            closes = f"; closes {_when(state.closes_at, ctx.now)}" if state.closes_at else ""
            # retry_at on a pass: when the answer would change (explain shows it)
            return GateResult(
                Outcome.PASS, f"inside the {env} deployment window{closes}", state.closes_at
            )
        why = state.closed_because or windows.OUTSIDE_WINDOW
        if why == windows.OUTSIDE_WINDOW:
            reason = f"outside the {env} deployment window ({text})"
        else:
            reason = f"{env} deployment window closed, {why} ({text})"
        if ctx.override is not None:
            o = ctx.override
            return GateResult.passed(f"{reason}; overridden by {o.actor}: {o.reason}")
        if state.opens_at is None:
            return GateResult.wait(f"{reason}; does not open in the next 366 days", shared=True)
        return GateResult.wait(
            f"{reason}; opens {_when(state.opens_at, ctx.now)}", state.opens_at, shared=True
        )
