"""Manual gates: waiting, approval through the API and the CLI, new revisions, roles, restarts,
halts and rollbacks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from conftest import ADMIN, APPROVER, VIEWER, Puerta, serve_in_thread
from puerta.cli.main import app as cli

OLD, NEW = "6d9d8b5c7f", "85d557f47b"
PROD = {"namespace": "prod"}


def test_manual_gate_waits_with_reason_then_passes_after_approval(puerta: Puerta) -> None:
    waiting = puerta.hook("confirm-rollout", checksum=OLD, **PROD)
    assert waiting.status_code == 403
    assert waiting.headers["content-type"].startswith("text/plain")
    assert waiting.text == "waiting for manual approval (puerta approve prod/podinfo)"
    # Flagger polls every interval: still waiting, still the same rollout.
    assert puerta.hook("confirm-rollout", checksum=OLD, phase="Waiting", **PROD).status_code == 403

    response = puerta.api(
        "POST",
        "/canaries/prod/podinfo/approve",
        token=APPROVER,
        json={"reason": "release 42 signed off"},
    )
    assert response.status_code == 200
    assert response.json() == {
        "action": "approve",
        "namespace": "prod",
        "name": "podinfo",
        "rollout_seq": 1,
        "message": "approved rollout #1 for confirm-rollout",
        "actor": "approver",
    }
    passed = puerta.hook("confirm-rollout", checksum=OLD, phase="Waiting", **PROD)
    assert passed.status_code == 200
    assert passed.text == "passed confirm-rollout[0] release-manager: approved by approver"

    admin_events = puerta.audit(kind="admin")
    assert [(e["actor"], e["action"], e["reason"], e["rollout_seq"]) for e in admin_events] == [
        ("approver", "approve", "release 42 signed off", 1)
    ]


def test_new_revision_needs_a_new_approval(puerta: Puerta) -> None:
    puerta.hook("confirm-rollout", checksum=OLD, **PROD)
    puerta.api("POST", "/canaries/prod/podinfo/approve", token=APPROVER)
    assert puerta.hook("confirm-rollout", checksum=OLD, **PROD).status_code == 200
    puerta.hook("pre-rollout", checksum=NEW, **PROD)
    puerta.api("POST", "/canaries/prod/podinfo/approve", token=APPROVER)
    puerta.hook("confirm-promotion", checksum=NEW, **PROD)
    puerta.hook("post-rollout", checksum=NEW, phase="Succeeded", **PROD)

    again = puerta.hook("confirm-rollout", checksum=NEW, phase="Succeeded", **PROD)
    assert again.status_code == 403
    assert puerta.api("GET", "/canaries/prod/podinfo").json()["rollout"]["seq"] == 2


def test_canary_scope_approval_stays_open_like_the_loadtester_until_halted(
    puerta: Puerta, policy_text: str
) -> None:
    sticky = policy_text.replace(
        "name: release-manager", "name: release-manager\n          scope: canary"
    )
    puerta.restart(sticky)
    puerta.hook("confirm-rollout", checksum=OLD, **PROD)
    response = puerta.api(
        "POST", "/canaries/prod/podinfo/approve", token=APPROVER, json={"scope": "canary"}
    )
    assert response.status_code == 200
    assert puerta.hook("confirm-rollout", checksum=OLD, **PROD).status_code == 200
    puerta.hook("pre-rollout", checksum=NEW, **PROD)
    puerta.hook("post-rollout", checksum=NEW, phase="Succeeded", **PROD)
    assert (
        puerta.hook("confirm-rollout", checksum=NEW, phase="Succeeded", **PROD).status_code == 200
    )

    puerta.api("POST", "/canaries/prod/podinfo/halt", token=APPROVER, json={"reason": "stop"})
    puerta.api("POST", "/canaries/prod/podinfo/approve", token=APPROVER)  # lifts the halt only
    puerta.hook("pre-rollout", checksum="0a0a0a0a0a", **PROD)
    puerta.hook("post-rollout", checksum="0a0a0a0a0a", phase="Succeeded", **PROD)
    assert (
        puerta.hook("confirm-rollout", checksum="0a0a0a0a0a", phase="Succeeded", **PROD).status_code
        == 403
    )


def test_two_approvers_required(puerta: Puerta, policy_text: str) -> None:
    two = policy_text.replace(
        "name: release-manager", "name: release-manager\n          approvals: 2"
    )
    puerta.restart(two)
    puerta.hook("confirm-rollout", checksum=OLD, **PROD)
    puerta.api("POST", "/canaries/prod/podinfo/approve", token=APPROVER)
    puerta.api("POST", "/canaries/prod/podinfo/approve", token=APPROVER)  # same person twice
    still = puerta.hook("confirm-rollout", checksum=OLD, **PROD)
    assert still.status_code == 403
    assert still.text == (
        "waiting for manual approval: 1 of 2 (approver) (puerta approve prod/podinfo)"
    )
    puerta.api("POST", "/canaries/prod/podinfo/approve", token=ADMIN)
    assert puerta.hook("confirm-rollout", checksum=OLD, **PROD).text == (
        "passed confirm-rollout[0] release-manager: approved by admin, approver"
    )


def test_viewer_cannot_approve_and_nothing_changes(puerta: Puerta) -> None:
    puerta.hook("confirm-rollout", checksum=OLD, **PROD)
    refused = puerta.api("POST", "/canaries/prod/podinfo/approve", token=VIEWER)
    assert refused.status_code == 403
    assert refused.json()["detail"] == "token 'viewer' has role viewer; this needs approver"
    assert puerta.api("POST", "/canaries/prod/podinfo/approve").status_code == 401
    assert puerta.api("POST", "/canaries/prod/podinfo/approve", token="nope").status_code == 401
    assert puerta.hook("confirm-rollout", checksum=OLD, **PROD).status_code == 403
    assert puerta.audit(kind="admin") == []


def test_approval_survives_a_restart(puerta: Puerta) -> None:
    puerta.hook("confirm-rollout", checksum=OLD, **PROD)
    puerta.api("POST", "/canaries/prod/podinfo/approve", token=APPROVER)
    puerta.restart()
    assert puerta.hook("confirm-rollout", checksum=OLD, **PROD).status_code == 200


def test_halt_survives_a_restart_and_blocks_confirm_hooks(puerta: Puerta) -> None:
    puerta.hook("confirm-rollout", namespace="staging", checksum=OLD)
    puerta.hook("pre-rollout", namespace="staging", checksum=NEW)
    halted = puerta.api(
        "POST", "/canaries/staging/podinfo/halt", token=APPROVER, json={"reason": "incident 142"}
    )
    assert halted.status_code == 200
    puerta.restart()
    refused = puerta.hook("confirm-traffic-increase", namespace="staging", checksum=NEW)
    assert refused.status_code == 403
    assert refused.text.startswith("halted by approver at 2026-11-26 10:00 UTC: incident 142")
    assert "puerta approve staging/podinfo to resume" in refused.text
    # rollout hooks are not confirm-* hooks: the analysis itself goes on
    assert puerta.hook("rollout", namespace="staging", checksum=NEW).status_code == 200
    body = puerta.api("GET", "/canaries/staging/podinfo").json()
    assert body["halted"]["reason"] == "incident 142"

    resumed = puerta.api("POST", "/canaries/staging/podinfo/approve", token=APPROVER)
    assert "lifted the halt set by approver" in resumed.json()["message"]
    assert (
        puerta.hook("confirm-traffic-increase", namespace="staging", checksum=NEW).status_code
        == 200
    )


def test_halt_needs_a_reason(puerta: Puerta) -> None:
    puerta.hook("confirm-rollout", **PROD)
    response = puerta.api("POST", "/canaries/prod/podinfo/halt", token=APPROVER, json={})
    assert response.status_code == 400
    assert "reason" in response.json()["detail"]


def test_rollback_hook_answers_200_only_after_a_rollback_request(puerta: Puerta) -> None:
    ns = {"namespace": "staging"}
    puerta.hook("confirm-rollout", checksum=OLD, **ns)
    puerta.hook("pre-rollout", checksum=NEW, **ns)
    carry_on = puerta.hook("rollback", checksum=NEW, **ns)
    assert (carry_on.status_code, carry_on.text) == (403, "no rollback requested")

    response = puerta.api(
        "POST",
        "/canaries/staging/podinfo/rollback",
        token=APPROVER,
        json={"reason": "error budget burning"},
    )
    assert response.status_code == 200
    puerta.restart()
    now = puerta.hook("rollback", checksum=NEW, **ns)
    assert (now.status_code, now.text) == (
        200,
        "rollback requested by approver: error budget burning",
    )
    puerta.hook("post-rollout", checksum=NEW, phase="Failed", **ns)
    # the request belonged to that rollout: the next one is not rolled back
    puerta.hook("confirm-rollout", checksum=OLD, phase="Failed", **ns)
    puerta.hook("pre-rollout", checksum="9999999999", **ns)
    assert puerta.hook("rollback", checksum="9999999999", **ns).status_code == 403


def test_actions_on_unknown_canary_or_without_rollout(puerta: Puerta) -> None:
    missing = puerta.api("POST", "/canaries/prod/nope/approve", token=APPROVER)
    assert missing.status_code == 404
    assert missing.json()["detail"] == "canary prod/nope has never called Puerta"
    puerta.hook("confirm-rollout", namespace="staging", checksum=OLD)
    puerta.hook("post-rollout", namespace="staging", checksum=NEW, phase="Succeeded")
    conflict = puerta.api(
        "POST", "/canaries/staging/podinfo/rollback", token=APPROVER, json={"reason": "x"}
    )
    assert conflict.status_code == 409
    assert "no rollout in progress" in conflict.json()["detail"]
    nothing = puerta.api("POST", "/canaries/staging/podinfo/approve", token=APPROVER)
    assert nothing.status_code == 409


# ---- the CLI against a running Puerta -----------------------------------------------------


@pytest.fixture
def live(puerta: Puerta) -> Iterator[str]:
    """A second Puerta on the same database, on a real socket, for the CLI's HTTP client.

    Hooks still go through ``puerta``; the two apps share nothing but the database, as two
    replicas would.
    """
    with serve_in_thread(puerta.build_app()) as url:
        yield url


def test_cli_status_approve_and_audit(puerta: Puerta, live: str) -> None:
    runner = CliRunner()
    puerta.hook("confirm-rollout", checksum=OLD, **PROD)

    status = runner.invoke(cli, ["status", "--server", live])
    assert status.exit_code == 0, status.output
    assert "prod/podinfo" in status.output
    assert "confirm-rollout: waiting for manual approval" in status.output

    refused = runner.invoke(cli, ["approve", "prod/podinfo", "--server", live, "--token", VIEWER])
    assert refused.exit_code == 1
    assert "needs approver (HTTP 403)" in refused.output

    approved = runner.invoke(
        cli,
        ["approve", "prod/podinfo", "--reason", "go", "--server", live],
        env={"PUERTA_TOKEN": APPROVER},
    )
    assert approved.exit_code == 0, approved.output
    assert approved.output.strip() == (
        "prod/podinfo: approved rollout #1 for confirm-rollout (by approver)"
    )
    assert puerta.hook("confirm-rollout", checksum=OLD, **PROD).status_code == 200

    audit = runner.invoke(
        cli, ["audit", "--kind", "admin", "--format", "jsonl", "--server", live, "--token", VIEWER]
    )
    assert audit.exit_code == 0, audit.output
    assert '"actor": "approver"' in audit.output and '"action": "approve"' in audit.output

    detail = runner.invoke(cli, ["status", "prod/podinfo", "--server", live])
    assert "current rollout #1: confirmed" in detail.output


def test_cli_halt_and_rollback(puerta: Puerta, live: str) -> None:
    runner = CliRunner()
    puerta.hook("confirm-rollout", namespace="staging", checksum=OLD)
    puerta.hook("pre-rollout", namespace="staging", checksum=NEW)
    halted = runner.invoke(
        cli,
        ["halt", "staging/podinfo", "--reason", "incident", "--server", live, "--token", APPROVER],
    )
    assert halted.exit_code == 0, halted.output
    assert puerta.hook("confirm-promotion", namespace="staging", checksum=NEW).status_code == 403
    rolled = runner.invoke(
        cli,
        ["rollback", "staging/podinfo", "--reason", "bad", "--server", live, "--token", APPROVER],
    )
    assert rolled.exit_code == 0, rolled.output
    assert puerta.hook("rollback", namespace="staging", checksum=NEW).status_code == 200
    bad = runner.invoke(cli, ["approve", "podinfo", "--server", live, "--token", APPROVER])
    assert bad.exit_code == 2
    assert "expected NAMESPACE/NAME" in bad.output


def test_cli_reports_an_unreachable_server() -> None:
    result = CliRunner().invoke(cli, ["status", "--server", "http://127.0.0.1:9"])
    assert result.exit_code == 2
    assert "cannot reach Puerta at http://127.0.0.1:9" in result.output
