"""``explain``: why a canary waits, at any instant, through the API and the CLI."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from conftest import ADMIN, EXAMPLE_POLICY, Puerta
from puerta.cli.main import app as cli

JLM = ZoneInfo("Asia/Jerusalem")


@pytest.fixture
def policy_text() -> str:
    return EXAMPLE_POLICY.read_text()


def explain(puerta: Puerta, **params: str) -> dict[str, object]:
    response = puerta.api("GET", "/explain", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_explains_a_waiting_canary_and_when_it_changes(puerta: Puerta) -> None:
    puerta.clock.set(datetime(2026, 11, 27, 14, 0, tzinfo=JLM))
    for name in ("api", "web"):
        puerta.hook("confirm-rollout", namespace="prod", name=name)
    body = explain(puerta, canary="prod/web")
    assert body["environment"] == "production"
    assert body["matching"] == ["staging: no match rule matched", "production: matched by match[0]"]
    assert body["hypothetical"] is False
    assert body["place_in_line"] == 2
    assert body["decision"] == {
        "verdict": "wait",
        "http_status": 403,
        "gate": "confirm-rollout[0] work-hours",
        "reason": "outside the production deployment window (Sun-Thu 09:00-21:00 "
        "Asia/Jerusalem; holidays IL); opens Sun 2026-11-29 09:00 IST, in 1d 19h; "
        "2nd in line",
    }
    assert body["next_change"] == "2026-11-29T07:00:00Z"
    assert body["next_change_because"] == "confirm-rollout[0] work-hours passes"
    assert body["train"] == {
        "max_concurrent": 1,
        "rolling_out": [],
        "last_departure": None,
        "queue": ["prod/api #1", "prod/web (this rollout)"],
    }
    # explaining writes nothing
    assert len(puerta.audit(kind="hook")) == 2


def test_explain_at_another_time_tries_the_policy(puerta: Puerta) -> None:
    body = explain(puerta, canary="prod/new-service", at="2026-11-29T09:30:00+02:00")
    assert body["hypothetical"] is True
    assert body["decision"]["verdict"] == "pass"  # type: ignore[index]
    gate = body["gates"][0]  # type: ignore[index]
    assert gate["outcome"] == "pass"
    assert gate["changes_at"] == "2026-11-29T19:00:00Z"  # closes at 21:00 local
    assert body["next_change_because"] == "confirm-rollout[0] work-hours stops passing"


def test_explain_shows_freezes_and_metadata_matching(puerta: Puerta) -> None:
    puerta.clock.set(datetime(2026, 11, 29, 10, 0, tzinfo=JLM))
    puerta.api(
        "POST",
        "/freezes",
        token=ADMIN,
        json={"environment": "production", "reason": "incident 7", "until": "2026-11-29T16:00:00Z"},
    )
    body = explain(puerta, canary="apps/api", metadata="environment=production")
    assert body["environment"] == "production"
    assert body["freezes"] == [
        "production is frozen by admin: incident 7 (until Sun 2026-11-29 18:00 IST)"
    ]
    assert body["decision"]["gate"] == "freeze"  # type: ignore[index]
    assert body["next_change"] == "2026-11-29T16:00:00Z"


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"canary": "podinfo"}, "canary: expected NAMESPACE/NAME"),
        ({"canary": "prod/Bad_Name"}, "name: 'Bad_Name' is not a valid Kubernetes object name"),
        ({"canary": "prod/x", "hook": "confirm-rolout"}, "hook:"),
        ({"canary": "prod/x", "at": "2026-11-27T14:00:00"}, "at: give a time zone"),
        ({"canary": "prod/x", "metadata": "novalue"}, "metadata: expected key=value"),
    ],
)
def test_bad_explain_requests(puerta: Puerta, params: dict[str, str], detail: str) -> None:
    response = puerta.api("GET", "/explain", params=params)
    assert response.status_code == 400
    assert detail in response.json()["detail"]


def test_cli_explain_offline_against_a_policy_file() -> None:
    result = CliRunner().invoke(
        cli,
        [
            "explain",
            "prod/podinfo",
            "--policy",
            str(EXAMPLE_POLICY),
            "--at",
            "2026-11-27T14:00+02:00",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "environment: production" in result.output
    assert "answer: HTTP 403 WAIT: outside the production deployment window" in result.output
    assert "next change: Sun 2026-11-29 09:00 IST (confirm-rollout[0] work-hours passes)" in (
        result.output
    )
    assert result.output.startswith("prod/podinfo confirm-rollout at Fri 2026-11-27 14:00 IST")
    assert "puerta started" not in result.output  # in-process Puerta stays quiet


def test_cli_explain_offline_with_a_broken_policy(tmp_path: object) -> None:
    from pathlib import Path

    bad = Path(str(tmp_path)) / "bad.yaml"
    bad.write_text("environments:\n  prod:\n    match: [{namespace: p}]\n    timezone: Mars/Base\n")
    result = CliRunner().invoke(cli, ["explain", "p/x", "--policy", str(bad)])
    assert result.exit_code == 1
    assert "environments.prod.timezone: unknown time zone 'Mars/Base'" in result.output


def test_explain_refuses_instants_it_cannot_reason_about(puerta: Puerta) -> None:
    response = puerta.api(
        "GET", "/explain", params={"canary": "prod/x", "at": "0001-01-01T00:30:00+01:00"}
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "at: must be between 1971 and 9000"
