"""Event sinks over plain HTTP: a Microsoft Teams incoming webhook and a generic JSON webhook
signed with HMAC-SHA256. One POST per :meth:`send`; failures are classified with
``puerta.external`` errors so the notification worker retries only what may succeed later.

Generic webhook (:class:`JsonWebhookSink`), for receivers to implement:

* body: ``{"text": ..., **fields}`` as compact JSON, keys sorted at every level (the same event
  always gives the same bytes), UTF-8; ``text`` wins over a field of the same name;
* ``X-Puerta-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>``: check it with
  :func:`verify` (constant time) over the raw bytes, before parsing;
* ``X-Puerta-Delivery``: the same for every retry of one event, so receivers can drop repeats.
  It is the ``delivery_id`` keyword of :meth:`JsonWebhookSink.send` if given, else
  ``Message.fields["delivery_id"]`` (the outbox's id for the event), else a digest of the body;
* ``User-Agent: Puerta``; answers: 2xx delivered, 408/429/5xx and timeouts retried, other
  statuses (including redirects, which are not followed) refused for good.

Teams (:class:`TeamsSink`): the URL carries the credential, so it appears in no message, log
line or chained exception. Old Office 365 connectors answer ``200`` with body ``1``; Workflows
(Power Automate) webhooks answer ``202``. Old connectors also answer ``200`` when delivery
failed, with a plain-text body such as ``Webhook message delivery failed with error: Microsoft
Teams endpoint returned HTTP error 429 with ContextId ...`` (MicrosoftDocs/msteams-docs#1810,
#7425): that embedded status is classified as if it had been the HTTP status.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import date, datetime, time
from enum import Enum
from typing import Any, Final

import httpx

from puerta.ci.http import retry_after
from puerta.external import PermanentError, RateLimited, TransientError
from puerta.notify.base import Message

USER_AGENT: Final = "Puerta"
SIGNATURE_HEADER: Final = "X-Puerta-Signature-256"
DELIVERY_HEADER: Final = "X-Puerta-Delivery"
DELIVERY_FIELD: Final = "delivery_id"

#: Teams refuses cards over about 28 KB; keep the text well below that.
TEAMS_MAX_TEXT_BYTES: Final = 20_000
TEAMS_MAX_FACT_CHARS: Final = 1_000
_TEAMS_WRAPPED_STATUS: Final = re.compile(r"returned HTTP error (\d{3})")
_TEAMS_FAILURE_PREFIX: Final = "webhook message delivery failed"


# -- signatures ----------------------------------------------------------------------------
def sign(secret: str, body: bytes) -> str:
    """The ``X-Puerta-Signature-256`` value for ``body``: ``sha256=<lowercase hex>``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``body`` (constant-time; a missing, malformed or
    non-ASCII header is simply not valid)."""
    if not header:
        return False
    scheme, _, value = header.strip().partition("=")
    given = f"{scheme.lower()}={value.lower()}".encode("utf-8", "replace")
    return hmac.compare_digest(given, sign(secret, body).encode())


def json_body(message: Message) -> bytes:
    """The generic webhook's body: ``{"text": ..., **fields}``, sorted keys, compact, UTF-8."""
    payload = {**message.fields, "text": message.text}
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable
    ).encode()


def _jsonable(value: object) -> object:
    """JSON for field values json does not know: times as ISO 8601, enums by value."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return str(value)


# -- classification shared by both sinks ---------------------------------------------------
def _short(text: str) -> str:
    """A response body as one short line, for an error message people read."""
    return " ".join(text.split())[:300]


def _check_response(sink: str, response: httpx.Response) -> None:
    """Nothing for 2xx; else the error for the status (see :func:`_check_status`)."""
    _check_status(sink, response.status_code, response.text, retry_after(response))


def _check_status(sink: str, status: int, body: str, wait: float | None) -> None:
    """Nothing for 2xx; else RateLimited (429, waiting ``wait``), TransientError (408, 5xx)
    or PermanentError (other 4xx, and 1xx/3xx: redirects are not followed)."""
    if 200 <= status < 300:
        return
    detail = f"{sink}: HTTP {status}" + (f": {_short(body)}" if body.strip() else "")
    if status == 429:
        raise RateLimited(detail, retry_after=wait, status=status)
    if status == 408 or status >= 500:
        raise TransientError(detail, status=status)
    raise PermanentError(detail, status=status)


# -- Microsoft Teams -----------------------------------------------------------------------
def teams_card(message: Message) -> dict[str, Any]:
    """A message with one Adaptive Card (accepted by Workflows webhooks and by the older
    connectors): the text, then the fields as facts (``delivery_id`` is plumbing, left out)."""
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": _cut_bytes(message.text), "wrap": True}
    ]
    facts = [
        {"title": str(name), "value": _fact_value(value)}
        for name, value in message.fields.items()
        if name != DELIVERY_FIELD and value is not None
    ]
    if facts:
        body.append({"type": "FactSet", "facts": facts})
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "msteams": {"width": "Full"},
    }
    attachment = {
        "contentType": "application/vnd.microsoft.card.adaptive",
        "contentUrl": None,
        "content": card,
    }
    return {"type": "message", "attachments": [attachment]}


def _fact_value(value: object) -> str:
    if isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False, default=_jsonable)
    else:
        text = str(_jsonable(value)) if not isinstance(value, str) else value
    return text if len(text) <= TEAMS_MAX_FACT_CHARS else text[: TEAMS_MAX_FACT_CHARS - 1] + "…"


def _cut_bytes(text: str, limit: int = TEAMS_MAX_TEXT_BYTES) -> str:
    """``text`` within ``limit`` UTF-8 bytes (Teams counts bytes), marked when cut."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    mark = "… (truncated)"
    kept = encoded[: limit - len(mark.encode())].decode("utf-8", "ignore")
    return kept + mark


def _teams_wrapped_failure(body: str) -> None:
    """Raise for a 2xx whose body reports a failed delivery (old connectors do that)."""
    text = body.strip()
    if text in ("", "1") or not text.lower().startswith(_TEAMS_FAILURE_PREFIX):
        return
    match = _TEAMS_WRAPPED_STATUS.search(text)
    if match is None:  # e.g. "Error contacting Microsoft Teams endpoint": Teams' side
        raise TransientError(f"teams: {_short(text)}")
    _check_status("teams", int(match.group(1)), text, None)


class TeamsSink:
    """Posts one Adaptive Card per message to a Teams incoming webhook."""

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self._client = client
        self._url = url

    def __repr__(self) -> str:
        return "TeamsSink(url=<secret>)"

    async def send(self, message: Message) -> None:
        try:
            response = await self._client.post(
                self._url, json=teams_card(message), headers={"User-Agent": USER_AGENT}
            )
        except httpx.TimeoutException:
            raise TransientError("teams: timed out") from None  # no chaining: URL is secret
        except httpx.HTTPError as error:
            raise TransientError(f"teams: {type(error).__name__}") from None
        _check_response("teams", response)
        _teams_wrapped_failure(response.text)


# -- generic signed JSON webhook -----------------------------------------------------------
class JsonWebhookSink:
    """POSTs ``{"text": ..., **fields}`` signed with the shared secret."""

    def __init__(self, client: httpx.AsyncClient, url: str, secret: str) -> None:
        if not secret:
            raise ValueError("the webhook's signing secret is empty")
        self._client = client
        self._url = url
        self._secret = secret
        # Errors name the host only: a receiver may put a token in the path or query.
        self._name = f"webhook {httpx.URL(url).host}"

    def __repr__(self) -> str:
        return f"JsonWebhookSink({self._name!r})"

    async def send(self, message: Message, *, delivery_id: str | None = None) -> None:
        body = json_body(message)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(self._secret, body),
            DELIVERY_HEADER: delivery_id or _delivery_id(message, body),
        }
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.TimeoutException as error:
            raise TransientError(f"{self._name}: timed out") from error
        except httpx.HTTPError as error:
            raise TransientError(f"{self._name}: {type(error).__name__}: {error}") from error
        _check_response(self._name, response)


def _delivery_id(message: Message, body: bytes) -> str:
    """``fields["delivery_id"]`` if set, else a digest of the body: both stay the same when
    the worker retries the event, which is what receivers deduplicate on."""
    given = message.fields.get(DELIVERY_FIELD)
    if isinstance(given, str | int) and str(given):
        return str(given)
    return hashlib.sha256(body).hexdigest()[:32]
