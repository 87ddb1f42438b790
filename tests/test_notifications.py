"""Rollout notifications through the HTTP API against a fake Slack Web API and a webhook
receiver on real sockets: one parent message per rollout, updated in place; the events in its
thread with identical repeats folded; every notice in the raw channel and to the signed
webhook; nothing lost or repeated through a Slack outage and a Puerta restart; permanent errors
recorded and visible in the API. Canaries that only send events get a thread per revision;
routes pick channels by environment and namespace; Teams gets cards; replicas share one pace
per channel."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from conftest import ADMIN, APPROVER, VIEWER, Puerta, flagger_payload
from fakes.server import serve_in_thread
from fakes.slack import FakeSlack
from fakes.webhook_receiver import WebhookReceiver
from puerta.clock import ManualClock
from puerta.domain.hooks import FlaggerPayload, HookType
from puerta.notify.slack import SlackSink
from puerta.policy import parse_policy
from puerta.service.commit_resolver import CommitResolver
from puerta.service.hooks import HookService
from puerta.service.notifier import NotificationWorker
from puerta.store.db import Database
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


# ---- canaries with no Puerta hook: a thread per revision from Flagger's events -------------


def only_event(
    puerta: Puerta, message: str, checksum: str, *, phase: str = "Progressing", kind: str = "Normal"
) -> None:
    """What Flagger's global -event-webhook sends for a canary with no Puerta hook."""
    body = flagger_payload("event", namespace="staging-b", name="web", checksum=checksum)
    body["phase"] = phase
    body["metadata"] = {"eventMessage": message, "eventType": kind, "timestamp": "1764151200000"}
    assert puerta.http.post("/hooks/event", json=body).status_code == 200


def test_a_canary_with_only_events_gets_a_thread_per_revision(
    notifying: tuple[Puerta, FakeSlack, WebhookReceiver],
) -> None:
    """Two revisions through Flagger's global event webhook (no Puerta hook, so no Puerta
    rollout): two parents, each with its events as replies and its repeats folded; the first
    ends with its promotion; the raw channel and the webhook still get every notice."""
    puerta, slack, hooks = notifying
    # "New revision detected!" carries the checksum of the revision before it
    only_event(puerta, "New revision detected! Scaling up web.staging-b", "0000000000")
    only_event(puerta, "Starting canary analysis for web.staging-b", "aaaaaaaaaa")
    only_event(puerta, "Advance web.staging-b canary weight 10", "aaaaaaaaaa")
    only_event(
        puerta, "Promotion completed! Scaling down web.staging-b", "aaaaaaaaaa", phase="Succeeded"
    )
    only_event(puerta, "New revision detected! Scaling up web.staging-b", "aaaaaaaaaa")
    for _ in range(2):  # Flagger says it again every interval
        only_event(
            puerta,
            "Halt advancement web.staging-b pre-rollout check smoke failed",
            "bbbbbbbbbb",
            kind="Warning",
        )
    until(lambda: settled(puerta))

    first, second = slack.messages("#deploys")
    assert first.text == (
        ":rocket: `staging-b/web` rollout #1 (from Flagger events) to *staging*: *succeeded*, "
        "phase Succeeded, weight 10%, rev `aaaaaaaaaa`"
    )
    assert [m.text for m in slack.thread("#deploys", first.ts)] == [
        ":information_source: New revision detected! Scaling up web.staging-b",
        ":information_source: Starting canary analysis for web.staging-b",
        ":information_source: Advance web.staging-b canary weight 10",
        ":information_source: Promotion completed! Scaling down web.staging-b",
        ":rocket: *succeeded*: rollout #1 (from Flagger events) promoted",
    ]
    assert second.text == (
        ":arrows_counterclockwise: `staging-b/web` rollout #2 (from Flagger events) to "
        "*staging*: *progressing*, phase Progressing, rev `bbbbbbbbbb`\n"
        "(repeated x2: Halt advancement web.staging-b pre-rollout check smoke failed)"
    )
    assert [m.text for m in slack.thread("#deploys", second.ts)] == [
        ":information_source: New revision detected! Scaling up web.staging-b",
        ":warning: Halt advancement web.staging-b pre-rollout check smoke failed",
    ]
    raw = [m.text for m in slack.messages("#deploys-raw")]
    # every notice, repeats included (in order within each revision, as within a rollout)
    assert len(raw) == 8
    assert (
        "`staging-b/web` rev `aaaaaaaaaa` :rocket: *succeeded*: rollout #1 (from Flagger "
        "events) promoted"
    ) in raw
    assert sum("Halt advancement" in line for line in raw) == 2
    episodes = sorted((d.payload["rollout_seq"], d.payload["episode"]) for d in hooks.deliveries)
    assert episodes == [(0, 1)] * 5 + [(0, 2)] * 3
    assert outbox(puerta, status="failed")["total"] == 0


def test_a_failed_event_only_revision_says_why_and_a_retried_event_opens_nothing(
    notifying: tuple[Puerta, FakeSlack, WebhookReceiver],
) -> None:
    """The episode ends with Flagger's last telling Warning; a retried "New revision
    detected!" joins its episode, and a late repeat of the end opens no new one."""
    puerta, slack, _ = notifying
    for _ in range(2):  # Flagger's webhook client retried after a timeout
        only_event(puerta, "New revision detected! Scaling up web.staging-b", "0000000000")
    only_event(
        puerta,
        "Rolling back web.staging-b failed checks threshold reached 2",
        "cccccccccc",
        kind="Warning",
    )
    for _ in range(2):  # the second one: a retry after the episode ended
        only_event(
            puerta, "Canary failed! Scaling down web.staging-b", "cccccccccc", kind="Warning"
        )
    until(lambda: settled(puerta))

    (parent,) = slack.messages("#deploys")
    assert parent.text.startswith(
        ":boom: `staging-b/web` rollout #1 (from Flagger events) to *staging*: *failed*"
    )
    replies = [m.text for m in slack.thread("#deploys", parent.ts)]
    assert replies == [
        ":information_source: New revision detected! Scaling up web.staging-b",
        ":warning: Rolling back web.staging-b failed checks threshold reached 2",
        ":warning: Canary failed! Scaling down web.staging-b",
        ":boom: *failed*: rollout #1 (from Flagger events) failed: Rolling back web.staging-b "
        "failed checks threshold reached 2",
    ]
    assert "(repeated x2: New revision detected!" not in parent.text  # folded, then news
    assert len(slack.messages("#deploys-raw")) == 6  # every event, and the failure


def test_a_canary_whose_first_rollout_opens_later_ends_its_episode(
    notifying: tuple[Puerta, FakeSlack, WebhookReceiver],
) -> None:
    """A canary gated only from pre-rollout: its first revision's first events come before
    any Puerta hook (an episode); once the rollout opens, the episode ends (superseded) and
    everything else goes to the rollout's thread, as for every gated canary."""
    puerta, slack, _ = notifying
    event(puerta, "New revision detected! Scaling up podinfo.staging")
    assert call(puerta, "pre-rollout").status_code == 200
    event(puerta, "Advance podinfo.staging canary weight 10")
    assert call(puerta, "post-rollout", phase="Succeeded").status_code == 200
    event(puerta, "Promotion completed! Scaling down podinfo.staging")  # after post-rollout
    until(lambda: settled(puerta))

    episode, rollout = slack.messages("#deploys")
    assert episode.text.startswith(
        ":fast_forward: `staging/podinfo` rollout #1 (from Flagger events) to *staging*: "
        "*superseded*"
    )
    assert [m.text for m in slack.thread("#deploys", episode.ts)] == [
        ":information_source: New revision detected! Scaling up podinfo.staging"
    ]
    assert rollout.text.startswith(
        ":rocket: `staging/podinfo` rollout #1 to *staging*: *succeeded*"
    )
    assert [m.text for m in slack.thread("#deploys", rollout.ts)] == [
        ":information_source: Advance podinfo.staging canary weight 10",
        ":rocket: *succeeded*: rollout #1 promoted",
        ":information_source: Promotion completed! Scaling down podinfo.staging",
    ]


# ---- pacing: one pace per channel for every replica ----------------------------------------

PACED = """
version: 1
notifications:
  slack: {{token: {{token_env: SLACK_TOKEN}}, base_url: "{slack}/api/", channel_interval: 1s}}
  routes:
    - raw_channel: "#deploys-raw"
environments:
  staging:
    match: [{{namespace: "staging*"}}]
"""


def replica(db: Database, clock: ManualClock, url: str, name: str) -> NotificationWorker:
    """One replica's notification worker, ticked by the test (no background loop)."""
    config = parse_policy(PACED.format(slack=url)).policy.notifications
    resolver = CommitResolver(
        db, clock, workloads=None, rules=None, commits=None, chat=None, people={}
    )
    sink = SlackSink(SLACK_TOKEN, base_url=f"{url}/api/", timeout=5)
    return NotificationWorker(
        db, clock, config, chat=sink, event_sinks={}, resolver=resolver, replica=name
    )


async def test_two_replicas_keep_one_pace_per_channel_and_honour_retry_after(
    database_url: str, slack: tuple[FakeSlack, str]
) -> None:
    """Replicas A and B on one database: a channel gets one message per channel_interval
    whichever replica sends it, and a 429's Retry-After holds the channel for both."""
    fake, url = slack
    clock = ManualClock(datetime(2026, 11, 26, 10, 0, tzinfo=UTC))
    start = clock.now().timestamp()
    fake.clock = lambda: clock.now().timestamp()
    fake.channel_rate_limit = 1  # Slack refuses a second post to a channel within a second
    db_a, db_b = Database(database_url), Database(database_url)
    await db_a.migrate()
    hooks = HookService(db_a, parse_policy(PACED.format(slack=url)), clock)
    for name, step in (("podinfo", 1), ("podinfo", 2), ("web", 1)):
        metadata = {"eventMessage": f"{name} step {step}", "eventType": "Normal"}
        payload = FlaggerPayload(name, "staging", "Progressing", "85d557f47b", metadata)
        await hooks.handle(HookType.EVENT, payload)
    a, b = replica(db_a, clock, url, "a"), replica(db_b, clock, url, "b")

    def posted() -> list[tuple[float, str]]:
        """(seconds after the start, what) of each message the channel shows."""
        channel = fake.channels["C0DEPLRAW"]
        return [
            (at - start, m.text.split(":information_source: ")[1].replace(" step", ""))
            for m, at in zip(fake.messages("#deploys-raw"), channel.posted_at, strict=True)
        ]

    try:
        assert await a.tick() == 1  # podinfo step 1; web step 1 waits for the channel
        assert await b.tick() == 0  # B sees the channel taken for 1s
        assert posted() == [(0.0, "podinfo 1")]

        clock.advance(timedelta(seconds=1))
        fake.rate_limit_next(retry_after=5)
        assert await b.tick() == 1  # podinfo step 2: 429, Retry-After 5
        assert await a.tick() == 0
        clock.advance(timedelta(seconds=4))
        assert await a.tick() == 0  # web step 1 is due, but the channel is held for all
        assert await b.tick() == 0
        assert posted() == [(0.0, "podinfo 1")]

        clock.advance(timedelta(seconds=1))
        assert await a.tick() == 1  # podinfo step 2, first in line
        assert await b.tick() == 0
        clock.advance(timedelta(seconds=1))
        assert await b.tick() == 1  # web step 1
        assert posted() == [(0.0, "podinfo 1"), (6.0, "podinfo 2"), (7.0, "web 1")]
        assert len(fake.requests_to("POST", "chat.postMessage")) == 4  # the 429 once
    finally:
        await db_a.dispose()
        await db_b.dispose()


# ---- admin actions in the thread, and the reason a rollback gives --------------------------


def test_override_and_rollback_are_in_the_thread_and_the_rollback_reason_ends_it(
    notifying: tuple[Puerta, FakeSlack, WebhookReceiver],
) -> None:
    """Break-glass and a rollback request, each with who and why; the failure then names
    the request's reason, not Flagger's "manual webhook invoked"."""
    puerta, slack, _ = notifying
    assert call(puerta, "confirm-rollout").status_code == 200
    override = puerta.api(
        "POST",
        "/canaries/staging/podinfo/override",
        token=ADMIN,
        json={"reason": "hotfix for incident 7"},
    )
    assert override.status_code == 200, override.text
    assert call(puerta, "pre-rollout").status_code == 200
    rollback = puerta.api(
        "POST",
        "/canaries/staging/podinfo/rollback",
        token=APPROVER,
        json={"reason": "error rate up"},
    )
    assert rollback.status_code == 200, rollback.text
    assert call(puerta, "rollback").status_code == 200  # roll back now
    event(puerta, "Rolling back podinfo.staging manual webhook invoked", "Warning")
    assert call(puerta, "post-rollout", phase="Failed").status_code == 200
    until(lambda: settled(puerta))

    (parent,) = slack.messages("#deploys")
    assert parent.text.startswith(":boom: `staging/podinfo` rollout #1 to *staging*: *failed*")
    assert [m.text for m in slack.thread("#deploys", parent.ts)] == [
        ":arrow_forward: *released*: rollout #1 starts: no confirm-rollout gates in staging",
        ":rotating_light: *override* by admin: override for rollout #1: windows, freezes and "
        "the release train no longer hold it (manual approvals and halts still do) (reason: "
        "hotfix for incident 7)",
        ":rewind: *rollback-requested* by approver: rollback requested for rollout #1: the "
        "rollback hook answers 200 on Flagger's next check (reason: error rate up)",
        ":warning: Rolling back podinfo.staging manual webhook invoked",
        ":boom: *failed*: rollout #1 failed: rollback requested by approver: error rate up",
    ]


# ---- routes: each canary to the channel its first matching route names ---------------------

TEAMS_PATH = "/webhookb2/tenant/IncomingWebhook/secret-4e1a/owner"
ROUTED = """
version: 1
auth:
  tokens:
    - {{name: viewer, role: viewer, token_env: PUERTA_VIEWER_TOKEN}}
notifications:
  slack: {{token: {{token_env: SLACK_TOKEN}}, base_url: "{slack}/api/", channel_interval: 0s}}
  routes:
    - match: {{namespace: "team-a*"}}
      channel: "#team-a"
    - match: {{environment: production}}
      channel: "#deploys-prod"
      teams: {{token_env: TEAMS_URL}}
    - match: {{environment: "*"}}
      channel: "#deploys"
environments:
  staging:
    match: [{{namespace: "staging*"}}]
  production:
    match: [{{namespace: "prod*"}}, {{namespace: "team-a-prod"}}]
"""


@pytest.fixture
def routed(
    database_url: str, slack: tuple[FakeSlack, str], clock: ManualClock
) -> Iterator[tuple[Puerta, FakeSlack, WebhookReceiver]]:
    fake, slack_url = slack
    fake.add_channel("team-a", id="C0TEAMA")
    fake.add_channel("deploys-prod", id="C0PROD")
    teams = WebhookReceiver()
    teams.answer_always(200, "1")  # what an Office 365 connector answers
    with serve_in_thread(teams.app) as teams_url:
        puerta = Puerta(database_url, ROUTED.format(slack=slack_url), clock)
        puerta.environ.update({"SLACK_TOKEN": SLACK_TOKEN, "TEAMS_URL": teams_url + TEAMS_PATH})
        puerta.start()
        try:
            yield puerta, fake, teams
        finally:
            puerta.stop()


def rollout_of(puerta: Puerta, namespace: str, name: str, *events: str) -> None:
    """confirm-rollout, then Flagger events, for one canary."""
    base = {"namespace": namespace, "name": name, "checksum": "85d557f47b"}
    confirm = flagger_payload("confirm-rollout", **base, phase="Initialized", metadata={})
    assert puerta.http.post("/hooks/confirm-rollout", json=confirm).status_code == 200
    for message in events:
        body = flagger_payload("event", **base, phase="Progressing")
        body["metadata"] = {"eventMessage": message, "eventType": "Normal", "timestamp": "1"}
        assert puerta.http.post("/hooks/event", json=body).status_code == 200


def test_routes_send_each_canary_to_its_own_channel_and_teams_gets_cards(
    routed: tuple[Puerta, FakeSlack, WebhookReceiver],
) -> None:
    """By namespace first (team A's production canary), then by environment; Teams gets one
    card per notice of its route, an identical repeat folded."""
    puerta, slack, teams = routed
    rollout_of(puerta, "staging", "podinfo", "Advance podinfo.staging canary weight 10")
    rollout_of(
        puerta,
        "prod",
        "podinfo",
        "Advance podinfo.prod canary weight 10",
        "Advance podinfo.prod canary weight 10",  # folded: the same again
        "Advance podinfo.prod canary weight 20",
    )
    rollout_of(puerta, "team-a-prod", "web", "Advance web.team-a-prod canary weight 10")
    until(lambda: settled(puerta))

    def canaries(channel: str) -> list[str]:
        """The canary each parent message of the channel is about."""
        return [m.text.split("`")[1] for m in slack.messages(channel)]

    assert canaries("#deploys") == ["staging/podinfo"]
    assert canaries("#deploys-prod") == ["prod/podinfo"]
    assert canaries("#team-a") == ["team-a-prod/web"]
    (prod,) = slack.messages("#deploys-prod")
    assert "to *production*" in prod.text
    assert len(slack.thread("#deploys-prod", prod.ts)) == 3  # released, weight 10, weight 20

    cards = [d.payload["attachments"][0]["content"]["body"] for d in teams.deliveries]
    assert [body[0]["text"] for body in cards] == [
        ":arrow_forward: *released*: rollout #1 starts: no confirm-rollout gates in production",
        ":information_source: Advance podinfo.prod canary weight 10",
        ":information_source: Advance podinfo.prod canary weight 20",
    ]
    facts = {f["title"]: f["value"] for f in cards[0][1]["facts"]}
    assert (facts["namespace"], facts["name"], facts["environment"]) == (
        "prod",
        "podinfo",
        "production",
    )
    assert all(d.path == TEAMS_PATH for d in teams.deliveries)
    assert outbox(puerta, status="failed")["total"] == 0
