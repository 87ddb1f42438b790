"""CircleCI (cloud or server) behind :class:`~puerta.ci.base.CiProvider`, via API v2.

A run is one pipeline. Two triggers exist: with a pipeline definition id (``target.workflow``)
Puerta uses ``POST /project/{provider}/{organization}/{project}/pipeline/run``, the one that
works for GitHub App and Bitbucket Data Center projects; without one, the older
``POST /project/{project-slug}/pipeline``. CircleCI answers 201 with the pipeline's id, so the
:class:`RunRef` is complete at once; any other 2xx (a ``[ci skip]`` commit, for one) means no
pipeline was created, which must not pass as a run that is still coming.

A pipeline's own ``state`` only covers creation and config (``errored`` is its only verdict);
completion lives in its workflows, so :meth:`CircleCI.status` reads them all (paged) and
combines them: any workflow still going keeps the run RUNNING, then any failure fails it,
then any cancellation cancels it. Failures name the failed workflow and its failed jobs and
link to the workflow in the web UI.

Finding a pipeline again (:meth:`CircleCI.find`, after a trigger whose answer was lost) is
best effort. CircleCI refuses pipeline parameters the config does not declare, so Puerta adds
none of its own; and API v2 offers no documented way to read the parameters a pipeline was
triggered with: the pipeline list has a free-form ``trigger_parameters`` object that the API
description does not tie to them (users report it empty for API triggers). So when a gate
parameter carries ``{run_id}``, Puerta looks for it in ``trigger_parameters`` of the project's
pipelines on the ref created since the trigger, and adopts a pipeline that shows it; when none
does, it cannot tell whether there is one (:class:`CannotTell`) and the runner triggers again.

The slug's three segments are URL-encoded one by one with the ``/`` between them kept: the
API routes on those separators, and encoding the whole slug gives 404. The token travels in
the ``Circle-Token`` header only and never appears in messages, logs or reprs.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
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
)
from puerta.ci.http import request
from puerta.clock import Clock, SystemClock

log = structlog.get_logger("puerta.ci.circleci")

PROVIDER = "circleci"
DEFAULT_BASE_URL = "https://circleci.com/api/v2"
DEFAULT_APP_URL = "https://app.circleci.com"

# Pipeline parameter limits CircleCI documents; checked before sending so the message can
# name the parameter instead of relaying a generic 400.
MAX_PARAMETERS = 100
MAX_PARAMETER_NAME = 128
MAX_PARAMETER_VALUE = 512

# A server that hands out page tokens forever must not keep a poll going forever.
MAX_PAGES = 100
# find: pages of the project's pipeline list (newest first) read back to the trigger
FIND_PAGES = 5

# The web UI spells the VCS in full where the API slug may abbreviate it.
_VCS_LONG = {"gh": "github", "bb": "bitbucket"}

# Workflow status words -> Puerta's states. ``failing`` (a job failed, others still run) and
# ``on_hold`` (waiting for an approval) are not over yet; ``not_run`` never verified anything.
_WORKFLOW_STATES: dict[str, RunState] = {
    "success": RunState.SUCCEEDED,
    "running": RunState.RUNNING,
    "failing": RunState.RUNNING,
    "on_hold": RunState.RUNNING,
    "failed": RunState.FAILED,
    "error": RunState.FAILED,
    "not_run": RunState.FAILED,
    "unauthorized": RunState.FAILED,
    "canceled": RunState.CANCELED,
}

# How a reason says what happened to a workflow or a job (default: the word itself).
_SAID = {
    "error": "errored",
    "not_run": "was not run",
    "unauthorized": "was not authorized",
    "canceled": "was canceled",
    "failing": "is failing (a job failed, others still run)",
    "on_hold": "is on hold (waiting for an approval)",
    "running": "is running",
    "success": "succeeded",
    "infrastructure_fail": "failed (infrastructure)",
    "timedout": "timed out",
    "terminated-unknown": "was terminated",
}

# Job statuses that explain a failed workflow.
_FAILED_JOBS = frozenset(
    {"failed", "infrastructure_fail", "timedout", "terminated-unknown", "unauthorized"}
)

# What to check when CircleCI refuses a call (its own bodies are terse).
_HINTS = {
    401: " (check the API token: a personal API token is needed, project tokens do not work)",
    404: " (unknown project, pipeline or pipeline definition, or the token cannot see it)",
}


def map_workflow_status(word: str) -> RunState:
    """Puerta's state for a workflow status word.

    An unknown word (a status added by a newer CircleCI) counts as RUNNING: never a pass, and
    the runner's deadline fails the run if it never becomes a known final state.
    """
    return _WORKFLOW_STATES.get(word, RunState.RUNNING)


def overall_state(states: list[RunState]) -> RunState:
    """One state for a pipeline from its workflows' states.

    Anything still going wins (the verdict is not in yet), then a failure, then a
    cancellation; only all-succeeded succeeds. No workflows at all is QUEUED.
    """
    if not states:
        return RunState.QUEUED
    for state in (RunState.RUNNING, RunState.QUEUED, RunState.FAILED, RunState.CANCELED):
        if state in states:
            return state
    return RunState.SUCCEEDED


def check_parameters(parameters: Mapping[str, str]) -> None:
    """Refuse parameters over CircleCI's limits, naming the offending parameter."""
    if len(parameters) > MAX_PARAMETERS:
        raise PermanentError(
            f"{PROVIDER}: {len(parameters)} pipeline parameters; CircleCI takes at most "
            f"{MAX_PARAMETERS}"
        )
    for name, value in parameters.items():
        if len(name) > MAX_PARAMETER_NAME:
            raise PermanentError(
                f"{PROVIDER}: pipeline parameter {name[:40]!r}... has a name of {len(name)} "
                f"characters; CircleCI takes at most {MAX_PARAMETER_NAME}"
            )
        if len(value) > MAX_PARAMETER_VALUE:
            raise PermanentError(
                f"{PROVIDER}: pipeline parameter {name!r} has a value of {len(value)} "
                f"characters; CircleCI takes at most {MAX_PARAMETER_VALUE}"
            )


def check_definition_id(definition_id: str) -> None:
    """A pipeline definition id is a uuid (Project Settings > Pipelines); say so up front."""
    try:
        uuid.UUID(definition_id)
    except ValueError:
        raise PermanentError(
            f"{PROVIDER}: pipeline definition id {definition_id!r} is not a uuid "
            "(find it in Project Settings > Pipelines)"
        ) from None


@dataclass(frozen=True, slots=True)
class Slug:
    """A project slug ``vcs/org/repo`` (``gh/acme/shop``, ``circleci/<org-id>/<project-id>``)."""

    vcs: str
    org: str
    repo: str

    @classmethod
    def parse(cls, project: str) -> Slug:
        parts = project.strip().strip("/").split("/")
        if len(parts) != 3 or not all(parts):
            raise PermanentError(
                f"{PROVIDER}: project {project!r} is not a slug like gh/org/repo "
                "or circleci/<org-id>/<project-id>"
            )
        return cls(*parts)

    def api_path(self) -> str:
        """``/project/gh/acme/shop``: each segment encoded, the separators kept."""
        return "/project/" + "/".join(quote(part, safe="") for part in self.segments())

    def web_url(self, app_url: str, number: str | int) -> str:
        """The pipeline's page in the web UI (``.../pipelines/github/acme/shop/123``)."""
        vcs = _VCS_LONG.get(self.vcs, self.vcs)
        path = "/".join(quote(part, safe="") for part in (vcs, self.org, self.repo))
        return f"{app_url}/pipelines/{path}/{number}"

    def segments(self) -> tuple[str, str, str]:
        return (self.vcs, self.org, self.repo)

    def __str__(self) -> str:
        return "/".join(self.segments())


@dataclass(frozen=True, slots=True)
class _Workflow:
    id: str
    name: str
    status: str

    @property
    def state(self) -> RunState:
        return map_workflow_status(self.status)


def _ref_body(target: Target) -> dict[str, str]:
    """``{"branch": ref}`` or ``{"tag": ref}``; empty without a ref (the default branch)."""
    if not target.ref:
        return {}
    return {"tag" if target.ref_is_tag else "branch": target.ref}


def legacy_body(target: Target) -> dict[str, Any]:
    """Body of ``POST /project/{slug}/pipeline``: the ref and the parameters (as strings)."""
    return {**_ref_body(target), "parameters": dict(target.parameters)}


def run_body(target: Target) -> dict[str, Any]:
    """Body of ``POST .../pipeline/run``; config and checkout follow the same ref."""
    body: dict[str, Any] = {"definition_id": target.workflow}
    ref = _ref_body(target)
    if ref:
        body["config"] = dict(ref)
        body["checkout"] = dict(ref)
    body["parameters"] = dict(target.parameters)
    return body


class CircleCI:
    """Triggers and follows CircleCI pipelines through API v2.

    ``app_url`` is the web UI for links (``https://app.circleci.com``, or a CircleCI server
    install's own); ``clock`` stamps ``triggered_at``.
    """

    kind = PROVIDER

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str = DEFAULT_BASE_URL,
        token: str,
        app_url: str = DEFAULT_APP_URL,
        clock: Clock | None = None,
    ) -> None:
        if not token:
            raise ValueError(f"{PROVIDER}: an API token is required")
        self._client = client
        self._api = base_url.rstrip("/")
        self._app = app_url.rstrip("/")
        self._headers = {"Circle-Token": token, "Accept": "application/json"}
        self._clock = clock or SystemClock()

    def __repr__(self) -> str:  # keeps the token out of reprs in tracebacks and logs
        return f"CircleCI(api={self._api!r}, app={self._app!r})"

    # -- the protocol ----------------------------------------------------------------------
    async def trigger(self, target: Target) -> RunRef:
        """Create a pipeline; raise PermanentError if CircleCI answers without creating one."""
        slug = Slug.parse(target.project)
        check_parameters(target.parameters)
        if target.workflow:
            check_definition_id(target.workflow)
            path, body = slug.api_path() + "/pipeline/run", run_body(target)
        else:
            path, body = slug.api_path() + "/pipeline", legacy_body(target)
        triggered_at = self._clock.now().isoformat(timespec="seconds")
        response = await self._send("POST", path, json=body)
        created = _created(response)
        number = str(created["number"])
        log.info("circleci pipeline created", project=str(slug), pipeline=created["id"])
        return RunRef(
            id=str(created["id"]),
            number=number,
            url=slug.web_url(self._app, number),
            triggered_at=triggered_at,
            data={"slug": str(slug)},
        )

    async def status(self, ref: RunRef, target: Target) -> RunStatus:
        """The pipeline's state: its errors if it errored, else its workflows combined."""
        if ref.id is None:
            raise PermanentError(f"{PROVIDER}: the run has no pipeline id")
        pipeline = await self._get(f"/pipeline/{quote(ref.id, safe='')}")
        link = self._pipeline_link(ref, target, pipeline)
        state_word = str(pipeline.get("state", ""))
        if state_word == "errored":
            reason = _linked(_errored(pipeline), link)
            return RunStatus(RunState.FAILED, raw=state_word, reason=reason, url=link)
        workflows = await self._workflows(ref.id)
        if not workflows:
            reason = _linked(f"pipeline is {state_word}, no workflow has started yet", link)
            return RunStatus(RunState.QUEUED, raw=state_word, reason=reason, url=link)
        parts = tuple(_part(w, link) for w in workflows)
        state = overall_state([w.state for w in workflows])
        reason = await self._reason(state, workflows, link)
        raw = ",".join(f"{w.name}:{w.status}" for w in workflows)
        return RunStatus(state, raw=raw, reason=reason, url=link, parts=parts)

    def can_find(self, target: Target) -> bool:
        """Only a pipeline whose parameters carry ``{run_id}`` can be recognised, and only if
        CircleCI shows them back (see the module docstring)."""
        return carries_correlation(target.parameters, target.correlation)

    async def find(self, target: Target, since: datetime) -> RunRef | None:
        """The earliest pipeline of the project (on the ref's branch) created since ``since``
        whose ``trigger_parameters`` show the correlation id. Never None: CircleCI does not
        promise to show parameters there, so finding none is :class:`CannotTell`."""
        if not self.can_find(target):
            raise CannotTell(f"{PROVIDER}: no pipeline parameter carries the run id ({{run_id}})")
        slug = Slug.parse(target.project)
        branch = {"branch": target.ref} if target.ref and not target.ref_is_tag else {}
        matches = await self._pipelines_since(slug, branch, since, target.correlation)
        if not matches:
            raise CannotTell(
                f"{PROVIDER}: no pipeline of {slug} since {since:%Y-%m-%d %H:%M:%S} UTC shows "
                "the run id in its trigger_parameters, and CircleCI does not promise to show "
                "a pipeline's parameters there"
            )
        pipeline = min(matches, key=lambda found: int(found.get("number") or 0))
        number = str(pipeline.get("number", "?"))
        return RunRef(
            id=str(pipeline["id"]),
            number=number,
            url=slug.web_url(self._app, number),
            triggered_at=since.isoformat(timespec="seconds"),
            data={"slug": str(slug)},
        )

    async def cancel(self, ref: RunRef) -> bool:
        """Cancel every workflow of the pipeline that is still going.

        True when it cancelled some or all were over already; False without a pipeline id or
        while the pipeline has no workflows yet (API v2 cannot cancel a pipeline as such).
        """
        if ref.id is None:
            return False
        workflows = await self._workflows(ref.id)
        if not workflows:
            return False
        for workflow in workflows:
            if not workflow.state.terminal:
                await self._send("POST", f"/workflow/{quote(workflow.id, safe='')}/cancel")
                log.info("circleci workflow cancelled", pipeline=ref.id, workflow=workflow.id)
        return True

    # -- reading ---------------------------------------------------------------------------
    async def _pipelines_since(
        self, slug: Slug, branch: dict[str, str], since: datetime, correlation: str
    ) -> list[dict[str, Any]]:
        """Pipelines of the list (newest first) created since ``since`` that show the
        correlation id, reading pages until one reaches back before ``since``."""
        path = slug.api_path() + "/pipeline"
        matches: list[dict[str, Any]] = []
        params = dict(branch)
        for _ in range(FIND_PAGES):
            page = await self._get(path, params=params)
            items = [item for item in page.get("items") or [] if isinstance(item, dict)]
            recent = [item for item in items if created_at_or_after(item, since)]
            matches += [
                item
                for item in recent
                if item.get("id") and _shows(item.get("trigger_parameters"), correlation)
            ]
            token = page.get("next_page_token")
            if len(recent) < len(items) or not token:
                break
            params = {**branch, "page-token": str(token)}
        return matches

    async def _workflows(self, pipeline_id: str) -> list[_Workflow]:
        items = await self._pages(f"/pipeline/{quote(pipeline_id, safe='')}/workflow")
        return [
            _Workflow(str(item["id"]), str(item.get("name", "?")), str(item.get("status", "")))
            for item in items
            if item.get("id")
        ]

    async def _failed_jobs(self, workflow: _Workflow) -> list[tuple[str, str]]:
        """(name, status) of the workflow's failed jobs; none if they cannot be read.

        The workflow's own status already gave the verdict, so failing to list its jobs only
        makes the reason less specific.
        """
        try:
            items = await self._pages(f"/workflow/{quote(workflow.id, safe='')}/job")
        except ProviderError as exc:
            log.warning("circleci jobs unavailable", workflow=workflow.id, error=str(exc))
            return []
        return [
            (str(item.get("name", "?")), str(item.get("status")))
            for item in items
            if item.get("status") in _FAILED_JOBS
        ]

    async def _pages(self, path: str) -> list[dict[str, Any]]:
        """All items of a paged list, following ``next_page_token``."""
        items: list[dict[str, Any]] = []
        params: dict[str, str] = {}
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            page = await self._get(path, params=params)
            items.extend(item for item in page.get("items") or [] if isinstance(item, dict))
            token = page.get("next_page_token")
            if not token or token in seen:
                return items
            seen.add(token)
            params = {"page-token": str(token)}
        raise TransientError(f"{PROVIDER}: {path} has more than {MAX_PAGES} pages")

    async def _get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        response = await self._send("GET", path, params=params)
        return _object(response, path)

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call through the shared error mapping, with a hint on 401/404."""
        try:
            return await request(
                self._client,
                method,
                self._api + path,
                provider=PROVIDER,
                headers=self._headers,
                **kwargs,
            )
        except PermanentError as exc:
            hint = _HINTS.get(exc.status or 0, "")
            raise PermanentError(str(exc) + hint, status=exc.status) from exc

    # -- describing ------------------------------------------------------------------------
    def _pipeline_link(self, ref: RunRef, target: Target, pipeline: Mapping[str, Any]) -> str:
        """The pipeline's web page, from what the ref stored or what the pipeline says."""
        if ref.url:
            return ref.url
        slug = Slug.parse(
            ref.data.get("slug") or str(pipeline.get("project_slug") or target.project)
        )
        return slug.web_url(self._app, ref.number or str(pipeline.get("number", "?")))

    async def _reason(self, state: RunState, workflows: list[_Workflow], link: str) -> str:
        if state is RunState.FAILED:
            failed = [w for w in workflows if w.state is RunState.FAILED]
            return "; ".join([await self._failure(w, link) for w in failed])
        if state is RunState.SUCCEEDED:
            names = ", ".join(f'"{w.name}"' for w in workflows)
            noun = "workflow" if len(workflows) == 1 else "workflows"
            return _linked(f"{noun} {names} succeeded", link)
        wanted = RunState.CANCELED if state is RunState.CANCELED else RunState.RUNNING
        return "; ".join(
            _linked(_said(w.name, w.status), _workflow_link(link, w))
            for w in workflows
            if w.state is wanted
        )

    async def _failure(self, workflow: _Workflow, link: str) -> str:
        """``workflow "e2e" failed (job "playwright" failed): <workflow link>``."""
        jobs = await self._failed_jobs(workflow)
        text = _said(workflow.name, workflow.status)
        if jobs:
            text += " (" + ", ".join(f'job "{name}" {_word(st)}' for name, st in jobs) + ")"
        return _linked(text, _workflow_link(link, workflow))


def _created(response: httpx.Response) -> dict[str, Any]:
    """The 201 body; any other 2xx means CircleCI created no pipeline (e.g. ``[ci skip]``)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 201:
        message = body.get("message") if isinstance(body, dict) else None
        raise PermanentError(
            f"{PROVIDER}: no pipeline was triggered (HTTP {response.status_code}): "
            f"{message or response.text[:200] or 'no message'}",
            status=response.status_code,
        )
    if not isinstance(body, dict) or "id" not in body or "number" not in body:
        # The pipeline may exist; retrying could start a second one, so this is permanent.
        raise PermanentError(f"{PROVIDER}: the trigger's answer has no pipeline id and number")
    return body


def _shows(value: Any, correlation: str) -> bool:
    """Whether the correlation id is a value anywhere in ``trigger_parameters``."""
    if isinstance(value, Mapping):
        return any(_shows(inner, correlation) for inner in value.values())
    if isinstance(value, list):
        return any(_shows(inner, correlation) for inner in value)
    return isinstance(value, str) and correlation in value


def _object(response: httpx.Response, path: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise TransientError(f"{PROVIDER}: GET {path} did not answer with a JSON object")
    return body


def _errored(pipeline: Mapping[str, Any]) -> str:
    """``pipeline errored: config: Config does not conform to schema; ...``."""
    errors = [
        f"{error.get('type', 'error')}: {error.get('message', '')}".strip()
        for error in pipeline.get("errors") or []
        if isinstance(error, dict)
    ]
    return "pipeline errored" + (": " + "; ".join(errors) if errors else "")


def _part(workflow: _Workflow, link: str) -> Part:
    return Part(
        name=workflow.name,
        status=workflow.status,
        state=workflow.state,
        url=_workflow_link(link, workflow),
    )


def _workflow_link(pipeline_link: str, workflow: _Workflow) -> str:
    return f"{pipeline_link}/workflows/{quote(workflow.id, safe='')}"


def _said(name: str, status: str) -> str:
    return f'workflow "{name}" {_word(status)}'


def _word(status: str) -> str:
    return _SAID.get(status, status.replace("_", " "))


def _linked(text: str, url: str | None) -> str:
    return f"{text}: {url}" if url else text
