"""A webhook receiver for tests over real HTTP: records every POST, checks its
``X-Puerta-Signature-256`` with the shared secret the way a receiver should (HMAC-SHA256 of the
raw body, compared in constant time; written here independently of Puerta's own ``verify``),
and answers scripted statuses and bodies, including the plain-text ones Teams uses (``1`` on
success, ``Webhook message delivery failed ...`` with HTTP 200, 4xx text).

FakeBase's faults (outage, 429 with Retry-After, slow answer) come first, as on every fake.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from fakes.base import FakeBase, Received

SIGNATURE_HEADER = "x-puerta-signature-256"
DELIVERY_HEADER = "x-puerta-delivery"


@dataclass
class Delivery:
    """One POST: raw body, its JSON (None if it was not JSON), headers (lower-case names),
    and whether the signature matched the secret (None when the receiver has no secret)."""

    path: str
    body: bytes
    payload: Any
    headers: dict[str, str]
    signature_valid: bool | None

    @property
    def delivery_id(self) -> str | None:
        return self.headers.get(DELIVERY_HEADER)


@dataclass
class Answer:
    status: int
    body: str
    headers: dict[str, str]


@dataclass
class WebhookReceiver(FakeBase):
    """Answers ``default`` (200 ``ok``) unless an answer is scripted with :meth:`answer_next`."""

    secret: str | None = None
    default: Answer = field(default_factory=lambda: Answer(200, "ok", {}))
    deliveries: list[Delivery] = field(default_factory=list)
    app: Starlette = field(init=False, repr=False)
    _answers: list[Answer] = field(default_factory=list, repr=False)
    _state: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])

    def answer_next(
        self, status: int, body: str = "", *, count: int = 1, headers: dict[str, str] | None = None
    ) -> None:
        """The next ``count`` deliveries get ``status`` with a plain-text ``body``."""
        with self._state:
            self._answers.extend([Answer(status, body, dict(headers or {}))] * count)

    def answer_always(self, status: int, body: str = "") -> None:
        """Every delivery without a scripted answer gets this (e.g. Teams' ``200 1``)."""
        with self._state:
            self.default = Answer(status, body, {})

    def valid(self) -> list[bool | None]:
        """``signature_valid`` of every delivery, in order."""
        with self._state:
            return [d.signature_valid for d in self.deliveries]

    def expected_signature(self, body: bytes) -> str:
        assert self.secret is not None
        digest = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        return "sha256=" + digest

    async def _handle(self, request: Request) -> Response:
        entry = await self.record(request)
        fault = self.injected()
        if fault is not None:
            return await self.fault_response(fault)
        delivery = Delivery(
            entry.path, entry.body, _json(entry.body), entry.headers, self._check(entry)
        )
        with self._state:
            self.deliveries.append(delivery)
            answer = self._answers.pop(0) if self._answers else self.default
        return PlainTextResponse(answer.body, status_code=answer.status, headers=answer.headers)

    def _check(self, entry: Received) -> bool | None:
        if self.secret is None:
            return None
        given = entry.headers.get(SIGNATURE_HEADER, "")
        return hmac.compare_digest(given.encode(), self.expected_signature(entry.body).encode())


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None
