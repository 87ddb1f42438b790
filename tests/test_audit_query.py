"""The audit API: filters and pagination."""

from __future__ import annotations

from datetime import timedelta

from conftest import APPROVER, VIEWER, Puerta


def test_filters_and_pages(puerta: Puerta) -> None:
    start = puerta.clock.now()
    for i in range(5):
        puerta.hook("confirm-rollout", namespace="prod", name=f"svc-{i}")
        puerta.clock.advance(timedelta(minutes=1))
    puerta.hook("confirm-rollout", namespace="staging", name="web")
    puerta.api("POST", "/canaries/prod/svc-1/approve", token=APPROVER, json={"reason": "ok"})
    puerta.hook("confirm-rollout", namespace="prod", name="svc-1")

    assert len(puerta.audit()) == 8
    assert [e["name"] for e in puerta.audit(environment="staging")] == ["web"]
    assert [e["verdict"] for e in puerta.audit(canary="prod/svc-1")] == ["pass", None, "wait"]
    assert [e["action"] for e in puerta.audit(kind="admin")] == ["approve"]
    assert len(puerta.audit(decision="wait")) == 5
    assert len(puerta.audit(hook="confirm-rollout", namespace="prod")) == 6
    window = puerta.audit(
        since=(start + timedelta(minutes=1)).isoformat(),
        until=(start + timedelta(minutes=3)).isoformat(),
    )
    assert [e["name"] for e in window] == ["svc-2", "svc-1"]

    first = puerta.api("GET", "/audit", token=VIEWER, params={"limit": 3}).json()
    assert len(first["events"]) == 3
    second = puerta.api(
        "GET", "/audit", token=VIEWER, params={"limit": 3, "cursor": first["next_cursor"]}
    ).json()
    third = puerta.api(
        "GET", "/audit", token=VIEWER, params={"limit": 3, "cursor": second["next_cursor"]}
    ).json()
    ids = [e["id"] for page in (first, second, third) for e in page["events"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 8
    assert third["next_cursor"] is None


def test_bad_audit_queries_are_400(puerta: Puerta) -> None:
    for params, needle in (
        ({"canary": "podinfo"}, "canary: expected NAMESPACE/NAME"),
        ({"since": "2026-11-26T10:00:00"}, "since: give a time zone"),
        ({"since": "yesterday"}, "since"),
        ({"limit": 0}, "limit"),
    ):
        response = puerta.api("GET", "/audit", token=VIEWER, params=params)
        assert response.status_code == 400, params
        assert needle in response.json()["detail"]
