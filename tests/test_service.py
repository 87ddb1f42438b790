"""Health, readiness, metrics and the database command."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from conftest import TEST_POLICY, TOKENS, Puerta
from puerta.cli.main import app as cli


def test_health_ready_and_metrics(puerta: Puerta) -> None:
    assert puerta.http.get("/healthz").text == "ok"
    assert puerta.http.get("/readyz").status_code == 200
    puerta.hook("confirm-rollout", namespace="prod")
    puerta.hook("confirm-rollout", namespace="staging")
    puerta.http.post("/hooks/nope", json={})
    metrics = puerta.http.get("/metrics").text
    assert 'puerta_hook_calls_total{hook="confirm-rollout",verdict="wait"} 1.0' in metrics
    assert 'puerta_hook_calls_total{hook="confirm-rollout",verdict="pass"} 1.0' in metrics
    assert 'puerta_hook_rejected_total{hook="unknown",status="404"} 1.0' in metrics
    assert 'puerta_hook_decision_seconds_count{hook="confirm-rollout"} 2.0' in metrics


def test_readyz_reports_an_unreachable_database() -> None:
    """Ready means the database answers: a Puerta whose PostgreSQL is down is alive, not ready."""
    from fastapi.testclient import TestClient

    from puerta.app import create_app
    from puerta.settings import Settings

    environ = {
        **TOKENS,
        "PUERTA_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
        "PUERTA_MIGRATE_ON_START": "false",
    }
    with TestClient(create_app(Settings.from_env(TEST_POLICY, environ))) as client:
        assert client.get("/healthz").status_code == 200
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.text.startswith("database unreachable")


def test_openapi_documents_the_api(puerta: Puerta) -> None:
    schema = puerta.http.get("/openapi.json").json()
    for path in (
        "/hooks/{hook_type}",
        "/api/v1/canaries",
        "/api/v1/audit",
        "/api/v1/canaries/{namespace}/{name}/approve",
    ):
        assert path in schema["paths"]


def test_db_upgrade_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    result = CliRunner().invoke(cli, ["db", "upgrade", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "database (sqlite) is at the newest schema"
    again = CliRunner().invoke(cli, ["db", "upgrade", "--database-url", url])
    assert again.exit_code == 0


def test_root_leads_people_to_the_dashboard(puerta: Puerta) -> None:
    response = puerta.http.get("/", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (307, "/ui/")
    # POST / stays flagger-loadtester's task endpoint
    assert puerta.http.post("/", json={"name": "a", "namespace": "b"}).status_code == 400
