"""Slack as a :class:`~puerta.notify.base.ChatSink`: one Web API call per method, through
``slack_sdk``'s ``AsyncWebClient``, with every failure classified for the notification worker.

Classification (the worker retries transient failures and records permanent ones):

* HTTP 429 (with ``Retry-After``) and the error codes ``ratelimited`` / ``rate_limited`` (current
  answers say the first, the 2020 API description the second) -> :class:`RateLimited`;
* ``fatal_error``, ``internal_error``, ``service_unavailable``, ``request_timeout``, HTTP 5xx and
  408, timeouts and connection errors -> :class:`TransientError`;
* every other ``{"ok": false, "error": code}`` (``channel_not_found``, ``not_in_channel``,
  ``is_archived``, ``invalid_auth``, ``missing_scope``, ``msg_too_long``, ...) and other HTTP
  statuses -> :class:`SlackRefused`, a :class:`PermanentError` naming the code and the method.
  An unknown code is permanent too: Slack answered this request and would answer it alike.

slack_sdk's own retries are switched off (``retry_handlers=[]``). Its default retries a
connection error once; Puerta drops even that, because the client opens a fresh HTTP session
per call (no pooled connection can have gone stale) and a ``chat.postMessage`` whose connection
broke after Slack stored it would be posted twice. The worker decides when to try again.

The bot token lives only in the client (it sends it as ``Authorization: Bearer``); no message
or log line of this module contains it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any, Final, cast

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from puerta.external import PermanentError, RateLimited, TransientError
from puerta.notify.base import Message

DEFAULT_BASE_URL: Final = "https://slack.com/api/"
#: Slack truncates (chat.postMessage) or refuses (``msg_too_long``) longer ``text``.
MAX_TEXT: Final = 40_000
TRUNCATION_MARK: Final = "… (truncated)"

#: the code of SlackRefused for an HTTP 200 that carries no Slack envelope
INVALID_ANSWER: Final = "invalid_answer"
RATE_LIMIT_CODES: Final = frozenset({"ratelimited", "rate_limited"})
TRANSIENT_CODES: Final = frozenset(
    {"fatal_error", "internal_error", "service_unavailable", "request_timeout"}
)


class SlackRefused(PermanentError):
    """Slack refused the call for good: ``code`` is its error code (``not_in_channel``), or
    ``http_<status>`` / ``invalid_answer`` when the answer had no envelope (not Slack
    answering: a wrong base URL, a proxy); ``method`` is the Web API method."""

    def __init__(self, method: str, code: str, *, status: int | None = None) -> None:
        super().__init__(f"slack {method}: {code}", status=status)
        self.method = method
        self.code = code


def truncate_text(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` cut to ``limit`` characters with a visible mark, so a huge log excerpt still
    posts (Slack would refuse it with ``msg_too_long``) and readers see that it was cut."""
    if len(text) <= limit:
        return text
    return text[: limit - len(TRUNCATION_MARK)] + TRUNCATION_MARK


class SlackSink:
    """Posts, threads, updates and DMs through the Slack Web API with a bot token
    (scopes ``chat:write``, ``im:write``, ``users:read.email``)."""

    def __init__(
        self, token: str, *, base_url: str = DEFAULT_BASE_URL, timeout: float = 10.0
    ) -> None:
        if not token.strip():
            raise ValueError("the Slack bot token is empty")
        self._timeout = timeout
        self._client = AsyncWebClient(
            token=token,
            base_url=base_url,
            # slack_sdk annotates ``timeout`` as int but only hands it to
            # aiohttp.ClientTimeout(total=...), which takes fractions of a second too.
            timeout=cast(int, timeout),
            retry_handlers=[],
            user_agent_prefix="Puerta",
        )
        # chat.update only takes a channel id; chat.postMessage also takes a name and answers
        # with the id. Remember it, so updating a message posted to "#deploys" works.
        self._channel_ids: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"SlackSink(base_url={self._client.base_url!r})"

    async def post(self, channel: str, message: Message, *, thread: str | None = None) -> str:
        """``chat.postMessage``; returns the new message's ``ts``. Link previews are off:
        rollout messages link to dashboards and CI runs whose previews only add noise."""
        response = await self._call(
            "chat.postMessage",
            self._client.chat_postMessage(
                channel=channel,
                text=truncate_text(message.text),
                blocks=message.blocks,
                thread_ts=thread,
                unfurl_links=False,
            ),
        )
        channel_id = response.get("channel")
        if isinstance(channel_id, str) and channel_id:
            self._channel_ids[channel] = channel_id
        return _string(response.get("ts"), "chat.postMessage", "ts")

    async def update(self, channel: str, message_id: str, message: Message) -> None:
        """``chat.update``. Without blocks, sends an empty list: Slack keeps the previous
        blocks when the field is absent, and clients would go on showing the old content."""
        await self._call(
            "chat.update",
            self._client.chat_update(
                channel=self.channel_id(channel),
                ts=message_id,
                text=truncate_text(message.text),
                blocks=message.blocks if message.blocks is not None else [],
            ),
        )

    async def open_dm(self, user_id: str) -> str:
        """``conversations.open`` with one user: the DM channel's id (``D...``)."""
        response = await self._call(
            "conversations.open", self._client.conversations_open(users=user_id)
        )
        channel = response.get("channel")
        found = channel.get("id") if isinstance(channel, dict) else None
        return _string(found, "conversations.open", "channel.id")

    async def lookup_user(self, email: str) -> str | None:
        """``users.lookupByEmail``; None for ``users_not_found`` (the author of a commit need
        not be in the workspace, and that is no failure)."""
        try:
            response = await self._call(
                "users.lookupByEmail", self._client.users_lookupByEmail(email=email)
            )
        except SlackRefused as refused:
            if refused.code == "users_not_found":
                return None
            raise
        user = response.get("user")
        found = user.get("id") if isinstance(user, dict) else None
        return _string(found, "users.lookupByEmail", "user.id")

    def channel_id(self, channel: str) -> str:
        """The id learnt from posting to ``channel`` (a name), else ``channel`` itself."""
        return self._channel_ids.get(channel, channel)

    async def _call(self, method: str, call: Awaitable[AsyncSlackResponse]) -> AsyncSlackResponse:
        """Await one Web API call; translate every failure into ``puerta.external`` terms."""
        try:
            return await call
        except SlackApiError as error:
            raise classify(method, error.response) from error
        except TimeoutError as error:
            raise TransientError(f"slack {method}: no answer within {self._timeout}s") from error
        except aiohttp.ClientError as error:
            raise TransientError(f"slack {method}: {type(error).__name__}: {error}") from error
        except AttributeError as error:
            # slack_sdk's validate() calls .get() on a 200 text/plain body: not Slack answering
            # (a wrong base_url, a proxy's page). Retrying would not change who answers.
            raise SlackRefused(method, INVALID_ANSWER, status=200) from error


def classify(method: str, response: Any) -> TransientError | PermanentError:
    """The error for a failed answer (``response`` is the SlackResponse, or aiohttp's raw
    response when the body was not JSON): rate limit, transient or permanent."""
    status = _status(response)
    code = _error_code(response)
    headers = getattr(response, "headers", None) or {}
    if status == 429 or code in RATE_LIMIT_CODES:
        return RateLimited(
            f"slack {method}: rate limited ({code or 'HTTP 429'})",
            retry_after=retry_after(headers),
            status=status,
        )
    if code in TRANSIENT_CODES or (status is not None and (status >= 500 or status == 408)):
        return TransientError(f"slack {method}: {code or f'HTTP {status}'}", status=status)
    if code is None:
        code = INVALID_ANSWER if status == 200 else f"http_{status}"
    return SlackRefused(method, code, status=status)


def retry_after(headers: Mapping[str, Any]) -> float | None:
    """Seconds from ``Retry-After`` (Slack sends whole seconds), case-insensitively."""
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(str(value).strip()))
            except ValueError:
                return None
    return None


def _status(response: Any) -> int | None:
    status = getattr(response, "status_code", None)
    if status is None:
        status = getattr(response, "status", None)
    return status if isinstance(status, int) else None


def _error_code(response: Any) -> str | None:
    data = getattr(response, "data", None)
    if isinstance(data, dict):
        code = data.get("error")
        if isinstance(code, str) and code:
            return code
    return None


def _string(value: object, method: str, name: str) -> str:
    """A required string of a successful answer; its absence is a broken answer that a retry
    would not mend (and, for chat.postMessage, might post twice)."""
    if isinstance(value, str) and value:
        return value
    raise SlackRefused(method, f"answer_without_{name.replace('.', '_')}")
