"""Rollout notifications through the HTTP API against a fake Slack Web API and a webhook
receiver on real sockets: one parent message per rollout, updated in place; the events in its
thread with identical repeats folded; every notice in the raw channel and to the signed
webhook; nothing lost or repeated through a Slack outage and a Puerta restart; permanent errors
recorded and visible in the API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from conftest import ADMIN, APPROVER, VIEWER, Puerta, flagger_payload
from fakes.server import serve_in_thread
from fakes.slack import FakeSlack
from fakes.webhook_receiver import WebhookReceiver
from puerta.clock import ManualClock
from waiting import until

SLACK_TOKEN = "xoxb-1-puerta-test"
HOOK_SECRET = "notify-hook-secret-4b1d"

POLICY = """
version: 1
auth:
  tokens:
    - {{name: admin, role: admin, token_env: PUERTA_ADMIN_TOKEN}}
    - {{name: approver, role: approver, token_env: PUERTA_APPROVER_TOKEN}}
    - {{name: viewer, role: viewer, token_env: PUERTA_VIEWER_TOKEN}}
notifications:
  slack:
    token: {{token_env: SLACK_TOKEN}}
    base_url: {slack}/api/
    channel_interval: 0s
  routes:
    - match: {{environment: staging}}
      channel: "#deploys"
      raw_channel: "#deploys-raw"
      webhook:
        url: {hook}
        secret: {{token_env: HOOK_SECRET}}
environments:
  staging:
    match: [{{namespace: "staging*"}}]
    gates:
      confirm-promotion:
        - type: manual
"""


@pytest.fixture
def slack() -> Iterator[tuple[FakeSlack, str]]:
    fake = FakeSlack(token=SLACK_TOKEN)
    fake.add_channel("deploys", id="C0DEPLOYS")
    fake.add_channel("deploys-raw", id="C0DEPLRAW")
    with serve_in_thread(fake.app) as url:
        yield fake, url


@pytest.fixture
def receiver() -> Iterator[tuple[WebhookReceiver, str]]:
    fake = WebhookReceiver(secret=HOOK_SECRET)
    with serve_in_thread(fake.app) as url:
        yield fake, f"{url}/puerta"


@pytest.fixture
def notifying(
    database_url: str,
    slack: tuple[FakeSlack, str],
    receiver: tuple[WebhookReceiver, str],
    clock: ManualClock,
) -> Iterator[tuple[Puerta, FakeSlack, WebhookReceiver]]:
    fake, slack_url = slack
    hooks, hook_url = receiver
    puerta = Puerta(database_url, POLICY.format(slack=slack_url, hook=hook_url), clock)
    puerta.environ.update({"SLACK_TOKEN": SLACK_TOKEN, "HOOK_SECRET": HOOK_SECRET})
    puerta.start()
    try:
        yield puerta, fake, hooks
    finally:
        puerta.stop()


def call(puerta: Puerta, hook: str, **overrides: Any) -> httpx.Response:
    phase = "Initialized" if hook == "confirm-rollout" else "Progressing"
    body = flagger_payload(
        hook, namespace="staging", name="podinfo", checksum="85d557f47b", phase=phase
    )
    body.update(overrides)
    if hook != "event":
        body["metadata"] = {}
    response: httpx.Response = puerta.http.post(f"/hooks/{hook}", json=body)
    return response


def event(puerta: Puerta, message: str, kind: str = "Normal") -> None:
    metadata = {"eventMessage": message, "eventType": kind, "timestamp": "1764151200000"}
    assert call(puerta, "event", metadata=metadata).status_code == 200


def outbox(puerta: Puerta, **params: Any) -> dict[str, Any]:
    response = puerta.api("GET", "/notifications", token=VIEWER, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def settled(puerta: Puerta) -> bool:
    return outbox(puerta)["counts"].get("pending", 0) == 0


def test_one_thread_per_rollout_with_events_folded(
    notifying: tuple[Puerta, FakeSlack, WebhookReceiver],
) -> None:
    puerta, slack, hooks = notifying
    assert call(puerta, "confirm-rollout").status_code == 200
    event(puerta, "New revision detected! Scaling up podinfo.staging")
    assert call(puerta, "pre-rollout").status_code == 200
    event(puerta, "Starting canary analysis for podinfo.staging")
    event(puerta, "Advance podinfo.staging canary weight 10")
    assert call(puerta, "confirm-promotion").status_code == 403
    for _ in range(3):  # Flagger repeats this every interval
        event(puerta, "Confirm-promotion check confirm-promotion failed", "Warning")
    until(lambda: settled(puerta))
    (waiting,) = slack.messages("#deploys")
    assert "waiting: waiting for manual approval" in waiting.text
    assert "repeated x3: Confirm-promotion check confirm-promotion failed" in waiting.text
    approve = puerta.api("POST", "/canaries/staging/podinfo/approve", token=APPROVER, json={})
    assert approve.status_code == 200
    assert call(puerta, "confirm-promotion").status_code == 200
    event(puerta, "Promotion completed! Scaling down podinfo.staging")
    assert call(puerta, "post-rollout", phase="Succeeded").status_code == 200
    until(lambda: settled(puerta))

    (parent,) = slack.messages("#deploys")  # one line per rollout in the channel
    assert "`staging/podinfo` rollout #1 to *staging*: *succeeded*" in parent.text
    assert "weight 10%" in parent.text
    assert "repeated" not in parent.text  # only while the repeat is the latest news
    assert parent.edits >= 1
    replies = [m.text for m in slack.thread("#deploys", parent.ts)]
    assert replies == [
        ":arrow_forward: *released*: rollout #1 starts: no confirm-rollout gates in staging",
        ":information_source: New revision detected! Scaling up podinfo.staging",
        ":information_source: Starting canary analysis for podinfo.staging",
        ":information_source: Advance podinfo.staging canary weight 10",
        ":warning: Confirm-promotion check confirm-promotion failed",
        ":thumbsup: *approved* by approver: approved rollout #1 for confirm-promotion",
        ":information_source: Promotion completed! Scaling down podinfo.staging",
        ":rocket: *succeeded*: rollout #1 promoted",
    ]
    raw = [m.text for m in slack.messages("#deploys-raw")]
    assert len(raw) == 10  # every notice, repeats included
    assert all(line.startswith("`staging/podinfo` rev `85d557f47b`") for line in raw)
    assert len(hooks.deliveries) == 10
    assert all(d.signature_valid for d in hooks.deliveries)
    assert [d.payload["kind"] for d in hooks.deliveries][-1] == "succeeded"


def test_a_slack_outage_loses_nothing_and_repeats_nothing(
    notifying: tuple[Puerta, FakeSlack, WebhookReceiver], clock: ManualClock
) -> None:
    puerta, slack, _ = notifying
    slack.fail_next(None, status=503)  # Slack is down until healed
    assert call(puerta, "confirm-rollout").status_code == 200
    for n in range(1, 51):
        event(puerta, f"analysis step {n}")
    until(lambda: any(i["attempts"] for i in outbox(puerta, status="pending", limit=500)["items"]))
    assert slack.messages("#deploys") == []

    puerta.restart()  # a restart in the middle changes nothing
    for n in range(51, 101):
        event(puerta, f"analysis step {n}")
    slack.heal()
    clock.advance(timedelta(minutes=10))  # past every backoff
    until(lambda: settled(puerta), timeout=60)

    (parent,) = slack.messages("#deploys")
    replies = [m.text for m in slack.thread("#deploys", parent.ts)]
    expected = [f":information_source: analysis step {n}" for n in range(1, 101)]
    assert replies[1:] == expected  # after "released": each once, in order
    raw = [m.text for m in slack.messages("#deploys-raw")]
    assert len(raw) == 101
    assert outbox(puerta, status="failed")["total"] == 0


def test_permanent_errors_are_recorded_and_shown(
    database_url: str,
    slack: tuple[FakeSlack, str],
    receiver: tuple[WebhookReceiver, str],
    clock: ManualClock,
) -> None:
    fake, slack_url = slack
    _, hook_url = receiver
    policy = POLICY.format(slack=slack_url, hook=hook_url).replace('"#deploys"', '"#nowhere"')
    puerta = Puerta(database_url, policy, clock)
    puerta.environ.update({"SLACK_TOKEN": SLACK_TOKEN, "HOOK_SECRET": HOOK_SECRET})
    puerta.start()
    try:
        assert call(puerta, "confirm-rollout").status_code == 200
        event(puerta, "Starting canary analysis for podinfo.staging")
        until(lambda: settled(puerta))
        failed = outbox(puerta, status="failed")
        assert failed["total"] == 4  # the parent (posted, then refreshed) and two replies
        errors = {item["item"]: item["last_error"] for item in failed["items"]}
        assert errors["parent"] == "slack chat.postMessage: channel_not_found"
        assert "the parent message could not be posted" in errors["reply"]
        assert len(fake.messages("#deploys-raw")) == 2  # other destinations go on
        assert puerta.api("GET", "/notifications").status_code == 401
        metrics = puerta.http.get("/metrics").text
        assert 'puerta_notifications_total{destination="slack",status="failed"} 4.0' in metrics
    finally:
        puerta.stop()


def test_admin_actions_and_halts_are_announced(
    notifying: tuple[Puerta, FakeSlack, WebhookReceiver],
) -> None:
    puerta, slack, _ = notifying
    assert call(puerta, "confirm-rollout").status_code == 200
    halt = puerta.api(
        "POST", "/canaries/staging/podinfo/halt", token=ADMIN, json={"reason": "incident 142"}
    )
    assert halt.status_code == 200
    until(lambda: settled(puerta))
    (parent,) = slack.messages("#deploys")
    replies = [m.text for m in slack.thread("#deploys", parent.ts)]
    assert replies[-1] == (
        ":octagonal_sign: *halted* by admin: halted: confirm-* hooks wait until approved "
        "again (reason: incident 142)"
    )
