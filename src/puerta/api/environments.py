"""``/api/v1/freezes`` and ``/api/v1/environments``: freezes on demand and the release-train
queue of each environment. Creating and lifting freezes needs the admin role."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from puerta.api import schemas
from puerta.api.admin import ACTION_ERRORS, ERRORS, count_action, reader
from puerta.api.auth import Principal, Role, require
from puerta.api.instants import check_instant
from puerta.api.text_guard import storable_parameters
from puerta.errors import BadRequest
from puerta.policy.model import CompiledPolicy
from puerta.service.admin import AdminService
from puerta.store import live as live_store
from puerta.store import repository as repo
from puerta.store.db import Database

router = APIRouter(
    prefix="/api/v1", tags=["environments"], dependencies=[Depends(storable_parameters)]
)


def admin_role(request: Request) -> Principal:
    return require(Role.ADMIN, request)


def _known_environment(request: Request, name: str) -> None:
    policy: CompiledPolicy = request.app.state.policy
    if policy.environment(name) is None:
        known = ", ".join(e.name for e in policy.environments) or "none"
        raise BadRequest(f"environment: unknown environment {name!r}; known: {known}")


@router.post("/freezes", response_model=schemas.Freeze, status_code=201, responses=ACTION_ERRORS)
async def create_freeze(
    request: Request,
    body: schemas.FreezeRequest,
    principal: Annotated[Principal, Depends(admin_role)],
) -> schemas.Freeze:
    """Freeze an environment (or some of its namespaces): confirm-rollout waits until it is
    lifted or ends. Needs admin."""
    _known_environment(request, body.environment)
    check_instant(body.until, "until")
    check_instant(body.starts_at, "starts_at")
    service: AdminService = request.app.state.admin_service
    row = await service.freeze(
        body.environment,
        actor=principal.name,
        reason=body.reason,
        until=body.until,
        namespaces=body.namespaces,
        starts_at=body.starts_at,
    )
    count_action(request, "freeze")
    return schemas.Freeze.model_validate(row)


@router.get("/freezes", response_model=schemas.FreezeList, responses=ERRORS)
async def list_freezes(
    request: Request,
    _: Annotated[Principal | None, Depends(reader)],
    environment: str | None = None,
) -> schemas.FreezeList:
    """Freezes in force or scheduled (not lifted, not ended)."""
    db: Database = request.app.state.db
    now = request.app.state.clock.now()
    rows = await db.read(lambda conn: repo.active_freezes(conn, environment, now))
    return schemas.FreezeList(freezes=[schemas.Freeze.model_validate(r) for r in rows])


@router.post(
    "/environments/{environment}/unfreeze",
    response_model=schemas.UnfreezeResponse,
    responses=ACTION_ERRORS,
)
async def unfreeze(
    request: Request,
    environment: str,
    principal: Annotated[Principal, Depends(admin_role)],
    body: schemas.UnfreezeRequest | None = None,
) -> schemas.UnfreezeResponse:
    """Lift every active freeze of the environment (or one, by id). Needs admin."""
    _known_environment(request, environment)
    body = body or schemas.UnfreezeRequest()
    service: AdminService = request.app.state.admin_service
    ids = await service.unfreeze(
        environment, actor=principal.name, reason=body.reason, freeze_id=body.freeze_id
    )
    count_action(request, "unfreeze")
    return schemas.UnfreezeResponse(environment=environment, lifted=ids, actor=principal.name)


@router.get(
    "/environments/{environment}/live",
    response_model=schemas.LiveEnvironment,
    responses={**ERRORS, 400: {"model": schemas.Problem}},
)
async def live(
    request: Request,
    environment: str,
    _: Annotated[Principal | None, Depends(reader)],
    history: Annotated[int, Query(ge=0, le=100)] = 5,
) -> schemas.LiveEnvironment:
    """What each canary of the environment runs now (image, commit, since when), and what ran
    before, newest first."""
    _known_environment(request, environment)
    db: Database = request.app.state.db
    rows = await db.read(lambda c: live_store.succeeded_rollouts(c, environment, 5000))
    canaries: dict[tuple[str, str], list[schemas.LiveRevision]] = {}
    for row in rows:
        revisions = canaries.setdefault((row.namespace, row.name), [])
        if len(revisions) <= history:
            revisions.append(_revision(row))
    return schemas.LiveEnvironment(
        environment=environment,
        canaries=[
            schemas.LiveCanary(namespace=ns, name=name, live=revs[0], history=revs[1:])
            for (ns, name), revs in sorted(canaries.items())
        ],
    )


def _revision(row: Any) -> schemas.LiveRevision:
    return schemas.LiveRevision(
        rollout_seq=row.seq,
        revision=row.revision,
        since=row.finished_at,
        image=row.image,
        repository=row.repository,
        sha=row.sha,
        url=row.url,
        title=row.title,
        author_name=row.author_name,
        committed_at=row.committed_at,
        commit_problem=row.commit_reason if row.commit_status == "unresolved" else None,
    )
