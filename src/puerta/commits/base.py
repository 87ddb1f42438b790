"""The values that describe what a rollout ships, and the Protocols of their sources."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Container:
    name: str
    image: str  # e.g. ghcr.io/acme/podinfo:6.5.1-3f9a2c1 or ...@sha256:...


@dataclass(frozen=True, slots=True)
class WorkloadInfo:
    """The Canary's ``spec.targetRef`` workload as read from the Kubernetes API.

    ``labels``/``annotations``: the pod template's, with the workload's own metadata under
    them (the template wins on a clash), since image revision labels may be set on either.
    """

    kind: str  # Deployment | DaemonSet | StatefulSet
    name: str
    namespace: str
    containers: tuple[Container, ...]
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


class WorkloadReader(Protocol):
    async def read(self, namespace: str, canary: str) -> WorkloadInfo:
        """Read the Canary and its target workload. Raises ``puerta.external`` errors:
        PermanentError for a missing Canary/workload or a 403 (Puerta may not read it)."""
        ...


@dataclass(frozen=True, slots=True)
class CommitRef:
    """Which commit of which repository an image was built from (a rule's answer)."""

    repository: str  # owner/repo
    sha: str  # as found: may be a short SHA
    image: str


@dataclass(frozen=True, slots=True)
class CommitInfo:
    """A commit as GitHub describes it."""

    repository: str
    sha: str  # the full SHA
    url: str  # html_url
    title: str  # the first line of the message
    author_name: str
    author_email: str | None  # None when GitHub hides it
    author_login: str | None  # the GitHub account, when the email maps to one
    committed_at: datetime


class CommitSource(Protocol):
    async def commit(self, repository: str, sha: str) -> CommitInfo:
        """Look a commit up (a short SHA is fine); PermanentError when there is none."""
        ...

    async def contains(self, repository: str, commit: str, newer: str) -> bool:
        """Whether ``newer`` includes ``commit`` (it is ``newer`` or one of its ancestors)."""
        ...
