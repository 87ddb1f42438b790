"""Notification sinks against fakes over real HTTP: Slack (through slack_sdk), Microsoft Teams
and the signed JSON webhook. Each test is one behaviour a worker relies on: what gets stored
where, and how every failure is classified (retry, wait, or give up)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from fakes.server import serve_in_thread
from fakes.slack import FakeSlack
from fakes.webhook_receiver import WebhookReceiver
from puerta.external import PermanentError, RateLimited, TransientError
from puerta.notify.base import ChatSink, EventSink, Message
from puerta.notify.slack import MAX_TEXT, TRUNCATION_MARK, SlackRefused, SlackSink, truncate_text
from puerta.notify.webhooks import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    JsonWebhookSink,
    TeamsSink,
    json_body,
    sign,
    teams_card,
    verify,
)

SECRET = "whsec-4f1c9a"
TEAMS_PATH = "/webhookb2/tenant-9c1e/IncomingWebhook/secret-7d2b5e/owner"
BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "*podinfo* promoted"}}]


class CurrentApp:
    """One server per module (starting uvicorn per test is slow); each test plugs in its fake."""

    app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, CurrentApp]]:
    current = CurrentApp()
    with serve_in_thread(current, lifespan="off") as url:
        yield url, current


@pytest.fixture
def slack(server: tuple[str, CurrentApp]) -> FakeSlack:
    fake = FakeSlack()
    fake.add_channel("#deploys", id="C01")
    fake.add_channel("#secret-ops", id="C02", join=False)
    fake.add_channel("old-deploys", id="C03", archived=True)
    fake.add_user("Ada@Example.com", "U0ADA")
    fake.add_user("gone@example.com", "U0GONE", deleted=True)
    server[1].app = fake.app
    return fake


@pytest.fixture
def slack_url(server: tuple[str, CurrentApp]) -> str:
    return f"{server[0]}/api/"


@pytest.fixture
def sink(slack: FakeSlack, slack_url: str) -> SlackSink:
    return SlackSink(slack.token, base_url=slack_url, timeout=5)


@pytest.fixture
def receiver(server: tuple[str, CurrentApp]) -> WebhookReceiver:
    fake = WebhookReceiver(secret=SECRET)
    server[1].app = fake.app
    return fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


@pytest.fixture
def teams(http: httpx.AsyncClient, server: tuple[str, CurrentApp]) -> TeamsSink:
    return TeamsSink(http, server[0] + TEAMS_PATH)


@pytest.fixture
def webhook(http: httpx.AsyncClient, server: tuple[str, CurrentApp]) -> JsonWebhookSink:
    return JsonWebhookSink(http, server[0] + "/hooks/puerta", SECRET)


def test_sinks_satisfy_the_protocols(
    sink: SlackSink, teams: TeamsSink, webhook: JsonWebhookSink
) -> None:
    """The classes are what the worker is typed against (checked by mypy on this file too)."""
    chat: ChatSink = sink
    events: list[EventSink] = [teams, webhook]
    assert chat is sink
    assert len(events) == 2


# -- Slack: what gets posted where ---------------------------------------------------------
async def test_post_by_channel_name_stores_the_message_and_returns_its_ts(
    sink: SlackSink, slack: FakeSlack
) -> None:
    """A parent message: text, blocks, no link previews; the ts identifies it."""
    ts = await sink.post("#deploys", Message("podinfo promoted", blocks=BLOCKS))

    [stored] = slack.messages("C01")
    assert stored.ts == ts
    assert (stored.text, stored.blocks) == ("podinfo promoted", BLOCKS)
    assert stored.params["unfurl_links"] is False
    assert stored.thread_ts is None


async def test_channel_name_without_hash_and_id_both_work(
    sink: SlackSink, slack: FakeSlack
) -> None:
    await sink.post("deploys", Message("one"))
    await sink.post("C01", Message("two"))

    assert [m.text for m in slack.messages("#deploys")] == ["one", "two"]


async def test_ts_values_are_unique_and_increasing(sink: SlackSink) -> None:
    first = await sink.post("#deploys", Message("a"))
    second = await sink.post("#deploys", Message("b"))

    assert first != second
    assert float(first) < float(second)
    assert len(first.split(".")[1]) == 6


async def test_reply_goes_into_the_parent_thread(sink: SlackSink, slack: FakeSlack) -> None:
    """Verbose events are replies: the channel shows only the parent."""
    parent = await sink.post("#deploys", Message("rollout podinfo"))
    reply = await sink.post("#deploys", Message("canary weight 10%"), thread=parent)

    assert [m.ts for m in slack.messages("#deploys")] == [parent]
    [stored] = slack.thread("#deploys", parent)
    assert (stored.ts, stored.text, stored.thread_ts) == (reply, "canary weight 10%", parent)


async def test_reply_to_an_unknown_thread_is_accepted_but_shown_nowhere(
    sink: SlackSink, slack: FakeSlack
) -> None:
    """Slack's own behaviour (no error): the fake keeps such replies aside for tests."""
    await sink.post("#deploys", Message("lost"), thread="1600000000.000100")

    assert slack.messages("#deploys") == []
    assert [m.text for m in slack.orphans("#deploys")] == ["lost"]


async def test_update_after_posting_by_name_edits_in_place(
    sink: SlackSink, slack: FakeSlack
) -> None:
    """chat.update takes only ids; the sink uses the id Slack returned for "#deploys"."""
    ts = await sink.post("#deploys", Message("started", blocks=BLOCKS))

    await sink.update("#deploys", ts, Message("promoted"))

    [stored] = slack.messages("C01")
    assert (stored.ts, stored.text, stored.edits) == (ts, "promoted", 1)
    assert stored.blocks is None  # old blocks removed, not left showing the old state
    assert sink.channel_id("#deploys") == "C01"


async def test_update_by_name_without_a_known_id_is_refused_like_slack(
    slack: FakeSlack, slack_url: str
) -> None:
    """A fresh sink (e.g. after a restart) has not learnt the id: Slack says
    channel_not_found for a name; callers should keep ids for messages they update."""
    ts = slack.add_foreign_message("#deploys", "x", user=slack.bot_user)
    fresh = SlackSink(slack.token, base_url=slack_url, timeout=5)

    with pytest.raises(SlackRefused) as refused:
        await fresh.update("#deploys", ts, Message("y"))
    assert refused.value.code == "channel_not_found"

    await fresh.update("C01", ts, Message("y"))
    assert slack.messages("C01")[0].text == "y"


@pytest.mark.parametrize(
    ("ts", "author", "code"),
    [("1500000000.000100", None, "message_not_found"), (None, "UHUMAN01", "cant_update_message")],
)
async def test_update_errors_are_permanent(
    sink: SlackSink, slack: FakeSlack, ts: str | None, author: str | None, code: str
) -> None:
    target = ts or slack.add_foreign_message("C01", "by a person", user=author or "U1")

    with pytest.raises(SlackRefused) as refused:
        await sink.update("C01", target, Message("edit"))
    assert (refused.value.code, refused.value.method) == (code, "chat.update")
    assert str(refused.value) == f"slack chat.update: {code}"


async def test_open_dm_returns_one_d_channel_per_user(sink: SlackSink, slack: FakeSlack) -> None:
    first = await sink.open_dm("U0ADA")
    again = await sink.open_dm("U0ADA")
    await sink.post(first, Message("your commit is live"))

    assert first == again
    assert first.startswith("D")
    assert [m.text for m in slack.dms("U0ADA")] == ["your commit is live"]


@pytest.mark.parametrize(
    ("user", "code"), [("U0NOBODY", "user_not_found"), ("U0GONE", "user_disabled")]
)
async def test_open_dm_with_unknown_or_disabled_user_is_permanent(
    sink: SlackSink, user: str, code: str
) -> None:
    with pytest.raises(SlackRefused) as refused:
        await sink.open_dm(user)
    assert (refused.value.code, refused.value.method) == (code, "conversations.open")


async def test_lookup_user_by_email(sink: SlackSink) -> None:
    """Found case-insensitively; an author outside the workspace is None, not an error."""
    assert await sink.lookup_user("ada@example.com") == "U0ADA"
    assert await sink.lookup_user("stranger@example.com") is None


# -- Slack: how failures are classified ----------------------------------------------------
@pytest.mark.parametrize(
    ("channel", "code"),
    [("#nowhere", "channel_not_found"), ("#secret-ops", "not_in_channel"), ("C03", "is_archived")],
)
async def test_channel_problems_are_permanent_and_name_the_code(
    sink: SlackSink, channel: str, code: str
) -> None:
    with pytest.raises(PermanentError) as refused:
        await sink.post(channel, Message("x"))
    assert isinstance(refused.value, SlackRefused)
    assert refused.value.code == code
    assert str(refused.value) == f"slack chat.postMessage: {code}"


async def test_wrong_token_is_permanent_and_never_shown(slack: FakeSlack, slack_url: str) -> None:
    token = "xoxb-wrong-5e6f7a"
    wrong = SlackSink(token, base_url=slack_url, timeout=5)

    with pytest.raises(SlackRefused) as refused:
        await wrong.post("#deploys", Message("x"))
    assert refused.value.code == "invalid_auth"
    assert token not in str(refused.value)
    assert token not in repr(wrong)
    assert slack.received[-1].headers["authorization"] == f"Bearer {token}"


def test_an_empty_token_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="empty"):
        SlackSink("  ")


async def test_http_429_is_rate_limited_with_retry_after_and_not_retried_by_slack_sdk(
    sink: SlackSink, slack: FakeSlack
) -> None:
    slack.rate_limit_next(retry_after=7)

    with pytest.raises(RateLimited) as limited:
        await sink.post("#deploys", Message("x"))
    assert (limited.value.retry_after, limited.value.status) == (7.0, 429)
    assert len(slack.requests_to("POST", "chat.postMessage")) == 1
    assert slack.messages("#deploys") == []


@pytest.mark.parametrize("code", ["ratelimited", "rate_limited"])
async def test_rate_limit_error_codes_are_rate_limited(
    sink: SlackSink, slack: FakeSlack, code: str
) -> None:
    """Slack says ``ratelimited`` today; its 2020 description says ``rate_limited``."""
    slack.error_next(code)

    with pytest.raises(RateLimited) as limited:
        await sink.post("#deploys", Message("x"))
    assert limited.value.retry_after is None


@pytest.mark.parametrize("code", ["fatal_error", "internal_error", "service_unavailable"])
async def test_slack_side_error_codes_are_transient(
    sink: SlackSink, slack: FakeSlack, code: str
) -> None:
    slack.error_next(code, method="users.lookupByEmail")

    with pytest.raises(TransientError) as failed:
        await sink.lookup_user("ada@example.com")
    assert not isinstance(failed.value, RateLimited)
    assert code in str(failed.value)


@pytest.mark.parametrize("code", ["missing_scope", "token_revoked", "edit_window_closed"])
async def test_other_error_codes_are_permanent(
    sink: SlackSink, slack: FakeSlack, code: str
) -> None:
    slack.error_next(code)

    with pytest.raises(SlackRefused) as refused:
        await sink.open_dm("U0ADA")
    assert refused.value.code == code


async def test_http_503_is_transient_and_not_retried(sink: SlackSink, slack: FakeSlack) -> None:
    slack.fail_next(status=503)

    with pytest.raises(TransientError) as failed:
        await sink.post("#deploys", Message("x"))
    assert failed.value.status == 503
    assert len(slack.requests_to("POST", "chat.postMessage")) == 1


async def test_timeout_is_transient(slack: FakeSlack, slack_url: str) -> None:
    slack.fail_next(status=200, delay=1.0)
    impatient = SlackSink(slack.token, base_url=slack_url, timeout=0.1)

    with pytest.raises(TransientError, match=r"no answer within 0\.1s"):
        await impatient.post("#deploys", Message("x"))


async def test_connection_refused_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    unreachable = SlackSink("xoxb-1", base_url=f"http://127.0.0.1:{port}/api/", timeout=2)

    with pytest.raises(TransientError):
        await unreachable.lookup_user("ada@example.com")


@pytest.mark.parametrize(
    ("status", "body", "error", "code"),
    [
        (200, "ok", SlackRefused, "invalid_answer"),
        (404, "Not Found", SlackRefused, "http_404"),
        (502, "<html>Bad Gateway</html>", TransientError, None),
    ],
)
async def test_answers_without_an_envelope_are_classified_by_status(
    server: tuple[str, CurrentApp],
    receiver: WebhookReceiver,
    status: int,
    body: str,
    error: type[Exception],
    code: str | None,
) -> None:
    """Not Slack answering (a wrong base URL, a proxy's page) is no crash: a 5xx may pass,
    a 200 or 4xx without ``{"ok": ...}`` will not."""
    receiver.answer_next(status, body)
    elsewhere = SlackSink("xoxb-1", base_url=f"{server[0]}/api/", timeout=5)

    with pytest.raises(error) as failed:
        await elsewhere.post("#deploys", Message("x"))
    assert getattr(failed.value, "code", None) == code
    assert getattr(failed.value, "status", None) == status


async def test_per_channel_rate_limit_follows_the_clock(sink: SlackSink, slack: FakeSlack) -> None:
    """One message per second per channel: the second within the second waits."""
    now = [1000.0]
    slack.channel_rate_limit = 1
    slack.clock = lambda: now[0]

    await sink.post("#deploys", Message("first"))
    now[0] += 0.4
    with pytest.raises(RateLimited) as limited:
        await sink.post("#deploys", Message("second"))
    assert limited.value.retry_after == 1.0
    now[0] += 0.6
    await sink.post("#deploys", Message("second"))

    assert [m.text for m in slack.messages("#deploys")] == ["first", "second"]


# -- Slack: limits -------------------------------------------------------------------------
def test_truncate_text_keeps_short_text_and_marks_cut_text() -> None:
    exact = "x" * MAX_TEXT
    assert truncate_text(exact) is exact
    cut = truncate_text("y" * (MAX_TEXT + 1))
    assert len(cut) == MAX_TEXT
    assert cut.endswith(TRUNCATION_MARK)


async def test_long_text_is_truncated_to_slacks_limit(sink: SlackSink, slack: FakeSlack) -> None:
    """The fake refuses more than 40,000 characters (msg_too_long); the sink never sends it."""
    ts = await sink.post("#deploys", Message("z" * 50_000))
    await sink.update("#deploys", ts, Message("w" * 45_000))

    [stored] = slack.messages("#deploys")
    assert len(stored.text) == MAX_TEXT
    assert stored.text == "w" * (MAX_TEXT - len(TRUNCATION_MARK)) + "… (truncated)"


# -- the fake's wire formats, as slack_sdk uses them ---------------------------------------
async def test_slack_sdk_sends_json_for_chat_and_query_strings_for_the_rest(
    sink: SlackSink, slack: FakeSlack
) -> None:
    await sink.post("#deploys", Message("x"))
    await sink.open_dm("U0ADA")
    await sink.lookup_user("ada@example.com")

    [post] = slack.requests_to("POST", "chat.postMessage")
    [open_dm] = slack.requests_to("POST", "conversations.open")
    [lookup] = slack.requests_to("GET", "users.lookupByEmail")
    assert post.headers["content-type"].startswith("application/json")
    assert post.json()["channel"] == "#deploys"
    assert (open_dm.query, open_dm.body) == ({"users": "U0ADA"}, b"")
    assert lookup.query == {"email": "ada@example.com"}
    assert post.headers["user-agent"].startswith("Puerta ")


async def test_fake_accepts_form_bodies_and_token_arguments(
    http: httpx.AsyncClient, slack: FakeSlack, slack_url: str
) -> None:
    """Other clients (curl, Flagger-style tools) post forms with a token argument."""
    form = {"token": slack.token, "channel": "#deploys", "text": "hi", "blocks": json.dumps(BLOCKS)}
    answer = (await http.post(slack_url + "chat.postMessage", data=form)).json()
    anonymous = (await http.post(slack_url + "chat.postMessage", data={"channel": "C01"})).json()

    assert (answer["ok"], answer["channel"]) == (True, "C01")
    assert slack.messages("C01")[0].blocks == BLOCKS
    assert anonymous == {"ok": False, "error": "not_authed"}


# -- Microsoft Teams -----------------------------------------------------------------------
def test_teams_card_has_the_text_and_the_fields_as_facts() -> None:
    message = Message("podinfo promoted", fields={"canary": "podinfo", "delivery_id": "d1"})

    card = teams_card(message)

    [attachment] = card["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    text, facts = attachment["content"]["body"]
    assert (text["type"], text["text"]) == ("TextBlock", "podinfo promoted")
    assert facts["facts"] == [{"title": "canary", "value": "podinfo"}]


@pytest.mark.parametrize(("status", "body"), [(200, "1"), (202, "")])
async def test_teams_success_answers(
    teams: TeamsSink, receiver: WebhookReceiver, status: int, body: str
) -> None:
    """Old connectors answer 200 "1", Workflows webhooks 202 with no body."""
    receiver.answer_always(status, body)

    await teams.send(Message("podinfo promoted", fields={"phase": "Succeeded"}))

    [delivery] = receiver.deliveries
    assert delivery.path == TEAMS_PATH
    assert delivery.payload == teams_card(
        Message("podinfo promoted", fields={"phase": "Succeeded"})
    )


@pytest.mark.parametrize(
    ("wrapped", "error"),
    [(429, RateLimited), (413, PermanentError), (400, PermanentError), (502, TransientError)],
)
async def test_teams_failures_hidden_in_a_200_are_classified(
    teams: TeamsSink, receiver: WebhookReceiver, wrapped: int, error: type[Exception]
) -> None:
    """Old connectors answer 200 with the real status in the text."""
    receiver.answer_next(
        200,
        "Webhook message delivery failed with error: Microsoft Teams endpoint returned "
        f"HTTP error {wrapped} with ContextId tcid=0,server=msgapi-production,cv=abc..",
    )

    with pytest.raises(error) as failed:
        await teams.send(Message("x"))
    assert getattr(failed.value, "status", None) == wrapped


async def test_teams_delivery_failure_without_a_status_is_transient(
    teams: TeamsSink, receiver: WebhookReceiver
) -> None:
    receiver.answer_next(
        200, "Webhook message delivery failed with error: Error contacting Microsoft Teams endpoint"
    )

    with pytest.raises(TransientError):
        await teams.send(Message("x"))


@pytest.mark.parametrize(
    ("status", "headers", "error"),
    [
        (400, {}, PermanentError),
        (404, {}, PermanentError),
        (429, {"Retry-After": "7"}, RateLimited),
        (503, {}, TransientError),
    ],
)
async def test_teams_http_errors(
    teams: TeamsSink,
    receiver: WebhookReceiver,
    status: int,
    headers: dict[str, str],
    error: type[Exception],
) -> None:
    """Plain-text error bodies are kept; the URL (the credential) never appears."""
    receiver.answer_next(status, "Invalid webhook URL or payload", headers=headers)

    with pytest.raises(error) as failed:
        await teams.send(Message("x"))
    assert str(failed.value) == f"teams: HTTP {status}: Invalid webhook URL or payload"
    if isinstance(failed.value, RateLimited):
        assert failed.value.retry_after == 7.0


async def test_teams_timeout_is_transient_and_keeps_the_url_secret(
    http: httpx.AsyncClient, server: tuple[str, CurrentApp], receiver: WebhookReceiver
) -> None:
    receiver.fail_next(status=200, delay=1.0)
    async with httpx.AsyncClient(timeout=0.1) as impatient:
        sink = TeamsSink(impatient, server[0] + TEAMS_PATH)
        with pytest.raises(TransientError) as failed:
            await sink.send(Message("x"))

    assert str(failed.value) == "teams: timed out"
    assert failed.value.__cause__ is None
    assert "secret-7d2b5e" not in repr(sink)


# -- signed JSON webhook -------------------------------------------------------------------
def test_sign_matches_a_published_hmac_sha256_vector() -> None:
    """GitHub's documented X-Hub-Signature-256 vector: the same construction."""
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert sign("It's a Secret to Everybody", b"Hello, World!") == expected


def test_body_is_sorted_compact_utf8_json_and_its_signature_is_plain_hmac() -> None:
    message = Message(
        "déployé ✓",
        fields={"namespace": "test", "canary": "podinfo", "at": datetime(2025, 1, 6, tzinfo=UTC)},
    )

    body = json_body(message)

    expected = (
        '{"at":"2025-01-06T00:00:00+00:00","canary":"podinfo",'
        '"namespace":"test","text":"déployé ✓"}'
    ).encode()
    assert body == expected
    by_hand = hmac.new(SECRET.encode(), expected, hashlib.sha256).hexdigest()
    assert sign(SECRET, body) == f"sha256={by_hand}"


def test_verify_accepts_the_signature_and_rejects_tampering() -> None:
    body = b'{"text":"promoted"}'
    header = sign(SECRET, body)

    assert verify(SECRET, body, header)
    assert verify(SECRET, body, header.upper())
    assert not verify(SECRET, b'{"text":"rolled back"}', header)
    assert not verify("other-secret", body, header)
    assert not verify(SECRET, body, None)
    assert not verify(SECRET, body, "sha1=" + header.partition("=")[2])
    assert not verify(SECRET, body, "sha256=é")


async def test_webhook_delivery_is_signed_and_identified(
    webhook: JsonWebhookSink, receiver: WebhookReceiver
) -> None:
    message = Message("promoted", fields={"canary": "podinfo", "delivery_id": "evt-42"})

    await webhook.send(message)

    [delivery] = receiver.deliveries
    assert delivery.signature_valid is True
    assert delivery.body == b'{"canary":"podinfo","delivery_id":"evt-42","text":"promoted"}'
    assert delivery.headers[SIGNATURE_HEADER.lower()] == receiver.expected_signature(delivery.body)
    assert delivery.delivery_id == "evt-42"
    assert delivery.headers["user-agent"] == "Puerta"
    assert delivery.headers["content-type"] == "application/json"


async def test_delivery_id_keyword_wins_and_the_fallback_is_stable(
    webhook: JsonWebhookSink, receiver: WebhookReceiver
) -> None:
    """A retry of the same event must carry the same id, so receivers can drop repeats."""
    await webhook.send(Message("a", fields={"delivery_id": "evt-1"}), delivery_id="outbox-7")
    await webhook.send(Message("b"))
    await webhook.send(Message("b"))
    await webhook.send(Message("c"))

    ids = [d.headers[DELIVERY_HEADER.lower()] for d in receiver.deliveries]
    assert ids[0] == "outbox-7"
    assert ids[1] == ids[2] != ids[3]
    assert receiver.valid() == [True, True, True, True]


async def test_receiver_with_another_secret_sees_an_invalid_signature(
    webhook: JsonWebhookSink, receiver: WebhookReceiver
) -> None:
    receiver.secret = "not-the-shared-secret"

    await webhook.send(Message("x"))

    assert receiver.valid() == [False]


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (200, None),
        (204, None),
        (301, PermanentError),
        (400, PermanentError),
        (410, PermanentError),
        (408, TransientError),
        (429, RateLimited),
        (500, TransientError),
        (503, TransientError),
    ],
)
async def test_webhook_statuses(
    webhook: JsonWebhookSink,
    receiver: WebhookReceiver,
    status: int,
    error: type[Exception] | None,
) -> None:
    receiver.answer_next(status, "nope" if status >= 300 else "", headers={"Retry-After": "3"})

    if error is None:
        await webhook.send(Message("x"))
        return
    with pytest.raises(error) as failed:
        await webhook.send(Message("x"))
    assert getattr(failed.value, "status", None) == status
    if error is PermanentError:
        assert not isinstance(failed.value, TransientError)
        assert "nope" in str(failed.value)
    if error is RateLimited:
        assert getattr(failed.value, "retry_after", None) == 3.0


async def test_webhook_timeout_is_transient(
    server: tuple[str, CurrentApp], receiver: WebhookReceiver
) -> None:
    receiver.fail_next(status=200, delay=1.0)
    async with httpx.AsyncClient(timeout=0.1) as impatient:
        sink = JsonWebhookSink(impatient, server[0] + "/hooks/puerta?token=t0k", SECRET)
        with pytest.raises(TransientError) as failed:
            await sink.send(Message("x"))

    assert str(failed.value) == "webhook 127.0.0.1: timed out"
