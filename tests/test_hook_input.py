"""Bad input gets a 400 naming the field (404 for an unknown hook type), never a 500, and leaves
the stored state as it was. What a real Flagger sends is always accepted."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Puerta, flagger_payload
from puerta.domain.hooks import HookType, parse_payload
from puerta.errors import BadRequest

ALL_HOOKS = [h.value for h in HookType]


def stored_state(puerta: Puerta) -> tuple[Any, Any]:
    return puerta.api("GET", "/canaries").json(), puerta.audit(limit=1000)


@pytest.mark.parametrize("hook", ALL_HOOKS)
def test_every_fixture_payload_is_accepted(puerta: Puerta, hook: str) -> None:
    response = puerta.hook(hook, namespace="staging")
    assert response.status_code in (200, 403), response.text
    assert response.status_code < 500


BAD_BODIES: list[tuple[bytes | str, str]] = [
    (b"", "body: empty; expected Flagger's JSON payload"),
    (b"{not json", "body: not valid JSON"),
    (b"[1, 2]", "body: must be a JSON object, got list"),
    (json.dumps({"namespace": "test"}), "name: required"),
    (json.dumps({"name": "podinfo"}), "namespace: required"),
    (json.dumps({"name": "", "namespace": "test"}), "name: must not be empty"),
    (json.dumps({"name": "podinfo", "namespace": ""}), "namespace: must not be empty"),
    (json.dumps({"name": 7, "namespace": "test"}), "name: must be a string, got int"),
    (
        json.dumps({"name": "Pod Info", "namespace": "test"}),
        "name: 'Pod Info' is not a valid Kubernetes object name",
    ),
    (
        json.dumps({"name": "podinfo", "namespace": "te_st"}),
        "namespace: 'te_st' is not a valid Kubernetes namespace",
    ),
    (
        json.dumps({"name": "podinfo", "namespace": "test", "phase": 3}),
        "phase: must be a string, got int",
    ),
    (
        json.dumps({"name": "podinfo", "namespace": "test", "checksum": ["x"]}),
        "checksum: must be a string, got list",
    ),
    (
        json.dumps({"name": "podinfo", "namespace": "test", "metadata": "a=b"}),
        "metadata: must be an object of strings, got str",
    ),
    (
        json.dumps({"name": "podinfo", "namespace": "test", "metadata": {"retries": 3}}),
        "metadata.retries: must be a string, got int",
    ),
]


@pytest.mark.parametrize(("body", "reason"), BAD_BODIES)
def test_bad_payloads_get_400_naming_the_field(
    puerta: Puerta, body: bytes | str, reason: str
) -> None:
    before = stored_state(puerta)
    response = puerta.http.post(
        "/hooks/confirm-rollout", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text.startswith(reason)
    assert "\n" not in response.text
    assert stored_state(puerta) == before


def test_event_needs_flaggers_event_metadata(puerta: Puerta) -> None:
    before = stored_state(puerta)
    payload = flagger_payload("event")
    del payload["metadata"]["eventType"]
    response = puerta.hook("event", payload)
    assert (response.status_code, response.text) == (
        400,
        "metadata.eventType: required for event hooks",
    )
    payload = flagger_payload("event")
    payload["metadata"]["timestamp"] = "2026-11-26T10:00:00Z"
    response = puerta.hook("event", payload)
    assert response.status_code == 400
    assert response.text.startswith("metadata.timestamp: must be Unix milliseconds")
    assert stored_state(puerta) == before


def test_oversized_body_is_refused(puerta: Puerta) -> None:
    before = stored_state(puerta)
    payload = flagger_payload("rollout", metadata={"cmd": "x" * (1024 * 1024)})
    response = puerta.hook("rollout", payload)
    assert response.status_code == 400
    assert response.text == "body: larger than 1048576 bytes"
    assert stored_state(puerta) == before


def test_unknown_hook_type_is_404_listing_the_valid_ones(puerta: Puerta) -> None:
    before = stored_state(puerta)
    response = puerta.http.post("/hooks/confirm-rolout", json=flagger_payload("confirm-rollout"))
    assert response.status_code == 404
    assert response.text == (
        "unknown hook type 'confirm-rolout'; valid: confirm-rollout, pre-rollout, rollout, "
        "confirm-traffic-increase, confirm-promotion, post-rollout, rollback, event"
    )
    assert stored_state(puerta) == before


def test_lenient_where_flagger_varies(puerta: Puerta) -> None:
    """Empty phase (initialising), empty checksum, no metadata, null metadata, a new phase and
    unknown extra fields from a future Flagger are all accepted and recorded."""
    for body in (
        {"name": "podinfo", "namespace": "staging", "phase": "", "checksum": ""},
        {"name": "podinfo", "namespace": "staging"},
        {"name": "podinfo", "namespace": "staging", "metadata": None},
        {
            "name": "podinfo",
            "namespace": "staging",
            "phase": "WaitingTrafficIncrease",
            "canaryWeight": 10,
        },
    ):
        assert puerta.hook("confirm-traffic-increase", body).status_code == 200, body
    phases = [e["phase"] for e in puerta.audit(kind="hook")]
    assert phases == ["WaitingTrafficIncrease", "", "", ""]


def test_hook_token_metadata_is_never_stored(puerta: Puerta) -> None:
    puerta.hook("confirm-promotion", namespace="staging")  # fixture carries metadata.token
    stored = puerta.audit(kind="hook")[0]["payload"]
    assert stored["metadata"] == {"test": "all", "token": "***"}


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.dictionaries(
            st.sampled_from(["name", "namespace", "phase", "checksum", "metadata", "x"]),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                lambda c: (
                    st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3)
                ),
                max_leaves=6,
            ),
        ).map(lambda d: json.dumps(d).encode()),
    )
)
def test_parsing_any_input_either_accepts_or_names_the_problem(raw: bytes) -> None:
    """No input makes the parser fail other than with a one-line BadRequest."""
    for hook in (HookType.CONFIRM_ROLLOUT, HookType.EVENT):
        try:
            payload = parse_payload(raw, hook)
        except BadRequest as exc:
            assert str(exc) and "\n" not in str(exc)
            assert str(exc).split(":")[0] in {
                "body",
                "name",
                "namespace",
                "phase",
                "checksum",
                "metadata",
            } or str(exc).startswith("metadata.")
        else:
            assert payload.name and payload.namespace


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            '{"name": "podinfo", "namespace": "test", "phase": "Progr\\u0000essing"}',
            "phase: contains a NUL character",
        ),
        (
            '{"name": "podinfo", "namespace": "test", "checksum": "\\ud8a1"}',
            "checksum: is not valid Unicode (an unpaired surrogate)",
        ),
        (
            '{"name": "podinfo", "namespace": "test", "metadata": {"k": "a\\u0000b"}}',
            "metadata.k: contains a NUL character",
        ),
    ],
)
def test_text_that_cannot_be_stored_is_a_400(puerta: Puerta, body: str, reason: str) -> None:
    """PostgreSQL refuses NUL characters and unpaired surrogates: a 400, not a 503."""
    before = stored_state(puerta)
    response = puerta.http.post(
        "/hooks/pre-rollout", content=body, headers={"content-type": "application/json"}
    )
    assert (response.status_code, response.text) == (400, reason)
    assert stored_state(puerta) == before


def test_api_parameters_that_cannot_be_stored_are_a_400(puerta: Puerta) -> None:
    from conftest import ADMIN, VIEWER

    audit = puerta.api("GET", "/audit", token=VIEWER, params={"actor": "a\x00b"})
    assert (audit.status_code, audit.json()["detail"]) == (400, "actor: contains a NUL character")
    canary = puerta.api("GET", "/canaries/prod/a%00b")
    assert canary.status_code == 400
    freeze = puerta.api(
        "POST", "/freezes", token=ADMIN, json={"environment": "production", "reason": "x\x00"}
    )
    assert freeze.status_code == 400
    assert "contains a NUL character" in freeze.json()["detail"]
