"""Who may call what: admin roles, the audit, optional hook tokens and namespace limits."""

from __future__ import annotations

import pytest

from conftest import ADMIN, APPROVER, TOKENS, VIEWER, Puerta
from puerta.api.auth import TokenRegistry
from puerta.errors import ConfigError
from puerta.policy import parse_policy

HOOK_SECRET = "hk-d41d8cd98f"


def test_audit_always_needs_a_token(puerta: Puerta) -> None:
    assert puerta.api("GET", "/audit").status_code == 401
    assert puerta.api("GET", "/audit", token="wrong").status_code == 401
    for token in (VIEWER, APPROVER, ADMIN):
        assert puerta.api("GET", "/audit", token=token).status_code == 200
    malformed = puerta.http.get("/api/v1/audit", headers={"Authorization": f"Basic {VIEWER}"})
    assert malformed.status_code == 401


def test_status_reads_are_public_unless_the_policy_says_otherwise(
    puerta: Puerta, policy_text: str
) -> None:
    assert puerta.api("GET", "/canaries").status_code == 200
    puerta.restart(policy_text.replace("public_read: true", "public_read: false"))
    assert puerta.api("GET", "/canaries").status_code == 401
    assert puerta.api("GET", "/canaries", token=VIEWER).status_code == 200


def test_whoami(puerta: Puerta) -> None:
    assert puerta.api("GET", "/whoami", token=APPROVER).json() == {
        "name": "approver",
        "role": "approver",
    }


def test_hook_token_in_query_or_metadata(puerta: Puerta, policy_text: str) -> None:
    puerta.environ["PUERTA_HOOK_TOKEN"] = HOOK_SECRET
    puerta.restart(
        policy_text.replace(
            "# token: {token_env: PUERTA_HOOK_TOKEN}", "token: {token_env: PUERTA_HOOK_TOKEN}"
        )
    )
    body = {"name": "podinfo", "namespace": "staging"}
    missing = puerta.http.post("/hooks/confirm-rollout", json=body)
    assert missing.status_code == 401
    assert missing.text.startswith("hook token missing or wrong")
    wrong = puerta.http.post("/hooks/confirm-rollout?token=nope", json=body)
    assert wrong.status_code == 401
    assert (
        puerta.http.post(f"/hooks/confirm-rollout?token={HOOK_SECRET}", json=body).status_code
        == 200
    )
    in_metadata = {**body, "metadata": {"token": HOOK_SECRET}}
    assert puerta.http.post("/hooks/confirm-rollout", json=in_metadata).status_code == 200
    # refused calls are not recorded as decisions
    assert len(puerta.audit(kind="hook")) == 2


def test_namespaces_allowed_to_call(puerta: Puerta, policy_text: str) -> None:
    puerta.restart(policy_text.replace('namespaces: ["*"]', 'namespaces: ["staging*"]'))
    refused = puerta.hook("confirm-rollout", namespace="prod")
    assert (refused.status_code, refused.text) == (403, "namespace 'prod' may not call this Puerta")
    assert puerta.hook("confirm-rollout", namespace="staging-eu").status_code == 200
    assert [e["namespace"] for e in puerta.audit(kind="hook")] == ["staging-eu"]


def test_missing_token_secret_stops_start_up() -> None:
    policy = parse_policy(
        "auth:\n  tokens:\n    - {name: ops, role: admin, token_env: OPS_TOKEN}\n"
        "    - {name: ci, role: viewer, token_file: /nonexistent/ci.token}\n"
    ).policy
    with pytest.raises(ConfigError) as caught:
        TokenRegistry.from_policy(policy, {})
    assert caught.value.problems == [
        "auth.tokens[0].token_env: environment variable OPS_TOKEN is not set or empty",
        "auth.tokens[1].token_file: cannot read /nonexistent/ci.token: No such file or directory",
    ]


def test_token_from_file(tmp_path: pytest.TempPathFactory) -> None:
    secret = tmp_path / "ci.token"  # type: ignore[operator]
    secret.write_text("file-secret-123\n")
    policy = parse_policy(
        f"auth:\n  tokens:\n    - {{name: ci, role: viewer, token_file: {secret}}}\n"
    ).policy
    registry = TokenRegistry.from_policy(policy, {})
    principal = registry.principal("file-secret-123")
    assert principal is not None and principal.name == "ci"


def test_secrets_never_appear_in_logs(
    puerta: Puerta, policy_text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A whole scenario's output is searched for every configured secret."""
    import structlog

    from puerta.logs import configure_logging

    configure_logging("debug", "json")
    try:
        _scenario(puerta, policy_text)
    finally:
        output = capsys.readouterr()
        structlog.reset_defaults()
    logs = output.out + output.err
    assert "hook answered" in logs
    for secret in [*TOKENS.values(), HOOK_SECRET]:
        assert secret not in logs
    assert HOOK_SECRET not in str(puerta.audit(limit=1000))


def _scenario(puerta: Puerta, policy_text: str) -> None:
    puerta.environ["PUERTA_HOOK_TOKEN"] = HOOK_SECRET
    puerta.restart(
        policy_text.replace(
            "# token: {token_env: PUERTA_HOOK_TOKEN}", "token: {token_env: PUERTA_HOOK_TOKEN}"
        )
    )
    puerta.http.post(
        f"/hooks/confirm-rollout?token={HOOK_SECRET}", json={"name": "podinfo", "namespace": "prod"}
    )
    puerta.http.post("/hooks/confirm-rollout?token=guess", json={"name": "a", "namespace": "prod"})
    puerta.http.post(
        "/hooks/confirm-promotion",
        json={"name": "podinfo", "namespace": "prod", "metadata": {"token": HOOK_SECRET}},
    )
    puerta.api("POST", "/canaries/prod/podinfo/approve", token=APPROVER)
    puerta.api("POST", "/canaries/prod/podinfo/approve", token=VIEWER)
    puerta.api("GET", "/audit", token=ADMIN)
    puerta.api("GET", "/audit", token="not-a-token")
