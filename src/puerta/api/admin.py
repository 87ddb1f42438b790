"""``/api/v1``: canaries and their rollouts, manual actions, the audit.

Reading canary status is open when ``auth.public_read`` is true (developers want to know where
their rollout is); every mutating call and every read of the audit needs a bearer token with a
sufficient role, and every action is audited with the token's name as the actor.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import Row
from sqlalchemy.engine import Connection

from puerta.api import schemas
from puerta.api.auth import Principal, Role, bearer_principal, require
from puerta.api.ci_views import ci_runs_of_rollout
from puerta.api.instants import check_instant
from puerta.api.text_guard import storable_parameters
from puerta.api.views import canary_from, rollout_from
from puerta.errors import BadRequest, NotFound
from puerta.metrics import Metrics
from puerta.service.admin import ActionResult, AdminService
from puerta.store import repository as repo
from puerta.store.db import Database

#: the largest row id a database stores (a 64-bit integer)
MAX_ID = 2**63 - 1

router = APIRouter(prefix="/api/v1", tags=["admin"], dependencies=[Depends(storable_parameters)])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": schemas.Problem, "description": "missing or unknown token"},
    403: {"model": schemas.Problem, "description": "the token's role may not do this"},
}


def reader(request: Request) -> Principal | None:
    principal = bearer_principal(request)
    if principal is None and not request.app.state.policy.policy.auth.public_read:
        return require(Role.VIEWER, request)
    return principal


def viewer(request: Request) -> Principal:
    return require(Role.VIEWER, request)


def approver(request: Request) -> Principal:
    return require(Role.APPROVER, request)


def admin(request: Request) -> Principal:
    return require(Role.ADMIN, request)


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _admin(request: Request) -> AdminService:
    service: AdminService = request.app.state.admin_service
    return service


@router.get("/whoami", response_model=schemas.WhoAmI, responses=ERRORS)
async def whoami(principal: Annotated[Principal, Depends(viewer)]) -> schemas.WhoAmI:
    """The name and role of the presented token."""
    return schemas.WhoAmI(name=principal.name, role=principal.role.name.lower())


@router.get("/canaries", response_model=schemas.CanaryList, responses=ERRORS)
async def list_canaries(
    request: Request,
    _: Annotated[Principal | None, Depends(reader)],
    namespace: str | None = None,
    environment: str | None = None,
) -> schemas.CanaryList:
    """Every canary Puerta has seen, with its current rollout, phase and what it waits for."""
    rows = await _db(request).read(
        lambda conn: repo.list_canaries(conn, namespace=namespace, environment=environment)
    )
    return schemas.CanaryList(
        canaries=[schemas.Canary(**canary_from(row, rollout_from(row, "rollout_"))) for row in rows]
    )


@router.get(
    "/canaries/{namespace}/{name}",
    response_model=schemas.CanaryDetail,
    responses={**ERRORS, 404: {"model": schemas.Problem}},
)
async def get_canary(
    request: Request,
    namespace: str,
    name: str,
    _: Annotated[Principal | None, Depends(reader)],
    history: Annotated[int, Query(ge=1, le=500)] = 20,
) -> schemas.CanaryDetail:
    """One canary: its current rollout and its rollout history, newest first."""

    def load(
        conn: Connection,
    ) -> tuple[Row[Any], Sequence[Row[Any]], Sequence[Row[Any]], list[schemas.CiRun]]:
        canary = repo.find_canary(conn, namespace, name)
        if canary is None:
            raise NotFound(f"canary {namespace}/{name} has never called Puerta")
        rollouts = repo.rollout_history(conn, canary.id, history)
        current = rollouts[0] if rollouts and rollouts[0].id == canary.current_rollout_id else None
        loads = repo.load_runs_of(conn, canary.id, current.seq) if current is not None else []
        runs = ci_runs_of_rollout(conn, canary, current.seq) if current is not None else []
        return canary, rollouts, loads, runs

    canary, rows, loads, runs = await _db(request).read(load)
    rollouts = [r for r in (rollout_from(row) for row in rows) if r is not None]
    current = rollouts[0] if rows and rows[0].id == canary.current_rollout_id else None
    return schemas.CanaryDetail(
        **canary_from(canary, current),
        history=rollouts,
        load_tests=[schemas.LoadTest.model_validate(row) for row in loads],
        e2e_runs=runs,
    )


def _action_response(result: ActionResult, principal: Principal) -> schemas.ActionResponse:
    return schemas.ActionResponse(
        action=result.action,
        namespace=result.namespace,
        name=result.name,
        rollout_seq=result.rollout_seq,
        message=result.message,
        actor=principal.name,
    )


ACTION_ERRORS = {**ERRORS, 404: {"model": schemas.Problem}, 409: {"model": schemas.Problem}}


@router.post(
    "/canaries/{namespace}/{name}/approve",
    response_model=schemas.ActionResponse,
    responses=ACTION_ERRORS,
)
async def approve(
    request: Request,
    namespace: str,
    name: str,
    principal: Annotated[Principal, Depends(approver)],
    body: schemas.ApproveRequest | None = None,
) -> schemas.ActionResponse:
    """Approve the waiting rollout (and lift a halt). Needs the approver role."""
    body = body or schemas.ApproveRequest()
    result = await _admin(request).approve(
        namespace, name, actor=principal.name, reason=body.reason, hook=body.hook, scope=body.scope
    )
    count_action(request, "approve")
    return _action_response(result, principal)


@router.post(
    "/canaries/{namespace}/{name}/halt",
    response_model=schemas.ActionResponse,
    responses=ACTION_ERRORS,
)
async def halt(
    request: Request,
    namespace: str,
    name: str,
    principal: Annotated[Principal, Depends(approver)],
    body: schemas.RequiredReasonRequest,
) -> schemas.ActionResponse:
    """Stop the canary: its confirm-* hooks wait until someone approves. Needs approver."""
    result = await _admin(request).halt(namespace, name, actor=principal.name, reason=body.reason)
    count_action(request, "halt")
    return _action_response(result, principal)


@router.post(
    "/canaries/{namespace}/{name}/rollback",
    response_model=schemas.ActionResponse,
    responses=ACTION_ERRORS,
)
async def rollback(
    request: Request,
    namespace: str,
    name: str,
    principal: Annotated[Principal, Depends(approver)],
    body: schemas.RequiredReasonRequest,
) -> schemas.ActionResponse:
    """Roll the current rollout back: the rollback hook answers 200. Needs approver."""
    result = await _admin(request).rollback(
        namespace, name, actor=principal.name, reason=body.reason
    )
    count_action(request, "rollback")
    return _action_response(result, principal)


@router.post(
    "/canaries/{namespace}/{name}/override",
    response_model=schemas.ActionResponse,
    responses=ACTION_ERRORS,
)
async def override(
    request: Request,
    namespace: str,
    name: str,
    principal: Annotated[Principal, Depends(admin)],
    body: schemas.RequiredReasonRequest,
) -> schemas.ActionResponse:
    """Break-glass: let the waiting rollout through windows, freezes and the release train.
    Needs admin; the reason is mandatory and shown in Puerta's answer to Flagger."""
    result = await _admin(request).override(
        namespace, name, actor=principal.name, reason=body.reason
    )
    count_action(request, "override")
    return _action_response(result, principal)


def count_action(request: Request, action: str) -> None:
    metrics: Metrics = request.app.state.metrics
    metrics.admin_actions.labels(action).inc()


@router.get("/audit", response_model=schemas.AuditPage, responses=ERRORS)
async def audit(
    request: Request,
    _: Annotated[Principal, Depends(viewer)],
    canary: Annotated[str | None, Query(description="NAMESPACE/NAME")] = None,
    namespace: str | None = None,
    environment: str | None = None,
    hook: str | None = None,
    decision: Annotated[
        str | None, Query(description="pass, wait, fail, rollback, carry-on, recorded")
    ] = None,
    kind: Annotated[str | None, Query(description="hook, admin, promotion or audit")] = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> schemas.AuditPage:
    """Hook calls and admin actions, newest first. Needs a token (viewer or above)."""
    name = None
    if canary is not None:
        ns, sep, name = canary.partition("/")
        if not sep or not ns or not name:
            raise BadRequest(f"canary: expected NAMESPACE/NAME, got {canary!r}")
        if namespace is not None and namespace != ns:
            raise BadRequest("canary and namespace disagree")
        namespace = ns
    since = check_instant(since, "since")
    until = check_instant(until, "until")
    where = repo.AuditFilter(
        namespace=namespace,
        name=name,
        environment=environment,
        hook=hook,
        verdict=decision,
        kind=kind,
        actor=actor,
        since=since,
        until=until,
    )
    rows = await _db(request).read(
        lambda conn: repo.query_audit(conn, where, limit=limit, before_id=cursor)
    )
    events = [schemas.AuditEvent.model_validate(row) for row in rows]
    next_cursor = events[-1].id if len(events) == limit else None
    return schemas.AuditPage(events=events, next_cursor=next_cursor)
