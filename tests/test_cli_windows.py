"""The CLI for freezes, overrides and explain against a running Puerta."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from conftest import ADMIN, APPROVER, EXAMPLE_POLICY, Puerta
from puerta.cli.main import app as cli
from test_manual_gates import live  # noqa: F401  (fixture)

JLM = ZoneInfo("Asia/Jerusalem")


@pytest.fixture
def policy_text() -> str:
    return EXAMPLE_POLICY.read_text()


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_freeze_unfreeze_and_override_from_the_cli(puerta: Puerta, live: str) -> None:  # noqa: F811
    puerta.clock.set(datetime(2026, 11, 29, 10, 0, tzinfo=JLM))
    code, out = run(
        "freeze",
        "production",
        "--reason",
        "incident 142",
        "--until",
        "2026-11-29T18:00+02:00",
        "--server",
        live,
        "--token",
        APPROVER,
    )
    assert code == 1 and "needs admin (HTTP 403)" in out
    code, out = run(
        "freeze",
        "production",
        "--reason",
        "incident 142",
        "--until",
        "2026-11-29T18:00+02:00",
        "--server",
        live,
        "--token",
        ADMIN,
    )
    assert code == 0, out
    assert out.startswith("freeze 1: production frozen until 2026-11-29T16:00:00Z (by admin)")
    code, out = run("freezes", "--server", live)
    assert "incident 142" in out

    refused = puerta.hook("confirm-rollout", namespace="prod", name="api")
    assert refused.text.startswith("production is frozen by admin: incident 142")

    code, out = run("explain", "prod/api", "--server", live)
    assert code == 0, out
    assert "freeze: production is frozen by admin: incident 142" in out

    code, out = run(
        "override", "prod/api", "--reason", "hotfix", "--server", live, "--token", ADMIN
    )
    assert code == 0, out
    assert "override for rollout #1" in out
    passed = puerta.hook("confirm-rollout", namespace="prod", name="api")
    assert passed.status_code == 200

    code, out = run(
        "unfreeze", "production", "--reason", "resolved", "--server", live, "--token", ADMIN
    )
    assert (code, out.strip()) == (0, "production: lifted freeze 1 (by admin)")
    code, out = run("unfreeze", "production", "--server", live, "--token", ADMIN)
    assert code == 1 and "production has no active freeze (HTTP 409)" in out


def test_freeze_until_needs_a_zone(live: str) -> None:  # noqa: F811
    code, out = run(
        "freeze",
        "production",
        "--reason",
        "x",
        "--until",
        "2026-11-29T18:00",
        "--server",
        live,
        "--token",
        ADMIN,
    )
    assert code == 2
    assert "--until needs a time zone" in out
