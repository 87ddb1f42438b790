"""A fake CircleCI API v2 that answers like the real one, for tests over real HTTP.

What it does, and why:

* Auth, projects and errors as CircleCI has them: ``Circle-Token`` checked on every route
  (401 ``You must log in first.``), unknown project slugs 404 ``Project not found``, the new
  trigger refuses unknown body fields (400 ``Unexpected request body provided.``) and a slug
  encoded as one segment (404), since the provider must get those details right.
* Both triggers answer 201 ``{id, state, number, created_at}``; :meth:`FakeCircleCI.skip_next`
  makes the next one answer 200 with a message, the way a ``[ci skip]`` commit does.
* A pipeline's workflows follow a script: a list of steps, each ``{workflow: status}`` (or
  ``{workflow: (status, {job: status})}`` to choose the jobs), advanced by one step each time
  the pipeline's workflow list is read from its first page; the last step repeats. An empty
  step means "no workflow yet". Tests can also jump to the end (:meth:`complete`), make a
  pipeline error (:meth:`error_next`, :meth:`error`) and get the ``workflow-completed``
  webhook CircleCI would send (:meth:`workflow_completed_event`).
* Lists are paged with ``next_page_token`` (``page_size``, default 20, small in paging tests).
  A project's pipelines are listed newest first (``GET /project/{slug}/pipeline``, optionally
  of one ``branch``). Whether a pipeline's ``trigger_parameters`` show the parameters it was
  triggered with is a knob (``echo_parameters``): the API description leaves it open, and
  users report CircleCI leaves them out.
* Every route first applies FakeBase's injected faults. With a ``validator`` every request
  and every answer is checked against CircleCI's OpenAPI description; what does not match
  goes to ``violations``, which tests assert stays empty.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fakes.base import FakeBase, Fault, Received
from fakes.circleci_spec import Call, SpecValidator

#: a workflow in a script step: its status, or its status and its jobs' statuses
WorkflowScript = str | tuple[str, Mapping[str, str]]
Step = Mapping[str, WorkflowScript]

DEFAULT_SCRIPT: list[Step] = [{"e2e": "running"}, {"e2e": "success"}]
TERMINAL = frozenset({"success", "failed", "error", "canceled", "unauthorized", "not_run"})
_JOB_TERMINAL = frozenset(
    {"success", "failed", "canceled", "unauthorized", "not_run", "infrastructure_fail"}
    | {"timedout", "terminated-unknown"}
)
_LONG_VCS = {"gh": "github", "bb": "bitbucket"}
_VCS_HOSTS = {"github": "https://github.com", "bitbucket": "https://bitbucket.org"}
# The job a workflow shows when a script gives only the workflow's status.
_JOB_FOR = {
    "success": "success",
    "running": "running",
    "failing": "failed",
    "failed": "failed",
    "error": "infrastructure_fail",
    "not_run": "not_run",
    "on_hold": "on_hold",
    "canceled": "canceled",
    "unauthorized": "unauthorized",
}
_ACTOR = "2f6c8a5e-8a2b-4c52-9d0c-6b4c6b8f0d11"
_UNAUTHORIZED = {"message": "You must log in first."}
_UNEXPECTED_BODY = {"message": "Unexpected request body provided."}
_PIPELINE_RUN_FIELDS = {"definition_id", "config", "checkout", "parameters"}
_REF_FIELDS = {"branch", "tag"}


def _now() -> str:
    return _stamp(datetime.now(UTC))


def _stamp(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def long_slug(slug: str) -> str:
    """``gh/acme/e2e`` -> ``github/acme/e2e`` (the form the web UI and webhooks use)."""
    vcs, _, rest = slug.partition("/")
    return f"{_LONG_VCS.get(vcs, vcs)}/{rest}"


@dataclass
class FakeProject:
    slug: str  # as registered, e.g. gh/acme/e2e
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    org_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    definitions: set[str] = field(default_factory=set)
    next_number: int = 1


@dataclass
class FakeJob:
    name: str
    status: str
    number: int
    type: str = "build"
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started_at: str = field(default_factory=_now)
    stopped_at: str | None = None


@dataclass
class FakeWorkflow:
    name: str
    status: str = "running"
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: str = field(default_factory=_now)
    stopped_at: str | None = None
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    canceled_by: str | None = None


@dataclass
class FakePipeline:
    project: FakeProject
    number: int
    parameters: dict[str, Any]
    ref: dict[str, str]  # {"branch": ...} or {"tag": ...} or {}
    script: list[Step]
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: str = field(default_factory=_now)
    state: str = "pending"
    errors: list[dict[str, str]] = field(default_factory=list)
    workflows: dict[str, FakeWorkflow] = field(default_factory=dict)
    step: int = 0
    frozen: bool = False  # set by complete(): the script no longer moves
    revision: str = field(default_factory=lambda: uuid.uuid4().hex + uuid.uuid4().hex[:8])


Handler = Callable[[Request, Any], Awaitable[Response]]


@dataclass(kw_only=True)
class FakeCircleCI(FakeBase):
    """The fake API; serve ``fake.app`` (``serve_in_thread``) and point the client at it."""

    token: str = "circle-test-token"
    page_size: int = 20
    echo_parameters: bool = True
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    app_url: str = "https://app.circleci.com"
    validator: SpecValidator | None = None
    script: list[Step] = field(default_factory=lambda: list(DEFAULT_SCRIPT))
    projects: dict[str, FakeProject] = field(default_factory=dict)
    pipelines: dict[str, FakePipeline] = field(default_factory=dict)
    triggered: list[dict[str, Any]] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    webhook_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _next_scripts: list[list[Step]] = field(default_factory=list)
    _next_errors: list[list[dict[str, str]]] = field(default_factory=list)
    _next_skips: list[str] = field(default_factory=list)
    _path_faults: list[tuple[str, Fault]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.app = Starlette(routes=self._routes())

    # -- set-up for tests ------------------------------------------------------------------
    def add_project(self, slug: str, *, definitions: Sequence[str] = ()) -> FakeProject:
        """Register a project (``gh/acme/e2e``, ``circleci/<org-id>/<project-id>``)."""
        project = FakeProject(slug=slug, definitions=set(definitions))
        self.projects[long_slug(slug)] = project
        return project

    def add_definition(self, slug: str, definition_id: str | None = None) -> str:
        """A pipeline definition of a registered project, for the ``/pipeline/run`` trigger."""
        definition = definition_id or str(uuid.uuid4())
        self.projects[long_slug(slug)].definitions.add(definition)
        return definition

    def script_next(self, *steps: Step) -> None:
        """The next triggered pipeline follows these steps instead of ``self.script``."""
        self._next_scripts.append(list(steps))

    def error_next(self, *errors: tuple[str, str]) -> None:
        """The next triggered pipeline is ``errored`` with these ``(type, message)`` errors."""
        found = errors or (("config", "Config does not conform to schema: missing workflows"),)
        self._next_errors.append([{"type": kind, "message": text} for kind, text in found])

    def error(self, pipeline_id: str, *errors: tuple[str, str]) -> None:
        """Make an existing pipeline ``errored`` (config or permission trouble found late)."""
        pipeline = self.pipelines[pipeline_id]
        pipeline.state = "errored"
        pipeline.errors = [{"type": kind, "message": text} for kind, text in errors]

    def skip_next(self, message: str = "Pipeline not triggered: [ci skip] in the commit") -> None:
        """The next trigger answers 200 with ``message`` and creates no pipeline."""
        self._next_skips.append(message)

    def fail_next_on(self, path_fragment: str, *, status: int = 503, count: int = 1) -> None:
        """Like ``fail_next``, for requests whose path contains ``path_fragment`` only (one
        step of a multi-call operation, e.g. ``"/job"``)."""
        self._path_faults.append((path_fragment, Fault(status, count)))

    def complete(self, pipeline_id: str, status: str = "success") -> None:
        """Give every workflow of the pipeline ``status`` now and stop its script."""
        pipeline = self.pipelines[pipeline_id]
        names = list(pipeline.workflows) or _script_names(pipeline.script)
        self._apply(pipeline, dict.fromkeys(names, status))
        pipeline.frozen = True

    @property
    def last_pipeline(self) -> FakePipeline:
        return list(self.pipelines.values())[-1]

    def workflow_completed_event(
        self, pipeline_id: str, workflow: str | None = None
    ) -> dict[str, Any]:
        """The ``workflow-completed`` webhook body CircleCI sends for a workflow of it."""
        pipeline = self.pipelines[pipeline_id]
        if not pipeline.workflows:
            self._apply(pipeline, pipeline.script[min(pipeline.step, len(pipeline.script) - 1)])
        chosen = (
            pipeline.workflows[workflow] if workflow else next(iter(pipeline.workflows.values()))
        )
        project = pipeline.project
        slug = long_slug(project.slug)
        return {
            "type": "workflow-completed",
            "id": str(uuid.uuid4()),
            "happened_at": chosen.stopped_at or _now(),
            "webhook": {"id": self.webhook_id, "name": "puerta"},
            "project": {"id": project.id, "name": slug.split("/")[2], "slug": slug},
            "organization": {"id": project.org_id, "name": slug.split("/")[1]},
            "workflow": {
                "id": chosen.id,
                "name": chosen.name,
                "created_at": chosen.created_at,
                "stopped_at": chosen.stopped_at,
                "url": self._web_url(pipeline) + f"/workflows/{chosen.id}",
                "status": chosen.status,
            },
            "pipeline": {
                "id": pipeline.id,
                "number": pipeline.number,
                "created_at": pipeline.created_at,
                "trigger": {"type": "api"},
                **self._webhook_source(pipeline),
            },
        }

    # -- plumbing --------------------------------------------------------------------------
    def _routes(self) -> list[Route]:
        slug = "/project/{vcs}/{org}/{repo}"
        table: list[tuple[str, str, Handler]] = [
            ("POST", slug + "/pipeline", self._trigger_legacy),
            ("GET", slug + "/pipeline", self._list_pipelines),
            ("POST", slug + "/pipeline/run", self._trigger_run),
            ("GET", "/pipeline/{pipeline_id}", self._get_pipeline),
            ("GET", "/pipeline/{pipeline_id}/workflow", self._list_workflows),
            ("GET", "/workflow/{workflow_id}/job", self._list_jobs),
            ("POST", "/workflow/{workflow_id}/cancel", self._cancel_workflow),
        ]
        return [Route(path, self._endpoint(handler), methods=[m]) for m, path, handler in table]

    def _endpoint(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Log, check against the spec, inject faults, authenticate, then route."""

        async def endpoint(request: Request) -> Response:
            entry = await self.record(request)
            call = _call(request, entry)
            self._check_request(call)
            fault = self.injected() or self._path_fault(entry.path)
            if fault is not None:
                response = await self.fault_response(fault)
                self._check_response(call, response, undeclared_ok=True)
                return response
            if entry.headers.get("circle-token") != self.token:
                response = JSONResponse(_UNAUTHORIZED, status_code=401)
            else:
                response = await handler(request, _json_or_none(entry))
                await self.hold_answer(entry.method, entry.path)
            self._check_response(call, response, undeclared_ok=response.status_code == 200)
            return response

        return endpoint

    def _path_fault(self, path: str) -> Fault | None:
        with self._lock:
            for index, (fragment, fault) in enumerate(self._path_faults):
                if fragment in path:
                    fault.remaining = (fault.remaining or 1) - 1
                    if fault.remaining <= 0:
                        self._path_faults.pop(index)
                    return fault
        return None

    def _check_request(self, call: Call) -> None:
        if self.validator is not None:
            self.violations.extend(self.validator.request_problems(call))

    def _check_response(self, call: Call, response: Response, *, undeclared_ok: bool) -> None:
        if self.validator is None:
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in response.raw_headers}
        self.violations.extend(
            self.validator.response_problems(
                call,
                response.status_code,
                headers,
                bytes(response.body),
                undeclared_ok=undeclared_ok,
            )
        )

    def _project(self, request: Request) -> FakeProject | None:
        params = request.path_params
        return self.projects.get(long_slug(f"{params['vcs']}/{params['org']}/{params['repo']}"))

    # -- triggers --------------------------------------------------------------------------
    async def _trigger_legacy(self, request: Request, body: Any) -> Response:
        project = self._project(request)
        if project is None:
            return JSONResponse({"message": "Project not found"}, status_code=404)
        body = {} if body is None else body
        problem = _legacy_problem(body)
        if problem:
            return JSONResponse({"message": problem}, status_code=400)
        ref = {key: body[key] for key in _REF_FIELDS if key in body}
        return self._create(project, body, ref)

    async def _trigger_run(self, request: Request, body: Any) -> Response:
        project = self._project(request)
        if project is None or not _three_raw_segments(request):
            return JSONResponse({"message": "Project not found"}, status_code=404)
        if not _run_body_ok(body):
            return JSONResponse(_UNEXPECTED_BODY, status_code=400)
        problem = _parameters_problem(body.get("parameters") or {})
        if problem:
            return JSONResponse({"message": problem}, status_code=400)
        if body["definition_id"] not in project.definitions:
            return JSONResponse({"message": "Pipeline definition not found"}, status_code=404)
        return self._create(project, body, dict(body.get("checkout") or {}))

    def _create(self, project: FakeProject, body: dict[str, Any], ref: dict[str, str]) -> Response:
        self.triggered.append(body)
        if self._next_skips:
            return JSONResponse({"message": self._next_skips.pop(0)}, status_code=200)
        pipeline = FakePipeline(
            project=project,
            number=project.next_number,
            parameters=dict(body.get("parameters") or {}),
            ref=ref,
            script=self._next_scripts.pop(0) if self._next_scripts else list(self.script),
            created_at=_stamp(self.now()),
        )
        project.next_number += 1
        if self._next_errors:
            pipeline.state = "errored"
            pipeline.errors = self._next_errors.pop(0)
        self.pipelines[pipeline.id] = pipeline
        created = {
            "id": pipeline.id,
            "state": pipeline.state,
            "number": pipeline.number,
            "created_at": pipeline.created_at,
        }
        return JSONResponse(created, status_code=201)

    # -- reading ---------------------------------------------------------------------------
    async def _list_pipelines(self, request: Request, body: Any) -> Response:
        """The project's pipelines, newest first, of ``branch`` if given."""
        project = self._project(request)
        if project is None:
            return JSONResponse({"message": "Project not found"}, status_code=404)
        branch = request.query_params.get("branch")
        pipelines = [
            pipeline
            for pipeline in self.pipelines.values()
            if pipeline.project is project
            and (branch is None or pipeline.ref.get("branch") == branch)
        ]
        pipelines.sort(key=lambda pipeline: pipeline.number, reverse=True)
        items = [self._pipeline_json(pipeline) for pipeline in pipelines]
        return self._page(items, request.query_params.get("page-token"))

    async def _get_pipeline(self, request: Request, body: Any) -> Response:
        pipeline = self.pipelines.get(request.path_params["pipeline_id"])
        if pipeline is None:
            return JSONResponse({"message": "Pipeline not found"}, status_code=404)
        return JSONResponse(self._pipeline_json(pipeline))

    async def _list_workflows(self, request: Request, body: Any) -> Response:
        pipeline = self.pipelines.get(request.path_params["pipeline_id"])
        if pipeline is None:
            return JSONResponse({"message": "Pipeline not found"}, status_code=404)
        token = request.query_params.get("page-token")
        if not token:
            self._advance(pipeline)
        items = [self._workflow_json(pipeline, w) for w in pipeline.workflows.values()]
        return self._page(items, token)

    async def _list_jobs(self, request: Request, body: Any) -> Response:
        found = self._workflow(request.path_params["workflow_id"])
        if found is None:
            return JSONResponse({"message": "Workflow not found"}, status_code=404)
        pipeline, workflow = found
        items = [_job_json(pipeline, job) for job in workflow.jobs.values()]
        return self._page(items, request.query_params.get("page-token"))

    async def _cancel_workflow(self, request: Request, body: Any) -> Response:
        found = self._workflow(request.path_params["workflow_id"])
        if found is None:
            return JSONResponse({"message": "Workflow not found"}, status_code=404)
        _, workflow = found
        self.cancelled.append(workflow.id)
        if workflow.status not in TERMINAL:
            _set_status(workflow, "canceled", None)
            workflow.canceled_by = _ACTOR
        return JSONResponse({"message": "Accepted."}, status_code=202)

    def _page(self, items: list[dict[str, Any]], token: str | None) -> Response:
        start = _offset(token)
        if start is None:
            return JSONResponse({"message": "Invalid page-token"}, status_code=400)
        end = start + self.page_size
        next_token = f"page-{end}" if end < len(items) else None
        return JSONResponse({"items": items[start:end], "next_page_token": next_token})

    def _workflow(self, workflow_id: str) -> tuple[FakePipeline, FakeWorkflow] | None:
        for pipeline in self.pipelines.values():
            for workflow in pipeline.workflows.values():
                if workflow.id == workflow_id:
                    return pipeline, workflow
        return None

    # -- the script ------------------------------------------------------------------------
    def _advance(self, pipeline: FakePipeline) -> None:
        """Show the current step, then move to the next (the last one repeats)."""
        if pipeline.frozen or pipeline.state == "errored" or not pipeline.script:
            return
        self._apply(pipeline, pipeline.script[pipeline.step])
        pipeline.step = min(pipeline.step + 1, len(pipeline.script) - 1)

    def _apply(self, pipeline: FakePipeline, step: Step) -> None:
        for name, scripted in step.items():
            status, jobs = (scripted, None) if isinstance(scripted, str) else scripted
            workflow = pipeline.workflows.setdefault(name, FakeWorkflow(name=name))
            if workflow.canceled_by is None:  # a cancelled workflow stays cancelled
                _set_status(workflow, status, jobs)
        if pipeline.workflows and pipeline.state != "errored":
            pipeline.state = "created"

    # -- JSON in the shapes of the spec ----------------------------------------------------
    def _pipeline_json(self, pipeline: FakePipeline) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": pipeline.id,
            "errors": pipeline.errors,
            "project_slug": pipeline.project.slug,
            "updated_at": _now(),
            "number": pipeline.number,
            "trigger_parameters": pipeline.parameters if self.echo_parameters else {},
            "state": pipeline.state,
            "created_at": pipeline.created_at,
            "trigger": {
                "type": "api",
                "received_at": pipeline.created_at,
                "actor": {"login": "puerta-bot", "avatar_url": None},
            },
        }
        if self._has_vcs(pipeline):
            body["vcs"] = self._vcs(pipeline, webhook=False)
        return body

    def _workflow_json(self, pipeline: FakePipeline, workflow: FakeWorkflow) -> dict[str, Any]:
        body: dict[str, Any] = {
            "pipeline_id": pipeline.id,
            "id": workflow.id,
            "name": workflow.name,
            "project_slug": pipeline.project.slug,
            "status": workflow.status,
            "started_by": _ACTOR,
            "pipeline_number": pipeline.number,
            "created_at": workflow.created_at,
            "stopped_at": workflow.stopped_at,
        }
        if workflow.canceled_by:
            body["canceled_by"] = workflow.canceled_by
        return body

    def _has_vcs(self, pipeline: FakePipeline) -> bool:
        return long_slug(pipeline.project.slug).split("/")[0] in _VCS_HOSTS

    def _vcs(self, pipeline: FakePipeline, *, webhook: bool) -> dict[str, Any]:
        vcs, org, repo = long_slug(pipeline.project.slug).split("/")
        url = f"{_VCS_HOSTS[vcs]}/{org}/{repo}"
        commit: dict[str, Any] = {"subject": "Release candidate", "body": ""}
        if webhook:
            author = {"name": "Puerta Bot", "email": "bot@example.com"}
            commit |= {"author": author, "authored_at": pipeline.created_at}
            commit |= {"committer": author, "committed_at": pipeline.created_at}
        # The API says "GitHub"/"Bitbucket"; webhooks say "github"/"bitbucket".
        name = vcs if webhook else {"github": "GitHub", "bitbucket": "Bitbucket"}[vcs]
        return {
            "provider_name": name,
            "origin_repository_url": url,
            "target_repository_url": url,
            "revision": pipeline.revision,
            "commit": commit,
            **pipeline.ref,
        }

    def _webhook_source(self, pipeline: FakePipeline) -> dict[str, Any]:
        """GitHub OAuth and Bitbucket pipelines carry ``vcs``; GitHub App and GitLab ones
        (``circleci/...`` slugs) carry ``trigger_parameters`` instead."""
        if self._has_vcs(pipeline):
            return {"vcs": self._vcs(pipeline, webhook=True)}
        ref = pipeline.ref.get("branch") or pipeline.ref.get("tag") or "main"
        kind = "tags" if "tag" in pipeline.ref else "heads"
        circleci = {
            "event_time": pipeline.created_at,
            "actor_id": _ACTOR,
            "trigger_id": str(uuid.uuid4()),
            "event_type": "api",
            "trigger_type": "api",
        }
        git = {
            "branch": pipeline.ref.get("branch", ""),
            "tag": pipeline.ref.get("tag", ""),
            "ref": f"refs/{kind}/{ref}",
            "checkout_sha": pipeline.revision,
        }
        return {"trigger_parameters": {"circleci": circleci, "git": git}}

    def _web_url(self, pipeline: FakePipeline) -> str:
        return f"{self.app_url}/pipelines/{long_slug(pipeline.project.slug)}/{pipeline.number}"


# -- helpers ---------------------------------------------------------------------------------
def _call(request: Request, entry: Received) -> Call:
    """The request as it came over the wire (raw, still-encoded path) for the spec check."""
    raw = request.scope.get("raw_path") or entry.path.encode()
    return Call(
        method=entry.method,
        path=raw.decode("latin-1").partition("?")[0],
        query=tuple(request.query_params.multi_items()),
        headers=entry.headers,
        body=entry.body,
    )


def _three_raw_segments(request: Request) -> bool:
    """The new trigger 404s when the slug came as one encoded segment (``gh%2Forg%2Frepo``)."""
    raw = (request.scope.get("raw_path") or b"").partition(b"?")[0]
    return raw.count(b"/") == 6  # /project/{provider}/{organization}/{project}/pipeline/run


def _json_or_none(entry: Received) -> Any:
    try:
        return entry.json()
    except ValueError:
        return None


def _run_body_ok(body: Any) -> bool:
    """The ``/pipeline/run`` body: known fields only (additionalProperties: false)."""
    if not isinstance(body, dict) or set(body) - _PIPELINE_RUN_FIELDS:
        return False
    if not isinstance(body.get("definition_id"), str):
        return False
    for key in ("config", "checkout"):
        part = body.get(key, {})
        if not isinstance(part, dict) or set(part) - _REF_FIELDS or len(part) > 1:
            return False
    return isinstance(body.get("parameters", {}), dict)


def _legacy_problem(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "Unexpected request body provided."
    if "branch" in body and "tag" in body:
        return "Only one of branch or tag may be provided."
    return _parameters_problem(body.get("parameters") or {})


def _parameters_problem(parameters: Any) -> str | None:
    """CircleCI's documented limits: 100 entries, names of 128, values of 512 characters."""
    if not isinstance(parameters, dict):
        return "Unexpected request body provided."
    if len(parameters) > 100:
        return "Too many pipeline parameters (max 100)."
    for name, value in parameters.items():
        if len(name) > 128 or len(str(value)) > 512:
            return f"Pipeline parameter {name[:128]} is too long."
    return None


def _set_status(workflow: FakeWorkflow, status: str, jobs: Mapping[str, str] | None) -> None:
    workflow.status = status
    done = status in TERMINAL
    workflow.stopped_at = (workflow.stopped_at or _now()) if done else None
    if jobs is None:  # only the workflow's status given: one job named "build" follows it
        jobs = {"build": _JOB_FOR.get(status, "running")} if set(workflow.jobs) <= {"build"} else {}
    for name, job_status in jobs.items():
        job = workflow.jobs.get(name)
        if job is None:
            kind = "approval" if job_status == "on_hold" else "build"
            job = FakeJob(name=name, status=job_status, number=len(workflow.jobs) + 1, type=kind)
            workflow.jobs[name] = job
        job.status = job_status
        job.stopped_at = (job.stopped_at or _now()) if job_status in _JOB_TERMINAL else None
    if status == "canceled":
        for job in workflow.jobs.values():
            if job.status in ("running", "queued", "on_hold", "blocked"):
                job.status, job.stopped_at = "canceled", _now()


def _job_json(pipeline: FakePipeline, job: FakeJob) -> dict[str, Any]:
    body: dict[str, Any] = {
        "dependencies": [],
        "id": job.id,
        "started_at": job.started_at,
        "name": job.name,
        "project_slug": pipeline.project.slug,
        "status": job.status,
        "type": job.type,
        "stopped_at": job.stopped_at,
    }
    if job.type == "approval":
        body["approval_request_id"] = job.id
    else:
        body["job_number"] = job.number
    return body


def _offset(token: str | None) -> int | None:
    if not token:
        return 0
    prefix, _, number = token.partition("-")
    return int(number) if prefix == "page" and number.isdigit() else None


def _script_names(script: Sequence[Step]) -> list[str]:
    names: dict[str, None] = {}
    for step in script:
        names.update(dict.fromkeys(step))
    return list(names) or ["e2e"]
