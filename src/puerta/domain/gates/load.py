"""The ``load`` gate: keep the canary busy with traffic while Flagger analyses its metrics.

On the rollout hook. The first call of a rollout asks for a load test (an effect: the service
records it once per canary, rollout and gate, and one replica runs the generator under a
lease); every later call reports its figures, and, with pass criteria, answers 403 with them
when the error rate or p99 goes over a limit, so the analysis counts a failed check. It stops
on promotion, rollback, a new revision or its duration (see ``service/load_runner.py``).

The target URL is a template over the canary (``domain/templates.py``): ``{name}``,
``{namespace}``, ``{environment}``, ``{revision}``, ``{canary_url}`` and ``{metadata.KEY}`` (a
webhook metadata value), e.g. ``http://{name}-canary.{namespace}:9898/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from puerta.domain import templates
from puerta.domain.decisions import GateResult
from puerta.domain.durations import parse_duration
from puerta.domain.effects import StartLoad
from puerta.domain.gates.base import GateContext, GateOptions
from puerta.domain.gates.registry import register
from puerta.domain.hooks import HookType

_URL_FIELDS = templates.FIXED - {"run_id"}


def render_url(template: str, ctx: GateContext) -> str:
    """Fill the URL template; MissingValue names a metadata key the webhook did not send."""
    values = templates.canary_values(
        name=ctx.payload.name,
        namespace=ctx.payload.namespace,
        environment=ctx.environment,
        revision=ctx.rollout.revision if ctx.rollout else ctx.payload.checksum,
    )
    return templates.render(template, values, ctx.payload.metadata)


@register
class LoadOptions(GateOptions):
    allowed_hooks: ClassVar[frozenset[HookType]] = frozenset({HookType.ROLLOUT})
    type: Literal["load"] = "load"
    url: str = Field(description="target, templated: http://{name}-canary.{namespace}:9898/")
    rate: float | None = Field(
        default=10.0, gt=0, le=100_000, description="requests/s; null: as fast as possible"
    )
    concurrency: int = Field(default=10, ge=1, le=1000, description="requests in flight")
    duration: str | None = Field(
        default=None, description="stop after this long (default: until promotion/rollback)"
    )
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    timeout: str = Field(default="5s", description="per request")
    max_error_rate: float | None = Field(
        default=None, ge=0, le=1, description="fail the check above this (0.01 = 1%)"
    )
    max_p99_ms: float | None = Field(default=None, gt=0, description="fail the check above")
    min_requests: int = Field(
        default=100, ge=1, description="judge the criteria only after this many answers"
    )
    idle_timeout: str = Field(
        default="10m",
        description="stop when the rollout has not been heard of for this long (Flagger "
        "stopped calling: a deleted canary, no post-rollout hook)",
    )

    @field_validator("url")
    @classmethod
    def _template(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("url: must start with http:// or https://")
        try:
            return templates.check(value, allowed=_URL_FIELDS)
        except ValueError as exc:
            raise ValueError(f"url: {exc}") from None

    @field_validator("duration", "timeout", "idle_timeout")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and parse_duration(value).total_seconds() <= 0:
            raise ValueError("must be longer than 0s")
        return value

    def build(self) -> LoadGate:
        return LoadGate(self)


@dataclass(frozen=True)
class LoadGate:
    options: LoadOptions
    kind: str = "load"

    @property
    def key(self) -> str:
        """Which load test of the rollout this gate is (two load gates need distinct names)."""
        return self.options.name or "load"

    def spec(self, url: str) -> dict[str, Any]:
        o = self.options
        return {
            "url": url,
            "rate": o.rate,
            "concurrency": o.concurrency,
            "duration_s": parse_duration(o.duration).total_seconds() if o.duration else None,
            "method": o.method,
            "headers": dict(o.headers),
            "body": o.body,
            "timeout_s": parse_duration(o.timeout).total_seconds(),
            "idle_timeout_s": parse_duration(o.idle_timeout).total_seconds(),
        }

    def evaluate(self, ctx: GateContext) -> GateResult:
        if ctx.rollout is None:
            return GateResult.passed("no rollout to load")
        run = ctx.load_runs.get(self.key)
        if run is None:
            try:
                url = render_url(self.options.url, ctx)
            except templates.MissingValue as exc:
                return GateResult.fail(
                    f"load test {self.key}: the webhook sent no {exc.key} for its URL"
                )
            start = StartLoad(self.key, self.spec(url))
            return GateResult.passed(start.describe(), effects=(start,))
        stats = run.stats or {}
        summary = str(stats.get("summary") or "no figures yet")
        verdict = self._judge(stats)
        state = "" if run.status == "running" else f" ({run.status}: {run.stop_reason})"
        if verdict:
            return GateResult.fail(f"load test {self.key}: {verdict}; {summary}{state}")
        return GateResult.passed(f"load test {self.key}: {summary}{state}")

    def _judge(self, stats: dict[str, Any]) -> str:
        o = self.options
        answered = int(stats.get("completed", 0)) + int(sum(stats.get("errors", {}).values()))
        if answered < o.min_requests:
            return ""
        error_rate = float(stats.get("error_rate") or 0.0)
        if o.max_error_rate is not None and error_rate > o.max_error_rate:
            return f"error rate {error_rate:.2%} over {o.max_error_rate:.2%}"
        p99 = stats.get("p99_ms")
        if o.max_p99_ms is not None and p99 is not None and float(p99) > o.max_p99_ms:
            return f"p99 {float(p99):.0f} ms over {o.max_p99_ms:g} ms"
        return ""
