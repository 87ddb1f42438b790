"""``/api/v1/ci/runs``: every E2E run Puerta triggered, its status history and links."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy.engine import Connection

from puerta.api import schemas
from puerta.api.admin import ERRORS, reader
from puerta.api.auth import Principal
from puerta.api.ci_views import with_events
from puerta.api.text_guard import storable_parameters
from puerta.errors import NotFound
from puerta.store import ci_runs
from puerta.store.db import Database

router = APIRouter(prefix="/api/v1", tags=["e2e runs"], dependencies=[Depends(storable_parameters)])

RunStatus = Literal["pending", "queued", "running", "succeeded", "failed", "canceled", "abandoned"]


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


@router.get("/ci/runs", response_model=schemas.CiRunList, responses=ERRORS)
async def list_runs(
    request: Request,
    _: Annotated[Principal | None, Depends(reader)],
    namespace: Annotated[str | None, Query(max_length=63)] = None,
    name: Annotated[str | None, Query(max_length=253)] = None,
    status: RunStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> schemas.CiRunList:
    """E2E runs, newest first, with their status history; filter by canary or status."""

    def read(conn: Connection) -> schemas.CiRunList:
        rows, total = ci_runs.list_runs(
            conn,
            namespace=namespace,
            name=name,
            status=status,
            limit=limit,
            offset=offset,
        )
        return schemas.CiRunList(runs=with_events(conn, rows), total=total)

    return await _db(request).read(read)


@router.get(
    "/ci/runs/{run_id}",
    response_model=schemas.CiRun,
    responses={**ERRORS, 404: {"model": schemas.Problem}},
)
async def get_run(
    request: Request,
    run_id: Annotated[int, Path(ge=1, le=2**31 - 1)],  # an INTEGER column
    _: Annotated[Principal | None, Depends(reader)],
) -> schemas.CiRun:
    """One E2E run with its status history."""

    def read(conn: Connection) -> schemas.CiRun:
        row = ci_runs.get_run(conn, run_id)
        if row is None:
            raise NotFound(f"no E2E run {run_id}")
        return with_events(conn, [row])[0]

    return await _db(request).read(read)
