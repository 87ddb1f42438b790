"""The policy's ``ci`` section: the CI systems Puerta may trigger E2E runs on.

Each provider is named (gates refer to it by that name), has a type, a base URL (GitHub
Enterprise, self-hosted GitLab, CircleCI server, any Jenkins), a token read from an environment
variable or file, an optional secret for its inbound webhooks, and a request budget that all
replicas share, so following a thousand runs never goes over the provider's rate limit.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from puerta.domain.durations import parse_duration
from puerta.policy.secret_ref import SecretRef

ProviderType = Literal["circleci", "github", "gitlab", "jenkins"]

DEFAULT_BASE_URLS: dict[str, str] = {
    "circleci": "https://circleci.com/api/v2",
    "github": "https://api.github.com",
    "gitlab": "https://gitlab.com",
}
#: providers whose completion webhooks Puerta verifies and takes (others are polled only)
WEBHOOK_TYPES = frozenset({"circleci", "github"})


class CiProviderConfig(BaseModel):
    """One CI system Puerta can trigger and follow runs on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: ProviderType
    base_url: str | None = Field(
        default=None,
        description="API base URL; default: CircleCI cloud, api.github.com, gitlab.com "
        "(required for Jenkins)",
    )
    app_url: str | None = Field(
        default=None, description="CircleCI only: web UI base for links (CircleCI server)"
    )
    user: str | None = Field(default=None, description="Jenkins only: the API token's user")
    token: SecretRef = Field(description="API token: {token_env: VAR} or {token_file: PATH}")
    webhook_secret: SecretRef | None = Field(
        default=None,
        description="secret of the provider's webhook to POST /webhooks/ci/NAME "
        "(CircleCI and GitHub); unset: that endpoint answers 404 and Puerta only polls",
    )
    requests_per_minute: float = Field(
        default=60, gt=0, le=100_000, description="request budget, shared by all replicas"
    )
    burst: int = Field(default=10, ge=1, le=10_000, description="requests allowed at once")
    timeout: str = Field(default="10s", description="per request")
    poll_interval: str = Field(
        default="10s", description="first poll after a trigger or a change of status"
    )
    max_poll_interval: str = Field(
        default="2m", description="polling backs off to this while nothing changes"
    )

    @field_validator("base_url", "app_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value is not None else None

    @field_validator("timeout", "poll_interval", "max_poll_interval")
    @classmethod
    def _duration(cls, value: str) -> str:
        if parse_duration(value).total_seconds() <= 0:
            raise ValueError("must be longer than 0s")
        return value

    @model_validator(mode="after")
    def _per_type(self) -> CiProviderConfig:
        if self.type == "jenkins":
            if self.base_url is None:
                raise ValueError("base_url: required for jenkins (e.g. https://ci.example.com)")
            if not self.user:
                raise ValueError("user: required for jenkins (the API token's user)")
        elif self.user is not None:
            raise ValueError(f"user: only used by jenkins, not {self.type}")
        if self.app_url is not None and self.type != "circleci":
            raise ValueError(f"app_url: only used by circleci, not {self.type}")
        if self.webhook_secret is not None and self.type not in WEBHOOK_TYPES:
            raise ValueError(
                f"webhook_secret: Puerta takes webhooks from circleci and github; "
                f"{self.type} runs are polled"
            )
        if parse_duration(self.max_poll_interval) < parse_duration(self.poll_interval):
            raise ValueError("max_poll_interval: must not be shorter than poll_interval")
        return self

    @property
    def api_url(self) -> str:
        return self.base_url or DEFAULT_BASE_URLS[self.type]

    @property
    def request_timeout(self) -> timedelta:
        return parse_duration(self.timeout)


class CiConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    providers: dict[str, CiProviderConfig] = Field(default_factory=dict)

    @field_validator("providers")
    @classmethod
    def _names(cls, value: dict[str, CiProviderConfig]) -> dict[str, CiProviderConfig]:
        for name in value:
            if not name or not name.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"provider name {name!r}: use letters, digits, - and _")
            if len(name) > 100:
                raise ValueError(f"provider name {name[:20]!r}...: at most 100 characters")
        return value
