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

Like Jenkins, a build keeps only the parameters its job declares (others are dropped); the
queue (``/queue/api/json``) and a job (``/job/.../api/json``) list their items and builds with
those parameters, and every ``api/json`` answer honours ``tree`` (fields, nesting and
``{M,N}`` ranges), as Jenkins' does.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
    params: dict[str, str]
    timestamp: int  # ms since the epoch, as Jenkins gives it
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
    params: dict[str, str]  # the declared ones: Jenkins drops the others
    polls: int = 0
    cancelled: bool = False
    build: _Build | None = None


def _parameters_action(params: dict[str, str]) -> list[dict[str, Any]]:
    """A queue item's or build's ``actions``: the parameters, and a cause like Jenkins'."""
    cause = {"_class": "hudson.model.CauseAction", "causes": [{"userId": "puerta"}]}
    if not params:
        return [cause]
    values = [
        {"_class": "hudson.model.StringParameterValue", "name": name, "value": value}
        for name, value in params.items()
    ]
    return [{"_class": "hudson.model.ParametersAction", "parameters": values}, cause]


def _tree(text: str) -> dict[str, Any]:
    """Parse ``tree=a,b[c,d]{0,5}`` into ``{name: (subtree or None, range or None)}``."""
    parsed, rest = _tree_fields(text.replace(" ", ""))
    if rest:
        raise ValueError(f"unexpected {rest!r} in tree")
    return parsed


def _tree_fields(text: str) -> tuple[dict[str, Any], str]:
    fields: dict[str, Any] = {}
    while text:
        match = re.match(r"[A-Za-z_][\w]*", text)
        if match is None:
            raise ValueError(f"bad tree at {text!r}")
        name, text = match.group(0), text[match.end() :]
        sub: dict[str, Any] | None = None
        if text.startswith("["):
            sub, text = _tree_fields(text[1:])
            if not text.startswith("]"):
                raise ValueError("unclosed [ in tree")
            text = text[1:]
        span: tuple[int | None, int | None] | None = None
        if text.startswith("{"):
            inner, _, text = text[1:].partition("}")
            low, comma, high = inner.partition(",")
            start = int(low) if low else None
            span = (start, (int(high) if high else None) if comma else (start or 0) + 1)
        fields[name] = (sub, span)
        if text.startswith(","):
            text = text[1:]
            continue
        break
    return fields, text


def _apply_tree(value: Any, fields: dict[str, Any]) -> Any:
    """Keep only the fields the tree names (and ``_class``, which Jenkins always adds);
    actions the tree does not reach become ``{}``, as in Jenkins' answers."""
    if isinstance(value, list):
        return [_apply_tree(item, fields) for item in value]
    if not isinstance(value, dict):
        return value
    kept: dict[str, Any] = {"_class": value["_class"]} if "_class" in value else {}
    for name, (sub, span) in fields.items():
        if name not in value:
            continue
        inner = value[name]
        if span is not None and isinstance(inner, list):
            inner = inner[span[0] : span[1]]
        kept[name] = _apply_tree(inner, sub) if sub is not None else inner
    return kept


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
    ``triggered``: (job, parameters) per queued build, as sent; ``cancelled``: ``"queue/<q>"``
    or ``"<job>#<n>"``; ``raw_paths``: the undecoded path of every request. ``now``: the clock
    that stamps builds (``timestamp``).
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
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    app: Starlette = field(init=False, repr=False)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(101))

    def __post_init__(self) -> None:
        methods = ["GET", "POST"]
        self.app = Starlette(routes=[Route("/{rest:path}", self._handle, methods=methods)])
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("POST", re.compile(_JOB + r"/(build|buildWithParameters)$"), self._trigger),
            ("GET", re.compile(r"^/queue/item/(\d+)/api/json$"), self._queue_item),
            ("GET", re.compile(r"^/queue/api/json$"), self._queue),
            ("POST", re.compile(r"^/queue/cancelItem$"), self._cancel_item),
            ("GET", re.compile(_JOB + r"/(\d+)/api/json$"), self._build),
            ("GET", re.compile(_JOB + r"/api/json$"), self._job),
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
                response = await handler(request, match, root)
                await self.hold_answer(request.method, raw)
                return self._trimmed(request, response)
        return html_error(404, "Not Found")

    @staticmethod
    def _trimmed(request: Request, response: Response) -> Response:
        """An ``api/json`` answer cut down to the ``tree`` query parameter, if given."""
        tree = request.query_params.get("tree")
        if tree is None or not isinstance(response, JSONResponse) or response.status_code != 200:
            return response
        try:
            fields = _tree(tree)
        except ValueError as exc:
            return html_error(400, str(exc))
        return JSONResponse(_apply_tree(json.loads(bytes(response.body)), fields))

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
        declared = {name: value for name, value in params.items() if name in job.params}
        with self._lock:
            item = _QueueItem(next(self._ids), job.path, declared)
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
                item.build = self._start_build(root, item)
            item.polls += 1
        return JSONResponse(self._item_json(item, root))

    def _start_build(self, root: str, item: _QueueItem) -> _Build:
        job = self.jobs[item.job]
        number, job.next_number = job.next_number, job.next_number + 1
        url = f"{self._job_url(root, item.job)}/{number}/"
        stamp = int(self.now().timestamp() * 1000)
        build = _Build(item.job, number, url, list(self.script), dict(item.params), stamp)
        self.builds[(item.job, number)] = build
        return build

    def start_waiting_builds(self, root: str) -> None:
        """Every waiting queue item becomes a build now (Jenkins found executors)."""
        with self._lock:
            for item in self.queue.values():
                if not item.cancelled and item.build is None:
                    item.build = self._start_build(root, item)

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
            "actions": _parameters_action(item.params),
            "params": "".join(f"\n{name}={value}" for name, value in item.params.items()),
            "executable": {"number": build.number, "url": build.url} if build else None,
        }

    async def _queue(self, request: Request, match: re.Match[str], root: str) -> Response:
        """The queue: the items still waiting (Jenkins drops an item here once it left)."""
        if self.queue_forgotten:
            items: list[dict[str, Any]] = []
        else:
            with self._lock:
                waiting = [i for i in self.queue.values() if i.build is None and not i.cancelled]
            items = [self._item_json(item, root) for item in waiting]
        return JSONResponse(
            {"_class": "hudson.model.Queue", "discoverableItems": [], "items": items}
        )

    async def _job(self, request: Request, match: re.Match[str], root: str) -> Response:
        """A job: its declared parameters and its builds, newest first."""
        job = self.jobs.get(job_path(match.group(1)))
        if job is None:
            return html_error(404, "Not Found")
        with self._lock:
            builds = sorted(
                (b for b in self.builds.values() if b.job == job.path),
                key=lambda build: build.number,
                reverse=True,
            )
            listed = [self._build_json(build) for build in builds]
        definitions = [
            {"_class": "hudson.model.StringParameterDefinition", "name": name, "type": "String"}
            for name in job.params
        ]
        properties = (
            [
                {
                    "_class": "hudson.model.ParametersDefinitionProperty",
                    "parameterDefinitions": definitions,
                }
            ]
            if definitions
            else []
        )
        url = self._job_url(root, job.path) + "/"
        return JSONResponse(
            {
                "_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
                "name": job.path.rsplit("/", 1)[-1],
                "url": url,
                "property": properties,
                "builds": listed,
            }
        )

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
            body = self._build_json(build)
            build.polls += 1
        return JSONResponse(body)

    @staticmethod
    def _build_json(build: _Build) -> dict[str, Any]:
        result = build.result()
        return {
            "_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
            "actions": _parameters_action(build.params),
            "number": build.number,
            "url": build.url,
            "building": result is None,
            "result": result,
            "timestamp": build.timestamp,
            "displayName": f"#{build.number}",
            "fullDisplayName": f"{build.job} #{build.number}",
        }

    async def _stop(self, request: Request, match: re.Match[str], root: str) -> Response:
        build = self._find_build(match)
        if build is None:
            return html_error(404, "Not Found")
        with self._lock:
            if build.result() is None:
                build.aborted = True
                self.cancelled.append(f"{build.job}#{build.number}")
        return Response(status_code=302, headers={"Location": build.url})
