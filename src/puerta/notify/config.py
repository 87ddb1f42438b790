"""The policy's ``notifications`` section: where messages about rollouts go.

Secrets (the Slack bot token, a Teams incoming-webhook URL, a webhook's signing secret) are
referenced, never written in the file. Routes pick the destinations per environment and
namespace: the first route whose ``match`` fits a canary is used.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from puerta.domain.durations import parse_duration
from puerta.domain.notices import CURATED, NoticeKind
from puerta.policy.secret_ref import SecretRef


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlackConfig(_Strict):
    token: SecretRef = Field(
        description="bot token (xoxb-...): chat:write, im:write, users:read.email"
    )
    base_url: str = Field(default="https://slack.com/api/", description="Web API base URL")
    timeout: str = Field(default="10s", description="per request")
    channel_interval: str = Field(
        default="1s", description="at least this long between two messages to one channel"
    )

    @field_validator("timeout", "channel_interval")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value if value.endswith("/") else value + "/"


class RouteMatch(_Strict):
    environment: str | None = Field(default=None, description="glob on the environment name")
    namespace: str | None = Field(default=None, description="glob on the canary's namespace")

    def matches(self, environment: str | None, namespace: str) -> bool:
        if self.environment is not None and not fnmatchcase(environment or "", self.environment):
            return False
        return self.namespace is None or fnmatchcase(namespace, self.namespace)


class WebhookConfig(_Strict):
    url: str
    secret: SecretRef = Field(description="HMAC-SHA256 key for X-Puerta-Signature-256")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value


class RouteConfig(_Strict):
    match: RouteMatch = Field(default_factory=RouteMatch)
    channel: str | None = Field(
        default=None, description="Slack channel: one thread per rollout, parent updated"
    )
    raw_channel: str | None = Field(default=None, description="Slack channel: every notice")
    teams: SecretRef | None = Field(
        default=None, description="Microsoft Teams incoming-webhook URL (a secret)"
    )
    webhook: WebhookConfig | None = None
    direct_messages: bool = Field(default=True, description="DM the commit's author")


class DirectMessages(_Strict):
    enabled: bool = Field(default=False, description="DM the author of the commit rolling out")
    kinds: list[NoticeKind] = Field(
        default_factory=lambda: sorted(CURATED), description="which notices they get"
    )
    people: dict[str, str] = Field(
        default_factory=dict,
        description="email -> Slack user id, for people whose Slack email differs",
    )

    @field_validator("people")
    @classmethod
    def _people(cls, value: dict[str, str]) -> dict[str, str]:
        return {email.strip().lower(): user for email, user in value.items()}


class NotificationsConfig(_Strict):
    slack: SlackConfig | None = None
    routes: list[RouteConfig] = Field(default_factory=list)
    direct_messages: DirectMessages = Field(default_factory=DirectMessages)

    @model_validator(mode="after")
    def _slack_when_needed(self) -> NotificationsConfig:
        needs = any(r.channel or r.raw_channel for r in self.routes) or self.direct_messages.enabled
        if needs and self.slack is None:
            raise ValueError("slack: required by a route's channel or by direct_messages")
        return self

    def route(self, environment: str | None, namespace: str) -> RouteConfig | None:
        """The first route for a canary (None: no notifications for it)."""
        for route in self.routes:
            if route.match.matches(environment, namespace):
                return route
        return None
