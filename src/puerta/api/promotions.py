"""``/api/v1/promotions``: what was sent on after a rollout succeeded, and what is held."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.engine import Connection

from puerta.api import schemas
from puerta.api.admin import ERRORS, reader
from puerta.api.auth import Principal
from puerta.api.text_guard import storable_parameters
from puerta.store import promotions
from puerta.store.db import Database

router = APIRouter(
    prefix="/api/v1", tags=["promotions"], dependencies=[Depends(storable_parameters)]
)


@router.get("/promotions", response_model=schemas.PromotionList, responses=ERRORS)
async def list_promotions(
    request: Request,
    _: Annotated[Principal | None, Depends(reader)],
    namespace: Annotated[str | None, Query(max_length=63)] = None,
    name: Annotated[str | None, Query(max_length=253)] = None,
    status: Literal["pending", "held", "done", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> schemas.PromotionList:
    """Promotions, newest first."""

    def read(conn: Connection) -> schemas.PromotionList:
        rows, total = promotions.list_promotions(
            conn, namespace=namespace, name=name, status=status, limit=limit, offset=offset
        )
        return schemas.PromotionList(
            promotions=[schemas.Promotion.model_validate(row) for row in rows], total=total
        )

    db: Database = request.app.state.db
    return await db.read(read)
