"""A fake GitHub Actions REST API: workflow dispatch (200 with run details, 204, or the old
Enterprise refusal of the flag), run lists that lag behind the dispatch, scripted run states,
jobs, cancel, GitHub's error bodies and its rate-limit answers (403/429 with ``retry-after``
or ``x-ratelimit-*``), and ``workflow_run`` webhook payloads.

Register workflows with :meth:`FakeGitHub.add_workflow`; each dispatch creates a
:class:`FakeRun` whose state follows :attr:`FakeGitHub.script` one step per GET of the run.
Routes answer both at ``/`` (github.com) and under ``/api/v3`` (GitHub Enterprise Server).
"""

from __future__ import annotations

import json
import operator
import string
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from fakes.base import FakeBase

DispatchMode = Literal["details", "reject_flag", "204"]
Step = tuple[str, str | None]  # (status, conclusion)
JobSpec = tuple[str, str, str | None]  # (name, status, conclusion)

DOCS = "https://docs.github.com/rest"
API = "https://api.github.com"
DEFAULT_SCRIPT: tuple[Step, ...] = (
    ("queued", None),
    ("in_progress", None),
    ("completed", "success"),
)
SUPPORTED_API_VERSIONS = frozenset({"2022-11-28", "2026-03-10"})
SECONDARY_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _stamp(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    """GitHub's error body: ``message``, ``documentation_url`` and the status as a string."""
    body = {"message": message, "documentation_url": DOCS, "status": str(status)}
    return JSONResponse(body, status_code=status, headers=headers or None)


def _template_fields(template: str) -> set[str]:
    """The ``{name}`` fields of a run-name template (the inputs the run-name echoes)."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@dataclass
class FakeWorkflow:
    """A workflow file: its declared inputs and the run-name template over them."""

    id: int
    repo: str
    file: str
    name: str
    run_name: str
    inputs: frozenset[str]
    required: frozenset[str]
    refs: frozenset[str] | None  # None: any ref exists
    jobs: tuple[str, ...]

    def title(self, inputs: dict[str, Any]) -> str:
        """The run's ``display_title``: run-name rendered (missing inputs empty) or the name."""
        if not self.run_name:
            return self.name
        values = {name: str(inputs.get(name, "")) for name in _template_fields(self.run_name)}
        return self.run_name.format_map(values)

    def as_json(self) -> dict[str, Any]:
        path = f".github/workflows/{self.file}"
        return {
            "id": self.id,
            "node_id": f"W_kwDO{self.id}",
            "name": self.name,
            "path": path,
            "state": "active",
            "created_at": "2025-01-06T09:00:00Z",
            "updated_at": "2025-01-06T09:00:00Z",
            "url": f"{API}/repos/{self.repo}/actions/workflows/{self.id}",
            "html_url": f"https://github.com/{self.repo}/blob/main/{path}",
            "badge_url": f"https://github.com/{self.repo}/workflows/{self.name}/badge.svg",
        }


@dataclass
class FakeRun:
    """One dispatched run. Its state is ``pinned`` if set, else the current ``script`` step."""

    id: int
    number: int
    workflow: FakeWorkflow
    ref: str
    inputs: dict[str, Any]
    display_title: str
    created_at: datetime
    script: list[Step]
    step: int = 0
    pinned: Step | None = None
    list_calls: int = 0
    jobs: list[JobSpec] | None = None  # None: the workflow's jobs mirror the run

    @property
    def state(self) -> Step:
        return self.pinned or self.script[min(self.step, len(self.script) - 1)]

    @property
    def html_url(self) -> str:
        return f"https://github.com/{self.workflow.repo}/actions/runs/{self.id}"

    def as_json(
        self, *, status: str | None = None, conclusion: str | None = None
    ) -> dict[str, Any]:
        """The REST/webhook workflow-run object (the fields Puerta and people look at)."""
        now_status, now_conclusion = self.state
        repo = self.workflow.repo
        return {
            "id": self.id,
            "name": self.workflow.name,
            "node_id": f"WFR_kwLO{self.id}",
            "head_branch": self.ref.removeprefix("refs/heads/"),
            "head_sha": f"{self.id:040x}"[-40:],
            "path": f".github/workflows/{self.workflow.file}",
            "display_title": self.display_title,
            "run_number": self.number,
            "event": "workflow_dispatch",
            "status": status or now_status,
            "conclusion": conclusion if status else now_conclusion,
            "workflow_id": self.workflow.id,
            "url": f"{API}/repos/{repo}/actions/runs/{self.id}",
            "html_url": self.html_url,
            "jobs_url": f"{API}/repos/{repo}/actions/runs/{self.id}/jobs",
            "cancel_url": f"{API}/repos/{repo}/actions/runs/{self.id}/cancel",
            "run_attempt": 1,
            "created_at": _stamp(self.created_at),
            "updated_at": _stamp(self.created_at),
            "run_started_at": _stamp(self.created_at),
        }

    def job_specs(self) -> list[JobSpec]:
        if self.jobs is not None:
            return self.jobs
        status, conclusion = self.state
        return [(name, status, conclusion) for name in self.workflow.jobs]


@dataclass
class _Answer:
    """A canned answer armed for the next requests (rate limits, per-route faults)."""

    status: int
    message: str
    headers: dict[str, str]
    remaining: int
    path_fragment: str = ""


@dataclass
class FakeGitHub(FakeBase):
    """GitHub's Actions API as far as Puerta uses it. See the module docstring."""

    token: str = "ghs_fake_0123456789abcdef"
    dispatch_mode: DispatchMode = "details"
    list_delay: int = 0  # list calls that do not show a new run yet
    script: list[Step] = field(default_factory=lambda: list(DEFAULT_SCRIPT))
    now: Callable[[], datetime] = _utcnow
    workflows: dict[tuple[str, str], FakeWorkflow] = field(default_factory=dict)
    runs: dict[int, FakeRun] = field(default_factory=dict)
    dispatches: list[dict[str, Any]] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    _answers: list[_Answer] = field(default_factory=list)
    _next_id: int = 9_100_000_001
    app: Starlette = field(init=False)

    def __post_init__(self) -> None:
        self.app = Starlette(routes=[*self._routes(), Mount("/api/v3", routes=self._routes())])

    # ---- set-up helpers for tests ------------------------------------------------------

    @property
    def return_run_details(self) -> bool:
        """Shorthand: True answers 200 with ids; False refuses the flag like older GHES."""
        return self.dispatch_mode == "details"

    @return_run_details.setter
    def return_run_details(self, value: bool) -> None:
        self.dispatch_mode = "details" if value else "reject_flag"

    def add_workflow(
        self,
        repo: str,
        file: str,
        *,
        run_name: str = "",
        name: str | None = None,
        inputs: Iterable[str] = (),
        required: Iterable[str] = (),
        refs: Iterable[str] | None = None,
        jobs: Iterable[str] = ("e2e",),
    ) -> FakeWorkflow:
        """Register ``.github/workflows/<file>`` in ``repo``.

        ``run_name`` is a template over inputs (``"E2E {puerta_run}"``) rendered into each
        run's ``display_title``; its fields are declared inputs, as are ``inputs`` and
        ``required``. ``refs``: the branches/tags that exist (None: any).
        """
        required_set = frozenset(required)
        workflow = FakeWorkflow(
            id=161_335 + len(self.workflows),
            repo=repo,
            file=file,
            name=name or file.rsplit(".", 1)[0],
            run_name=run_name,
            inputs=frozenset(inputs) | required_set | _template_fields(run_name),
            required=required_set,
            refs=frozenset(refs) if refs is not None else None,
            jobs=tuple(jobs),
        )
        with self._lock:
            self.workflows[(repo, file)] = workflow
        return workflow

    @property
    def last_run(self) -> FakeRun:
        with self._lock:
            return self.runs[max(self.runs)]

    def complete(self, run_id: int | str, conclusion: str = "success") -> None:
        """Finish the run now with ``conclusion`` (its script no longer applies)."""
        with self._lock:
            self.runs[int(run_id)].pinned = ("completed", conclusion)

    def set_script(self, run_id: int | str, script: Iterable[Step]) -> None:
        """Give one run its own progression (one step per GET of the run, last repeats)."""
        with self._lock:
            run = self.runs[int(run_id)]
            run.script, run.step, run.pinned = list(script), 0, None

    def set_jobs(self, run_id: int | str, jobs: Iterable[JobSpec]) -> None:
        """The run's jobs as ``(name, status, conclusion)``, e.g. a failed ``playwright``."""
        with self._lock:
            self.runs[int(run_id)].jobs = list(jobs)

    def secondary_rate_limit_next(
        self, *, retry_after: int | None = 60, status: int = 403, count: int = 1
    ) -> None:
        """GitHub's secondary limit: 403 (or 429) with its message and ``retry-after``."""
        headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
        self._arm(_Answer(status, SECONDARY_LIMIT_MESSAGE, headers, count))

    def primary_rate_limit_next(
        self, *, reset_in: int = 600, status: int = 403, count: int = 1
    ) -> None:
        """GitHub's primary limit: ``x-ratelimit-remaining: 0`` and the reset epoch."""
        reset = int(self.now().timestamp()) + reset_in
        headers = {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-used": "5000",
            "x-ratelimit-reset": str(reset),
            "x-ratelimit-resource": "core",
        }
        message = "API rate limit exceeded for installation ID 4242."
        self._arm(_Answer(status, message, headers, count))

    def fail_next_on(
        self, path_fragment: str, *, status: int = 503, message: str = "", count: int = 1
    ) -> None:
        """The next ``count`` requests whose path contains ``path_fragment`` get ``status``."""
        text = message or f"injected HTTP {status}"
        self._arm(_Answer(status, text, {}, count, path_fragment))

    def workflow_run_event(self, run_id: int | str, action: str = "completed") -> dict[str, Any]:
        """A ``workflow_run`` webhook payload for the run, as GitHub would deliver it."""
        with self._lock:
            run = self.runs[int(run_id)]
        if action == "completed":
            status, conclusion = run.state
            if status != "completed":
                raise ValueError("complete() the run before a 'completed' event")
            body = run.as_json(status="completed", conclusion=conclusion)
        else:
            body = run.as_json(status="queued" if action == "requested" else action)
        owner, name = run.workflow.repo.split("/")
        repository = {
            "id": 7_001,
            "name": name,
            "full_name": run.workflow.repo,
            "private": True,
            "owner": {"login": owner, "id": 7_000, "type": "Organization"},
            "html_url": f"https://github.com/{run.workflow.repo}",
        }
        sender = {"login": "puerta-bot[bot]", "id": 7_002, "type": "Bot"}
        return {
            "action": action,
            "workflow_run": {**body, "repository": repository, "head_repository": repository},
            "workflow": run.workflow.as_json(),
            "repository": repository,
            "sender": sender,
        }

    # ---- routing -----------------------------------------------------------------------

    def _routes(self) -> list[BaseRoute]:
        base = "/repos/{owner}/{repo}/actions"
        return [
            Route(
                f"{base}/workflows/{{workflow}}/dispatches",
                self._guard(self._dispatch),
                methods=["POST"],
            ),
            Route(f"{base}/workflows/{{workflow}}/runs", self._guard(self._list), methods=["GET"]),
            Route(f"{base}/runs/{{run_id:int}}", self._guard(self._get_run), methods=["GET"]),
            Route(f"{base}/runs/{{run_id:int}}/jobs", self._guard(self._jobs), methods=["GET"]),
            Route(
                f"{base}/runs/{{run_id:int}}/cancel", self._guard(self._cancel), methods=["POST"]
            ),
        ]

    def _guard(
        self, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """Log, then injected faults, armed answers, API version and token, then the route
        (and a late answer, if one is armed)."""

        async def endpoint(request: Request) -> Response:
            await self.record(request)
            fault = self.injected()
            if fault is not None:
                return await self.fault_response(fault)
            refused = self._armed(request.url.path) or self._refuse(request)
            if refused is not None:
                return refused
            response = await handler(request)
            response.headers.update(self._rate_headers())
            await self.hold_answer(request.method, request.url.path)
            return response

        return endpoint

    def _arm(self, answer: _Answer) -> None:
        with self._lock:
            self._answers.append(answer)

    def _armed(self, path: str) -> Response | None:
        with self._lock:
            for answer in self._answers:
                if answer.path_fragment in path:
                    answer.remaining -= 1
                    if answer.remaining <= 0:
                        self._answers.remove(answer)
                    return _error(answer.status, answer.message, **answer.headers)
        return None

    def _refuse(self, request: Request) -> Response | None:
        """GitHub's checks before any route: API version, then the token."""
        version = request.headers.get("x-github-api-version")
        if version is not None and version not in SUPPORTED_API_VERSIONS:
            return _error(400, f"API version '{version}' is not supported.")
        authorization = request.headers.get("authorization", "")
        if not authorization:
            return _error(401, "Requires authentication")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() not in ("bearer", "token") or token != self.token:
            return _error(401, "Bad credentials")
        return None

    def _rate_headers(self) -> dict[str, str]:
        reset = int(self.now().timestamp()) + 3600
        return {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4999",
            "x-ratelimit-used": "1",
            "x-ratelimit-reset": str(reset),
            "x-ratelimit-resource": "core",
        }

    def _workflow(self, request: Request) -> FakeWorkflow | None:
        """The workflow named by file name or numeric id in the path, if registered."""
        repo = f"{request.path_params['owner']}/{request.path_params['repo']}"
        key = request.path_params["workflow"]
        with self._lock:
            for workflow in self.workflows.values():
                if workflow.repo == repo and key in (workflow.file, str(workflow.id)):
                    return workflow
        return None

    def _run(self, request: Request) -> FakeRun | None:
        repo = f"{request.path_params['owner']}/{request.path_params['repo']}"
        with self._lock:
            run = self.runs.get(request.path_params["run_id"])
        return run if run is not None and run.workflow.repo == repo else None

    # ---- dispatch ----------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        workflow = self._workflow(request)
        if workflow is None:
            return _error(404, "Not Found")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(400, "Problems parsing JSON")
        if not isinstance(body, dict):
            return _error(400, "Problems parsing JSON")
        problem = self._check_dispatch(workflow, body)
        if problem is not None:
            return _error(422, problem)
        run = self._start_run(workflow, body)
        with self._lock:
            self.dispatches.append(body)
        if self.dispatch_mode == "details" and body.get("return_run_details") is True:
            api_url = f"{API}/repos/{workflow.repo}/actions/runs/{run.id}"
            details = {"workflow_run_id": run.id, "run_url": api_url, "html_url": run.html_url}
            return JSONResponse(details, status_code=200)
        return Response(status_code=204)

    def _check_dispatch(self, workflow: FakeWorkflow, body: dict[str, Any]) -> str | None:
        """GitHub's 422 messages for a dispatch body, or None when it is acceptable."""
        allowed = {"ref", "inputs"}
        if self.dispatch_mode != "reject_flag":
            allowed.add("return_run_details")
        for key in body:
            if key not in allowed:
                return f'Invalid request.\n\n"{key}" is not a permitted key.'
        ref = body.get("ref")
        if not isinstance(ref, str) or not ref:
            return 'Invalid request.\n\n"ref" wasn\'t supplied.'
        if workflow.refs is not None and ref.removeprefix("refs/heads/") not in workflow.refs:
            return f"No ref found for: {ref}"
        inputs = body.get("inputs") or {}
        if not isinstance(inputs, dict):
            return "Invalid request.\n\nFor 'properties/inputs', it is not an object."
        if len(inputs) > 25:
            return "Invalid request.\n\nFor 'properties/inputs', more than 25 properties."
        unexpected = sorted(set(inputs) - workflow.inputs)
        if unexpected:
            return f"Unexpected inputs provided: {json.dumps(unexpected)}"
        missing = sorted(workflow.required - set(inputs))
        if missing:
            return f"Required input '{missing[0]}' not provided"
        return None

    def _start_run(self, workflow: FakeWorkflow, body: dict[str, Any]) -> FakeRun:
        inputs = dict(body.get("inputs") or {})
        with self._lock:
            run_id = self._next_id
            self._next_id += 1
            number = 1 + sum(1 for r in self.runs.values() if r.workflow is workflow)
            run = FakeRun(
                id=run_id,
                number=number,
                workflow=workflow,
                ref=str(body["ref"]),
                inputs=inputs,
                display_title=workflow.title(inputs),
                created_at=self.now(),
                script=list(self.script),
            )
            self.runs[run_id] = run
        return run

    # ---- runs --------------------------------------------------------------------------

    async def _list(self, request: Request) -> Response:
        workflow = self._workflow(request)
        if workflow is None:
            return _error(404, "Not Found")
        query = request.query_params
        try:
            created = _created_filter(query.get("created"))
            per_page = min(int(query.get("per_page", "30")), 100)
            page = max(int(query.get("page", "1")), 1)
        except ValueError:
            return _error(422, "Validation Failed")
        with self._lock:
            listed = []
            for run in self.runs.values():
                if run.workflow is not workflow:
                    continue
                run.list_calls += 1
                if run.list_calls > self.list_delay and _matches(run, query, created):
                    listed.append(run.as_json())
        listed.sort(key=lambda item: int(item["id"]), reverse=True)
        chunk = listed[(page - 1) * per_page : page * per_page]
        return JSONResponse({"total_count": len(listed), "workflow_runs": chunk})

    async def _get_run(self, request: Request) -> Response:
        run = self._run(request)
        if run is None:
            return _error(404, "Not Found")
        with self._lock:
            body = run.as_json()
            if run.pinned is None:
                run.step += 1
        return JSONResponse(body)

    async def _jobs(self, request: Request) -> Response:
        run = self._run(request)
        if run is None:
            return _error(404, "Not Found")
        with self._lock:
            specs = run.job_specs()
        jobs = [_job_json(run, index, spec) for index, spec in enumerate(specs)]
        return JSONResponse({"total_count": len(jobs), "jobs": jobs})

    async def _cancel(self, request: Request) -> Response:
        run = self._run(request)
        if run is None:
            return _error(404, "Not Found")
        with self._lock:
            if run.state[0] == "completed":
                return _error(409, "Cannot cancel a workflow run that is completed.")
            run.pinned = ("completed", "cancelled")
            self.cancelled.append(run.id)
        return JSONResponse({}, status_code=202)


def _job_json(run: FakeRun, index: int, spec: JobSpec) -> dict[str, Any]:
    name, status, conclusion = spec
    job_id = run.id * 100 + index
    repo = run.workflow.repo
    return {
        "id": job_id,
        "run_id": run.id,
        "name": name,
        "status": status,
        "conclusion": conclusion,
        "workflow_name": run.workflow.name,
        "head_branch": run.ref,
        "run_attempt": 1,
        "url": f"{API}/repos/{repo}/actions/jobs/{job_id}",
        "html_url": f"https://github.com/{repo}/actions/runs/{run.id}/job/{job_id}",
        "started_at": _stamp(run.created_at),
        "completed_at": _stamp(run.created_at) if status == "completed" else None,
    }


def _matches(run: FakeRun, query: Any, created: Callable[[datetime], bool]) -> bool:
    """The run-list filters Puerta uses: event, branch, status, created."""
    status, conclusion = run.state
    if query.get("event") not in (None, "workflow_dispatch"):
        return False
    if query.get("branch") not in (None, run.ref.removeprefix("refs/heads/")):
        return False
    if query.get("status") not in (None, status, conclusion):
        return False
    return created(run.created_at)


def _created_filter(value: str | None) -> Callable[[datetime], bool]:
    """GitHub's ``created`` search qualifier: ``>=T``, ``>T``, ``<=T``, ``<T`` or ``A..B``."""
    if not value:
        return lambda _: True
    if ".." in value:
        low, high = (_instant(part) for part in value.split("..", 1))
        return lambda at: low <= at <= high
    for op, compare in _COMPARISONS:
        if value.startswith(op):
            return _bound_check(compare, _instant(value[len(op) :]))
    raise ValueError(value)


_COMPARISONS: tuple[tuple[str, Callable[[datetime, datetime], bool]], ...] = (
    (">=", operator.ge),
    ("<=", operator.le),
    (">", operator.gt),
    ("<", operator.lt),
)


def _bound_check(
    compare: Callable[[datetime, datetime], bool], bound: datetime
) -> Callable[[datetime], bool]:
    return lambda at: compare(at, bound)


def _instant(text: str) -> datetime:
    instant = datetime.fromisoformat(text.strip())
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)
