"""An environment's ``promote`` section: what to do when a rollout succeeded there, so the
commit moves on to the next environment (e.g. staging -> production).

Exactly one action: create a GitHub release for the rollout's commit (the usual trigger of a
production pipeline), send a GitHub ``repository_dispatch`` event, or call a webhook with a
signed JSON body. Templates (tag, release name, dispatch event type) take ``{date}`` (UTC,
YYYYMMDD), ``{time}`` (HHMMSS), ``{sha}``, ``{short_sha}``, ``{repository}``, ``{name}``,
``{namespace}``, ``{environment}``, ``{to}``, ``{image_tag}`` and ``{rollout}``; ``{date}`` and
``{time}`` are when the rollout succeeded (not when the release is made), so every attempt of a
promotion renders the same tag. A release's tag and name also take ``{next_patch}``,
``{next_minor}`` and ``{next_major}``: the highest version among the repository's tags, bumped
(:func:`highest_version`, :func:`next_versions`).

``manual_release: true`` makes every promotion of the environment wait until an approver
releases it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from puerta.policy.secret_ref import SecretRef

#: the fields that read the release repository's tags (only a release's tag and name)
VERSION_FIELDS = frozenset({"next_patch", "next_minor", "next_major"})
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
#: a release version: ``1.4.2`` or ``v1.4.2`` (build metadata ``+...`` allowed); a
#: pre-release (``1.5.0-rc.1``) or anything else is not one
_VERSION = re.compile(r"v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:\+[0-9A-Za-z.-]+)?")

Version = tuple[int, int, int]
#: why a promotion of an environment with ``manual_release`` waits
MANUAL_RELEASE = "waiting for a manual release"


def check_template(value: str, *, versions: bool = False) -> str:
    """A template's placeholders must be known fields, so a typo fails ``check-config`` and
    not a promotion; the version fields only where ``versions`` (a release's tag and name)."""
    allowed = PROMOTE_FIELDS | VERSION_FIELDS if versions else PROMOTE_FIELDS
    for key in _PLACEHOLDER.findall(value):
        if key in VERSION_FIELDS and not versions:
            raise ValueError(
                f"{{{key}}} reads a repository's tags: it is only for github_release.tag and "
                "github_release.name"
            )
        if key not in allowed:
            known = ", ".join(f"{{{k}}}" for k in sorted(allowed))
            raise ValueError(f"unknown placeholder {{{key}}}; use {known}")
    return value


def render(template: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def uses_versions(*templates: str | None) -> bool:
    """Whether rendering these needs the repository's tags (one of :data:`VERSION_FIELDS`):
    only then are they read."""
    return any(key in VERSION_FIELDS for t in templates if t for key in _PLACEHOLDER.findall(t))


def version_prefix(template: str, values: Mapping[str, str]) -> str:
    """The text a tag template puts before its version field (rendered), without a trailing
    ``v``: ``podinfo-`` for ``podinfo-v{next_patch}``, nothing for ``v{next_patch}``. Only
    tags that start with it count, so each app of a monorepo keeps its own versions."""
    for match in _PLACEHOLDER.finditer(template):
        if match.group(1) in VERSION_FIELDS:
            head = render(template[: match.start()], values)
            return head.removesuffix("v")
    return ""


def highest_version(tags: Iterable[str], prefix: str = "") -> Version | None:
    """The highest ``[prefix][v]MAJOR.MINOR.PATCH`` among ``tags``; pre-releases and other
    tags are ignored (None: there is none)."""
    found: Version | None = None
    for tag in tags:
        if not tag.startswith(prefix):
            continue
        match = _VERSION.fullmatch(tag[len(prefix) :])
        if match is None:
            continue
        version = (int(match.group(1)), int(match.group(2)), int(match.group(3)))
        found = version if found is None else max(found, version)
    return found


def next_versions(highest: Version | None) -> dict[str, str]:
    """The version fields after ``highest`` (no version yet: 0.0.1, 0.1.0, 1.0.0); the ``v``
    is the template's to write."""
    major, minor, patch = highest or (0, 0, 0)
    return {
        "next_patch": f"{major}.{minor}.{patch + 1}",
        "next_minor": f"{major}.{minor + 1}.0",
        "next_major": f"{major + 1}.0.0",
    }


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
        return check_template(value, versions=True) if value is not None else None


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
    manual_release: bool = Field(
        default=False,
        description="every promotion waits (held) until an approver releases it "
        "(puerta promotions release ID)",
    )

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
