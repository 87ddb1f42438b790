"""A fake Jenkins (remote access API: build, queue items, builds, stop/cancel) over real HTTP.

Like Jenkins, a trigger only queues an item (201 + ``Location: .../queue/item/<q>/``); the
item becomes a build after ``queue_polls`` GETs of it, and the build's ``result`` follows
``script`` per GET (``None`` = still building). Routing works on the raw path so tests see
how the client encoded folder and job names. Error pages are HTML, as Jenkins' are.

Usage::

    fake = FakeJenkins()
    fake.add_job("acme/e2e", params=["TARGET", "REVISION"])
    fake.queue_polls = 1
    fake.script = [None, None, "SUCCESS"]
    with serve_in_thread(fake.app) as url: ...
"""

from __future__ import annotations

import base64
import itertools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from fakes.base import FakeBase

Handler = Callable[[Request, "re.Match[str]", str], Awaitable[Response]]

_JOB = r"((?:/job/[^/]+)+)"


@dataclass
class _Job:
    path: str
    params: list[str]
    next_number: int = 1


@dataclass
class _Build:
    job: str
    number: int
    url: str
    script: list[str | None]
    polls: int = 0
    aborted: bool = False

    def result(self) -> str | None:
        if self.aborted:
            return "ABORTED"
        return self.script[min(self.polls, len(self.script) - 1)]


@dataclass
class _QueueItem:
    id: int
    job: str
    polls: int = 0
    cancelled: bool = False
    build: _Build | None = None


def html_error(status: int, message: str) -> HTMLResponse:
    """An error page shaped like Jetty's/Jenkins' (title and heading carry the message)."""
    page = (
        "<html><head><meta http-equiv='Content-Type' content='text/html;charset=utf-8'/>"
        f"<title>Error {status} {message}</title></head><body><h2>HTTP ERROR {status} "
        f"{message}</h2><table><tr><th>SERVLET:</th><td>Stapler</td></tr></table></body></html>"
    )
    return HTMLResponse(page, status_code=status)


def _unauthorized() -> HTMLResponse:
    page = (
        "<html><head><meta http-equiv='refresh' content='1;url=/login'/></head>"
        "<body style='background-color:white; color:white;'>Authentication required</body></html>"
    )
    return HTMLResponse(page, status_code=401, headers={"X-You-Are-Authenticated-As": "anonymous"})


def job_path(raw: str) -> str:
    """``/job/Team%20A/job/e2e`` -> ``Team A/e2e``."""
    return "/".join(unquote(part) for part in raw.split("/job/") if part)


@dataclass
class FakeJenkins(FakeBase):
    """Jobs, queue and builds, with knobs for the awkward parts of Jenkins.

    ``queue_polls``: GETs of a queue item that still find it waiting (0: a build at once).
    ``script``: a new build's result per GET of it. ``root_url``: the "Jenkins URL" used in
    Location and build URLs (default: the URL the request came in on). ``omit_location``:
    answer a trigger 201 without Location. ``cancel_status``: 302 (older Jenkins) or 204.
    ``triggered``: (job, parameters) per queued build; ``cancelled``: ``"queue/<q>"`` or
    ``"<job>#<n>"``; ``raw_paths``: the undecoded path of every request.
    """

    user: str = "puerta"
    token: str = "11d6c1f7a5e0b3c9f8a4"
    queue_polls: int = 1
    script: list[str | None] = field(default_factory=lambda: [None, "SUCCESS"])
    root_url: str | None = None
    omit_location: bool = False
    cancel_status: int = 302
    triggered: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    raw_paths: list[str] = field(default_factory=list)
    jobs: dict[str, _Job] = field(default_factory=dict)
    queue: dict[int, _QueueItem] = field(default_factory=dict)
    builds: dict[tuple[str, int], _Build] = field(default_factory=dict)
    queue_forgotten: bool = False
    app: Starlette = field(init=False, repr=False)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(101))

    def __post_init__(self) -> None:
        methods = ["GET", "POST"]
        self.app = Starlette(routes=[Route("/{rest:path}", self._handle, methods=methods)])
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("POST", re.compile(_JOB + r"/(build|buildWithParameters)$"), self._trigger),
            ("GET", re.compile(r"^/queue/item/(\d+)/api/json$"), self._queue_item),
            ("POST", re.compile(r"^/queue/cancelItem$"), self._cancel_item),
            ("GET", re.compile(_JOB + r"/(\d+)/api/json$"), self._build),
            ("POST", re.compile(_JOB + r"/(\d+)/stop$"), self._stop),
        ]

    # -- set-up helpers --------------------------------------------------------------------
    def add_job(self, path: str, *, params: list[str] | None = None) -> None:
        """Register a job by its folder path (``acme/e2e``) and its parameter names."""
        self.jobs[path] = _Job(path, list(params or []))

    def forget_queue_items(self) -> None:
        """Every queue item answers 404 from now on (Jenkins drops them ~5 min after use)."""
        self.queue_forgotten = True

    # -- plumbing --------------------------------------------------------------------------
    async def _handle(self, request: Request) -> Response:
        await self.record(request)
        fault = self.injected()
        if fault is not None:
            return await self.fault_response(fault)
        raw = bytes(request.scope.get("raw_path") or request.url.path.encode()).decode("latin-1")
        with self._lock:
            self.raw_paths.append(raw)
        if not self._authorised(request.headers.get("authorization", "")):
            return _unauthorized()
        root = (self.root_url or str(request.base_url)).rstrip("/")
        for method, pattern, handler in self._routes:
            match = pattern.match(raw)
            if match and request.method == method:
                return await handler(request, match, root)
        return html_error(404, "Not Found")

    def _authorised(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded).decode()
        except ValueError:
            return False
        return decoded == f"{self.user}:{self.token}"

    @staticmethod
    def _job_url(root: str, job: str) -> str:
        return root + "".join(f"/job/{quote(segment, safe='')}" for segment in job.split("/"))

    # -- routes ----------------------------------------------------------------------------
    async def _trigger(self, request: Request, match: re.Match[str], root: str) -> Response:
        job = self.jobs.get(job_path(match.group(1)))
        if job is None:
            return html_error(404, "Not Found")
        params = dict(request.query_params)
        params.update(parse_qsl((await request.body()).decode()))
        if match.group(2) == "build" and job.params:
            return html_error(400, "Nothing is submitted")
        with self._lock:
            item = _QueueItem(next(self._ids), job.path)
            self.queue[item.id] = item
            self.triggered.append((job.path, params))
        headers = {} if self.omit_location else {"Location": f"{root}/queue/item/{item.id}/"}
        return Response(status_code=201, headers=headers)

    async def _queue_item(self, request: Request, match: re.Match[str], root: str) -> Response:
        item = self.queue.get(int(match.group(1)))
        if item is None or self.queue_forgotten:
            return html_error(404, "Not Found")
        with self._lock:
            if not item.cancelled and item.build is None and item.polls >= self.queue_polls:
                item.build = self._start_build(root, item.job)
            item.polls += 1
        return JSONResponse(self._item_json(item, root))

    def _start_build(self, root: str, path: str) -> _Build:
        job = self.jobs[path]
        number, job.next_number = job.next_number, job.next_number + 1
        url = f"{self._job_url(root, path)}/{number}/"
        build = _Build(path, number, url, list(self.script))
        self.builds[(path, number)] = build
        return build

    def _item_json(self, item: _QueueItem, root: str) -> dict[str, Any]:
        build = item.build
        return {
            "_class": "hudson.model.Queue$LeftItem" if build else "hudson.model.Queue$WaitingItem",
            "id": item.id,
            "blocked": False,
            "buildable": build is None and not item.cancelled,
            "cancelled": item.cancelled,
            "stuck": False,
            "why": None if build or item.cancelled else "Waiting for next available executor",
            "task": {"name": item.job.rsplit("/", 1)[-1], "url": self._job_url(root, item.job)},
            "url": f"queue/item/{item.id}/",
            "executable": {"number": build.number, "url": build.url} if build else None,
        }

    async def _cancel_item(self, request: Request, match: re.Match[str], root: str) -> Response:
        item_id = request.query_params.get("id", "")
        item = self.queue.get(int(item_id)) if item_id.isdigit() else None
        with self._lock:
            if item is not None and item.build is None and not item.cancelled:
                item.cancelled = True
                self.cancelled.append(f"queue/{item.id}")
        # Jenkins answers the same whether or not there was anything to cancel.
        headers = {"Location": f"{root}/queue/"} if self.cancel_status == 302 else {}
        return Response(status_code=self.cancel_status, headers=headers)

    def _find_build(self, match: re.Match[str]) -> _Build | None:
        return self.builds.get((job_path(match.group(1)), int(match.group(2))))

    async def _build(self, request: Request, match: re.Match[str], root: str) -> Response:
        build = self._find_build(match)
        if build is None:
            return html_error(404, "Not Found")
        with self._lock:
            result = build.result()
            build.polls += 1
        return JSONResponse(
            {
                "_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
                "number": build.number,
                "url": build.url,
                "building": result is None,
                "result": result,
                "displayName": f"#{build.number}",
                "fullDisplayName": f"{build.job} #{build.number}",
            }
        )

    async def _stop(self, request: Request, match: re.Match[str], root: str) -> Response:
        build = self._find_build(match)
        if build is None:
            return html_error(404, "Not Found")
        with self._lock:
            if build.result() is None:
                build.aborted = True
                self.cancelled.append(f"{build.job}#{build.number}")
        return Response(status_code=302, headers={"Location": build.url})
