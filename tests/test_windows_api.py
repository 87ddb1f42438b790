"""Deployment windows, release trains, freezes and overrides through the HTTP API, on the
bundled example policy (production: Sun-Thu 09:00-21:00 Asia/Jerusalem, Israeli holidays,
one rollout at a time)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from conftest import ADMIN, APPROVER, EXAMPLE_POLICY, VIEWER, Puerta

JLM = ZoneInfo("Asia/Jerusalem")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=JLM)  # type: ignore[misc]


@pytest.fixture
def policy_text() -> str:
    return EXAMPLE_POLICY.read_text()


def start(puerta: Puerta, name: str, checksum: str = "aaaaaaaaaa") -> tuple[int, str]:
    response = puerta.hook(
        "confirm-rollout", namespace="prod", name=name, checksum=checksum, phase="Succeeded"
    )
    return response.status_code, response.text


def finish(puerta: Puerta, name: str, checksum: str = "bbbbbbbbbb") -> None:
    assert (
        puerta.hook("pre-rollout", namespace="prod", name=name, checksum=checksum).status_code
        == 200
    )
    assert (
        puerta.hook(
            "post-rollout", namespace="prod", name=name, checksum=checksum, phase="Succeeded"
        ).status_code
        == 200
    )


def test_friday_afternoon_waits_for_sunday_morning(puerta: Puerta) -> None:
    puerta.clock.set(local(2026, 11, 27, 14, 0))  # Friday
    status, reason = start(puerta, "podinfo")
    assert status == 403
    assert reason == (
        "outside the production deployment window (Sun-Thu 09:00-21:00 Asia/Jerusalem; "
        "holidays IL); opens Sun 2026-11-29 09:00 IST, in 1d 19h; 1st in line"
    )
    waiting = puerta.api("GET", "/canaries/prod/podinfo").json()["rollout"]["waiting"]
    assert waiting["gate"] == "confirm-rollout[0] work-hours"
    assert waiting["retry_at"] == "2026-11-29T07:00:00Z"

    puerta.clock.set(local(2026, 11, 29, 8, 59))
    assert start(puerta, "podinfo")[0] == 403
    puerta.clock.set(local(2026, 11, 29, 9, 0))
    status, reason = start(puerta, "podinfo")
    assert status == 200
    assert reason.startswith(
        "passed confirm-rollout[0] work-hours: inside the production "
        "deployment window; closes Sun 2026-11-29 21:00 IST, in 12h"
    )
    assert reason.endswith("left the production release train 1st in line")


def test_staging_has_no_window(puerta: Puerta) -> None:
    puerta.clock.set(local(2026, 11, 28, 3, 0))  # Saturday night
    assert puerta.hook("confirm-rollout", namespace="staging").status_code == 200


def test_three_weekend_arrivals_leave_in_order_one_at_a_time(
    puerta: Puerta, policy_text: str
) -> None:
    # Flagger would poll each waiting canary every interval all weekend; instead of replaying
    # thousands of polls, let a queued canary keep its place for three days without one.
    puerta.restart(
        policy_text.replace("release_timeout: 2h", "release_timeout: 2h\n      stale_after: 3d")
    )
    puerta.clock.set(local(2026, 11, 27, 11, 0))
    for name in ("first", "second", "third"):
        assert start(puerta, name)[0] == 403
        puerta.clock.advance(timedelta(hours=3))
    _, reason = start(puerta, "third")
    assert reason.endswith("; 3rd in line")

    # Sunday 09:00: Flagger polls the later arrivals first; they must not jump the queue.
    puerta.clock.set(local(2026, 11, 29, 9, 0))
    status, reason = start(puerta, "third")
    assert (status, reason) == (
        403,
        "production release train: waiting behind prod/second; 3rd in line",
    )
    assert start(puerta, "second")[0] == 403
    assert start(puerta, "first")[0] == 200

    puerta.clock.advance(timedelta(minutes=1))
    status, reason = start(puerta, "second")
    assert (status, reason) == (
        403,
        "production release train is full (1 of 1 rolling out: prod/first #1); 1st in line",
    )
    finish(puerta, "first")
    assert start(puerta, "third")[0] == 403  # still behind second
    assert start(puerta, "second")[0] == 200
    assert start(puerta, "third")[0] == 403
    finish(puerta, "second")
    assert start(puerta, "third")[0] == 200

    released = [
        (c["name"], c["rollout"]["confirmed_at"])
        for c in puerta.api("GET", "/canaries", params={"environment": "production"}).json()[
            "canaries"
        ]
    ]
    assert [name for name, _ in sorted(released, key=lambda item: item[1])] == [
        "first",
        "second",
        "third",
    ]


def test_a_rollout_that_never_reports_back_stops_holding_the_train(puerta: Puerta) -> None:
    puerta.clock.set(local(2026, 11, 29, 10, 0))
    assert start(puerta, "silent")[0] == 200
    assert start(puerta, "next")[0] == 403
    puerta.clock.advance(timedelta(hours=2, minutes=1))  # release_timeout: 2h
    assert start(puerta, "next")[0] == 200


def test_a_canary_that_stopped_calling_loses_its_place(puerta: Puerta) -> None:
    puerta.clock.set(local(2026, 11, 27, 10, 0))
    start(puerta, "deleted")  # then its Canary is deleted: it never calls again
    puerta.clock.set(local(2026, 11, 27, 12, 0))
    start(puerta, "alive")
    puerta.clock.set(local(2026, 11, 29, 9, 0))
    assert start(puerta, "alive")[0] == 200


def test_sunday_holiday_moves_the_opening_to_monday(puerta: Puerta) -> None:
    puerta.clock.set(local(2026, 9, 11, 14, 0))  # Friday before Rosh Hashanah
    status, reason = start(puerta, "podinfo")
    assert status == 403
    assert "opens Mon 2026-09-14 09:00 IDT, in 2d 19h" in reason
    puerta.clock.set(local(2026, 9, 13, 10, 0))  # Sunday, Rosh Hashanah
    status, reason = start(puerta, "podinfo")
    assert status == 403
    assert reason.startswith("production deployment window closed, holiday: Rosh Hashanah")
    puerta.clock.set(local(2026, 9, 14, 9, 0))
    assert start(puerta, "podinfo")[0] == 200


def test_dst_keeps_the_window_local(puerta: Puerta) -> None:
    """Israel leaves DST on Sun 2026-10-25: the window still opens at 09:00 local."""
    puerta.clock.set(local(2026, 10, 23, 12, 0))  # Friday, IDT
    _, reason = start(puerta, "podinfo")
    assert "opens Sun 2026-10-25 09:00 IST" in reason
    puerta.clock.set(local(2026, 10, 25, 8, 59))
    assert start(puerta, "podinfo")[0] == 403
    puerta.clock.set(local(2026, 10, 25, 9, 0))
    assert start(puerta, "podinfo")[0] == 200


# ---- freezes ----------------------------------------------------------------------------


def test_freeze_created_by_admin_shown_in_refusals_and_lifted(puerta: Puerta) -> None:
    puerta.clock.set(local(2026, 11, 29, 10, 0))  # window open
    body = {
        "environment": "production",
        "reason": "incident 142",
        "until": "2026-11-29T18:00:00+02:00",
    }
    assert puerta.api("POST", "/freezes", token=APPROVER, json=body).status_code == 403
    assert puerta.api("POST", "/freezes", token=VIEWER, json=body).status_code == 403
    assert puerta.api("POST", "/freezes", json=body).status_code == 401
    created = puerta.api("POST", "/freezes", token=ADMIN, json=body)
    assert created.status_code == 201, created.text
    freeze = created.json()
    assert (freeze["created_by"], freeze["ends_at"]) == ("admin", "2026-11-29T16:00:00Z")

    status, reason = start(puerta, "podinfo")
    assert (status, reason) == (
        403,
        "production is frozen by admin: incident 142 (until Sun 2026-11-29 18:00 IST); 1st in line",
    )
    assert puerta.hook("confirm-rollout", namespace="staging").status_code == 200
    puerta.restart()
    assert start(puerta, "podinfo")[0] == 403
    listed = puerta.api("GET", "/freezes").json()["freezes"]
    assert [f["reason"] for f in listed] == ["incident 142"]

    assert (
        puerta.api("POST", "/environments/production/unfreeze", token=APPROVER, json={}).status_code
        == 403
    )
    lifted = puerta.api(
        "POST", "/environments/production/unfreeze", token=ADMIN, json={"reason": "resolved"}
    )
    assert lifted.json() == {
        "environment": "production",
        "lifted": [freeze["id"]],
        "actor": "admin",
    }
    assert start(puerta, "podinfo")[0] == 200
    actions = [(e["action"], e["actor"], e["reason"]) for e in puerta.audit(kind="admin")]
    assert actions == [("unfreeze", "admin", "resolved"), ("freeze", "admin", "incident 142")]


def test_freeze_expires_by_itself_and_can_target_namespaces(puerta: Puerta) -> None:
    puerta.clock.set(local(2026, 11, 29, 10, 0))
    puerta.api(
        "POST",
        "/freezes",
        token=ADMIN,
        json={
            "environment": "production",
            "reason": "payments audit",
            "namespaces": ["prod-pay*"],
            "until": "2026-11-29T12:00:00+02:00",
        },
    )
    frozen = puerta.hook("confirm-rollout", namespace="prod-payments", name="api")
    assert frozen.status_code == 403
    assert frozen.text.startswith("production for prod-pay* is frozen by admin: payments audit")
    assert start(puerta, "other")[0] == 200  # prod: not frozen
    puerta.clock.set(local(2026, 11, 29, 12, 0))
    finish(puerta, "other")
    assert puerta.hook("confirm-rollout", namespace="prod-payments", name="api").status_code == 200


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {"environment": "prodution", "reason": "x"},
            "environment: unknown environment 'prodution'; known: staging, production",
        ),
        (
            {"environment": "production", "reason": "x", "until": "2026-11-29T18:00:00"},
            "until: give a time zone",
        ),
        (
            {"environment": "production", "reason": "x", "until": "2020-01-01T00:00:00Z"},
            "until: must be in the future",
        ),
        ({"environment": "production"}, "reason: Field required"),
    ],
)
def test_bad_freezes_are_400(puerta: Puerta, body: dict[str, str], detail: str) -> None:
    response = puerta.api("POST", "/freezes", token=ADMIN, json=body)
    assert response.status_code == 400
    assert response.json()["detail"].startswith(detail)
    assert puerta.api("GET", "/freezes").json()["freezes"] == []


# ---- break-glass override -------------------------------------------------------------------


def test_override_lets_one_waiting_rollout_through(puerta: Puerta) -> None:
    puerta.clock.set(local(2026, 11, 27, 14, 0))  # Friday: closed
    start(puerta, "hotfix")
    start(puerta, "feature")
    body = {"reason": "CVE-2026-1234 hotfix"}
    assert (
        puerta.api("POST", "/canaries/prod/hotfix/override", token=APPROVER, json=body).status_code
        == 403
    )
    assert (
        puerta.api("POST", "/canaries/prod/hotfix/override", token=ADMIN, json={}).status_code
        == 400
    )
    done = puerta.api("POST", "/canaries/prod/hotfix/override", token=ADMIN, json=body)
    assert done.status_code == 200
    puerta.restart()
    status, reason = start(puerta, "hotfix")
    assert status == 200
    assert "overridden by admin: CVE-2026-1234 hotfix" in reason
    assert start(puerta, "feature")[0] == 403  # the override was for one rollout only
    audit = puerta.audit(kind="admin")
    assert [(e["action"], e["name"], e["reason"]) for e in audit] == [
        ("override", "hotfix", "CVE-2026-1234 hotfix")
    ]


def test_stagger_spaces_departures(puerta: Puerta, policy_text: str) -> None:
    puerta.restart(
        policy_text.replace("max_concurrent: 1 ", "max_concurrent: 2 ").replace(
            "release_timeout: 2h", "release_timeout: 2h\n      stagger: 10m"
        )
    )
    puerta.clock.set(local(2026, 11, 27, 12, 0))
    start(puerta, "a")
    start(puerta, "b")
    puerta.clock.set(local(2026, 11, 29, 9, 0))
    assert start(puerta, "a")[0] == 200
    status, reason = start(puerta, "b")
    assert (status, reason) == (
        403,
        "production release train: next departure in 10m (stagger 10m); 1st in line",
    )
    waiting = puerta.api("GET", "/canaries/prod/b").json()["rollout"]["waiting"]
    assert waiting["retry_at"] == "2026-11-29T07:10:00Z"
    puerta.clock.set(local(2026, 11, 29, 9, 10))
    assert start(puerta, "b")[0] == 200


def test_two_replicas_release_exactly_one_in_order(puerta: Puerta) -> None:
    """Two Puerta processes on one database, the window opening, every queued canary calling
    both replicas at once: only the first in line leaves (max_concurrent 1)."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from fastapi.testclient import TestClient

    names = [f"svc-{i}" for i in range(6)]
    puerta.clock.set(local(2026, 11, 29, 8, 0))
    for name in names:
        start(puerta, name)
        puerta.clock.advance(timedelta(minutes=1))
    puerta.clock.set(local(2026, 11, 29, 8, 58))
    for name in reversed(names):  # Flagger keeps polling (in any order) until it opens
        assert start(puerta, name)[0] == 403
    puerta.clock.set(local(2026, 11, 29, 9, 0))
    with TestClient(puerta.build_app()) as replica:
        clients = [puerta.http, replica]
        calls = [(clients[i % 2], name) for i, name in enumerate(names * 2)]
        barrier = Barrier(len(calls))

        def call(args: tuple[TestClient, str]) -> tuple[str, int]:
            client, name = args
            barrier.wait()
            body = {
                "name": name,
                "namespace": "prod",
                "phase": "Succeeded",
                "checksum": "aaaaaaaaaa",
            }
            return name, client.post("/hooks/confirm-rollout", json=body).status_code

        with ThreadPoolExecutor(len(calls)) as pool:
            results = list(pool.map(call, calls))
    passed = {name for name, status in results if status == 200}
    assert passed == {"svc-0"}
    rolling = puerta.api("GET", "/explain", params={"canary": "prod/svc-1"}).json()["train"]
    assert rolling["rolling_out"] == ["prod/svc-0 #1"]
    assert rolling["queue"][:2] == ["prod/svc-1 (this rollout)", "prod/svc-2 #1"]


def test_a_restart_for_a_newer_revision_keeps_the_train_slot(puerta: Puerta) -> None:
    """Flagger restarts the analysis for a newer revision without confirm-rollout: the new
    rollout is the same departure and still holds the only slot."""
    puerta.clock.set(local(2026, 11, 29, 10, 0))
    assert start(puerta, "a")[0] == 200
    assert start(puerta, "b")[0] == 403
    puerta.hook("pre-rollout", namespace="prod", name="a", checksum="a1a1a1a1a1")
    puerta.hook("pre-rollout", namespace="prod", name="a", checksum="a2a2a2a2a2")
    puerta.clock.advance(timedelta(minutes=1))
    status, reason = start(puerta, "b")
    assert (status, reason) == (
        403,
        "production release train is full (1 of 1 rolling out: prod/a #2); 1st in line",
    )
    finish(puerta, "a", checksum="a2a2a2a2a2")
    assert start(puerta, "b")[0] == 200
