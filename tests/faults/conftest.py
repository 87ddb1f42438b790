"""Fixtures of the fault-injection suite: a private PostgreSQL cluster for the session (tests
stop and restart it), a fresh database per test, and a factory of replica clusters that stops
every process at the end and checks that no configured secret reached their logs.

Without PostgreSQL server binaries the suite is skipped with a message, unless
``PUERTA_REQUIRE_POSTGRES=1`` (CI), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import pytest

from faults.replicas import (
    SECRETS,
    PostgresUnavailable,
    PrivatePostgres,
    Replica,
    Replicas,
    leaked_secrets,
)
from required import skip_unless_required

#: what every replica of the suite runs with (tests add to it)
REPLICA_ENV = {
    "PUERTA_RUNNER_INTERVAL": "0.2",
    "PUERTA_LEASE": "3",
    "PUERTA_SHUTDOWN_GRACE": "5",
    "PUERTA_LOG_FORMAT": "json",
    "PUERTA_LOG_LEVEL": "info",
}


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivatePostgres]:
    try:
        server = PrivatePostgres()
    except PostgresUnavailable as exc:
        message = f"fault-injection suite skipped: {exc}"
        skip_unless_required(message, "PUERTA_REQUIRE_POSTGRES")
    try:
        server.create()
    except PostgresUnavailable as exc:
        server.destroy()
        message = f"fault-injection suite skipped: {exc}"
        skip_unless_required(message, "PUERTA_REQUIRE_POSTGRES")
    except BaseException:
        server.destroy()
        raise
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def database(private_postgres: PrivatePostgres) -> Iterator[str]:
    """A fresh database of the private cluster; yields the replicas' URL (with a password)."""
    private_postgres.ensure_running()
    name = f"faults_{uuid.uuid4().hex[:10]}"
    url = private_postgres.create_database(name)
    try:
        yield url
    finally:
        private_postgres.ensure_running()
        private_postgres.drop_database(name)


class ClusterFactory(Protocol):
    def __call__(
        self,
        policies: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        start: bool = True,
    ) -> Replicas: ...


@pytest.fixture
def cluster(tmp_path: Path, database: str) -> Iterator[ClusterFactory]:
    """``cluster([policy_a, policy_b])``: one replica per policy file, on this test's database,
    started and ready. At the end every process is stopped and every log line they wrote is
    searched for every configured secret."""
    made: list[Replicas] = []
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PUERTA_")}

    def make(
        policies: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        start: bool = True,
    ) -> Replicas:
        environ = {
            **inherited,
            **SECRETS.environ(),
            **REPLICA_ENV,
            "PUERTA_DATABASE_URL": database,
            **(env or {}),
        }
        names = [chr(ord("a") + len(made) * len(policies) + i) for i in range(len(policies))]
        replicas = Replicas(
            [
                Replica(name, policy, environ, tmp_path)
                for name, policy in zip(names, policies, strict=True)
            ]
        )
        made.append(replicas)
        if start:
            replicas.start()
        return replicas

    try:
        yield make
    finally:
        for replicas in made:
            replicas.stop()
        for replicas in made:
            for replica in replicas:
                print(f"==== {replica.name} (port {replica.port}): last log lines")
                print(replica.log_tail(30))
        leaks = {
            f"{replica.name}: {name}": line
            for replicas in made
            for replica in replicas
            for name, line in leaked_secrets(replica.logs()).items()
        }
        assert not leaks, f"secrets in the replicas' logs: {leaks}"
