"""Shared fixtures: a Puerta app on SQLite and (where reachable) PostgreSQL, a manual clock,
tokens, and Flagger payload fixtures.

PostgreSQL: tests that use the ``puerta`` fixture run once per database. The PostgreSQL run uses
``PUERTA_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``) to create
a throw-away database; where no server answers, those runs are skipped with a message, unless
``PUERTA_REQUIRE_POSTGRES=1`` (set by ``.ci/run``), which turns the skip into a failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fakes.server import serve_in_thread  # noqa: F401  (re-exported for tests)
from puerta.app import create_app
from puerta.clock import ManualClock
from puerta.policy import parse_policy
from puerta.settings import Settings
from puerta.store.db import Database
from required import skip_unless_required

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLE_POLICY = Path(__file__).parent.parent / "examples" / "policy.yaml"
TEST_POLICY = FIXTURES / "policy.yaml"

TOKENS = {
    "PUERTA_ADMIN_TOKEN": "adm-5c1f0d7e9b",
    "PUERTA_APPROVER_TOKEN": "apr-77a0c3e41d",
    "PUERTA_VIEWER_TOKEN": "vwr-0b9e2a6c55",
}
ADMIN = TOKENS["PUERTA_ADMIN_TOKEN"]
APPROVER = TOKENS["PUERTA_APPROVER_TOKEN"]
VIEWER = TOKENS["PUERTA_VIEWER_TOKEN"]


def flagger_payload(hook: str, **overrides: Any) -> dict[str, Any]:
    """A payload fixture from Flagger's docs/tests, with fields overridden."""
    payload: dict[str, Any] = json.loads((FIXTURES / "flagger" / f"{hook}.json").read_text())
    payload.update(overrides)
    return payload


# ---- PostgreSQL -----------------------------------------------------------------------------

PG_ADMIN_URL = os.environ.get(
    "PUERTA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _pg_reachable() -> str | None:
    """None if reachable, else the reason."""
    import asyncpg

    async def probe() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception as exc:  # any failure means "not usable here"
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session; yields its asyncpg URL."""
    problem = _pg_reachable()
    if problem is not None:
        message = (
            f"PostgreSQL not reachable at {PG_ADMIN_URL} ({problem}); "
            "set PUERTA_TEST_POSTGRES_URL or run .ci/run, which starts one"
        )
        skip_unless_required(message, "PUERTA_REQUIRE_POSTGRES")
    import asyncpg

    name = f"puerta_test_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    try:
        yield f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _truncate_pg(url: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
        try:
            tables = await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'"
            )
            if tables:
                names = ", ".join(f'"{t["tablename"]}"' for t in tables)
                await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'puerta.db'}"
    url: str = request.getfixturevalue("postgres_server")
    _truncate_pg(url)
    return url


# ---- the app ---------------------------------------------------------------------------------


class Puerta:
    """A Puerta app under test, on a real database, restartable, with a manual clock."""

    def __init__(self, database_url: str, policy_text: str, clock: ManualClock) -> None:
        self.database_url = database_url
        self.policy_text = policy_text
        self.clock = clock
        self.client: TestClient | None = None
        self.environ = {
            **TOKENS,
            "PUERTA_DATABASE_URL": database_url,
            "PUERTA_RUNNER_INTERVAL": "0.05",  # load-test runner rounds, in real seconds
        }

    def build_app(self) -> FastAPI:
        settings = Settings.from_env(TEST_POLICY, self.environ)
        return create_app(settings, policy=parse_policy(self.policy_text), clock=self.clock)

    def start(self) -> Puerta:
        self.client = TestClient(self.build_app(), raise_server_exceptions=True)
        self.client.__enter__()
        return self

    def stop(self) -> None:
        if self.client is not None:
            self.client.__exit__(None, None, None)
            self.client = None

    def restart(self, policy_text: str | None = None) -> None:
        self.stop()
        if policy_text is not None:
            self.policy_text = policy_text
        self.start()

    @property
    def http(self) -> TestClient:
        assert self.client is not None, "Puerta is not running"
        return self.client

    def hook(self, hook: str, payload: dict[str, Any] | None = None, **overrides: Any) -> Any:
        body = payload if payload is not None else flagger_payload(hook, **overrides)
        return self.http.post(f"/hooks/{hook}", json=body)

    def api(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.request(method, f"/api/v1{path}", headers=headers, **kwargs)

    def audit(self, **params: Any) -> list[dict[str, Any]]:
        response = self.api("GET", "/audit", token=VIEWER, params=params)
        assert response.status_code == 200, response.text
        events: list[dict[str, Any]] = response.json()["events"]
        return events


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """The store alone (no app), migrated, on each database."""
    database = Database(database_url)
    await database.migrate()
    yield database
    await database.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 11, 26, 10, 0, tzinfo=UTC))


@pytest.fixture
def policy_text() -> str:
    return TEST_POLICY.read_text()


@pytest.fixture
def puerta(database_url: str, policy_text: str, clock: ManualClock) -> Iterator[Puerta]:
    app = Puerta(database_url, policy_text, clock).start()
    try:
        yield app
    finally:
        app.stop()
