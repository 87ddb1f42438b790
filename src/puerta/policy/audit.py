"""``audit:`` in the policy file: how long the audit trail is kept.

Retention is a policy setting, not an environment variable, because every replica must prune to
the same horizon: replicas with different horizons would fight over the chain's start.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from puerta.domain.durations import parse_duration


class AuditConfig(BaseModel):
    """``audit: {retention: 400d}``; no retention keeps every record forever."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retention: str | None = Field(
        default=None,
        description="delete sealed audit records older than this, e.g. 400d (default: keep all)",
    )

    @field_validator("retention")
    @classmethod
    def _retention(cls, value: str | None) -> str | None:
        if value is not None and parse_duration(value) <= timedelta(0):
            # "0s" would delete each record as soon as it is sealed: surely a typo
            raise ValueError("retention must be longer than zero; leave it out to keep all")
        return value

    def retention_period(self) -> timedelta | None:
        return None if self.retention is None else parse_duration(self.retention)
