"""The contract every CI provider module fulfils, and the values they exchange with Puerta.

A provider triggers a run of a pipeline/workflow/job (:class:`Target`), returns a
:class:`RunRef` by which the run is found again (stored in the database, so any replica, after
any restart, follows the same run), reports its :class:`RunStatus` and cancels it where the API
allows. When a trigger's answer was lost (a timeout, a dropped connection, a replica that died
mid-call), :meth:`CiProvider.find` looks for the run that trigger may have started, by the
correlation id each run carries, so the runner adopts it instead of triggering a second one.
Errors are classified once, here, so the runner treats every provider alike:
:class:`TransientError` (outage, 5xx, timeout: retry with backoff, never a pass),
:class:`RateLimited` (429 / Retry-After: wait that long), :class:`PermanentError` (bad token,
unknown project, invalid parameters: the run fails with the provider's message).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from puerta.external import PermanentError, ProviderError, RateLimited, TransientError

__all__ = [
    "CORRELATION_PARAMETER",
    "CannotTell",
    "CiProvider",
    "Part",
    "PermanentError",
    "ProviderError",
    "RateLimited",
    "RunRef",
    "RunState",
    "RunStatus",
    "Target",
    "TransientError",
    "carries_correlation",
    "with_correlation",
]

#: the GitLab variable / Jenkins build parameter that carries :attr:`Target.correlation`
#: (Puerta adds it where the provider accepts a parameter the gate did not list), so
#: :meth:`CiProvider.find` can recognise the run later
CORRELATION_PARAMETER = "PUERTA_RUN_ID"


class CannotTell(PermanentError):
    """:meth:`CiProvider.find` cannot say whether an earlier trigger started a run (the
    provider does not show what would identify it, or there are too many runs to check)."""


class RunState(StrEnum):
    """A run's state, the same words for every provider."""

    QUEUED = "queued"  # accepted, not started (or not found yet: GitHub without a run id)
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # failed, errored, timed out, not run, unauthorised, ...
    CANCELED = "canceled"  # cancelled (by a person, or by Puerta for a new revision)

    @property
    def terminal(self) -> bool:
        return self in (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELED)


@dataclass(frozen=True, slots=True)
class Target:
    """What to run, rendered from the policy for one rollout (templates already filled in).

    ``project``: CircleCI project slug (``gh/org/repo``, or ``circleci/<org-id>/<project-id>``);
    GitHub ``owner/repo``; GitLab project id or full path (``group/sub/project``); Jenkins job
    path (``folder/job``). ``workflow``: GitHub workflow file name or id (required there);
    CircleCI pipeline definition id (uuid; selects the newer ``/pipeline/run`` trigger);
    unused elsewhere. ``ref``: branch (or tag when ``ref_is_tag``); Jenkins ignores it.
    ``correlation``: unique per run (``{run_id}``); a run is found by it when its id was
    never learnt: GitHub's 204, or a trigger whose answer was lost (see :meth:`CiProvider.find`).
    """

    project: str
    ref: str | None = None
    ref_is_tag: bool = False
    workflow: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    correlation: str = ""


@dataclass(frozen=True, slots=True)
class RunRef:
    """How to find a run again; stored as JSON (see :meth:`as_dict` / :meth:`from_dict`).

    ``id`` is the provider's id (CircleCI pipeline id, GitHub run id, GitLab pipeline id,
    Jenkins build URL) or None while it is not known yet (GitHub 204 before the run is found;
    Jenkins while the build is still a queue item, whose URL is then in ``data["queue_url"]``).
    ``triggered_at``: ISO-8601 UTC instant of the trigger call (GitHub searches runs created
    after it). ``data``: anything else the provider needs (strings only).
    """

    id: str | None
    url: str | None = None  # a link for people (the provider's web UI)
    number: str | None = None  # pipeline/run/build number, for display
    triggered_at: str | None = None
    data: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "number": self.number,
            "triggered_at": self.triggered_at,
            "data": dict(self.data),
        }

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> RunRef:
        return cls(
            id=value.get("id"),
            url=value.get("url"),
            number=value.get("number"),
            triggered_at=value.get("triggered_at"),
            data={str(k): str(v) for k, v in (value.get("data") or {}).items()},
        )


@dataclass(frozen=True, slots=True)
class Part:
    """A workflow or job inside a run (CircleCI workflow, GitLab job, ...)."""

    name: str
    status: str  # the provider's own word, e.g. "failed", "on_hold"
    state: RunState
    url: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "state": self.state.value,
            "url": self.url,
        }


@dataclass(frozen=True, slots=True)
class RunStatus:
    """What a poll found.

    ``raw``: the provider's own status words (e.g. ``"completed/failure"``), stored in the
    run's history. ``reason``: one line for people; for a failure it names the failed
    workflow/job and links to it (``"workflow e2e failed: https://..."``). ``ref``: set when
    the poll learnt more about the run (GitHub found the run; Jenkins' queue item became a
    build), so the caller stores the new ref.
    """

    state: RunState
    raw: str
    reason: str = ""
    url: str | None = None
    parts: tuple[Part, ...] = ()
    ref: RunRef | None = None


def created_at_or_after(item: Mapping[str, Any], since: datetime) -> bool:
    """Whether a listed run or pipeline was created at or after ``since``, by its ISO
    ``created_at`` (kept when missing or unreadable: the correlation id decides then)."""
    try:
        created = datetime.fromisoformat(str(item["created_at"]))
    except (KeyError, ValueError):
        return True
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return created >= since


def carries_correlation(parameters: dict[str, str], correlation: str) -> bool:
    """Whether some parameter value carries the correlation id (``{run_id}`` templated in)."""
    return bool(correlation) and any(correlation in value for value in parameters.values())


def with_correlation(target: Target) -> dict[str, str]:
    """The target's parameters plus ``PUERTA_RUN_ID=<correlation>``, for providers that take
    a parameter the gate did not list (GitLab variables; Jenkins drops undeclared ones). Not
    added when a parameter already carries the correlation or the gate uses the name."""
    parameters = dict(target.parameters)
    if (
        target.correlation
        and CORRELATION_PARAMETER not in parameters
        and not carries_correlation(parameters, target.correlation)
    ):
        parameters[CORRELATION_PARAMETER] = target.correlation
    return parameters


class CiProvider(Protocol):
    """One CI system. Implementations hold an ``httpx.AsyncClient`` given to them."""

    @property
    def kind(self) -> str:
        """``circleci`` | ``github`` | ``gitlab`` | ``jenkins``."""
        ...

    async def trigger(self, target: Target) -> RunRef:
        """Start one run. Raises ProviderError subclasses."""
        ...

    async def status(self, ref: RunRef, target: Target) -> RunStatus:
        """The run's state now (follows a queue item, finds a run by correlation, ...)."""
        ...

    async def cancel(self, ref: RunRef) -> bool:
        """Cancel the run; False when the API cannot (or the run is not known yet)."""
        ...

    def can_find(self, target: Target) -> bool:
        """Whether :meth:`find` can look for this target's run at all, judged without a
        request: the correlation id travels with the run somewhere the provider shows it
        back. False: the runner does not ask, and a trigger whose answer was lost is sent
        again (a second run is then possible; it says so in a warning)."""
        ...

    async def find(self, target: Target, since: datetime) -> RunRef | None:
        """The run an earlier trigger of ``target`` started (created at or after ``since``),
        recognised by :attr:`Target.correlation`; the earliest if there are several.

        None: there is none (the trigger never reached the provider). Raises
        :class:`CannotTell` (or another PermanentError) when the provider cannot say, and
        TransientError/RateLimited when it cannot answer now. Its requests draw from the
        provider's budget like any other.
        """
        ...
