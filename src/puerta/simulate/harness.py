"""Puerta itself, in this process: the real app, policy and database code, with no outside
effects.

The app runs on a throw-away SQLite file, the simulation's manual clock, and tokens made up for
the run (the policy's own tokens name secrets the simulation neither has nor needs). It is driven
through Starlette's in-process test client, so every answer goes through the same HTTP layer
Flagger talks to. Nothing leaves the process: Puerta's gates do no I/O today, and a gate that
will trigger something outside (a CI run, a notification) must report it in ``Answer.effects``
and do it only outside a simulation.
"""

from __future__ import annotations

import hashlib
import secrets
import warnings
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Connection

from puerta.api.auth import Principal, Role, TokenRegistry
from puerta.app import create_app
from puerta.clock import ManualClock
from puerta.policy import CompiledPolicy
from puerta.settings import Settings
from puerta.store.tables import ci_runs

with warnings.catch_warnings():
    # Starlette prefers httpx2 for its test client; httpx works the same for this use.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

#: enough distinct approvers for any manual gate (a gate needs at most 10).
MAX_APPROVERS = 10
ACTOR = "simulation"


@dataclass(frozen=True, slots=True)
class Answer:
    """Puerta's HTTP answer to one webhook call, as Flagger sees it."""

    status: int
    body: str
    effects: tuple[str, ...] = ()  # what Puerta would have triggered (reported as dry runs)

    @property
    def ok(self) -> bool:
        """Flagger's rule: any status up to 202 is success."""
        return self.status <= 202


def _simulated_pass(conn: Connection, *, run_ids: list[int], now: datetime) -> None:
    conn.execute(
        update(ci_runs)
        .where(ci_runs.c.id.in_(run_ids), ci_runs.c.status == "pending")
        .values(
            status="succeeded",
            reason="simulated: not run, assumed to pass",
            finished_at=now,
            updated_at=now,
        )
    )


class InProcessPuerta:
    """A running Puerta app; use as a context manager (it starts and migrates the database)."""

    def __init__(
        self, policy: CompiledPolicy, policy_path: Path, clock: ManualClock, workdir: Path
    ) -> None:
        self._tokens = [secrets.token_urlsafe(24) for _ in range(MAX_APPROVERS)]
        names = [ACTOR] + [f"{ACTOR}-{n}" for n in range(2, MAX_APPROVERS + 1)]
        registry = TokenRegistry(
            {
                hashlib.sha256(token.encode()).digest(): Principal(name, Role.ADMIN)
                for token, name in zip(self._tokens, names, strict=True)
            },
            None,
        )
        settings = Settings(
            config_path=policy_path,
            database_url=f"sqlite+aiosqlite:///{workdir / 'simulation.db'}",
            environ={},
            background=False,  # load tests are reported as dry runs, never generated
        )
        app = create_app(settings, policy=policy, clock=clock, tokens=registry)
        self._clock = clock
        self._client = TestClient(app, raise_server_exceptions=True)
        self._seen_load_tests: set[tuple[str, str, object, str]] = set()

    def __enter__(self) -> InProcessPuerta:
        self._client.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._client.__exit__(exc_type, exc, traceback)

    def _headers(self, approver: int = 0) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._tokens[approver]}"}

    def call(self, endpoint: str, payload: dict[str, Any]) -> Answer:
        """``POST /hooks/<endpoint>`` with Flagger's payload; what Puerta would have started
        (a load test) comes back as dry-run effects."""
        response = self._client.post(f"/hooks/{endpoint}", json=payload)
        namespace, name = str(payload["namespace"]), str(payload["name"])
        effects: tuple[str, ...] = ()
        if endpoint == "rollout":
            effects = self._new_load_tests(namespace, name)
        effects += self._new_e2e_runs(namespace, name)
        return Answer(response.status_code, response.text, effects)

    def _new_e2e_runs(self, namespace: str, name: str) -> tuple[str, ...]:
        """E2E runs the call asked for: reported as dry runs and taken as passed, so the
        simulation goes on as if CI had succeeded (a later call sees the pass)."""
        detail = self.canary(namespace, name) or {}
        started = [run for run in detail.get("e2e_runs", []) if run["status"] == "pending"]
        if not started:
            return ()
        ids = [run["id"] for run in started]
        db = self._client.app.state.db  # type: ignore[attr-defined]
        now = self._clock.now()
        self._client.portal.call(db.write, partial(_simulated_pass, run_ids=ids, now=now))  # type: ignore[union-attr]
        found = []
        for run in started:
            target = run["target"]
            what = target.get("workflow") or target.get("project")
            ref = f"@{target['ref']}" if target.get("ref") else ""
            found.append(
                f"E2E run {run['gate']} on {run['provider']}: {what}{ref} (assumed to pass)"
            )
        return tuple(found)

    def _new_load_tests(self, namespace: str, name: str) -> tuple[str, ...]:
        detail = self.canary(namespace, name) or {}
        rollout = (detail.get("rollout") or {}).get("seq")
        found = []
        for test in detail.get("load_tests", []):
            key = (namespace, name, rollout, test["gate"])
            if key in self._seen_load_tests:
                continue
            self._seen_load_tests.add(key)
            spec = test["spec"]
            rate = f"{spec['rate']:g} req/s" if spec.get("rate") else "max rate"
            found.append(f"load test {test['gate']}: {rate} to {spec['url']}")
        return tuple(found)

    def canary(self, namespace: str, name: str) -> dict[str, Any] | None:
        """``GET /api/v1/canaries/<ns>/<name>``; None if Puerta has never heard of it."""
        response = self._client.get(f"/api/v1/canaries/{namespace}/{name}", headers=self._headers())
        if response.status_code == 404:
            return None
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def approve(
        self, namespace: str, name: str, *, hook: str, reason: str, approvers: int = 1
    ) -> str:
        """Approve the waiting hook as ``approvers`` distinct people; Puerta's message."""
        messages = []
        for approver in range(min(max(approvers, 1), MAX_APPROVERS)):
            response = self._client.post(
                f"/api/v1/canaries/{namespace}/{name}/approve",
                json={"reason": reason, "hook": hook},
                headers=self._headers(approver),
            )
            response.raise_for_status()
            messages.append(str(response.json()["message"]))
        return messages[-1]
