"""Every route that changes state or reads the audit refuses a missing token, an unknown token
and a role too weak for it. The test enumerates the app's routes, so a new route that is not
classified here fails it."""

from __future__ import annotations

import re

import pytest

from conftest import ADMIN, APPROVER, VIEWER, Puerta

#: (method, path) -> role needed. Paths as the app declares them.
PROTECTED = {
    ("GET", "/api/v1/audit"): "viewer",
    ("GET", "/api/v1/audit/verify"): "viewer",
    ("GET", "/api/v1/audit/export"): "viewer",
    ("GET", "/api/v1/whoami"): "viewer",
    ("POST", "/api/v1/canaries/{namespace}/{name}/approve"): "approver",
    ("POST", "/api/v1/canaries/{namespace}/{name}/halt"): "approver",
    ("POST", "/api/v1/canaries/{namespace}/{name}/rollback"): "approver",
    ("POST", "/api/v1/canaries/{namespace}/{name}/override"): "admin",
    ("POST", "/api/v1/promotions/{promotion_id}/hold"): "approver",
    ("POST", "/api/v1/promotions/{promotion_id}/release"): "approver",
    ("POST", "/api/v1/freezes"): "admin",
    ("POST", "/api/v1/environments/{environment}/unfreeze"): "admin",
    ("GET", "/api/v1/notifications"): "viewer",
    ("GET", "/api/v1/delivery"): "viewer",
}
#: routes open to anyone (reads allowed by public_read, health, hooks with their own rules)
OPEN = {
    ("GET", "/api/v1/canaries"),
    ("GET", "/api/v1/canaries/{namespace}/{name}"),
    ("GET", "/api/v1/freezes"),
    ("GET", "/api/v1/explain"),
    ("GET", "/api/v1/ci/runs"),
    ("GET", "/api/v1/ci/runs/{run_id}"),
    ("GET", "/api/v1/promotions"),
    ("GET", "/api/v1/commits/{sha}"),
    ("GET", "/api/v1/environments/{environment}/live"),
}
TOKENS = {"viewer": VIEWER, "approver": APPROVER, "admin": ADMIN}
WEAKER = {"viewer": None, "approver": "viewer", "admin": "approver"}


def api_routes(puerta: Puerta) -> set[tuple[str, str]]:
    """Every /api/ route the app serves, from its OpenAPI document (FastAPI nests included
    routers, so ``app.routes`` does not list them all)."""
    schema = puerta.http.get("/openapi.json").json()
    found = {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        if path.startswith("/api/")
        for method in operations
    }
    assert len(found) > len(PROTECTED), "the route enumeration found too little to be true"
    return found


def test_every_api_route_is_classified(puerta: Puerta) -> None:
    unclassified = api_routes(puerta) - set(PROTECTED) - OPEN
    assert unclassified == set(), f"classify these routes in {__file__}: {unclassified}"


def concrete(path: str) -> str:
    return re.sub(
        r"\{[^}]+\}", lambda m: {"{environment}": "production"}.get(m.group(0), "x"), path
    )


@pytest.mark.parametrize(("route", "role"), sorted(PROTECTED.items()))
def test_protected_routes_refuse_missing_bad_and_weak_tokens(
    puerta: Puerta, route: tuple[str, str], role: str
) -> None:
    method, path = route
    url = concrete(path)
    body = {"reason": "x", "environment": "production"} if method == "POST" else None
    before = puerta.audit(limit=1000)

    missing = puerta.http.request(method, url, json=body)
    assert missing.status_code == 401, (route, missing.text)
    assert missing.headers.get("www-authenticate") == "Bearer"
    bad = puerta.http.request(method, url, json=body, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401, (route, bad.text)
    weaker = WEAKER[role]
    if weaker is not None:
        weak = puerta.http.request(
            method, url, json=body, headers={"Authorization": f"Bearer {TOKENS[weaker]}"}
        )
        assert weak.status_code == 403, (route, weak.text)
    allowed = puerta.http.request(
        method, url, json=body, headers={"Authorization": f"Bearer {TOKENS[role]}"}
    )
    assert allowed.status_code not in (401, 403), (route, allowed.text)
    if method == "POST":
        refused_changes = [e for e in puerta.audit(limit=1000) if e not in before]
        # only the allowed call may have been recorded
        assert all(e["actor"] == role for e in refused_changes), refused_changes


def test_state_changing_loadtester_and_dashboard_routes_need_a_token(puerta: Puerta) -> None:
    body = {"name": "podinfo", "namespace": "staging"}
    for path in ("/gate/open", "/gate/close", "/rollback/open", "/rollback/close"):
        assert puerta.http.post(path, json=body).status_code == 401, path
        viewer = puerta.http.post(path, json=body, headers={"Authorization": f"Bearer {VIEWER}"})
        assert viewer.status_code == 403, path
    for path in ("/ui/canaries/staging/podinfo/approve", "/ui/environments/production/freeze"):
        response = puerta.http.post(path, data={"reason": "x"}, follow_redirects=False)
        assert response.status_code == 403, path
