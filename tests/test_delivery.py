"""Delivery figures (DORA's four keys): the pure computation on a hand-checked history, then
through a running Puerta (rollouts made by Flagger's hooks, commits seeded in the database):
the HTTP API, the CLI and the Prometheus gauges (per canary and per environment, as
``GET /metrics`` serves them)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection
from typer.testing import CliRunner

from conftest import APPROVER, VIEWER, Puerta, serve_in_thread
from puerta.cli.delivery import HEADER, resolve_period
from puerta.cli.main import app as cli
from puerta.clock import ManualClock
from puerta.domain.delivery import (
    CanaryFigures,
    DeliveryReport,
    EnvironmentFigures,
    Figures,
    RolloutRecord,
    figures,
    nearest_rank,
)
from puerta.service.delivery_metrics import DeliveryMetrics
from puerta.store.db import Database
from puerta.store.notify_tables import rollout_commits
from puerta.store.tables import canaries
from waiting import until

T = TypeVar("T")
H = timedelta(hours=1)
M = timedelta(minutes=1)


def at(day: int, hour: int = 0, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


# ---- the pure function ----------------------------------------------------------------------


def test_nearest_rank() -> None:
    values = [timedelta(seconds=s) for s in (7, 1, 9, 3, 5, 2, 10, 4, 8, 6)]
    assert nearest_rank(values, 50) == timedelta(seconds=5)  # rank ceil(5) = 5
    assert nearest_rank(values, 90) == timedelta(seconds=9)  # rank ceil(9) = 9
    assert nearest_rank(values, 100) == timedelta(seconds=10)
    assert nearest_rank(values[:2], 50) == timedelta(seconds=1)  # rank ceil(1) = 1: the lower
    assert nearest_rank(values[:2], 90) == timedelta(seconds=7)  # rank ceil(1.8) = 2
    assert nearest_rank([H], 90) == H
    assert nearest_rank([], 50) is None
    with pytest.raises(ValueError, match="percent"):
        nearest_rank(values, 0)


def rec(
    environment: str | None,
    canary: str,
    seq: int,
    status: str,
    finished: datetime | None,
    committed: datetime | None = None,
) -> RolloutRecord:
    namespace, name = canary.split("/")
    started = (finished or at(1)) - 30 * M
    return RolloutRecord(environment, namespace, name, seq, status, started, finished, committed)


SINCE, UNTIL = at(1), at(11)  # ten days

HISTORY = [
    # staging/shop (staging)
    rec("staging", "staging/shop", 1, "succeeded", at(30, month=10)),  # before the period
    rec("staging", "staging/shop", 2, "succeeded", at(2, 10), at(2, 8)),  # lead 2h
    rec("staging", "staging/shop", 3, "failed", at(3, 12), at(3, 11)),  # no lead (failed)
    rec("staging", "staging/shop", 4, "superseded", at(4, 0)),  # ignored
    # lead 2h30m; restores #3: Nov 3 12:00 -> Nov 4 12:30 = 24h30m
    rec("staging", "staging/shop", 5, "succeeded", at(4, 12, 30), at(4, 10)),
    rec("staging", "staging/shop", 6, "succeeded", at(6, 9)),  # commit unknown: no lead
    rec("staging", "staging/shop", 7, "pending", None),  # ignored
    # staging/cart (staging)
    rec("staging", "staging/cart", 1, "succeeded", at(5, 10), at(5, 9)),  # lead 1h
    # #2 is restored by #3 after the period: Nov 10 20:00 -> Nov 12 02:00 = 30h; #3 itself is
    # not a deployment of the period
    rec("staging", "staging/cart", 2, "failed", at(10, 20)),
    rec("staging", "staging/cart", 3, "succeeded", at(12, 2), at(11, 1)),
    rec("staging", "staging/cart", 4, "failed", at(12, 5)),  # after the period: ignored
    # prod/shop (production)
    # finished at since (included): lead 24h
    rec("production", "prod/shop", 1, "succeeded", at(1, 0), at(31, month=10)),
    rec("production", "prod/shop", 2, "succeeded", at(3, 6), at(3, 0)),  # lead 6h
    rec("production", "prod/shop", 3, "succeeded", at(8, 0), at(7, 23)),  # lead 1h
    rec("production", "prod/shop", 4, "failed", at(9, 0)),  # restored by #5 in 1h
    # committed after it went live (a wrong committer date): no lead time
    rec("production", "prod/shop", 5, "succeeded", at(9, 1), at(9, 2)),
    rec("production", "prod/shop", 6, "succeeded", at(11, 0), at(10, 0)),  # until: excluded
    # prod/api: two failures in production, then a success after the canary moved to staging,
    # which restores neither (another environment)
    rec("production", "prod/api", 1, "failed", at(7, 12)),
    rec("production", "prod/api", 2, "failed", at(8, 12)),
    rec("staging", "prod/api", 3, "succeeded", at(9, 12)),
    # misc/tool matched no environment
    rec(None, "misc/tool", 1, "succeeded", at(2, 0)),
    # staging/old: nothing succeeded or failed in the period, so no group
    rec("staging", "staging/old", 1, "succeeded", at(20, month=10)),
    rec("staging", "staging/old", 2, "superseded", at(5, 0)),
]


def fig(
    deployments: int,
    lead: tuple[timedelta, ...] = (),  # (median, p90) and how many
    lead_count: int = 0,
    failures: int = 0,
    restore: timedelta | None = None,
    restored: int = 0,
    unrestored: int = 0,
) -> Figures:
    finished = deployments + failures
    return Figures(
        deployments=deployments,
        deployments_per_day=deployments / 10,
        lead_time_count=lead_count,
        lead_time_median=lead[0] if lead else None,
        lead_time_p90=lead[1] if lead else None,
        failures=failures,
        change_failure_rate=failures / finished if finished else None,
        restored=restored,
        unrestored=unrestored,
        time_to_restore_median=restore,
    )


def test_figures_of_a_hand_checked_history() -> None:
    report = figures(HISTORY, SINCE, UNTIL)
    assert report.days == 10
    assert report.groups == (
        # sorted by environment (none last), namespace, name
        CanaryFigures("production", "prod", "api", fig(0, failures=2, unrestored=2)),
        # leads [24h, 6h, 1h]: median rank ceil(1.5) = 2 -> 6h, p90 rank ceil(2.7) = 3 -> 24h;
        # 1 failure of 5
        CanaryFigures("production", "prod", "shop", fig(4, (6 * H, 24 * H), 3, 1, H, restored=1)),
        CanaryFigures("staging", "prod", "api", fig(1)),
        # lead [1h]; #2 failed Nov 10 20:00, restored Nov 12 02:00 (after until) = 30h
        CanaryFigures("staging", "staging", "cart", fig(1, (H, H), 1, 1, 30 * H, restored=1)),
        # leads [2h, 2h30m]: median rank ceil(1) = 1 -> 2h, p90 rank ceil(1.8) = 2 -> 2h30m;
        # 1 failure of 4, restored in 24h30m
        CanaryFigures(
            "staging", "staging", "shop", fig(3, (2 * H, 150 * M), 2, 1, 24 * H + 30 * M, 1)
        ),
        CanaryFigures(None, "misc", "tool", fig(1)),
    )
    assert report.environments == (
        # production: leads [1h, 6h, 24h] -> 6h, 24h; failures 1 + 2 of 4 + 3: 3/7
        EnvironmentFigures(
            "production", 2, fig(4, (6 * H, 24 * H), 3, 3, H, restored=1, unrestored=2)
        ),
        # staging: leads [1h, 2h, 2h30m]: median rank 2 -> 2h, p90 rank ceil(2.7) = 3 ->
        # 2h30m; failures 2 of 5 + 2: 2/7; restores [24h30m, 30h]: median rank 1 -> 24h30m
        # (the canaries' medians are 30h and 24h30m: a median of medians would say otherwise
        # for other data; pooling is what the definition says)
        EnvironmentFigures(
            "staging", 3, fig(5, (2 * H, 150 * M), 3, 2, 24 * H + 30 * M, restored=2)
        ),
        EnvironmentFigures(None, 1, fig(1)),
    )
    production = report.environments[0].figures
    assert production.change_failure_rate == pytest.approx(3 / 7)
    assert production.deployments_per_day == pytest.approx(0.4)
    assert report.groups[0].figures.change_failure_rate == 1.0


def test_pooled_medians_are_not_medians_of_medians() -> None:
    """Canary a: leads 1h, 1h, 1h (median 1h); b and c: 10h each. The median of the three
    medians would be 10h; pooled, [1h, 1h, 1h, 10h, 10h] has median rank ceil(2.5) = 3 -> 1h."""
    records = [
        rec("staging", "s/a", seq, "succeeded", at(2, seq), at(2, seq) - H) for seq in (1, 2, 3)
    ] + [rec("staging", f"s/{n}", 1, "succeeded", at(3), at(3) - 10 * H) for n in "bc"]
    report = figures(records, SINCE, UNTIL)
    total = report.environments[0].figures
    assert (total.lead_time_count, total.lead_time_median, total.lead_time_p90) == (5, H, 10 * H)


def test_an_empty_period_and_a_bad_one() -> None:
    assert figures([], SINCE, UNTIL) == DeliveryReport(SINCE, UNTIL, (), ())
    only_open = [rec("staging", "s/a", 1, "progressing", None)]
    assert figures(only_open, SINCE, UNTIL).groups == ()
    with pytest.raises(ValueError, match="since must be before until"):
        figures([], UNTIL, SINCE)
    with pytest.raises(ValueError, match="since must be before until"):
        figures([], SINCE, SINCE)


# ---- through a running Puerta ---------------------------------------------------------------

BASE, REV1, REV2, REV3 = "6d9d8b5c7f", "85d557f47b", "a1b2c3d4e5", "f0e1d2c3b4"
STAGING = {"environment": "staging", "namespace": "staging", "name": "podinfo"}
PRODUCTION = {"environment": "production", "namespace": "prod", "name": "podinfo"}


def on_database(url: str, work: Callable[[Connection], T]) -> T:
    """Run ``work`` in one transaction on the database under test, beside the running app."""

    async def run() -> T:
        db = Database(url)
        try:
            return await db.write(work)
        finally:
            await db.dispose()

    return asyncio.run(run())


def roll_out(
    p: Puerta, namespace: str, base: str, revision: str, phase: str, name: str = "podinfo"
) -> datetime:
    """One rollout of ``namespace/name`` in Flagger's order: confirm-rollout (approved first
    in production), pre-rollout 5 minutes later, post-rollout with ``phase`` 10 minutes after
    that. Returns the instant it finished."""
    ns = {"namespace": namespace, "name": name}
    if p.hook("confirm-rollout", checksum=base, **ns).status_code != 200:
        approved = p.api("POST", f"/canaries/{namespace}/{name}/approve", token=APPROVER)
        assert approved.status_code == 200, approved.text
        assert p.hook("confirm-rollout", checksum=base, **ns).status_code == 200
    p.clock.advance(5 * M)
    assert p.hook("pre-rollout", checksum=revision, **ns).status_code == 200
    p.clock.advance(10 * M)
    assert p.hook("post-rollout", checksum=revision, phase=phase, **ns).status_code == 200
    return p.clock.now()


def add_commits(
    p: Puerta, commits: dict[tuple[str, int], datetime | None], name: str = "podinfo"
) -> None:
    """What the commit resolver would have recorded for (namespace, rollout seq) of the
    canaries called ``name``."""

    def write(conn: Connection) -> None:
        for (namespace, seq), committed_at in commits.items():
            canary_id = conn.execute(
                select(canaries.c.id).where(
                    canaries.c.namespace == namespace, canaries.c.name == name
                )
            ).scalar_one()
            conn.execute(
                insert(rollout_commits).values(
                    canary_id=canary_id,
                    rollout_seq=seq,
                    status="resolved" if committed_at is not None else "unresolved",
                    repository=f"acme/{name}",
                    sha=f"{seq:040x}" if committed_at is not None else None,
                    committed_at=committed_at,
                    resolved_at=p.clock.now(),
                )
            )

    on_database(p.database_url, write)


@pytest.fixture
def gate(database_url: str, policy_text: str, clock: ManualClock) -> Iterator[Puerta]:
    """Puerta (SQLite and PostgreSQL) with this history, from Nov 26 10:00 UTC:

    * staging/podinfo #1 succeeds at 10:15 (commit 08:15: lead 2h);
    * staging/podinfo #2 fails at 11:15 (commit unresolved);
    * staging/podinfo #3 succeeds at 11:45 (commit 11:05: lead 40m), restoring #2 in 30m;
    * prod/podinfo #1 fails at 12:15 (commit 11:00, not a lead time: it never went live), and
      nothing restores it;

    and the clock at 12:20.
    """
    p = Puerta(database_url, policy_text, clock).start()
    try:
        start = clock.now()
        assert roll_out(p, "staging", BASE, REV1, "Succeeded") == start + 15 * M
        clock.advance(45 * M)
        assert roll_out(p, "staging", REV1, REV2, "Failed") == start + 75 * M
        clock.advance(15 * M)
        assert roll_out(p, "staging", REV1, REV3, "Succeeded") == start + 105 * M
        clock.advance(15 * M)
        assert roll_out(p, "prod", BASE, REV1, "Failed") == start + 135 * M
        clock.advance(5 * M)
        history = p.api("GET", "/canaries/staging/podinfo").json()["history"]
        assert [(r["seq"], r["status"]) for r in history] == [
            (3, "succeeded"),
            (2, "failed"),
            (1, "succeeded"),
        ]
        prod = p.api("GET", "/canaries/prod/podinfo").json()["history"]
        assert [(r["seq"], r["status"]) for r in prod] == [(1, "failed")]
        add_commits(
            p,
            {
                ("staging", 1): start - 105 * M,  # 08:15
                ("staging", 2): None,
                ("staging", 3): start + 65 * M,  # 11:05
                ("prod", 1): start + 60 * M,  # 11:00
            },
        )
        yield p
    finally:
        p.stop()


STAGING_30_DAYS = {
    **STAGING,
    "deployments": 2,
    "deployments_per_day": pytest.approx(2 / 30),
    "lead_time_count": 2,
    "lead_time_median_seconds": 2400.0,  # [40m, 2h]: rank ceil(1) = 1
    "lead_time_p90_seconds": 7200.0,  # rank ceil(1.8) = 2
    "failures": 1,
    "change_failure_rate": pytest.approx(1 / 3),
    "restored": 1,
    "unrestored": 0,
    "time_to_restore_median_seconds": 1800.0,
}
PRODUCTION_30_DAYS = {
    **PRODUCTION,
    "deployments": 0,
    "deployments_per_day": 0.0,
    "lead_time_count": 0,
    "lead_time_median_seconds": None,
    "lead_time_p90_seconds": None,
    "failures": 1,
    "change_failure_rate": 1.0,
    "restored": 0,
    "unrestored": 1,
    "time_to_restore_median_seconds": None,
}


def delivery(p: Puerta, token: str | None = VIEWER, **params: str) -> Any:
    return p.api("GET", "/delivery", token=token, params=params)


def totals(group: dict[str, Any]) -> dict[str, Any]:
    """A single canary's figures as its environment's totals."""
    figures = {k: v for k, v in group.items() if k not in ("namespace", "name")}
    return {**figures, "canaries": 1}


def test_api_default_period_is_the_last_30_days_by_the_apps_clock(gate: Puerta) -> None:
    response = delivery(gate)
    assert response.status_code == 200, response.text
    body = response.json()
    now = gate.clock.now()
    assert datetime.fromisoformat(body["until"]) == now
    assert datetime.fromisoformat(body["since"]) == now - timedelta(days=30)
    assert body["days"] == 30
    assert body["groups"] == [PRODUCTION_30_DAYS, STAGING_30_DAYS]
    assert body["environments"] == [totals(PRODUCTION_30_DAYS), totals(STAGING_30_DAYS)]


def test_api_failure_restored_after_the_period_and_filters(gate: Puerta) -> None:
    # 11:00-11:30 holds only staging #2's failure (11:15); #3 restores it at 11:45, after until
    body = delivery(gate, since="2026-11-26T11:00:00Z", until="2026-11-26T13:30:00+02:00").json()
    assert body["days"] == pytest.approx(1 / 48)
    assert body["groups"] == [
        {
            **STAGING,
            "deployments": 0,
            "deployments_per_day": 0.0,
            "lead_time_count": 0,
            "lead_time_median_seconds": None,
            "lead_time_p90_seconds": None,
            "failures": 1,
            "change_failure_rate": 1.0,
            "restored": 1,
            "unrestored": 0,
            "time_to_restore_median_seconds": 1800.0,
        }
    ]
    # until is excluded: staging #1 finished at 10:15 exactly
    assert delivery(gate, since="2026-11-26T10:00Z", until="2026-11-26T10:15Z").json() == {
        "since": "2026-11-26T10:00:00Z",
        "until": "2026-11-26T10:15:00Z",
        "days": pytest.approx(1 / 96),
        "groups": [],
        "environments": [],
    }
    production = delivery(gate, environment="production").json()
    assert production["groups"] == [PRODUCTION_30_DAYS]
    one = delivery(gate, namespace="staging", name="podinfo").json()
    assert one["groups"] == [STAGING_30_DAYS]
    assert one["environments"] == [totals(STAGING_30_DAYS)]
    assert delivery(gate, name="other").json()["groups"] == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "2026-11-26T12:00Z", "until": "2026-11-26T11:00Z"}, "since must be before"),
        ({"since": "2026-11-26T12:00Z", "until": "2026-11-26T12:00Z"}, "since must be before"),
        ({"since": "2026-12-01T00:00Z"}, "since must be before"),  # until: now (Nov 26)
        ({"since": "2025-10-21T00:00Z", "until": "2026-11-26T00:00Z"}, "at most 400 days"),
        ({"since": "2026-11-26T10:00:00"}, "since: give a time zone"),
        ({"until": "2026-11-26T10:00:00"}, "until: give a time zone"),
        ({"until": "soon"}, "until"),
        ({"environment": "x" * 101}, "environment"),
    ],
)
def test_api_refuses_bad_periods(gate: Puerta, params: dict[str, str], message: str) -> None:
    response = delivery(gate, **params)
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert message in detail
    if "must be before" in message or "400 days" in message:
        assert detail.startswith("since, until:")


def test_api_period_of_exactly_400_days_is_allowed(gate: Puerta) -> None:
    response = delivery(gate, since="2025-10-22T00:00Z", until="2026-11-26T00:00Z")
    assert response.status_code == 200, response.text
    assert response.json()["days"] == 400


def test_api_needs_a_viewer_token(gate: Puerta) -> None:
    """Even with auth.public_read (the test policy has it): delivery figures compare teams."""
    missing = delivery(gate, token=None)
    assert missing.status_code == 401
    assert missing.headers.get("www-authenticate") == "Bearer"
    assert delivery(gate, token="nope").status_code == 401
    assert delivery(gate).status_code == 200


# ---- the CLI --------------------------------------------------------------------------------


def test_cli_period_arguments() -> None:
    now = at(26, 12)
    assert resolve_period(None, None, now) == (None, None)
    assert resolve_period("30d", None, now) == (now - timedelta(days=30), None)
    assert resolve_period("12h", "2026-11-20T00:00Z", now) == (at(19, 12), at(20))
    assert resolve_period("2026-11-01T00:00+02:00", None, now) == (
        datetime(2026, 10, 31, 22, tzinfo=UTC),
        None,
    )


def cli_run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["delivery", *args], env=env)
    return result.exit_code, result.output


@pytest.fixture
def live(gate: Puerta) -> Iterator[str]:
    """A second Puerta on the same database and clock, on a real socket, for the CLI."""
    with serve_in_thread(gate.build_app()) as url:
        yield url


def test_cli_tables_per_environment(gate: Puerta, live: str) -> None:
    period = ["--since", "2026-11-26T09:00Z", "--until", "2026-11-26T13:00Z"]
    code, output = cli_run(*period, "--server", live, "--token", VIEWER)
    assert code == 0, output
    lines = output.splitlines()
    assert lines[0] == "production: 2026-11-26T09:00 to 2026-11-26T13:00 (0.167 days)"
    assert lines[1].split() == " ".join(HEADER).split()
    assert lines[2].split() == ["prod/podinfo", "0", "0.00", "-", "-", "100%", "-", "1"]
    assert lines[3].split() == ["TOTAL", "(1", "canary)", "0", "0.00", "-", "-", "100%", "-", "1"]
    assert lines[4] == ""
    assert lines[5].startswith("staging: ")
    # 2 deployments in 4 hours: 12 a day; leads 40m and 2h; 1 failure of 3; restored in 30m
    assert lines[7].split() == ["staging/podinfo", "2", "12.00", "40m", "2h", "33%", "30m", "0"]
    assert lines[8].split()[3:] == ["2", "12.00", "40m", "2h", "33%", "30m", "0"]
    assert len(lines) == 9

    code, output = cli_run(*period, "--json", "--server", live, env={"PUERTA_TOKEN": VIEWER})
    assert code == 0, output
    assert (
        json.loads(output)
        == delivery(gate, since="2026-11-26T09:00Z", until="2026-11-26T13:00Z").json()
    )


def test_cli_filters_and_relative_since(gate: Puerta, live: str) -> None:
    code, output = cli_run(
        "--canary",
        "staging/podinfo",
        "--since",
        "30d",
        "--until",
        "2026-11-26T12:20Z",
        "--json",
        "--server",
        live,
        "--token",
        VIEWER,
    )
    assert code == 0, output
    body = json.loads(output)
    assert body["since"] == "2026-10-27T12:20:00Z"
    assert body["groups"] == [STAGING_30_DAYS]

    code, output = cli_run("--environment", "production", "--server", live, "--token", VIEWER)
    assert code == 0, output
    assert "prod/podinfo" in output and "staging/podinfo" not in output

    code, output = cli_run(
        "--since", "2026-11-26T10:00Z", "--until", "2026-11-26T10:10Z", "--server", live,
        "--token", VIEWER,
    )  # fmt: skip
    assert code == 0, output
    assert output.startswith("no rollout succeeded or failed from 2026-11-26T10:00 to")


def test_cli_errors(gate: Puerta, live: str) -> None:
    code, output = cli_run("--server", live)
    assert code == 1
    assert "(HTTP 401)" in output
    code, output = cli_run("--since", "yesterday", "--server", live, "--token", VIEWER)
    assert code == 2
    assert "neither an ISO time nor a duration" in output
    code, output = cli_run("--until", "2026-11-26T12:00", "--server", live, "--token", VIEWER)
    assert code == 2
    assert "--until: give a time zone" in output
    code, output = cli_run("--canary", "podinfo", "--server", live, "--token", VIEWER)
    assert code == 2
    assert "expected NAMESPACE/NAME" in output
    code, output = cli_run(
        "--since", "2026-11-26T12:00Z", "--until", "2026-11-26T11:00Z", "--server", live,
        "--token", VIEWER,
    )  # fmt: skip
    assert code == 1
    assert "since, until: since must be before until (HTTP 400)" in output


# ---- Prometheus -----------------------------------------------------------------------------


def test_gauges_follow_the_last_30_days(gate: Puerta) -> None:
    registry = CollectorRegistry()

    def sample(metric: str, labels: dict[str, str], **extra: str) -> float | None:
        return registry.get_sample_value(metric, {**labels, **extra})

    async def run() -> None:
        db = Database(gate.database_url)
        try:
            metrics = DeliveryMetrics(db, gate.clock, registry, interval=3600)
            report = await metrics.refresh()
            assert len(report.groups) == 2
            staging = {k: STAGING[k] for k in ("environment", "namespace", "name")}
            prod = {k: PRODUCTION[k] for k in ("environment", "namespace", "name")}
            assert sample("puerta_delivery_deployments", staging) == 2
            assert sample("puerta_delivery_lead_time_seconds", staging, quantile="0.5") == 2400
            assert sample("puerta_delivery_lead_time_seconds", staging, quantile="0.9") == 7200
            rate = sample("puerta_delivery_change_failure_rate", staging)
            assert rate == pytest.approx(1 / 3)
            assert sample("puerta_delivery_time_to_restore_seconds", staging) == 1800
            assert sample("puerta_delivery_failures", staging) == 1
            assert sample("puerta_delivery_deployments", prod) == 0
            assert sample("puerta_delivery_failures", prod) == 1
            assert sample("puerta_delivery_change_failure_rate", prod) == 1
            # undefined figures are absent, not 0
            assert sample("puerta_delivery_lead_time_seconds", prod, quantile="0.5") is None
            assert sample("puerta_delivery_time_to_restore_seconds", prod) is None
            # each environment's totals (one canary each here: the same figures)
            env = {"environment": "production"}
            assert sample("puerta_delivery_environment_deployments", env) == 0
            assert sample("puerta_delivery_environment_failures", env) == 1
            assert sample("puerta_delivery_environment_change_failure_rate", env) == 1
            assert sample("puerta_delivery_environment_time_to_restore_seconds", env) is None
            env = {"environment": "staging"}
            lead = sample("puerta_delivery_environment_lead_time_seconds", env, quantile="0.9")
            assert lead == 7200
            assert sample("puerta_delivery_environment_time_to_restore_seconds", env) == 1800

            # a month later, nothing finished in the window: every series is gone
            gate.clock.advance(timedelta(days=31))
            assert (await metrics.refresh()).groups == ()
            for metric in (
                "deployments",
                "failures",
                "change_failure_rate",
                "time_to_restore_seconds",
            ):
                assert sample(f"puerta_delivery_{metric}", staging) is None
                assert sample(f"puerta_delivery_{metric}", prod) is None
                assert sample(f"puerta_delivery_environment_{metric}", env) is None
            assert sample("puerta_delivery_lead_time_seconds", staging, quantile="0.5") is None
            assert (
                sample("puerta_delivery_environment_lead_time_seconds", env, quantile="0.9") is None
            )

            # started and stopped, it leaves the registry as it found it (an app may start
            # again on the same registry)
            await metrics.start()
            await metrics.stop()
            assert not [m for m in registry.collect() if m.name.startswith("puerta_delivery")]
            again = DeliveryMetrics(db, gate.clock, registry)
            await again.stop()
        finally:
            await db.dispose()

    asyncio.run(run())


def scrape(p: Puerta) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """``GET /metrics`` as Prometheus reads it: each ``puerta_delivery`` sample by name and
    labels."""
    response = p.http.get("/metrics")
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name.startswith("puerta_delivery")
    }


def test_metrics_endpoint_exports_environment_totals_and_failures(gate: Puerta) -> None:
    """A second staging canary, so an environment's pooled figures differ from any canary's:
    staging/cart #1 succeeds at 12:35 (commit 11:35: lead 1h) and #2 fails at 12:50."""
    assert roll_out(gate, "staging", BASE, REV1, "Succeeded", name="cart") == at(26, 12, 35)
    assert roll_out(gate, "staging", REV1, REV2, "Failed", name="cart") == at(26, 12, 50)
    add_commits(gate, {("staging", 1): at(26, 11, 35)}, name="cart")
    # a replica computes the figures when it starts (then every minute): restart this one, a
    # minute later (the window ends at now, excluded)
    gate.clock.advance(M)
    gate.restart()

    def metric(name: str, /, **labels: str) -> float | None:
        return scrape(gate).get((f"puerta_delivery_{name}", frozenset(labels.items())))

    until(lambda: metric("environment_failures", environment="staging") == 2)
    staging, production = {"environment": "staging"}, {"environment": "production"}
    assert metric("environment_deployments", **staging) == 3
    assert metric("environment_deployments", **production) == 0
    assert metric("environment_failures", **production) == 1
    # staging's leads pooled: [40m, 1h, 2h]: median rank 2 -> 1h, p90 rank 3 -> 2h (the
    # canaries' medians are 40m and 1h)
    assert metric("environment_lead_time_seconds", **staging, quantile="0.5") == 3600
    assert metric("environment_lead_time_seconds", **staging, quantile="0.9") == 7200
    assert metric("lead_time_seconds", **STAGING, quantile="0.5") == 2400
    cart = {**STAGING, "name": "cart"}
    assert metric("lead_time_seconds", **cart, quantile="0.5") == 3600
    assert metric("environment_change_failure_rate", **staging) == pytest.approx(2 / 5)
    assert metric("environment_change_failure_rate", **production) == 1
    # only podinfo's failure was restored (in 30m); cart's is not, and has no series
    assert metric("environment_time_to_restore_seconds", **staging) == 1800
    assert metric("time_to_restore_seconds", **cart) is None
    assert metric("environment_time_to_restore_seconds", **production) is None

    # the change failure rate of an environment, derived from the canaries' counts as a
    # PromQL sum by (environment) would, is the environment's own
    samples = scrape(gate)

    def total(name: str, environment: str) -> float:
        return sum(
            value
            for (sample, labels), value in samples.items()
            if sample == f"puerta_delivery_{name}" and ("environment", environment) in labels
        )

    failures, deployments = total("failures", "staging"), total("deployments", "staging")
    assert (failures, deployments) == (2, 3)
    assert failures / (deployments + failures) == metric(
        "environment_change_failure_rate", **staging
    )
