"""The policy file: validation messages with paths and lines, environment matching, defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import EXAMPLE_POLICY, Puerta
from puerta.cli.main import app as cli
from puerta.domain.hooks import FlaggerPayload
from puerta.errors import ConfigError
from puerta.policy import parse_policy

BROKEN = {
    "typo-zone.yaml": (
        "environments:\n"
        "  production:\n"
        "    match: [{namespace: prod}]\n"
        "    timezone: Asia/Jerusalm\n",
        ["typo-zone.yaml:4: environments.production.timezone: unknown time zone 'Asia/Jerusalm'"],
    ),
    "gates.yaml": (
        "environments:\n"
        "  staging:\n"
        "    match:\n"
        "      - namespace: st*\n"
        "    gates:\n"
        "      confirm-rollout:\n"
        "        - type: manual\n"
        "          approvals: 0\n"
        "        - type: windw\n"
        "        - approvals: 2\n"
        "        - type: manual\n"
        "          aprovals: 2\n",
        [
            "gates.yaml:8: environments.staging.gates.confirm-rollout[0].approvals: Input "
            "should be greater than or equal to 1",
            "gates.yaml:9: environments.staging.gates.confirm-rollout[1]: unknown gate type "
            "'windw'; one of: allow, deny, e2e, e2e-result, load, manual, window",
            "gates.yaml:10: environments.staging.gates.confirm-rollout[2]: missing 'type'; "
            "one of: allow, deny, e2e, e2e-result, load, manual, window",
            "gates.yaml:12: environments.staging.gates.confirm-rollout[3].aprovals: unknown field",
        ],
    ),
    "hook-names.yaml": (
        "environments:\n"
        "  production:\n"
        "    match: [{namespace: prod}]\n"
        "    gates:\n"
        "      confirm-rolout: [{type: allow}]\n",
        [
            "hook-names.yaml:5: environments.production.gates.confirm-rolout: unknown hook type; "
            "valid: confirm-promotion, confirm-rollout, confirm-traffic-increase, event, "
            "post-rollout, pre-rollout, rollback, rollout"
        ],
    ),
    "wrong-hook.yaml": (
        "environments:\n"
        "  production:\n"
        "    match: [{namespace: prod}]\n"
        "    gates:\n"
        "      pre-rollout:\n"
        "        - type: manual\n",
        [
            "wrong-hook.yaml:6: environments.production.gates.pre-rollout[0].type: a manual gate "
            "cannot be used on pre-rollout (allowed: confirm-promotion, confirm-rollout, "
            "confirm-traffic-increase)"
        ],
    ),
    "secrets.yaml": (
        "unmatched: maybe\n"
        "auth:\n"
        "  tokens:\n"
        "    - name: ops\n"
        "      role: root\n"
        "      token_env: OPS\n"
        "    - name: ci\n"
        "      role: viewer\n"
        "      token: plaintext\n"
        "environments:\n"
        "  production:\n"
        "    match: [{}]\n",
        [
            "secrets.yaml:1: unmatched: Input should be 'pass' or 'refuse'",
            "secrets.yaml:5: auth.tokens[0].role: Input should be 'viewer', 'approver' or 'admin'",
            "secrets.yaml:7: auth.tokens[1]: secrets are never written in the policy file; use "
            "token_env (an environment variable) or token_file (a mounted file)",
            "secrets.yaml:12: environments.production.match[0]: a match rule needs at least one "
            "of namespace, name, metadata",
        ],
    ),
    "yaml-syntax.yaml": (
        "environments:\n  production:\n    match: [namespace: prod\n",
        None,
    ),
}


@pytest.mark.parametrize("filename", sorted(BROKEN))
def test_check_config_names_each_error_with_its_path(tmp_path: Path, filename: str) -> None:
    text, expected = BROKEN[filename]
    path = tmp_path / filename
    path.write_text(text)
    result = CliRunner().invoke(cli, ["check-config", str(path)])
    assert result.exit_code == 1
    lines = [line.removeprefix(str(tmp_path) + "/") for line in result.output.splitlines()]
    if expected is None:
        assert len(lines) == 1
        assert lines[0].startswith(f"{filename}:4: invalid YAML:")
    else:
        assert lines == expected


def test_check_config_accepts_the_example() -> None:
    result = CliRunner().invoke(cli, ["check-config", str(EXAMPLE_POLICY)])
    assert result.exit_code == 0
    assert result.output.strip().endswith("ok (2 environments: staging, production)")


def test_check_config_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["check-config", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1
    assert "cannot read policy file" in result.output


def test_serve_refuses_an_invalid_file_with_the_same_message(tmp_path: Path) -> None:
    text, expected = BROKEN["typo-zone.yaml"]
    path = tmp_path / "typo-zone.yaml"
    path.write_text(text)
    result = CliRunner().invoke(cli, ["serve", "--config", str(path)])
    assert result.exit_code == 1
    assert result.output.strip() == f"{tmp_path}/{expected[0]}"


def test_serve_refuses_when_a_token_secret_is_missing(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["serve", "--config", str(EXAMPLE_POLICY)],
        env={"PUERTA_ADMIN_TOKEN": "", "PUERTA_APPROVER_TOKEN": "", "PUERTA_VIEWER_TOKEN": "x"},
    )
    assert result.exit_code == 1
    assert "auth.tokens[0].token_env: environment variable PUERTA_ADMIN_TOKEN is not set" in (
        result.output
    )


def payload(namespace: str, name: str = "podinfo", **metadata: str) -> FlaggerPayload:
    return FlaggerPayload(name=name, namespace=namespace, metadata=metadata)


def test_environment_matching_first_rule_wins_in_file_order() -> None:
    policy = parse_policy(
        "environments:\n"
        "  canary-lab:\n"
        "    match: [{namespace: 'prod', name: 'lab-*'}]\n"
        "  production:\n"
        "    match: [{namespace: 'prod*'}, {metadata: {environment: production}}]\n"
        "  staging:\n"
        "    match: [{metadata: {environment: 'stag*', team: payments}}]\n"
    )

    def env(p: FlaggerPayload) -> str | None:
        match = policy.match(p)
        return match.name if match else None

    assert env(payload("prod", "lab-api")) == "canary-lab"
    assert env(payload("prod", "api")) == "production"
    assert env(payload("prod-eu")) == "production"
    assert env(payload("apps", environment="production")) == "production"
    assert env(payload("apps", environment="staging", team="payments")) == "staging"
    assert env(payload("apps", environment="staging")) is None  # AND within a rule
    assert env(payload("Prod")) is None  # globs are case-sensitive, like Kubernetes names
    assert policy.explain_match(payload("prod", "api")) == [
        "canary-lab: no match rule matched",
        "production: matched by match[0]",
        "staging: no match rule matched",
    ]


def test_unmatched_canaries_pass_or_are_refused(puerta: Puerta, policy_text: str) -> None:
    passed = puerta.hook("confirm-rollout", namespace="elsewhere")
    assert (passed.status_code, passed.text) == (
        200,
        "elsewhere/podinfo matches no environment; policy passes it",
    )
    puerta.restart(policy_text.replace("unmatched: pass", "unmatched: refuse"))
    refused = puerta.hook("confirm-rollout", namespace="elsewhere")
    assert refused.status_code == 403
    assert refused.text == (
        "elsewhere/podinfo matches no environment in the policy and unmatched canaries are refused"
    )
    # the rollback hook never rolls back an unmatched canary, and events are always recorded
    assert puerta.hook("rollback", namespace="elsewhere").status_code == 403
    assert puerta.hook("event", namespace="elsewhere").status_code == 200


def test_deny_gate_and_gate_order(puerta: Puerta) -> None:
    policy = (
        "environments:\n"
        "  production:\n"
        "    match: [{namespace: prod}]\n"
        "    gates:\n"
        "      confirm-rollout:\n"
        "        - type: allow\n"
        "        - type: deny\n"
        "          reason: 'production is being migrated, ask #platform'\n"
        "        - type: manual\n"
    )
    puerta.restart(policy)
    refused = puerta.hook("confirm-rollout", namespace="prod")
    assert (refused.status_code, refused.text) == (
        403,
        "production is being migrated, ask #platform",
    )
    waiting = puerta.api("GET", "/canaries/prod/podinfo").json()["rollout"]["waiting"]
    assert waiting["gate"] == "confirm-rollout[1] deny"


def test_empty_policy_is_valid_and_passes_everything() -> None:
    policy = parse_policy("")
    assert policy.environments == []
    assert policy.policy.unmatched == "pass"


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_policy("- a\n- b\n", source="p.yaml")
    assert caught.value.problems == ["p.yaml: the policy must be a mapping at the top level"]


def test_check_config_validates_windows() -> None:
    """Unknown zones, empty ranges, unknown days, holiday countries and subdivisions."""
    path = Path(__file__).parent / "fixtures" / "broken-windows.yaml"
    result = CliRunner().invoke(cli, ["check-config", str(path)])
    assert result.exit_code == 1
    lines = [line.split(": ", 1)[1] for line in result.output.splitlines()]
    gate = "environments.production.gates.confirm-rollout[0]"
    assert lines == [
        f"{gate}.allow[0]: empty time range '09:00-09:00': start equals end",
        f"{gate}.allow[1]: unknown day 'Frday' in 'Sun-Frday': use three-letter English day "
        "names (Mon, Tue, Wed, Thu, Fri, Sat, Sun), e.g. 'Sun-Thu' or 'Mon,Wed,Fri'",
        f"{gate}.holidays[0]: unknown holiday country 'XX': use an ISO 3166 code supported by "
        "the holidays package, e.g. 'IL' or 'US'",
        lines[3],  # the list of US subdivisions follows; checked below
        f"{gate}.min_remaining: invalid duration '2 hours'; write e.g. 90s, 10m, 2h, 1h30m or 3d",
        "environments.production.gates.confirm-promotion[0].timezone: unknown time zone "
        "'Asia/Jerusalm'",
    ]
    assert lines[3].startswith(
        f"{gate}.holidays[1]: unknown subdivision 'ZZ' for holiday "
        "country 'US'; known subdivisions: AK, AL,"
    )
    assert result.output.splitlines()[0].startswith(f"{path}:9: ")


def test_window_gate_needs_a_time_zone() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_policy(
            "environments:\n  p:\n    match: [{namespace: p}]\n    gates:\n"
            "      confirm-rollout: [{type: window, allow: [{days: Mon-Fri}]}]\n",
            source="p.yaml",
        )
    assert caught.value.problems == [
        "p.yaml:5: environments.p.gates.confirm-rollout[0]: timezone: required (set it on the "
        "gate or on the environment)"
    ]


PROMOTING = (
    "commits:\n"
    "  github: {{token: {{token_env: GITHUB_TOKEN}}}}\n"
    "  rules: [{{repository: 'acme/{{name}}', sha_from: image-tag}}]\n"
    "environments:\n"
    "  staging:\n"
    "    match: [{{namespace: staging}}]\n"
    "    promote:\n"
    "      to: {to}\n"
    "{action}"
    "  production:\n"
    "    match: [{{namespace: prod}}]\n"
)
BAD_PROMOTIONS = {
    "unknown placeholder": (
        "production",
        "      github_release: {tag: 'v{date}-{sha7}'}\n",
        "p.yaml:9: environments.staging.promote.github_release.tag: unknown placeholder {sha7}; "
        "use {date}, {environment}, {image_tag}, {name}, {namespace}, {next_major}, "
        "{next_minor}, {next_patch}, {repository}, {rollout}, {sha}, {short_sha}, {time}, {to}",
    ),
    "a version outside a release": (
        "production",
        "      repository_dispatch: {event_type: 'deploy-{next_patch}'}\n",
        "p.yaml:9: environments.staging.promote.repository_dispatch.event_type: {next_patch} "
        "reads a repository's tags: it is only for github_release.tag and github_release.name",
    ),
    "an unknown environment": (
        "prod",
        "      github_release: {tag: 'v{next_minor}'}\n",
        "p.yaml:8: environments.staging.promote.to: no environment 'prod' (environments: "
        "production, staging)",
    ),
    "itself": (
        "staging",
        "      github_release: {}\n",
        "p.yaml:8: environments.staging.promote.to: an environment cannot promote to itself",
    ),
    "no action": (
        "production",
        "",
        "p.yaml:7: environments.staging.promote: give exactly one of github_release, "
        "repository_dispatch or webhook",
    ),
    "two actions": (
        "production",
        "      github_release: {}\n      repository_dispatch: {}\n",
        "p.yaml:7: environments.staging.promote: give exactly one of github_release, "
        "repository_dispatch or webhook",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_PROMOTIONS))
def test_check_config_names_the_promote_mistake(tmp_path: Path, case: str) -> None:
    to, action, expected = BAD_PROMOTIONS[case]
    path = tmp_path / "p.yaml"
    path.write_text(PROMOTING.format(to=to, action=action))
    result = CliRunner().invoke(cli, ["check-config", str(path)])
    assert result.exit_code == 1
    assert [line.removeprefix(f"{tmp_path}/") for line in result.output.splitlines()] == [expected]


def test_check_config_accepts_versions_and_manual_release(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    action = (
        "      manual_release: true\n"
        "      github_release: {tag: 'podinfo-v{next_minor}', name: '{name} {next_minor}'}\n"
    )
    path.write_text(PROMOTING.format(to="production", action=action))
    result = CliRunner().invoke(cli, ["check-config", str(path)])
    assert result.exit_code == 0, result.output
    promote = parse_policy(path.read_text()).environment("staging")
    assert promote is not None and promote.spec.promote is not None
    assert promote.spec.promote.manual_release is True
