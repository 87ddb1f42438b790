"""``puerta simulate`` through its CLI: the bundled examples on the bundled policy, a rollback
at the failure threshold, manual gates with and without simulated approvals, and bad input.

Runs Puerta in-process like the command does; fast-forwarding keeps weekend waits cheap.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
import typer
from typer.testing import CliRunner, Result

from puerta.cli.simulate import simulate
from puerta.domain.hooks import HookType
from puerta.simulate import ManifestError, parse_manifest
from puerta.simulate.manifest import puerta_endpoint
from puerta.simulate.timeline import fold_key

ROOT = Path(__file__).parent.parent
POLICY = ROOT / "examples" / "policy.yaml"
PRODUCTION = ROOT / "examples" / "canary-production.yaml"
WEEKEND = ROOT / "examples" / "canaries-weekend.yaml"
FRIDAY = "2026-11-27T14:00+02:00"

cli = typer.Typer(add_completion=False)
cli.command()(simulate)

EVENT_HOOK = (
    "      - name: puerta-events\n"
    "        type: event\n"
    "        url: http://puerta.puerta-system/hooks/event\n"
)


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()  # the command silences Puerta's logs


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(arg) for arg in args])


def lines(output: str) -> list[str]:
    """Output lines with runs of spaces squeezed, so assertions do not depend on alignment."""
    return [" ".join(line.split()) for line in output.splitlines()]


def line_with(output: str, *parts: str) -> str:
    found = [line for line in lines(output) if all(part in line for part in parts)]
    assert len(found) == 1, (parts, found)
    return found[0]


# ---- the bundled examples ----------------------------------------------------------------


def test_friday_release_waits_for_sunday_morning_then_succeeds() -> None:
    result = run(PRODUCTION, "--policy", POLICY, "--start", FRIDAY)

    assert result.exit_code == 0, result.output
    out = lines(result.output)
    assert (
        "Fri 2026-11-27 14:00 IST prod/podinfo confirm-rollout WAIT outside the production "
        "deployment window (Sun-Thu 09:00-21:00 Asia/Jerusalem; holidays IL); opens Sun "
        "2026-11-29 09:00 IST, in 1d 19h; 1st in line"
    ) in out
    # Flagger polls every minute all weekend; Puerta answers the same: one folded line.
    assert "(same answer at 2579 more polls until Sun 2026-11-29 08:59 IST)" in out
    released = line_with(result.output, "Sun 2026-11-29 09:00 IST", "confirm-rollout", "PASS")
    assert "passed confirm-rollout[0] work-hours: inside the production deployment window" in (
        released
    )
    assert released.endswith("left the production release train 1st in line")
    assert line_with(result.output, "external webhook load-test").endswith(
        "rollout external webhook load-test (not Puerta): assumed to pass"
    )

    steps = [line for line in out if " prod/podinfo weight " in line]
    assert [line.split(" weight ")[1] for line in steps] == [
        "0% -> 10%",
        "10% -> 20%",
        "20% -> 30%",
        "30% -> 40%",
        "40% -> 50%",
    ]
    assert steps[0].startswith("Sun 2026-11-29 09:01 IST")  # the check after the release
    assert "Sun 2026-11-29 09:06 IST prod/podinfo confirm-promotion PASS" in " ".join(out)
    assert "Sun 2026-11-29 09:08 IST prod/podinfo post-rollout OK Succeeded: recorded" in out
    assert (
        "prod/podinfo production Fri 2026-11-27 14:00 IST Sun 2026-11-29 09:00 IST "
        "Sun 2026-11-29 09:08 IST 1d 19h succeeded: promoted 8m after release"
    ) in out
    assert out[-1] == "result: 1 succeeded (exit 0)"


def _weekend_canaries(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["exit_code"] == 0
    assert document["timezone"] == "Asia/Jerusalem"
    canaries: list[dict[str, Any]] = document["canaries"]
    return canaries


def _assert_one_after_another(canaries: list[dict[str, Any]]) -> None:
    assert [c["canary"] for c in canaries] == ["prod/api", "prod/web", "prod/worker"]
    assert {c["outcome"] for c in canaries} == {"succeeded"}
    released = [datetime.fromisoformat(c["released"]) for c in canaries]
    finished = [datetime.fromisoformat(c["finished"]) for c in canaries]
    assert released[0] == datetime.fromisoformat("2026-11-29T07:00:00Z")  # 09:00 IST
    assert released == sorted(released)
    for previous_finished, next_released in zip(finished, released[1:], strict=False):
        assert next_released >= previous_finished


def test_weekend_release_train_leaves_in_document_order_one_at_a_time(tmp_path: Path) -> None:
    # Without the event hook: see the next test for why.
    manifest = tmp_path / "weekend.yaml"
    manifest.write_text(WEEKEND.read_text().replace(EVENT_HOOK, ""))
    result = run(manifest, "--policy", POLICY, "--start", FRIDAY, "--format", "json")

    canaries = _weekend_canaries(result)
    _assert_one_after_another(canaries)
    events = json.loads(result.stdout)["events"]
    waits = [e for e in events if e["kind"] == "confirm-rollout" and e["status"] == "WAIT"]
    assert [w["text"].rsplit("; ", 1)[1] for w in waits[:3]] == [
        "1st in line",
        "2nd in line",
        "3rd in line",
    ]
    assert [w["last_at"] for w in waits[:3]] == [f"2026-11-29T06:59:0{i}Z" for i in range(3)]


def test_weekend_release_train_with_flagger_events_holds_one_at_a_time() -> None:
    """Flagger's "New revision detected!" event carries the previous checksum with phase
    Progressing; it must not make the rollout look superseded and free its train slot."""
    result = run(
        WEEKEND, "--policy", POLICY, "--start", "2026-11-29T08:50+02:00", "--format", "json"
    )
    _assert_one_after_another(_weekend_canaries(result))


# ---- rollbacks and manual gates ------------------------------------------------------------


def test_failing_pre_rollout_rolls_back_at_the_threshold(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\n"
        "environments:\n"
        "  staging:\n"
        "    match: [{namespace: 'staging*'}]\n"
        "    gates:\n"
        "      pre-rollout:\n"
        "        - type: deny\n"
        "          reason: smoke tests are not wired up yet\n"
    )
    manifest = tmp_path / "staging.yaml"
    manifest.write_text(
        PRODUCTION.read_text()
        .replace("namespace: prod", "namespace: staging")
        .replace("threshold: 5", "threshold: 2")
    )

    result = run(manifest, "--policy", policy, "--start", "2026-11-27T12:00Z")

    assert result.exit_code == 1, result.output
    out = lines(result.output)
    prefix = "staging/podinfo pre-rollout FAIL smoke tests are not wired up yet"
    assert f"Fri 2026-11-27 12:01 UTC {prefix} (failed checks 1/2)" in out
    assert f"Fri 2026-11-27 12:02 UTC {prefix} (failed checks 2/2)" in out
    # Flagger rolls back on the next check, before calling pre-rollout again.
    assert "Fri 2026-11-27 12:03 UTC staging/podinfo post-rollout OK Failed: recorded" in out
    assert not [line for line in out if " staging/podinfo weight " in line]
    assert line_with(result.output, "staging/podinfo staging Fri 2026-11-27 12:00 UTC").endswith(
        "failed: rolled back after 2 failed checks (threshold 2); last: pre-rollout "
        "puerta-pre-rollout: smoke tests are not wired up yet"
    )
    assert out[-1] == "result: 1 failed (exit 1)"


MANUAL_POLICY = (
    "version: 1\n"
    "environments:\n"
    "  production:\n"
    "    match: [{namespace: 'prod*'}]\n"
    "    timezone: Asia/Jerusalem\n"
    "    gates:\n"
    "      confirm-rollout:\n"
    "        - type: manual\n"
    "          name: release-manager\n"
)


def test_manual_gate_nobody_approves_still_waiting_at_the_end(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(MANUAL_POLICY)

    result = run(PRODUCTION, "--policy", policy, "--start", FRIDAY)

    assert result.exit_code == 3, result.output
    out = lines(result.output)
    assert (
        "Fri 2026-11-27 14:00 IST prod/podinfo confirm-rollout WAIT waiting for manual "
        "approval (puerta approve prod/podinfo)"
    ) in out
    assert "(same answer at 20160 more polls until Fri 2026-12-11 14:00 IST)" in out  # 14 days
    assert "nobody approves in this simulation" in line_with(result.output, "manual gate")
    assert line_with(result.output, "prod/podinfo production Fri 2026-11-27 14:00 IST -").endswith(
        "still waiting: confirm-rollout: waiting for manual approval (puerta approve prod/podinfo)"
    )
    assert out[-1] == "result: 1 still waiting (exit 3)"


def test_manual_gate_approved_after_the_given_delay(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(MANUAL_POLICY)

    result = run(PRODUCTION, "--policy", policy, "--start", FRIDAY, "--approve-after", "30m")

    assert result.exit_code == 0, result.output
    out = lines(result.output)
    assert (
        "Fri 2026-11-27 14:30 IST prod/podinfo approve confirm-rollout[0] release-manager: "
        "approved rollout #1 for confirm-rollout (simulated, after 30m)"
    ) in out
    assert (
        "Fri 2026-11-27 14:30 IST prod/podinfo confirm-rollout PASS passed confirm-rollout[0] "
        "release-manager: approved by simulation"
    ) in out
    assert "(same answer at 29 more polls until Fri 2026-11-27 14:29 IST)" in out
    assert line_with(result.output, "prod/podinfo production Fri 2026-11-27 14:00 IST").startswith(
        "prod/podinfo production Fri 2026-11-27 14:00 IST Fri 2026-11-27 14:30 IST"
    )


# ---- bad input -------------------------------------------------------------------------------

DEPLOYMENT = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: podinfo\n"


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (None, "missing.yaml: cannot read manifest: No such file or directory"),
        (DEPLOYMENT, "no Flagger Canary (kind: Canary, apiVersion: flagger.app/v1beta1)"),
        ("kind: Canary\n  apiVersion: [", "invalid YAML"),
        (
            PRODUCTION.read_text().replace("type: confirm-rollout", "type: confirm-rolout"),
            ":39: spec.analysis.webhooks[0].type: unknown webhook type 'confirm-rolout'",
        ),
        (
            PRODUCTION.read_text().replace("timeout: 5s\n", "timeout: 5s\n        retry: 3\n", 1),
            ":42: spec.analysis.webhooks[0].retry: unknown field (Flagger would drop it)",
        ),
        (
            PRODUCTION.read_text().replace("stepWeight: 10", "stepWeight: ten"),
            ":26: spec.analysis.stepWeight: Input should be a valid integer",
        ),
    ],
    ids=["missing", "no-canary", "not-yaml", "unknown-hook-type", "unknown-field", "bad-weight"],
)
def test_bad_manifests_exit_2_naming_the_problem(
    tmp_path: Path, manifest: str | None, message: str
) -> None:
    path = tmp_path / "missing.yaml" if manifest is None else tmp_path / "podinfo.yaml"
    if manifest is not None:
        path.write_text(manifest)
    result = run(path, "--policy", POLICY, "--start", FRIDAY)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stdout == ""


def test_invalid_policy_and_options_exit_2(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "environments:\n  production:\n    match: [{namespace: prod}]\n    timezone: Mars/Base\n"
    )
    result = run(PRODUCTION, "--policy", policy, "--start", FRIDAY)
    assert result.exit_code == 2
    assert "policy.yaml:4: environments.production.timezone: unknown time zone 'Mars/Base'" in (
        result.stderr
    )

    result = run(PRODUCTION, "--policy", POLICY, "--start", "2026-11-27T14:00")
    assert result.exit_code == 2
    assert "--start: give a time zone" in result.stderr
    result = run(PRODUCTION, "--policy", POLICY, "--approve-after", "soon")
    assert result.exit_code == 2
    assert "error: --approve-after: invalid duration 'soon'" in result.stderr


# ---- reading manifests -----------------------------------------------------------------------


def test_manifest_defaults_follow_flagger() -> None:
    manifest = parse_manifest(
        DEPLOYMENT + "---\n" + "apiVersion: flagger.app/v1beta1\n"
        "kind: Canary\n"
        "metadata: {name: api}\n"
        "spec:\n"
        "  analysis:\n"
        "    stepWeights: [5, 25, 60]\n"
        "    webhooks:\n"
        "      - {name: gate, type: '', url: 'https://puerta:8443/hooks/rollout?token=s3cr3t'}\n"
        "      - {name: load, url: 'http://flagger-loadtester.test/'}\n",
        source="api.yaml",
    )
    assert manifest.notes == ["api.yaml:1: skipped Deployment (apps/v1): not a Flagger Canary"]
    (canary,) = manifest.canaries
    assert (canary.key, canary.target, canary.source) == ("default/api", "api", "api.yaml:6")
    assert (canary.interval.total_seconds(), canary.threshold, canary.max_weight) == (60, 1, 60)
    gate, load = canary.webhooks
    assert (gate.type, gate.endpoint, load.type, load.endpoint) == (
        HookType.ROLLOUT,
        "rollout",
        HookType.ROLLOUT,
        None,
    )


def test_manifest_problems_are_all_reported_with_their_place() -> None:
    text = (
        "apiVersion: flagger.app/v1beta1\n"
        "kind: Canary\n"
        "metadata: {name: Api}\n"
        "spec:\n"
        "  analysis:\n"
        "    interval: 1h\n"
        "    webhooks:\n"
        "      - {name: x, url: 'ftp://x/hooks/rollout', metadata: {replicas: 3}}\n"
    )
    with pytest.raises(ManifestError) as raised:
        parse_manifest(text, source="bad.yaml")
    assert raised.value.problems == [
        "bad.yaml:3: metadata.name: 'Api' is not a valid Kubernetes object name",
        "bad.yaml:6: spec.analysis.interval: invalid interval '1h'; write e.g. 30s or 1m",
        "bad.yaml:8: spec.analysis.webhooks[0].url: 'ftp://x/hooks/rollout' is not an http(s) URL",
        "bad.yaml:8: spec.analysis.webhooks[0].metadata.replicas: Input should be a valid string",
    ]


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("http://puerta.puerta-system/hooks/confirm-rollout", "confirm-rollout"),
        ("https://puerta:8443/hooks/event/?token=x", "event"),
        ("http://flagger-loadtester.test/", None),
        ("http://flagger-loadtester.test/gate/check", None),
    ],
)
def test_puerta_webhooks_are_recognised_by_their_path(url: str, endpoint: str | None) -> None:
    assert puerta_endpoint(url) == endpoint


def test_countdowns_do_not_break_folding() -> None:
    first = "opens Sun 2026-11-29 09:00 IST, in 1d 19h; 1st in line"
    later = "opens Sun 2026-11-29 09:00 IST, in 5m; 1st in line"
    assert fold_key(first) == fold_key(later) == "opens Sun 2026-11-29 09:00 IST; 1st in line"
    assert re.search(r"in \d", fold_key("release train: next departure in 4m (stagger 5m)")) is None


def test_e2e_runs_are_dry_runs_taken_as_passed(tmp_path: Path) -> None:
    """A simulation triggers nothing outside: the E2E run is reported and assumed to pass
    (CI secrets are not needed either)."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\n"
        "ci:\n"
        "  providers:\n"
        "    gh: {type: github, token: {token_env: NOT_SET_IN_A_SIMULATION}}\n"
        "environments:\n"
        "  staging:\n"
        "    match: [{namespace: 'staging*'}]\n"
        "    gates:\n"
        "      pre-rollout:\n"
        "        - {type: e2e, provider: gh, project: acme/e2e, workflow: e2e.yml, ref: main,\n"
        "           parameters: {puerta_run: '{run_id}'}, wait: background}\n"
        "      confirm-promotion:\n"
        "        - {type: e2e-result}\n"
    )
    manifest = tmp_path / "staging.yaml"
    manifest.write_text(PRODUCTION.read_text().replace("namespace: prod", "namespace: staging"))

    result = run(manifest, "--policy", policy, "--start", "2026-11-27T12:00Z")

    assert result.exit_code == 0, result.output
    out = lines(result.output)
    assert "(dry run) E2E run e2e on gh: e2e.yml@main (assumed to pass)" in out
    assert out[-1].startswith("result: 1 succeeded")
