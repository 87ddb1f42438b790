"""flagger-loadtester compatibility: its answers (flagger-contract.md §3) on Puerta's durable,
shared state, with authentication on the gate switches and an allow-list on commands.

Gate tests run on every database. Command tests run real processes, on SQLite only (the
database plays no part in them); they wait for observable effects with a bounded loop on the
real clock, never for a fixed time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import APPROVER, VIEWER, Puerta
from puerta.clock import ManualClock
from puerta.loadtester.allowlist import CommandRefused, check_command

CANARY = {"name": "podinfo", "namespace": "test"}
STAGING = {"name": "podinfo", "namespace": "staging"}
OLD, NEW = "6d9d8b5c7f", "85d557f47b"
DISABLED = "commands are disabled in the Puerta policy (loadtester.commands.enabled)"
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def call(puerta: Puerta, path: str, body: dict[str, Any], token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return puerta.http.post(path, json=body, headers=headers)


def task(puerta: Puerta, **metadata: str) -> Any:
    return call(puerta, "/", {**CANARY, "phase": "Progressing", "metadata": metadata})


def wait_for(condition: Callable[[], bool], what: str, limit: float = 10.0) -> None:
    """Poll ``condition`` on the real clock until it holds; fail after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# ---- gates ------------------------------------------------------------------------------------


def test_gate_open_check_close_round_trip(puerta: Puerta) -> None:
    closed = call(puerta, "/gate/check", CANARY)
    assert (closed.status_code, closed.text) == (403, "Forbidden")

    opened = call(puerta, "/gate/open", CANARY, token=APPROVER)
    assert (opened.status_code, opened.content) == (202, b"")
    for _ in range(2):  # stays open across checks, as in the loadtester
        approved = call(puerta, "/gate/check", {**CANARY, "phase": "Progressing"})
        assert (approved.status_code, approved.text) == (200, "Approved")

    assert call(puerta, "/gate/close", CANARY, token=APPROVER).status_code == 202
    assert call(puerta, "/gate/check", CANARY).text == "Forbidden"

    admin = puerta.audit(kind="admin")
    assert [(e["actor"], e["action"], e["namespace"], e["name"]) for e in reversed(admin)] == [
        ("approver", "gate-open", "test", "podinfo"),
        ("approver", "gate-close", "test", "podinfo"),
    ]
    checks = puerta.audit(kind="hook")
    assert [(e["action"], e["verdict"], e["http_status"]) for e in reversed(checks)] == [
        ("gate-check", "wait", 403),
        ("gate-check", "pass", 200),
        ("gate-check", "pass", 200),
        ("gate-check", "wait", 403),
    ]
    assert checks[1]["reason"] == "gate opened by approver"


def test_approve_and_halt_answer_the_same_whatever_the_state(puerta: Puerta) -> None:
    call(puerta, "/gate/open", CANARY, token=APPROVER)
    for method in ("POST", "GET", "PUT"):
        approve = puerta.http.request(method, "/gate/approve", json=CANARY)
        assert (approve.status_code, approve.text) == (200, "OK")
        halt = puerta.http.request(method, "/gate/halt", json=CANARY)
        assert (halt.status_code, halt.text) == (403, "Forbidden")
    assert {e["action"] for e in puerta.audit(kind="hook")} == {"gate-approve", "gate-halt"}


def test_gate_is_the_same_state_as_puertas_canary_wide_approvals(
    puerta: Puerta, policy_text: str
) -> None:
    sticky = policy_text.replace(
        "name: release-manager", "name: release-manager\n          scope: canary"
    )
    puerta.restart(sticky)
    prod = {"name": "podinfo", "namespace": "prod"}
    assert puerta.hook("confirm-rollout", checksum=OLD, **prod).status_code == 403

    # /gate/open is a canary-wide approval: a `scope: canary` manual gate passes on it ...
    call(puerta, "/gate/open", prod, token=APPROVER)
    passed = puerta.hook("confirm-rollout", checksum=OLD, **prod)
    assert (passed.status_code, passed.text) == (
        200,
        "passed confirm-rollout[0] release-manager: approved by approver",
    )
    # ... a halt closes the gate, and opening a halted canary's gate is refused ...
    puerta.api("POST", "/canaries/prod/podinfo/halt", token=APPROVER, json={"reason": "incident"})
    assert call(puerta, "/gate/check", prod).status_code == 403
    refused = call(puerta, "/gate/open", prod, token=APPROVER)
    assert refused.status_code == 409
    assert "halted by approver (incident)" in refused.text
    # ... and `puerta approve --scope canary` opens the loadtester gate.
    puerta.api("POST", "/canaries/prod/podinfo/approve", token=APPROVER, json={"scope": "canary"})
    assert call(puerta, "/gate/check", prod).text == "Approved"


def test_rollback_gate_and_puertas_own_rollback_request(puerta: Puerta) -> None:
    assert call(puerta, "/rollback/check", STAGING).status_code == 403
    assert call(puerta, "/rollback/open", STAGING, token=APPROVER).status_code == 202
    rollback = call(puerta, "/rollback/check", STAGING)
    assert (rollback.status_code, rollback.text) == (200, "Approved")
    assert call(puerta, "/gate/check", STAGING).status_code == 403  # a separate gate
    assert call(puerta, "/rollback/close", STAGING, token=APPROVER).status_code == 202
    assert call(puerta, "/rollback/check", STAGING).text == "Forbidden"

    # `puerta rollback` on the rollout in progress shows through /rollback/check too
    puerta.hook("confirm-rollout", namespace="staging", checksum=OLD)
    puerta.hook("pre-rollout", namespace="staging", checksum=NEW)
    requested = puerta.api(
        "POST", "/canaries/staging/podinfo/rollback", token=APPROVER, json={"reason": "errors"}
    )
    assert requested.status_code == 200, requested.text
    assert call(puerta, "/rollback/check", STAGING).text == "Approved"
    verdicts = [(e["action"], e["verdict"]) for e in puerta.audit(kind="hook", limit=1)]
    assert verdicts == [("rollback-check", "rollback")]
    assert puerta.audit(kind="hook", limit=1)[0]["reason"] == (
        "rollback of rollout #1 requested by approver"
    )


def test_gate_state_survives_a_restart(puerta: Puerta) -> None:
    call(puerta, "/gate/open", CANARY, token=APPROVER)
    call(puerta, "/rollback/open", STAGING, token=APPROVER)
    puerta.restart()
    assert call(puerta, "/gate/check", CANARY).text == "Approved"
    assert call(puerta, "/rollback/check", STAGING).text == "Approved"


def test_opening_and_closing_need_an_approver_token(puerta: Puerta) -> None:
    for path in ("/gate/open", "/gate/close", "/rollback/open", "/rollback/close"):
        missing = call(puerta, path, CANARY)
        assert missing.status_code == 401, path
        assert missing.text == "a bearer token is required"
        assert call(puerta, path, CANARY, token="not-a-token").status_code == 401
        viewer = call(puerta, path, CANARY, token=VIEWER)
        assert (viewer.status_code, viewer.text) == (
            403,
            "token 'viewer' has role viewer; this needs approver",
        )
        assert puerta.http.get(path).status_code == 405  # a state change is never a GET
    assert call(puerta, "/gate/check", CANARY).status_code == 403
    assert puerta.audit(kind="admin") == []


def test_hook_rules_apply_to_what_flagger_calls(puerta: Puerta, policy_text: str) -> None:
    puerta.environ["PUERTA_HOOK_TOKEN"] = "hook-9c1e"
    puerta.restart(
        policy_text.replace(
            "# token: {token_env: PUERTA_HOOK_TOKEN}", "token: {token_env: PUERTA_HOOK_TOKEN}"
        ).replace('namespaces: ["*"]', 'namespaces: ["test", "staging*"]')
    )
    for path in ("/gate/check", "/gate/approve", "/rollback/check", "/"):
        refused = call(puerta, path, CANARY)
        assert refused.status_code == 401, path
        assert refused.text.startswith("hook token missing or wrong")
    assert call(puerta, "/gate/approve?token=hook-9c1e", CANARY).text == "OK"
    in_metadata = {**CANARY, "metadata": {"token": "hook-9c1e"}}
    assert call(puerta, "/gate/check", in_metadata).text == "Forbidden"
    assert call(puerta, "/", in_metadata).text == "metadata not found in payload"

    other = {"name": "podinfo", "namespace": "prod", "metadata": {"token": "hook-9c1e"}}
    outside = call(puerta, "/gate/check", other)
    assert (outside.status_code, outside.text) == (403, "namespace 'prod' may not call this Puerta")
    assert call(puerta, "/gate/open", other, token=APPROVER).status_code == 403
    # the hook token (readable in every Canary spec) does not open gates
    assert call(puerta, "/gate/open?token=hook-9c1e", CANARY).status_code == 401


@SQLITE_ONLY
def test_bad_payloads_are_a_400_naming_the_field(puerta: Puerta) -> None:
    for body, reason in (
        (b"{not json", "body: not valid JSON"),
        (b"", "body: empty; expected Flagger's JSON payload"),
        (b'{"namespace": "test"}', "name: required"),
    ):
        for path in ("/gate/check", "/rollback/check", "/gate/approve", "/"):
            response = puerta.http.post(path, content=body)
            assert response.status_code == 400, path
            assert response.text.startswith(reason)
        opened = puerta.http.post(
            "/gate/open", content=body, headers={"Authorization": f"Bearer {APPROVER}"}
        )
        assert (opened.status_code, opened.text[: len(reason)]) == (400, reason)
    assert puerta.api("GET", "/canaries").json() == {"canaries": []}


# ---- tasks ------------------------------------------------------------------------------------


def with_commands(policy_text: str, allow: list[str], timeout: str = "1h") -> str:
    names = ", ".join(f'"{name}"' for name in allow)  # quoted: YAML reads false as a boolean
    return policy_text + (
        f"\nloadtester:\n  commands:\n    enabled: true\n    allow: [{names}]\n"
        f"    timeout: {timeout}\n"
    )


@pytest.fixture
def runner(
    database_url: str, policy_text: str, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Puerta]:
    """Puerta with commands enabled for a few harmless executables (1 s time limit)."""
    monkeypatch.setenv("PUERTA_PROBE_SECRET", "must-not-leak")  # in Puerta's own environment
    allow = ["sleep", "echo", "touch", "false", "printf"]
    text = with_commands(policy_text, allow, timeout="1s")
    app = Puerta(database_url, text, clock).start()
    try:
        yield app
    finally:
        app.stop()


def test_task_metadata_and_type_errors(puerta: Puerta) -> None:
    missing = call(puerta, "/", CANARY)
    assert (missing.status_code, missing.text) == (400, "metadata not found in payload")
    assert task(puerta, type="nope", cmd="x").text == "unknown task type nope"
    for kind in ("helm", "helmv3", "kubectl", "concord", "ngrinder"):
        unsupported = task(puerta, type=kind, cmd="x")
        assert (unsupported.status_code, unsupported.text) == (
            400,
            f"task type {kind} is not supported by Puerta",
        )
    assert task(puerta, type="bash").text == "cmd not found in metadata"


@SQLITE_ONLY
def test_commands_are_refused_while_disabled(puerta: Puerta, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    for kind in ("cmd", "bash"):
        refused = task(puerta, type=kind, cmd=f"touch {marker}")
        assert (refused.status_code, refused.text) == (403, DISABLED)
    assert not marker.exists()


@SQLITE_ONLY
def test_only_allow_listed_executables_run(runner: Puerta, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    refused = task(runner, type="bash", cmd=f"rm -rf {victim}")
    assert (refused.status_code, refused.text) == (
        403,
        "executable 'rm' is not allowed "
        "(loadtester.commands.allow: sleep, echo, touch, false, printf)",
    )
    for sneaky in (
        f"echo ok; rm -rf {victim}",
        f"echo ok && rm -rf {victim}",
        f"echo ok | rm -rf {victim}",
        f"echo ok\nrm -rf {victim}",
        f"echo $(rm -rf {victim})",
        f"echo `rm -rf {victim}`",
        f"PATH={tmp_path} echo",
        f"/tmp/../{victim}/echo hi",
    ):
        for kind in ("cmd", "bash"):
            response = task(runner, type=kind, cmd=sneaky)
            assert response.status_code == 403, (kind, sneaky)
    assert victim.is_dir()


@pytest.mark.parametrize(
    ("command", "allowed"),
    [
        ("hey -z 10m -q 10 -c 2 http://podinfo-canary.test:9898/", True),
        ("curl -sd 'test' http://podinfo-svc-canary/token | grep token", True),
        ("curl http://x/ | rm -rf /", False),
        ("A=1 B='x y' hey -n 1 http://x/ > /tmp/out 2>&1 && echo done", True),
        ("echo 'a; rm -rf /' \"b | rm\"", True),  # quoted separators are text
        ("echo a#; rm -rf /", False),
        ("(rm -rf /)", False),
        ("echo a &>/dev/null rm -rf /", False),
        ("LD_PRELOAD=/tmp/x.so hey", False),
        ("cat <(rm -rf /)", False),
        ("echo 'unterminated", False),
    ],
)
def test_allow_list_reads_commands_like_a_shell(command: str, allowed: bool) -> None:
    allow = ["hey", "echo", "curl", "grep"]
    if allowed:
        check_command(command, allow, os.environ.get("PATH"))
    else:
        with pytest.raises(CommandRefused):
            check_command(command, allow, os.environ.get("PATH"))


@SQLITE_ONLY
def test_blocking_bash_answers_with_output_or_the_failure(runner: Puerta) -> None:
    quiet = task(runner, type="bash", cmd="echo some-output-to-be-returned")
    assert (quiet.status_code, quiet.text) == (200, "")
    loud = task(runner, type="bash", cmd="echo some-output-to-be-returned", returnCmdOutput="true")
    assert (loud.status_code, loud.text) == (200, "some-output-to-be-returned\n")

    failed = task(runner, type="bash", cmd="false")
    assert (failed.status_code, failed.text) == (403, "command false failed: : exit status 1")
    with_output = task(runner, type="bash", cmd="printf 'no token' && false")
    assert with_output.text == "command printf 'no token' && false failed: no token: exit status 1"

    slow = task(runner, type="bash", cmd="sleep 5")
    assert (slow.status_code, slow.text) == (
        403,
        "command sleep 5 timed out after 1s (loadtester.commands.timeout)",
    )
    # commands never see Puerta's environment (tokens, database URL)
    leak = task(runner, type="bash", cmd='echo "[$PUERTA_PROBE_SECRET]"', returnCmdOutput="1")
    assert leak.text == "[]\n"


@SQLITE_ONLY
def test_background_command_runs_once_per_canary_and_command(
    runner: Puerta, tmp_path: Path
) -> None:
    log = tmp_path / "runs"
    command = f"echo start >> {log} && sleep 0.5 && echo end >> {log}"
    first = task(runner, type="cmd", cmd=command, logCmdOutput="true")
    assert (first.status_code, first.content) == (202, b"")
    assert task(runner, type="cmd", cmd=command).status_code == 202  # skipped: running
    # another canary's identical command is not a duplicate
    other = call(runner, "/", {**STAGING, "metadata": {"cmd": command}})
    assert other.status_code == 202
    wait_for(lambda: lines(log).count("end") == 2, "both runs to finish")
    assert lines(log).count("start") == 2
    # once it ended, the same request runs it again
    task(runner, type="cmd", cmd=command)
    wait_for(lambda: lines(log).count("end") == 3, "the re-run to finish")

    metrics = runner.http.get("/metrics").text
    assert 'puerta_loadtester_commands_total{outcome="started",type="cmd"} 3.0' in metrics
    assert 'puerta_loadtester_commands_total{outcome="skipped",type="cmd"} 1.0' in metrics
    assert 'puerta_loadtester_requests_total{endpoint="/",status="202"} 4.0' in metrics


@SQLITE_ONLY
def test_shutdown_kills_background_commands(runner: Puerta, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    task(runner, type="cmd", cmd=f"echo $$ > {pid_file} && sleep 30")
    wait_for(lambda: bool(lines(pid_file)), "the command to start")
    pid = int(lines(pid_file)[0])
    runner.stop()

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, "the command to be killed", limit=5)
