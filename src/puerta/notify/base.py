"""The contracts of notification sinks, and the values they exchange with Puerta.

Puerta composes messages (pure, ``domain/notices.py``) and writes them to an outbox in the same
transaction as the event that causes them; a background worker hands them to a sink. Sinks do
one HTTP call per method and classify failures with ``puerta.external`` errors, so the worker
retries transient ones (honouring rate limits) and records permanent ones (e.g. Slack's
``channel_not_found``, ``not_in_channel``, ``is_archived``) where people see them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Message:
    """One message: ``text`` always (the fallback every client shows), ``blocks`` optionally
    (Slack Block Kit), ``fields`` for structured sinks (a webhook's JSON, a Teams card's facts)."""

    text: str
    blocks: list[dict[str, Any]] | None = None
    fields: dict[str, Any] = field(default_factory=dict)


class ChatSink(Protocol):
    """A chat service with channels, threads, updates in place and direct messages (Slack)."""

    async def post(self, channel: str, message: Message, *, thread: str | None = None) -> str:
        """Post to a channel (or as a reply in ``thread``); returns the message's id (Slack:
        its ``ts``), used to update it or to reply to it."""
        ...

    async def update(self, channel: str, message_id: str, message: Message) -> None:
        """Replace a posted message's content (``channel``: the id, see :meth:`channel_id`)."""
        ...

    def channel_id(self, name: str) -> str | None:
        """The id of a channel this sink posted to by name (Slack's chat.update takes ids
        only); None when not known."""
        ...

    async def open_dm(self, user_id: str) -> str:
        """The direct-message channel with a user (opened if needed)."""
        ...

    async def lookup_user(self, email: str) -> str | None:
        """The chat user id for an email address; None when there is no such user."""
        ...


class EventSink(Protocol):
    """A sink that takes one message per event and nothing else (Microsoft Teams incoming
    webhook, a generic signed JSON webhook)."""

    async def send(self, message: Message) -> None: ...
