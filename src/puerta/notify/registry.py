"""Build the notification sinks from the policy (in the app factory, never at import time).

Secrets are read when the app is built, so ``serve`` refuses to start when one is missing,
with the path of the setting that names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from puerta.domain.durations import parse_duration
from puerta.notify.base import ChatSink, EventSink
from puerta.notify.config import NotificationsConfig
from puerta.notify.slack import SlackSink
from puerta.notify.webhooks import JsonWebhookSink, TeamsSink
from puerta.secret_refs import read_secret


@dataclass(frozen=True)
class NotifySecrets:
    slack_token: str | None = None
    teams: dict[int, str] = field(default_factory=dict)  # route index -> webhook URL
    webhooks: dict[int, str] = field(default_factory=dict)  # route index -> signing secret


def read_notify_secrets(config: NotificationsConfig, environ: Mapping[str, str]) -> NotifySecrets:
    token = None
    if config.slack is not None:
        token = read_secret(config.slack.token, "notifications.slack.token", environ)
    teams: dict[int, str] = {}
    webhooks: dict[int, str] = {}
    for index, route in enumerate(config.routes):
        if route.teams is not None:
            teams[index] = read_secret(route.teams, f"notifications.routes[{index}].teams", environ)
        if route.webhook is not None:
            path = f"notifications.routes[{index}].webhook.secret"
            webhooks[index] = read_secret(route.webhook.secret, path, environ)
    return NotifySecrets(token, teams, webhooks)


@dataclass
class Sinks:
    chat: ChatSink | None
    events: dict[str, EventSink]  # destination ("teams:N", "webhook:N") -> sink
    client: httpx.AsyncClient

    async def aclose(self) -> None:
        await self.client.aclose()


def build_sinks(config: NotificationsConfig, secrets: NotifySecrets) -> Sinks:
    chat: ChatSink | None = None
    if config.slack is not None and secrets.slack_token is not None:
        timeout = parse_duration(config.slack.timeout).total_seconds()
        chat = SlackSink(secrets.slack_token, base_url=config.slack.base_url, timeout=timeout)
    client = httpx.AsyncClient(timeout=10.0, follow_redirects=False)
    events: dict[str, EventSink] = {}
    for index, url in secrets.teams.items():
        events[f"teams:{index}"] = TeamsSink(client, url)
    for index, secret in secrets.webhooks.items():
        route = config.routes[index]
        assert route.webhook is not None
        events[f"webhook:{index}"] = JsonWebhookSink(client, route.webhook.url, secret)
    return Sinks(chat, events, client)
