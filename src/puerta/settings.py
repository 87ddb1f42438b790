"""Process settings: where the policy file and the database are, how to log.

Built once in the app factory from explicit arguments and the environment (``PUERTA_*``), never
at import time. Precedence for the database: ``PUERTA_DATABASE_URL``, then the policy file's
``database.url``, then the embedded SQLite file ``puerta.db`` in the working directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from puerta.store.db import DEFAULT_DATABASE_URL

LogFormat = Literal["json", "console"]
#: which work a replica does: ``all`` (answer calls and do background work), ``web`` (answer
#: calls only) or ``worker`` (background work only; answers health, readiness and metrics)
Role = Literal["all", "web", "worker"]
ROLES: tuple[Role, ...] = ("all", "web", "worker")


@dataclass(frozen=True)
class Settings:
    config_path: Path
    database_url: str | None = None  # None: from the policy file, else the default
    log_level: str = "info"
    log_format: LogFormat = "json"
    migrate_on_start: bool = True
    #: have outside effects at all (background work, secrets, held calls); off for in-process
    #: tools that must have none (``simulate``, ``explain --policy``), whatever the role
    background: bool = True
    #: which work this replica does (``PUERTA_ROLE``). Splitting them keeps the CI runner's,
    #: the notifier's and the load generators' work off the event loop that answers Flagger
    role: Role = "all"
    #: seconds between two rounds of the load-test runner (claim, renew, report, stop)
    runner_interval: float = 1.0
    #: seconds a replica holds background work (a load test, a CI run, a notification, a
    #: promotion) before another may take it over; renewed while it works, handed back on a
    #: graceful shutdown, so this is how long a replica that died (kill -9) delays its work
    lease: float = 30.0
    #: seconds ``serve`` lets in-flight requests finish after SIGTERM (keep it under the
    #: pod's terminationGracePeriodSeconds)
    shutdown_grace: float = 25.0
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ), repr=False)

    @classmethod
    def from_env(
        cls, config_path: str | Path | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        env = dict(os.environ if environ is None else environ)
        path = config_path or env.get("PUERTA_CONFIG")
        if not path:
            raise ValueError("no policy file: pass --config FILE or set PUERTA_CONFIG")
        log_format = env.get("PUERTA_LOG_FORMAT", "json")
        if log_format not in ("json", "console"):
            raise ValueError(f"PUERTA_LOG_FORMAT: {log_format!r} is not json or console")
        role = env.get("PUERTA_ROLE", "all").lower()
        if role not in ROLES:
            raise ValueError(f"PUERTA_ROLE: {role!r} is not one of {', '.join(ROLES)}")
        return cls(
            config_path=Path(path),
            database_url=env.get("PUERTA_DATABASE_URL") or None,
            log_level=env.get("PUERTA_LOG_LEVEL", "info").lower(),
            log_format=log_format,  # type: ignore[arg-type]
            role=role,
            migrate_on_start=env.get("PUERTA_MIGRATE_ON_START", "true").lower() != "false",
            runner_interval=_positive(env, "PUERTA_RUNNER_INTERVAL", 1.0),
            lease=_positive(env, "PUERTA_LEASE", 30.0),
            shutdown_grace=_positive(env, "PUERTA_SHUTDOWN_GRACE", 25.0),
            environ=env,
        )

    @property
    def runs_workers(self) -> bool:
        """This replica runs the background workers (CI runs, notifications, promotions,
        load generators, audit sealing, delivery figures)."""
        return self.background and self.role != "web"

    @property
    def answers_calls(self) -> bool:
        """This replica answers hooks, the API, the dashboard and the CI webhooks."""
        return self.role != "worker"

    def resolve_database_url(self, from_policy: str | None) -> str:
        return self.database_url or from_policy or DEFAULT_DATABASE_URL


def _positive(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{key}: {raw!r} is not a number of seconds") from None
    if value <= 0:
        raise ValueError(f"{key}: must be more than 0 seconds")
    return value
