"""A fake Slack Web API for tests over real HTTP, answering the way Slack does for the methods
Puerta calls: ``chat.postMessage``, ``chat.update``, ``conversations.open``,
``users.lookupByEmail``.

What it does, and why:

* Routes ``/api/<method>`` for GET and POST, reading arguments from the query string, form
  bodies and JSON bodies alike: slack_sdk sends chat.* as JSON, ``conversations.open`` as POST
  with a query string, ``users.lookupByEmail`` as GET.
* Envelopes as Slack has them: ``{"ok": true, ...}`` or ``{"ok": false, "error": code}``, both
  with HTTP 200; only rate limits answer 429 (``Retry-After`` and ``{"ok": false, "error":
  "ratelimited"}``). Unknown methods answer ``unknown_method``.
* Auth: ``Authorization: Bearer <token>`` (or a ``token`` argument); none -> ``not_authed``,
  another -> ``invalid_auth``.
* Channels registered by tests (:meth:`FakeSlack.add_channel`), found by id or by name with or
  without ``#`` for chat.postMessage; chat.update takes ids only and answers
  ``channel_not_found`` for a name, like Slack (slackapi/python-slack-sdk#696). A channel the
  bot has not joined answers ``not_in_channel``; an archived one ``is_archived``.
* Messages get unique, increasing ``ts`` strings. A reply whose ``thread_ts`` matches no
  message is answered ``ok`` but lands nowhere visible, which is what Slack does
  (slackapi/node-slack-sdk#780): tests see it in :meth:`FakeSlack.orphans` only.
* Checks Slack's limits that a sink must respect: ``msg_too_long`` over 40,000 characters,
  ``no_text``, ``invalid_blocks`` (not a list of typed objects, or more than 50).
* Rate limits: :meth:`FakeSlack.rate_limit_next` for the next N calls, and optionally a
  per-channel budget of chat.postMessage calls per second (``channel_rate_limit``) measured
  with an injectable ``clock``. Scripted error codes with :meth:`FakeSlack.error_next`.
* FakeBase's faults (outage, slow answer) come first on every route. All state is guarded by a
  lock: uvicorn runs in another thread than the test.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fakes.base import FakeBase

Params = dict[str, Any]
Handler = Callable[[Params], Awaitable[Response]]

MAX_TEXT = 40_000
MAX_BLOCKS = 50
_TS_BASE = 1_700_000_000_000_000  # microseconds; ts "1700000000.000100" and on


@dataclass
class SlackMessage:
    """One stored message. ``params`` is what the posting call carried (``unfurl_links``...)."""

    channel: str
    ts: str
    text: str
    user: str
    blocks: list[dict[str, Any]] | None = None
    thread_ts: str | None = None
    edits: int = 0
    params: Params = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "message", "user": self.user, "ts": self.ts}
        body["text"] = self.text
        if self.blocks is not None:
            body["blocks"] = self.blocks
        if self.thread_ts is not None:
            body["thread_ts"] = self.thread_ts
        if self.edits:
            body["edited"] = {"user": self.user, "ts": self.ts}
        return body


@dataclass
class FakeChannel:
    id: str
    name: str | None
    member: bool = True
    archived: bool = False
    dm_with: str | None = None
    messages: list[SlackMessage] = field(default_factory=list)
    orphans: list[SlackMessage] = field(default_factory=list)
    posted_at: list[float] = field(default_factory=list)


@dataclass
class FakeUser:
    id: str
    email: str
    deleted: bool = False
    visible: bool = True


class SlackAnswer(Exception):
    """Raised inside a handler to answer ``{"ok": false, "error": code}``."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def ok(**fields: Any) -> JSONResponse:
    return JSONResponse({"ok": True, **fields})


def refuse(code: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": code})


def rate_limited(retry_after: int) -> JSONResponse:
    body = {"ok": False, "error": "ratelimited"}
    return JSONResponse(body, status_code=429, headers={"Retry-After": str(retry_after)})


@dataclass
class FakeSlack(FakeBase):
    """Mount :attr:`app` on a server; base URL for clients is ``<server>/api/``."""

    token: str = "xoxb-1-puerta-test"
    bot_user: str = "UBOTPUERTA"
    channel_rate_limit: int | None = None  # chat.postMessage per channel per second; None: off
    clock: Callable[[], float] = time.monotonic
    channels: dict[str, FakeChannel] = field(default_factory=dict)
    users: dict[str, FakeUser] = field(default_factory=dict)
    app: Starlette = field(init=False, repr=False)
    _state: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1), repr=False)
    _dm_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1), repr=False)
    _limited: list[int] = field(default_factory=list, repr=False)  # Retry-After per next call
    _errors: list[tuple[str, str | None]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.app = Starlette(routes=[Route("/api/{method}", self._handle, methods=["GET", "POST"])])
        self._methods: dict[str, Handler] = {
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "conversations.open": self._open,
            "users.lookupByEmail": self._lookup,
        }

    # -- set-up helpers --------------------------------------------------------------------
    def add_channel(
        self, name: str, *, id: str, join: bool = True, archived: bool = False
    ) -> FakeChannel:
        """A channel named ``name`` (``#`` optional); ``join=False``: the bot is no member."""
        channel = FakeChannel(id, name.lstrip("#"), member=join, archived=archived)
        with self._state:
            self.channels[id] = channel
        return channel

    def add_user(
        self, email: str, id: str, *, deleted: bool = False, visible: bool = True
    ) -> FakeUser:
        """A workspace member; ``deleted``: deactivated, ``visible=False``: from another org."""
        user = FakeUser(id, email, deleted=deleted, visible=visible)
        with self._state:
            self.users[id] = user
        return user

    def add_foreign_message(self, channel: str, text: str, *, user: str = "UHUMAN01") -> str:
        """A message somebody else posted (the bot may not update it); returns its ts."""
        with self._state:
            target = self._channel(channel, names=True)
            message = SlackMessage(target.id, self._next_ts(), text, user)
            target.messages.append(message)
            return message.ts

    def rate_limit_next(self, count: int = 1, *, retry_after: int = 2) -> None:
        """The next ``count`` calls (any method) answer 429 with ``Retry-After``."""
        with self._state:
            self._limited.extend([retry_after] * count)

    def error_next(self, code: str, count: int = 1, *, method: str | None = None) -> None:
        """The next ``count`` calls (of ``method``, or any) answer ``{"ok":false,"error":code}``
        with HTTP 200 (``fatal_error``, ``ratelimited``, ``edit_window_closed``...)."""
        with self._state:
            self._errors.extend([(code, method)] * count)

    # -- inspection helpers ----------------------------------------------------------------
    def messages(self, channel: str) -> list[SlackMessage]:
        """Top-level messages of a channel (by id or name), oldest first."""
        with self._state:
            target = self._channel(channel, names=True)
            return [m for m in target.messages if m.thread_ts in (None, m.ts)]

    def thread(self, channel: str, ts: str) -> list[SlackMessage]:
        """Replies in the thread of the message ``ts``, oldest first."""
        with self._state:
            target = self._channel(channel, names=True)
            return [m for m in target.messages if m.thread_ts == ts and m.ts != ts]

    def orphans(self, channel: str) -> list[SlackMessage]:
        """Replies to a ``thread_ts`` that matched no message: accepted, shown nowhere."""
        with self._state:
            return list(self._channel(channel, names=True).orphans)

    def dms(self, user_id: str) -> list[SlackMessage]:
        """Everything posted to the direct-message channel with ``user_id``."""
        with self._state:
            for channel in self.channels.values():
                if channel.dm_with == user_id:
                    return list(channel.messages)
            return []

    # -- plumbing --------------------------------------------------------------------------
    async def _handle(self, request: Request) -> Response:
        entry = await self.record(request)
        fault = self.injected()
        if fault is not None:
            return await self.fault_response(fault)
        method = request.path_params["method"]
        params = _params(request, entry.body)
        with self._state:
            if self._limited:
                return rate_limited(self._limited.pop(0))
        auth = _authorisation(request, params, self.token)
        if auth is not None:
            return refuse(auth)
        handler = self._methods.get(method)
        if handler is None:
            return refuse("unknown_method")
        scripted = self._scripted_error(method)
        if scripted is not None:
            return refuse(scripted)
        try:
            return await handler(params)
        except SlackAnswer as answer:
            return refuse(answer.code)

    def _scripted_error(self, method: str) -> str | None:
        with self._state:
            for index, (code, only) in enumerate(self._errors):
                if only is None or only == method:
                    del self._errors[index]
                    return code
        return None

    def _next_ts(self) -> str:
        micros = _TS_BASE + next(self._ts) * 100
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _channel(self, key: str, *, names: bool) -> FakeChannel:
        """A channel by id, or (``names``) by name with or without ``#``."""
        if key in self.channels:
            return self.channels[key]
        if names:
            for channel in self.channels.values():
                if channel.name is not None and channel.name == key.lstrip("#"):
                    return channel
        raise SlackAnswer("channel_not_found")

    # -- methods ---------------------------------------------------------------------------
    async def _post_message(self, params: Params) -> Response:
        text, blocks = _content(params)
        with self._state:
            channel = self._channel(_required(params, "channel"), names=True)
            if channel.archived:
                raise SlackAnswer("is_archived")
            if not channel.member:
                raise SlackAnswer("not_in_channel")
            wait = self._over_budget(channel)
            if wait is not None:
                return rate_limited(wait)
            message = SlackMessage(channel.id, self._next_ts(), text or "", self.bot_user)
            message.blocks, message.params = blocks, params
            self._file(channel, message, params.get("thread_ts"))
            return ok(channel=channel.id, ts=message.ts, message=message.as_json())

    def _file(self, channel: FakeChannel, message: SlackMessage, thread_ts: Any) -> None:
        """Store a message; a reply goes to its thread's root, or nowhere visible."""
        channel.posted_at.append(self.clock())
        if not thread_ts:
            channel.messages.append(message)
            return
        parent = next((m for m in channel.messages if m.ts == str(thread_ts)), None)
        message.thread_ts = str(thread_ts) if parent is None else parent.thread_ts or parent.ts
        (channel.messages if parent is not None else channel.orphans).append(message)

    def _over_budget(self, channel: FakeChannel) -> int | None:
        """Seconds to wait if the channel already had its posts in the last second."""
        if self.channel_rate_limit is None:
            return None
        now = self.clock()
        recent = [at for at in channel.posted_at if now - at < 1.0]
        if len(recent) < self.channel_rate_limit:
            return None
        return max(1, math.ceil(recent[0] + 1.0 - now))

    async def _update(self, params: Params) -> Response:
        text, blocks = _content(params)
        ts = _required(params, "ts", missing="message_not_found")
        with self._state:
            channel = self._channel(_required(params, "channel"), names=False)
            message = next((m for m in channel.messages if m.ts == ts), None)
            if message is None:
                raise SlackAnswer("message_not_found")
            if message.user != self.bot_user:
                raise SlackAnswer("cant_update_message")
            if text is not None:
                message.text = text
            if "blocks" in params:
                message.blocks = blocks or None
            message.edits += 1
            body = message.as_json()
            return ok(channel=channel.id, ts=ts, text=message.text, message=body)

    async def _open(self, params: Params) -> Response:
        users = [u for u in str(params.get("users") or "").split(",") if u]
        if not users:
            raise SlackAnswer("users_list_not_supplied")
        if len(users) > 1:
            raise SlackAnswer("fake_slack_supports_one_user")
        with self._state:
            user = self.users.get(users[0])
            if user is None:
                raise SlackAnswer("user_not_found")
            if not user.visible:
                raise SlackAnswer("user_not_visible")
            if user.deleted:
                raise SlackAnswer("user_disabled")
            for channel in self.channels.values():
                if channel.dm_with == user.id:
                    return ok(no_op=True, already_open=True, channel={"id": channel.id})
            dm = FakeChannel(f"D{next(self._dm_ids):08d}", None, dm_with=user.id)
            self.channels[dm.id] = dm
            return ok(channel={"id": dm.id})

    async def _lookup(self, params: Params) -> Response:
        email = str(_required(params, "email", missing="invalid_arguments")).lower()
        with self._state:
            user = next((u for u in self.users.values() if u.email.lower() == email), None)
            if user is None:
                raise SlackAnswer("users_not_found")
            profile = {"email": user.email}
            name = user.email.split("@")[0]
            return ok(
                user={"id": user.id, "name": name, "deleted": user.deleted, "profile": profile}
            )


# -- request parsing -----------------------------------------------------------------------
def _params(request: Request, body: bytes) -> Params:
    """Arguments from the query string, then the body (JSON or form), like Slack reads them."""
    params: Params = dict(request.query_params)
    content_type = request.headers.get("content-type", "")
    if body and content_type.startswith("application/json"):
        loaded = json.loads(body)
        if isinstance(loaded, dict):
            params.update(loaded)
    elif body:
        params.update(parse_qsl(body.decode(), keep_blank_values=True))
    return params


def _authorisation(request: Request, params: Params, token: str) -> str | None:
    """``not_authed``/``invalid_auth``, or None when the token is the right one."""
    header = request.headers.get("authorization", "")
    given = header[len("Bearer ") :] if header.startswith("Bearer ") else params.get("token")
    if not given:
        return "not_authed"
    return None if given == token else "invalid_auth"


def _required(params: Params, name: str, *, missing: str | None = None) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise SlackAnswer(missing or f"{name}_not_found")
    return str(value)


def _content(params: Params) -> tuple[str | None, list[dict[str, Any]] | None]:
    """Text and blocks of a message, checked against Slack's limits."""
    text = params.get("text")
    blocks = _blocks(params.get("blocks"))
    if not text and not blocks:
        raise SlackAnswer("no_text")
    if isinstance(text, str) and len(text) > MAX_TEXT:
        raise SlackAnswer("msg_too_long")
    return (str(text) if text is not None else None), blocks


def _blocks(raw: Any) -> list[dict[str, Any]] | None:
    """Blocks from JSON (a list) or a form (a JSON string); ``invalid_blocks`` if malformed."""
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw else []
        except ValueError:
            raise SlackAnswer("invalid_blocks") from None
    if not isinstance(raw, list) or len(raw) > MAX_BLOCKS:
        raise SlackAnswer("invalid_blocks")
    if not all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in raw):
        raise SlackAnswer("invalid_blocks")
    return raw
