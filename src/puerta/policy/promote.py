"""An environment's ``promote`` section: what to do when a rollout succeeded there, so the
commit moves on to the next environment (e.g. staging -> production).

Exactly one action: create a GitHub release for the rollout's commit (the usual trigger of a
production pipeline), send a GitHub ``repository_dispatch`` event, or call a webhook with a
signed JSON body. Templates (tag, release name, dispatch event type) take ``{date}`` (UTC,
YYYYMMDD), ``{time}`` (HHMMSS), ``{sha}``, ``{short_sha}``, ``{repository}``, ``{name}``,
``{namespace}``, ``{environment}``, ``{to}``, ``{image_tag}`` and ``{rollout}``.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from puerta.policy.secret_ref import SecretRef

PROMOTE_FIELDS = frozenset(
    {
        "date",
        "time",
        "sha",
        "short_sha",
        "repository",
        "name",
        "namespace",
        "environment",
        "to",
        "image_tag",
        "rollout",
    }
)
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def check_template(value: str) -> str:
    for key in _PLACEHOLDER.findall(value):
        if key not in PROMOTE_FIELDS:
            known = ", ".join(f"{{{k}}}" for k in sorted(PROMOTE_FIELDS))
            raise ValueError(f"unknown placeholder {{{key}}}; use {known}")
    return value


def render(template: str, values: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GitHubRelease(_Strict):
    repository: str | None = Field(
        default=None, description="owner/repo; default: the commit's repository"
    )
    tag: str = Field(default="v{date}-{short_sha}", description="the tag to create")
    name: str | None = Field(default=None, description="release title (default: the tag)")
    generate_notes: bool = Field(default=True, description="GitHub's generated release notes")
    prerelease: bool = False
    draft: bool = False

    @field_validator("tag", "name")
    @classmethod
    def _templates(cls, value: str | None) -> str | None:
        return check_template(value) if value is not None else None


class RepositoryDispatch(_Strict):
    repository: str | None = Field(
        default=None, description="owner/repo; default: the commit's repository"
    )
    event_type: str = Field(default="puerta-promote", max_length=100)

    @field_validator("event_type")
    @classmethod
    def _templates(cls, value: str) -> str:
        return check_template(value)


class PromoteWebhook(_Strict):
    url: str
    secret: SecretRef = Field(description="HMAC-SHA256 key for X-Puerta-Signature-256")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value


class PromoteConfig(_Strict):
    to: str = Field(description="the environment the commit goes to next (e.g. production)")
    github_release: GitHubRelease | None = None
    repository_dispatch: RepositoryDispatch | None = None
    webhook: PromoteWebhook | None = None

    @model_validator(mode="after")
    def _one_action(self) -> PromoteConfig:
        actions = [a for a in (self.github_release, self.repository_dispatch, self.webhook) if a]
        if len(actions) != 1:
            raise ValueError("give exactly one of github_release, repository_dispatch or webhook")
        return self

    @property
    def action(self) -> str:
        if self.github_release is not None:
            return "github_release"
        if self.repository_dispatch is not None:
            return "repository_dispatch"
        return "webhook"
