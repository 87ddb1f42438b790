"""The ``load`` gate through the HTTP API: one load test per rollout, however often Flagger
calls, on any replica; its figures in the rollout hook's answer; pass criteria; stopping when
the rollout ends; takeover when the replica holding it dies."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from conftest import Puerta, serve_in_thread
from puerta.clock import ManualClock
from puerta.service.load_runner import LoadRunner
from puerta.store.db import Database


@dataclass
class Target:
    """A local HTTP server standing in for the canary: counts requests, answers ``status``."""

    status: int = 200
    hits: int = 0
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        with self.lock:
            self.hits += 1
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def target() -> Iterator[Target]:
    app = Target()
    with serve_in_thread(app, lifespan="off") as url:
        app.url = url
        yield app


POLICY = """
environments:
  staging:
    match: [{namespace: staging}]
    gates:
      rollout:
        - type: load
          name: smoke
          url: "http://127.0.0.1:{metadata.port}/{name}"
          rate: 200
          concurrency: 4
          max_error_rate: 0.05
          min_requests: 50
"""


def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for something the background runner does (real time, bounded)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def rollout(puerta: Puerta, target: Target, checksum: str = "85d557f47b") -> Any:
    port = target.url.rsplit(":", 1)[1]
    return puerta.hook("rollout", namespace="staging", checksum=checksum, metadata={"port": port})


def load_tests(puerta: Puerta) -> list[dict[str, Any]]:
    tests: list[dict[str, Any]] = puerta.api("GET", "/canaries/staging/podinfo").json()[
        "load_tests"
    ]
    return tests


@pytest.fixture
def policy_text() -> str:
    return POLICY


def test_one_load_test_per_rollout_reported_and_stopped(puerta: Puerta, target: Target) -> None:
    puerta.hook("confirm-rollout", namespace="staging")
    puerta.hook("pre-rollout", namespace="staging", checksum="85d557f47b")
    first = rollout(puerta, target)
    assert first.status_code == 200
    assert first.text == (
        f"passed rollout[0] smoke: start load test smoke: 200 req/s to {target.url}/podinfo"
    )
    # Flagger calls every interval and retries: ten calls at once still make one test
    with ThreadPoolExecutor(10) as pool:
        assert {r.status_code for r in pool.map(lambda _: rollout(puerta, target), range(10))} == {
            200
        }
    assert len(load_tests(puerta)) == 1

    until(lambda: (load_tests(puerta)[0]["stats"] or {}).get("completed", 0) >= 100)
    report = rollout(puerta, target)
    assert report.status_code == 200
    assert "load test smoke: " in report.text and "req/s" in report.text
    page = puerta.http.get("/ui/canaries/staging/podinfo").text
    assert "Load tests of the current rollout" in page
    assert f"GET {target.url}/podinfo</code> at 200" in page

    puerta.hook("post-rollout", namespace="staging", checksum="85d557f47b", phase="Succeeded")
    until(lambda: load_tests(puerta)[0]["status"] == "stopped")
    test = load_tests(puerta)[0]
    assert test["stop_reason"] == "rollout succeeded"
    assert test["owner"] is None
    # every request the target saw was sent before the stop, and counted in the figures
    assert 0 < target.hits <= test["stats"]["sent"]


def test_failing_canary_fails_the_rollout_check_with_figures(
    puerta: Puerta, target: Target
) -> None:
    target.status = 503
    puerta.hook("confirm-rollout", namespace="staging")
    rollout(puerta, target)
    until(
        lambda: (
            (load_tests(puerta)[0]["stats"] or {}).get("completed", 0)
            + sum((load_tests(puerta)[0]["stats"] or {}).get("errors", {}).values())
            >= 60
        )
    )
    refused = rollout(puerta, target)
    assert refused.status_code == 403
    assert refused.text.startswith("load test smoke: error rate 100.00% over 5.00%; ")


def test_a_new_revision_stops_the_old_test_and_starts_one(puerta: Puerta, target: Target) -> None:
    puerta.hook("confirm-rollout", namespace="staging")
    rollout(puerta, target, checksum="1111111111")
    until(
        lambda: (
            load_tests(puerta)[0]["status"] == "running"
            and load_tests(puerta)[0]["owner"] is not None
        )
    )
    rollout(puerta, target, checksum="2222222222")  # Flagger restarted for a newer revision
    tests = load_tests(puerta)
    assert len(tests) == 1 and tests[0]["status"] == "running"  # the new rollout's test
    history = puerta.api("GET", "/canaries/staging/podinfo").json()["history"]
    assert [r["status"] for r in history] == ["progressing", "superseded"]


async def test_takeover_when_a_replica_dies_and_hand_back_on_shutdown(
    database_url: str, target: Target
) -> None:
    """Runner A holds a test and dies (no hand-back); once its lease runs out, B takes over.
    B stops gracefully and hands the test back."""
    from puerta.store import repository as repo

    db, clock = await _seeded_runner(
        database_url,
        target,
        stats=None,
        segments=0,
        spec={"url": target.url, "rate": 100, "concurrency": 2},
    )
    a = LoadRunner(db, clock, replica="a", lease=timedelta(seconds=15))
    b = LoadRunner(db, clock, replica="b", lease=timedelta(seconds=15))
    try:
        await a.tick()
        assert a.running and not b.running
        await b.tick()
        assert not b.running  # A's lease holds
        for owned in list(a._owned.values()):  # A dies: its generator stops, no hand-back
            owned.generator.stop()
        clock.advance(timedelta(seconds=16))
        await b.tick()
        assert b.running
        runs = await db.read(lambda c: repo.claimable_load_runs(c, "x", clock.now()))
        assert runs == []
        await b.stop()
        free = await db.read(lambda c: repo.claimable_load_runs(c, "x", clock.now()))
        assert [(r.gate, r.segments) for r in free] == [("smoke", 2)]
    finally:
        for runner in (a, b):
            for owned in list(runner._owned.values()):
                owned.generator.stop()
        await asyncio.sleep(0)
        await db.dispose()


async def _seeded_runner(
    database_url: str,
    target: Target,
    *,
    stats: dict[str, Any] | None,
    segments: int,
    spec: dict[str, Any] | None = None,
) -> tuple[Database, ManualClock]:
    from datetime import UTC, datetime

    from puerta.store import repository as repo

    clock = ManualClock(datetime(2026, 11, 26, 10, 0, tzinfo=UTC))
    db = Database(database_url)
    await db.migrate()
    now = clock.now()

    def seed(conn: Any) -> None:
        canary = repo.lock_canary(conn, "staging", "podinfo", now)
        repo.insert_rollout(
            conn, canary_id=canary.id, seq=1, status="progressing", started_at=now, updated_at=now
        )
        repo.insert_load_run(
            conn,
            canary_id=canary.id,
            rollout_seq=1,
            gate="smoke",
            spec=spec or {"url": target.url, "rate": 200, "concurrency": 2},
            status="running",
            created_at=now,
            updated_at=now,
            segments=segments,
            stats=stats,
        )

    await db.write(seed)
    return db, clock


async def _stored(db: Database) -> Any:
    from sqlalchemy import select

    from puerta.store.tables import load_runs

    return await db.read(lambda c: c.execute(select(load_runs)).one())


async def test_a_load_test_stops_when_flagger_goes_silent(
    database_url: str, target: Target
) -> None:
    """No post-rollout hook, a deleted canary: after idle_timeout without a call for the
    rollout, the test stops instead of loading a canary nobody analyses."""
    spec = {"url": target.url, "rate": 50, "concurrency": 2, "idle_timeout_s": 600}
    db, clock = await _seeded_runner(database_url, target, stats=None, segments=0, spec=spec)
    runner = LoadRunner(db, clock, replica="a")
    try:
        await runner.tick()
        assert runner.running
        clock.advance(timedelta(minutes=9))
        await runner.tick()
        assert runner.running
        clock.advance(timedelta(minutes=2))
        await runner.tick()
        assert not runner.running
        row = await _stored(db)
        assert (row.status, row.stop_reason) == ("stopped", "rollout silent for 10m")
    finally:
        await runner.stop()
        await db.dispose()


async def test_figures_add_up_across_replicas(database_url: str, target: Target) -> None:
    """A test taken over from another replica keeps counting from what that one stored."""
    before = {
        "sent": 100,
        "completed": 90,
        "abandoned": 0,
        "errors": {"http_5xx": 10},
        "status_counts": {"200": 80, "503": 10},
        "error_rate": 0.1,
    }
    db, clock = await _seeded_runner(database_url, target, stats=before, segments=1)
    runner = LoadRunner(db, clock, replica="b")
    try:
        await runner.tick()
        owned = next(iter(runner._owned.values()))
        deadline = asyncio.get_running_loop().time() + 10
        while owned.generator.snapshot().completed < 20:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        await runner.tick()
        stats = (await _stored(db)).stats
        assert stats["completed"] >= 110
        assert stats["errors"]["http_5xx"] == 10
        assert stats["status_counts"]["503"] == 10
        assert stats["status_counts"]["200"] == stats["completed"] - 10
        assert stats["error_rate"] == pytest.approx(10 / stats["completed"])
        assert "since the start: errors" in stats["summary"]
    finally:
        await runner.stop()
        await db.dispose()
