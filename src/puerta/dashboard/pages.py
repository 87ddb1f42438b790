"""The pages (``GET /ui/...``) and the fragments the pages poll (``GET /ui/fragments/...``).

A fragment is the refreshed part of its page rendered alone, with the same access rules, so a
page shows current state on a plain reload too (it works without JavaScript).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.engine import Connection

from puerta.dashboard import viewmodels
from puerta.dashboard.access import Visitor, reading_visitor
from puerta.dashboard.commits import BadQuery, CommitSearch, parse_query, search
from puerta.dashboard.errors import not_found
from puerta.dashboard.responses import render
from puerta.dashboard.session import Flash
from puerta.dashboard.timeline import TimelineEntry, load_timeline
from puerta.dashboard.viewmodels import CanaryView
from puerta.errors import BadRequest, NotFound
from puerta.policy.model import CompiledEnvironment, CompiledPolicy
from puerta.service.whereabouts import CommitReport, WhereaboutsService
from puerta.store.db import Database

router = APIRouter()


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _policy(request: Request) -> CompiledPolicy:
    policy: CompiledPolicy = request.app.state.policy
    return policy


# ---- overview -----------------------------------------------------------------------------


async def _overview(request: Request, template: str) -> HTMLResponse:
    visitor = reading_visitor(request)
    policy, now = _policy(request), request.app.state.clock.now()
    groups = await _db(request).read(lambda conn: viewmodels.load_overview(conn, policy, now))
    return render(request, template, visitor, title="Rollouts", nav="overview", groups=groups)


@router.get("/")
async def overview(request: Request) -> HTMLResponse:
    """Every environment's canaries: phase, rollout, status and what each waits for."""
    return await _overview(request, "overview.html")


@router.get("/fragments/overview")
async def overview_fragment(request: Request) -> HTMLResponse:
    return await _overview(request, "_overview.html")


# ---- one canary ---------------------------------------------------------------------------


async def canary_page(
    request: Request,
    visitor: Visitor,
    namespace: str,
    name: str,
    *,
    template: str = "canary.html",
    status: int = 200,
    flash: Flash | None = None,
) -> HTMLResponse:
    """The canary page (or one of its fragments); actions re-render it to show an error."""
    with_timeline = visitor.can_read_audit and template != "_canary.html"

    def load(conn: Connection) -> tuple[CanaryView | None, list[TimelineEntry] | None]:
        view = viewmodels.load_canary(conn, namespace, name)
        if view is None or not with_timeline:
            return view, None
        return view, load_timeline(conn, namespace, name)

    view, timeline = await _db(request).read(load)
    if view is None:
        raise not_found(
            f"canary {namespace}/{name} has never called Puerta: check the namespace and name, "
            "or wait for Flagger's first webhook call"
        )
    env = view.canary.environment
    return render(
        request,
        template,
        visitor,
        status=status,
        flash=flash,
        title=f"{namespace}/{name}",
        nav="canary",
        view=view,
        timeline=timeline,
        environment_known=env is not None and _policy(request).environment(env) is not None,
    )


@router.get("/canaries/{namespace}/{name}")
async def canary(request: Request, namespace: str, name: str) -> HTMLResponse:
    """One canary: its current rollout, buttons, rollout history and timeline."""
    return await canary_page(request, reading_visitor(request), namespace, name)


@router.get("/fragments/canaries/{namespace}/{name}")
async def canary_fragment(request: Request, namespace: str, name: str) -> HTMLResponse:
    visitor = reading_visitor(request)
    return await canary_page(request, visitor, namespace, name, template="_canary.html")


@router.get("/fragments/canaries/{namespace}/{name}/timeline")
async def timeline_fragment(request: Request, namespace: str, name: str) -> HTMLResponse:
    visitor = reading_visitor(request)
    return await canary_page(request, visitor, namespace, name, template="_timeline.html")


# ---- one environment ----------------------------------------------------------------------


def known_environment(request: Request, name: str) -> CompiledEnvironment:
    environment = _policy(request).environment(name)
    if environment is None:
        known = ", ".join(e.name for e in _policy(request).environments) or "none"
        raise not_found(f"the policy has no environment {name!r}; its environments: {known}")
    return environment


async def environment_page(
    request: Request,
    visitor: Visitor,
    name: str,
    *,
    template: str = "environment.html",
    status: int = 200,
    flash: Flash | None = None,
) -> HTMLResponse:
    """The environment page (or its fragment); actions re-render it to show an error."""
    environment = known_environment(request, name)
    now = request.app.state.clock.now()
    view = await _db(request).read(lambda conn: viewmodels.load_environment(conn, environment, now))
    return render(
        request,
        template,
        visitor,
        status=status,
        flash=flash,
        title=f"Environment {name}",
        nav=f"env:{name}",
        view=view,
    )


@router.get("/environments/{environment}")
async def environment(request: Request, environment: str) -> HTMLResponse:
    """The release-train queue, the rollouts under way and the freezes of one environment."""
    return await environment_page(request, reading_visitor(request), environment)


@router.get("/fragments/environments/{environment}")
async def environment_fragment(request: Request, environment: str) -> HTMLResponse:
    visitor = reading_visitor(request)
    return await environment_page(request, visitor, environment, template="_environment.html")


# ---- where is my commit? ------------------------------------------------------------------


async def _commits(request: Request, q: str, template: str) -> HTMLResponse:
    visitor = reading_visitor(request)
    result: CommitSearch | None = None
    report: CommitReport | None = None
    error: str | None = None
    if q.strip():
        try:
            query = parse_query(q)
        except BadQuery as exc:
            error = str(exc)
        else:
            audit = visitor.can_read_audit
            result = await _db(request).read(lambda conn: search(conn, query, include_audit=audit))
            report = await _whereabouts(request, query)
    return render(
        request,
        template,
        visitor,
        status=400 if error else 200,
        title="Where is my commit?",
        nav="commits",
        q=q.strip(),
        result=result,
        report=report,
        error=error,
    )


async def _whereabouts(request: Request, query: str) -> CommitReport | None:
    """Where the commit is, when Puerta knows it as a commit (None: not seen, or not a SHA)."""
    service = WhereaboutsService(
        _db(request),
        request.app.state.policy,
        request.app.state.clock.now(),
        getattr(request.app.state, "commit_source", None),
    )
    try:
        return await service.find(query)
    except (NotFound, BadRequest):
        return None


@router.get("/commits")
async def commits(request: Request, q: str = "") -> HTMLResponse:
    """Paste a commit SHA or Flagger checksum: the rollouts and hook calls that carry it."""
    return await _commits(request, q, "commits.html")


@router.get("/fragments/commits")
async def commits_fragment(request: Request, q: str = "") -> HTMLResponse:
    return await _commits(request, q, "_commits.html")
