"""GitLab CI (gitlab.com or self-hosted) behind :class:`~puerta.ci.base.CiProvider`.

A run is one pipeline created with ``POST /projects/:id/pipeline``; GitLab answers with the
pipeline's id at once, so the :class:`RunRef` is complete from the start and any replica can
poll it. The project is a numeric id or a full path; a path goes into the URL as ONE
percent-encoded segment (``group%2Fsub%2Fproject``) because that is how GitLab tells a
namespaced path from the rest of the route.

Every pipeline carries the run's correlation id as a CI/CD variable (``PUERTA_RUN_ID``, unless a
gate parameter already carries ``{run_id}``), so :meth:`GitLabCI.find` can recognise the
pipeline of a trigger whose answer was lost: it lists the project's API pipelines of the ref
created since the trigger and reads their variables (``GET .../pipelines/:pid/variables``).
A project that restricts pipeline variables refuses any variable, this one included.

Failures name the failed jobs (``GET .../pipelines/:pid/jobs?scope[]=failed``), skipping jobs
marked ``allow_failure`` since those did not fail the pipeline. The token travels in the
``PRIVATE-TOKEN`` header only and never appears in messages or logs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import structlog

from puerta.ci.base import (
    CannotTell,
    Part,
    PermanentError,
    ProviderError,
    RunRef,
    RunState,
    RunStatus,
    Target,
    TransientError,
    carries_correlation,
    created_at_or_after,
    with_correlation,
)
from puerta.ci.http import request

log = structlog.get_logger("puerta.ci.gitlab")

PROVIDER = "gitlab"

# find: pipelines listed per page, pages read, and pipelines whose variables are read (each
# a request), oldest first: the lost trigger's pipeline is among the first created since it
_PER_PAGE = 100
_FIND_PAGES = 3
_MAX_CANDIDATES = 25

# Pipeline status words (GitLab's ``status`` field) -> Puerta's states. ``manual`` and
# ``skipped`` get their own explanation in :func:`_reason`.
_STATES: dict[str, RunState] = {
    "created": RunState.QUEUED,
    "waiting_for_resource": RunState.QUEUED,
    "preparing": RunState.QUEUED,
    "pending": RunState.QUEUED,
    "scheduled": RunState.QUEUED,
    "running": RunState.RUNNING,
    "manual": RunState.RUNNING,  # blocked on a manual job: not done, not failed
    "success": RunState.SUCCEEDED,
    "failed": RunState.FAILED,
    "canceled": RunState.CANCELED,
    "canceling": RunState.CANCELED,
    "skipped": RunState.FAILED,  # nothing ran, so nothing was verified
}


# What to check when GitLab refuses the token (its own bodies just say "401 Unauthorized").
_HINTS = {
    401: " (check the access token: wrong, expired or revoked)",
    403: " (the token lacks the api scope or the permission to run pipelines here)",
}


def map_status(word: str) -> RunState:
    """Puerta's state for a pipeline status word.

    An unknown word (a status added by a newer GitLab) counts as RUNNING: it is never a pass,
    and the runner's deadline fails the run if it never turns into a known final state.
    """
    return _STATES.get(word, RunState.RUNNING)


def encode_project(project: str) -> str:
    """A project id or full path as one URL path segment (``acme/e2e`` -> ``acme%2Fe2e``)."""
    return quote(project.strip(), safe="")


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class GitLabCI:
    """Triggers and follows GitLab pipelines through the REST API v4."""

    kind = "gitlab"

    def __init__(
        self, client: httpx.AsyncClient, *, base_url: str = "https://gitlab.com", token: str
    ) -> None:
        self._client = client
        self._api = base_url.rstrip("/") + "/api/v4"
        self._headers = {"PRIVATE-TOKEN": token}

    def __repr__(self) -> str:  # keeps the token out of reprs in tracebacks and logs
        return f"GitLabCI(api={self._api!r})"

    # -- the protocol ----------------------------------------------------------------------
    async def trigger(self, target: Target) -> RunRef:
        """Create a pipeline for ``target.ref`` with the parameters as CI/CD variables."""
        if not target.ref:
            raise PermanentError(f"{PROVIDER}: a ref (branch or tag) is required to trigger")
        body = {
            "ref": target.ref,
            "variables": [
                {"key": key, "value": value, "variable_type": "env_var"}
                for key, value in with_correlation(target).items()
            ],
        }
        url = self._project_url(target.project) + "/pipeline"
        pipeline = await self._pipeline("POST", url, body)
        log.info("gitlab pipeline created", project=target.project, pipeline=pipeline.get("id"))
        return _ref_of(pipeline, target.project, _now_iso())

    def can_find(self, target: Target) -> bool:
        """A pipeline carries the correlation in its variables unless the gate took the
        ``PUERTA_RUN_ID`` name for something else."""
        return carries_correlation(with_correlation(target), target.correlation)

    async def find(self, target: Target, since: datetime) -> RunRef | None:
        """The earliest API pipeline of the ref created since ``since`` whose variables
        carry the correlation id."""
        if not self.can_find(target):
            raise CannotTell(f"{PROVIDER}: the gate's PUERTA_RUN_ID parameter is not the run id")
        if not target.ref:
            raise PermanentError(f"{PROVIDER}: a ref (branch or tag) is required")
        candidates, complete = await self._created_since(target, since)
        for pipeline in candidates[:_MAX_CANDIDATES]:
            url = self._pipeline_url(target.project, str(pipeline["id"])) + "/variables"
            variables = await self._call("GET", url)
            if _carries(variables, target.correlation):
                return _ref_of(pipeline, target.project, str(pipeline.get("created_at") or ""))
        if len(candidates) > _MAX_CANDIDATES or not complete:
            raise CannotTell(
                f"{PROVIDER}: too many pipelines of {target.ref} since {_iso(since)} to check "
                f"(read the variables of the first {_MAX_CANDIDATES})"
            )
        return None

    async def status(self, ref: RunRef, target: Target) -> RunStatus:
        """Poll the pipeline; on failure, also name the jobs that failed it."""
        if ref.id is None:
            raise PermanentError(f"{PROVIDER}: the run has no pipeline id")
        project = ref.data.get("project") or target.project
        url = self._pipeline_url(project, ref.id)
        pipeline = await self._pipeline("GET", url)
        word = str(pipeline.get("status", ""))
        state = map_status(word)
        web_url = pipeline.get("web_url") or ref.url
        parts: tuple[Part, ...] = ()
        if word == "failed":
            parts, reason = await self._failure(url, ref.id, web_url)
        else:
            reason = _reason(word, ref.id, web_url)
        return RunStatus(state=state, raw=word, reason=reason, url=web_url, parts=parts)

    async def cancel(self, ref: RunRef) -> bool:
        """Cancel the pipeline (its running and pending jobs); False without a pipeline id."""
        project = ref.data.get("project")
        if ref.id is None or not project:
            return False
        await self._call("POST", self._pipeline_url(project, ref.id) + "/cancel")
        log.info("gitlab pipeline cancelled", project=project, pipeline=ref.id)
        return True

    # -- helpers ---------------------------------------------------------------------------
    async def _created_since(
        self, target: Target, since: datetime
    ) -> tuple[list[dict[str, Any]], bool]:
        """The project's API pipelines of the ref created since ``since``, oldest first, and
        whether that is all of them. ``updated_after`` narrows the list on GitLab's side
        (every pipeline created since then was updated since); creation is checked here."""
        assert target.ref is not None
        params = [
            ("ref", target.ref),
            ("source", "api"),
            ("updated_after", _iso(since)),
            ("order_by", "id"),
            ("sort", "asc"),
            ("per_page", str(_PER_PAGE)),
        ]
        url = self._project_url(target.project) + "/pipelines"
        found: list[dict[str, Any]] = []
        for page in range(1, _FIND_PAGES + 1):
            listed = await self._call("GET", url, params=[*params, ("page", str(page))])
            if not isinstance(listed, list):
                raise TransientError(f"{PROVIDER}: {target.project}'s pipeline list is no list")
            found += [
                pipeline
                for pipeline in listed
                if isinstance(pipeline, dict)
                and pipeline.get("id") is not None
                and created_at_or_after(pipeline, since)
            ]
            if len(listed) < _PER_PAGE:
                return found, True
        return found, False

    def _project_url(self, project: str) -> str:
        return f"{self._api}/projects/{encode_project(project)}"

    def _pipeline_url(self, project: str, pipeline_id: str) -> str:
        return f"{self._project_url(project)}/pipelines/{quote(pipeline_id, safe='')}"

    async def _call(
        self,
        method: str,
        url: str,
        body: dict[str, Any] | None = None,
        params: list[tuple[str, str]] | None = None,
    ) -> Any:
        """One API call through the shared error mapping, with GitLab's messages flattened."""
        try:
            response = await request(
                self._client,
                method,
                url,
                provider=PROVIDER,
                headers=self._headers,
                json=body,
                params=params,
            )
        except PermanentError as exc:
            message = str(exc) + _HINTS.get(exc.status or 0, "")
            raise PermanentError(message, status=exc.status) from exc
        if response.is_redirect:  # http -> https, or a sign-in page: base_url is wrong
            where = response.headers.get("location", "?")
            raise PermanentError(
                f"{PROVIDER}: {method} {url} was redirected (HTTP {response.status_code}) to "
                f"{where}; check base_url",
                status=response.status_code,
            )
        try:
            return response.json() if response.content else None
        except ValueError as exc:  # a proxy's HTML page; the API itself always answers JSON
            raise TransientError(f"{PROVIDER}: {method} {url} did not answer JSON") from exc

    async def _pipeline(
        self, method: str, url: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A call that must answer a pipeline object."""
        value = await self._call(method, url, body)
        if not isinstance(value, dict) or "id" not in value:
            raise TransientError(f"{PROVIDER}: {method} {url} did not answer a pipeline")
        return value

    async def _failure(
        self, pipeline_url: str, pipeline_id: str, web_url: str | None
    ) -> tuple[tuple[Part, ...], str]:
        """The failed jobs (as parts) and a reason naming the first one.

        Failing to list the jobs must not hide the verdict the pipeline already gave, so a
        provider error here only makes the reason less specific.
        """
        try:
            jobs = await self._call(
                "GET",
                pipeline_url + "/jobs",
                params=[("scope[]", "failed"), ("per_page", "100")],
            )
            if not isinstance(jobs, list):
                raise TransientError(f"{PROVIDER}: the jobs of pipeline {pipeline_id} are no list")
        except ProviderError as exc:
            log.warning("gitlab failed jobs unavailable", pipeline=pipeline_id, error=str(exc))
            return (), _linked(f"pipeline {pipeline_id} failed", web_url)
        failed = [job for job in jobs if isinstance(job, dict) and not job.get("allow_failure")]
        return tuple(_part(job) for job in failed), _failure_reason(pipeline_id, web_url, failed)


def _ref_of(pipeline: dict[str, Any], project: str, triggered_at: str) -> RunRef:
    """The ref of a pipeline object (created, or found in a list)."""
    return RunRef(
        id=str(pipeline["id"]),
        number=_str_or_none(pipeline.get("iid")),
        url=pipeline.get("web_url"),
        triggered_at=triggered_at or None,
        data={"project": project},
    )


def _iso(instant: datetime) -> str:
    """``2026-03-02T10:00:00Z``: the form GitLab's date filters take."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _carries(variables: Any, correlation: str) -> bool:
    """Whether a pipeline's variables (``[{key, value, variable_type}]``) carry the id."""
    if not isinstance(variables, list):
        raise TransientError(f"{PROVIDER}: a pipeline's variables are no list")
    return any(
        isinstance(variable, dict) and correlation in str(variable.get("value", ""))
        for variable in variables
    )


def _part(job: dict[str, Any]) -> Part:
    return Part(
        name=str(job.get("name", "?")),
        status=str(job.get("status", "failed")),
        state=RunState.FAILED,
        url=job.get("web_url"),
    )


def _failure_reason(pipeline_id: str, web_url: str | None, failed: list[dict[str, Any]]) -> str:
    """``pipeline 1234 failed (job "e2e" in stage "test" failed): <job url>``."""
    if not failed:
        return _linked(f"pipeline {pipeline_id} failed", web_url)
    first = failed[0]
    what = f'job "{first.get("name", "?")}" in stage "{first.get("stage", "?")}"'
    if len(failed) > 1:
        what += f" and {len(failed) - 1} more"
    link = first.get("web_url") or web_url
    return _linked(f"pipeline {pipeline_id} failed ({what} failed)", link)


def _reason(word: str, pipeline_id: str, web_url: str | None) -> str:
    """One line for people about a pipeline that did not fail (failures: :func:`_failure`)."""
    if word == "manual":
        text = f"pipeline {pipeline_id} is waiting for a manual job"
    elif word == "success":
        text = f"pipeline {pipeline_id} succeeded"
    elif word == "skipped":
        text = f"pipeline {pipeline_id} was skipped"
    elif word in ("canceled", "canceling"):
        text = f"pipeline {pipeline_id} was canceled"
    elif word not in _STATES:
        text = f"pipeline {pipeline_id} has an unknown status {word!r}"
    else:
        text = f"pipeline {pipeline_id} is {word.replace('_', ' ')}"
    return _linked(text, web_url)


def _linked(text: str, url: str | None) -> str:
    return f"{text}: {url}" if url else text


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
