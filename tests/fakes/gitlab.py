"""A fake GitLab REST API v4 (pipelines only), served over real HTTP by ``serve_in_thread``.

Routing works on the RAW request path because a namespaced project travels as one encoded
segment (``acme%2Fe2e``) and the decoded path would hide whether the client encoded it; like
GitLab, an unencoded ``acme/e2e`` matches no route and gets a 404.

Usage::

    fake = FakeGitLab()
    fake.add_project(id=7, path="acme/e2e", refs=["main"])
    fake.script = ["pending", "running", "failed"]   # status per GET of each pipeline
    fake.add_failed_job("playwright", stage="test")
    with serve_in_thread(fake.app) as url: ...

Besides creating, reading and cancelling pipelines it lists them (``GET .../pipelines`` with
``ref``, ``source``, ``updated_after``, ``order_by=id``, ``sort`` and paging) and shows the
variables a pipeline was created with (``GET .../pipelines/:id/variables``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fakes.base import FakeBase

Handler = Callable[[Request, "_Project", "re.Match[str]"], Awaitable[Response]]


@dataclass
class _Project:
    id: int
    path: str
    refs: set[str]
    next_iid: int = 1


@dataclass
class _Pipeline:
    id: int
    iid: int
    project: _Project
    ref: str
    web_url: str
    script: list[str]
    jobs: list[dict[str, Any]]
    variables: list[dict[str, Any]]
    created_at: datetime
    polls: int = 0
    cancelled: bool = False

    def status(self) -> str:
        """The scripted word for this GET (the last one repeats); cancel wins."""
        if self.cancelled:
            return "canceled"
        return self.script[min(self.polls, len(self.script) - 1)]

    def as_json(self, status: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "iid": self.iid,
            "project_id": self.project.id,
            "status": status,
            "source": "api",
            "ref": self.ref,
            "sha": "a91957a858320c0e17f3a0eca7cfacbff50ea29a",
            "web_url": self.web_url,
            "created_at": _stamp(self.created_at),
            "updated_at": _stamp(self.created_at),
        }


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _stamp(instant: datetime) -> str:
    """GitLab's timestamps: ``2026-11-26T10:00:00.000Z``."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _instant(text: str) -> datetime:
    instant = datetime.fromisoformat(text)
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def _not_found(what: str = "Not found") -> JSONResponse:
    return JSONResponse({"message": f"404 {what}"}, status_code=404)


@dataclass
class FakeGitLab(FakeBase):
    """Pipelines of registered projects with scripted statuses and failed jobs.

    ``script``: the status word per GET of a pipeline (copied when it is created; the last
    word repeats). ``failed_jobs``: job specs (name, stage, allow_failure) every new pipeline
    gets as failed jobs, besides one successful ``build`` job. ``jobs_status``: answer the
    jobs listing with this HTTP status instead (to break only that call). ``created``: the
    JSON bodies of pipeline creations; ``cancelled``: ids of cancelled pipelines;
    ``raw_paths``: the undecoded path of every request. ``now``: the clock that stamps new
    pipelines (``created_at``, which ``updated_after`` filters on).
    """

    token: str = "glpat-fake-7f3c1e"
    now: Callable[[], datetime] = _utcnow
    script: list[str] = field(default_factory=lambda: ["pending", "running", "success"])
    failed_jobs: list[dict[str, Any]] = field(default_factory=list)
    jobs_status: int | None = None
    created: list[dict[str, Any]] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    raw_paths: list[str] = field(default_factory=list)
    projects: dict[int, _Project] = field(default_factory=dict)
    pipelines: dict[int, _Pipeline] = field(default_factory=dict)
    app: Starlette = field(init=False, repr=False)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))
    _job_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(5001))

    def __post_init__(self) -> None:
        methods = ["GET", "POST", "PUT", "DELETE"]
        self.app = Starlette(routes=[Route("/{rest:path}", self._handle, methods=methods)])
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("POST", re.compile(r"^/api/v4/projects/([^/]+)/pipeline$"), self._create),
            ("GET", re.compile(r"^/api/v4/projects/([^/]+)/pipelines$"), self._list),
            ("GET", re.compile(r"^/api/v4/projects/([^/]+)/pipelines/(\d+)$"), self._get),
            (
                "GET",
                re.compile(r"^/api/v4/projects/([^/]+)/pipelines/(\d+)/variables$"),
                self._variables,
            ),
            ("GET", re.compile(r"^/api/v4/projects/([^/]+)/pipelines/(\d+)/jobs$"), self._jobs),
            (
                "POST",
                re.compile(r"^/api/v4/projects/([^/]+)/pipelines/(\d+)/cancel$"),
                self._cancel,
            ),
        ]

    # -- set-up helpers --------------------------------------------------------------------
    def add_project(self, *, id: int, path: str, refs: list[str] | None = None) -> None:
        """Register a project, found by ``id`` or full ``path``; ``refs`` default to main."""
        self.projects[id] = _Project(id, path, set(refs or ["main"]))

    def add_failed_job(
        self, name: str, *, stage: str = "test", allow_failure: bool = False
    ) -> None:
        """Every pipeline created from now on has this failed job."""
        self.failed_jobs.append({"name": name, "stage": stage, "allow_failure": allow_failure})

    # -- plumbing --------------------------------------------------------------------------
    async def _handle(self, request: Request) -> Response:
        await self.record(request)
        fault = self.injected()
        if fault is not None:
            return await self.fault_response(fault)
        raw = bytes(request.scope.get("raw_path") or request.url.path.encode()).decode("latin-1")
        with self._lock:
            self.raw_paths.append(raw)
        if request.headers.get("private-token") != self.token:
            return JSONResponse({"message": "401 Unauthorized"}, status_code=401)
        for method, pattern, handler in self._routes:
            match = pattern.match(raw)
            if match and request.method == method:
                project = self._project(unquote(match.group(1)))
                if project is None:
                    return _not_found("Project Not Found")
                response = await handler(request, project, match)
                await self.hold_answer(request.method, raw)
                return response
        return _not_found()

    def _project(self, key: str) -> _Project | None:
        if key.isdigit():
            return self.projects.get(int(key))
        return next((p for p in self.projects.values() if p.path == key), None)

    def _pipeline(self, project: _Project, match: re.Match[str]) -> _Pipeline | None:
        pipeline = self.pipelines.get(int(match.group(2)))
        return pipeline if pipeline and pipeline.project is project else None

    # -- routes ----------------------------------------------------------------------------
    async def _create(self, request: Request, project: _Project, _: re.Match[str]) -> Response:
        body = await request.json() if await request.body() else {}
        if not isinstance(body, dict) or not body.get("ref"):
            return JSONResponse({"error": "ref is missing"}, status_code=400)
        with self._lock:
            self.created.append(body)
        if body["ref"] not in project.refs:
            return JSONResponse({"message": {"base": ["Reference not found"]}}, status_code=400)
        base = str(request.base_url).rstrip("/")
        variables = [dict(v) for v in body.get("variables") or [] if isinstance(v, dict)]
        pipeline = self._new_pipeline(base, project, body["ref"], variables)
        return JSONResponse(pipeline.as_json("created"), status_code=201)

    def _new_pipeline(
        self, base: str, project: _Project, ref: str, variables: list[dict[str, Any]]
    ) -> _Pipeline:
        with self._lock:
            pid = next(self._ids)
            iid, project.next_iid = project.next_iid, project.next_iid + 1
            jobs = [self._job(base, project, "build", "build", "success", False)]
            jobs += [
                self._job(
                    base, project, spec["name"], spec["stage"], "failed", spec["allow_failure"]
                )
                for spec in self.failed_jobs
            ]
            web_url = f"{base}/{project.path}/-/pipelines/{pid}"
            for variable in variables:
                variable.setdefault("variable_type", "env_var")
            pipeline = _Pipeline(
                pid, iid, project, ref, web_url, list(self.script), jobs, variables, self.now()
            )
            self.pipelines[pid] = pipeline
        return pipeline

    def _job(
        self, base: str, project: _Project, name: str, stage: str, status: str, allow: bool
    ) -> dict[str, Any]:
        jid = next(self._job_ids)
        return {
            "id": jid,
            "name": name,
            "stage": stage,
            "status": status,
            "allow_failure": allow,
            "web_url": f"{base}/{project.path}/-/jobs/{jid}",
        }

    async def _list(self, request: Request, project: _Project, _: re.Match[str]) -> Response:
        """The project's pipelines, filtered like GitLab (``ref``, ``source``,
        ``updated_after``), ordered by id (``sort`` desc by default) and paged."""
        query = request.query_params
        if query.get("order_by", "id") != "id":
            return JSONResponse({"error": "order_by does not have a valid value"}, status_code=400)
        try:
            after = _instant(query["updated_after"]) if "updated_after" in query else None
            per_page = min(int(query.get("per_page", "20")), 100)
            page = max(int(query.get("page", "1")), 1)
        except ValueError:
            return JSONResponse({"error": "updated_after is invalid"}, status_code=400)
        with self._lock:
            found = [
                pipeline
                for pipeline in self.pipelines.values()
                if pipeline.project is project
                and query.get("ref") in (None, pipeline.ref)
                and query.get("source") in (None, "api")
                and (after is None or pipeline.created_at > after)
            ]
            found.sort(key=lambda pipeline: pipeline.id, reverse=query.get("sort") != "asc")
            chunk = found[(page - 1) * per_page : page * per_page]
            listed = [pipeline.as_json(pipeline.status()) for pipeline in chunk]
        return JSONResponse(listed)

    async def _variables(
        self, request: Request, project: _Project, match: re.Match[str]
    ) -> Response:
        pipeline = self._pipeline(project, match)
        if pipeline is None:
            return _not_found()
        return JSONResponse(pipeline.variables)

    async def _get(self, request: Request, project: _Project, match: re.Match[str]) -> Response:
        pipeline = self._pipeline(project, match)
        if pipeline is None:
            return _not_found()
        with self._lock:
            status = pipeline.status()
            pipeline.polls += 1
        return JSONResponse(pipeline.as_json(status))

    async def _jobs(self, request: Request, project: _Project, match: re.Match[str]) -> Response:
        pipeline = self._pipeline(project, match)
        if pipeline is None:
            return _not_found()
        if self.jobs_status is not None:
            return JSONResponse({"message": "jobs unavailable"}, status_code=self.jobs_status)
        scopes = request.query_params.getlist("scope[]")
        jobs = [job for job in pipeline.jobs if not scopes or job["status"] in scopes]
        return JSONResponse(jobs)

    async def _cancel(self, request: Request, project: _Project, match: re.Match[str]) -> Response:
        pipeline = self._pipeline(project, match)
        if pipeline is None:
            return _not_found()
        with self._lock:
            pipeline.cancelled = True
            self.cancelled.append(pipeline.id)
        return JSONResponse(pipeline.as_json("canceled"))
