"""What runs in an environment: ``GET /api/v1/environments/{env}/live`` and ``puerta live``.

Rollouts are made by calling the hooks in Flagger's order (so each one's ``since`` is when its
post-rollout arrived, by the test's clock); the commit each ships is written into
``rollout_commits`` as the commit tracker would, one of them unresolved.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Connection
from typer.testing import CliRunner

from conftest import Puerta, serve_in_thread
from puerta.cli.main import app as cli
from puerta.store import outbox
from puerta.store.db import Database
from puerta.store.tables import canaries

FIX = "4b1f2e7" + "a5" * 16 + "c"
CART = "d00d1e5" + "3c" * 16 + "9"
NO_RULE = "no commits rule matches ghcr.io/acme/podinfo:latest"


def canary_id(conn: Connection, namespace: str, name: str) -> int:
    return int(
        conn.execute(
            select(canaries.c.id).where(canaries.c.namespace == namespace, canaries.c.name == name)
        ).scalar_one()
    )


def ships(puerta: Puerta, name: str, seq: int, sha: str | None) -> None:
    """Record what rollout ``seq`` of ``staging/name`` ships (``sha`` None: the tracker could
    not tell), on the app's database as another replica would."""
    now = puerta.clock.now()

    def write(conn: Connection) -> None:
        known: dict[str, Any] = (
            {
                "status": "resolved",
                "image": f"ghcr.io/acme/{name}:{sha[:7]}",
                "repository": f"acme/{name}",
                "sha": sha,
                "url": f"https://github.com/acme/{name}/commit/{sha}",
                "title": f"Change {sha[:7]}",
                "author_name": "Ada Lovelace",
                "committed_at": now - timedelta(hours=1),
            }
            if sha is not None
            else {"status": "unresolved", "reason": NO_RULE}
        )
        outbox.store_rollout_commit(
            conn,
            canary_id=canary_id(conn, "staging", name),
            rollout_seq=seq,
            resolved_at=now,
            reported=False,
            **known,
        )

    async def run() -> None:
        db = Database(puerta.database_url)
        try:
            await db.write(write)
        finally:
            await db.dispose()

    asyncio.run(run())


def roll_out(puerta: Puerta, name: str, base: str, revision: str, phase: str) -> datetime:
    """One rollout of ``staging/name``: confirm-rollout, pre-rollout, and 5 minutes later the
    post-rollout with ``phase``. Returns when it finished."""
    ns = {"namespace": "staging", "name": name}
    first = "Initialized" if base == "6d9d8b5c7f" else "Succeeded"
    assert puerta.hook("confirm-rollout", checksum=base, phase=first, **ns).status_code == 200
    assert puerta.hook("pre-rollout", checksum=revision, **ns).status_code == 200
    puerta.clock.advance(timedelta(minutes=5))
    assert puerta.hook("post-rollout", checksum=revision, phase=phase, **ns).status_code == 200
    return puerta.clock.now()


@pytest.fixture
def staging(puerta: Puerta) -> dict[str, datetime]:
    """staging/podinfo #1 and #2 succeed (#2 ships a commit the tracker could not name), #3
    fails (Flagger keeps #2); staging/cart #1 succeeds. Returns when each went live."""
    finished = {"podinfo#1": roll_out(puerta, "podinfo", "6d9d8b5c7f", "85d557f47b", "Succeeded")}
    ships(puerta, "podinfo", 1, FIX)
    puerta.clock.advance(timedelta(minutes=55))
    finished["podinfo#2"] = roll_out(puerta, "podinfo", "85d557f47b", "a1b2c3d4e5", "Succeeded")
    ships(puerta, "podinfo", 2, None)
    finished["cart#1"] = roll_out(puerta, "cart", "6d9d8b5c7f", "85d557f47b", "Succeeded")
    ships(puerta, "cart", 1, CART)
    puerta.clock.advance(timedelta(minutes=20))
    roll_out(puerta, "podinfo", "a1b2c3d4e5", "f0e1d2c3b4", "Failed")
    return finished


def live_in(puerta: Puerta, environment: str, **params: Any) -> dict[str, Any]:
    response = puerta.api("GET", f"/environments/{environment}/live", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_each_canary_shows_since_when_it_runs_what_it_runs(
    puerta: Puerta, staging: dict[str, datetime]
) -> None:
    body = live_in(puerta, "staging")
    assert body["environment"] == "staging"
    cart, podinfo = body["canaries"]
    assert (cart["name"], podinfo["name"]) == ("cart", "podinfo")

    # podinfo runs #2 since its post-rollout, not since it started, nor since #3 failed
    now = podinfo["live"]
    assert (now["rollout_seq"], now["sha"]) == (2, None)
    assert datetime.fromisoformat(now["since"]) == staging["podinfo#2"]
    assert now["commit_problem"] == NO_RULE
    (before,) = podinfo["history"]
    assert (before["rollout_seq"], before["sha"], before["title"]) == (1, FIX, "Change 4b1f2e7")
    assert datetime.fromisoformat(before["since"]) == staging["podinfo#1"]
    assert before["commit_problem"] is None

    assert (cart["live"]["rollout_seq"], cart["live"]["sha"], cart["history"]) == (1, CART, [])
    assert datetime.fromisoformat(cart["live"]["since"]) == staging["cart#1"]

    assert live_in(puerta, "staging", history=0)["canaries"][1]["history"] == []
    assert live_in(puerta, "production") == {"environment": "production", "canaries": []}
    unknown = puerta.api("GET", "/environments/nowhere/live")
    assert unknown.status_code == 400
    assert "nowhere" in unknown.json()["detail"]


@pytest.fixture
def server(puerta: Puerta) -> Iterator[str]:
    """A second Puerta on the same database and clock, on a real socket, for the CLI."""
    with serve_in_thread(puerta.build_app()) as url:
        yield url


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["live", *args])
    return result.exit_code, result.output


def test_puerta_live(puerta: Puerta, staging: dict[str, datetime], server: str) -> None:
    code, out = run("staging", "--server", server)
    assert code == 0, out
    minute = {key: f"{at:%Y-%m-%dT%H:%M}" for key, at in staging.items()}
    assert [line.split() for line in out.splitlines()] == [
        ["CANARY", "ROLLOUT", "SINCE", "COMMIT", "IMAGE"],
        ["staging/cart", "live", "#1", minute["cart#1"], "acme/cart@d00d1e5", "Change", "d00d1e5",
         "ghcr.io/acme/cart:d00d1e5"],
        ["staging/podinfo", "live", "#2", minute["podinfo#2"], "unknown", "(no", "commits",
         "rule", "matches", "ghcr.io/acme/podinfo:latest)", "-"],
        ["before", "#1", minute["podinfo#1"], "acme/podinfo@4b1f2e7", "Change", "4b1f2e7",
         "ghcr.io/acme/podinfo:4b1f2e7"],
    ]  # fmt: skip

    code, out = run("staging", "--history", "0", "--server", server)
    assert code == 0, out
    assert "before" not in out and len(out.splitlines()) == 3

    code, out = run("staging", "--json", "--server", server)
    assert code == 0, out
    assert json.loads(out) == live_in(puerta, "staging", history=3)

    code, out = run("production", "--server", server)
    assert (code, out) == (0, "nothing has gone live in production yet\n")
    code, out = run("nowhere", "--server", server)
    assert code == 1
    assert "(HTTP 400)" in out
