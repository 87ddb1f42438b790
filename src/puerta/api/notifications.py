"""``/api/v1/notifications``: the outbox, so people see what was delivered, what waits for an
outage to end, and what failed for good (a channel that does not exist, a bot not in it)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.engine import Connection

from puerta.api import schemas
from puerta.api.admin import ERRORS, viewer
from puerta.api.auth import Principal
from puerta.api.text_guard import storable_parameters
from puerta.store import outbox
from puerta.store.db import Database

router = APIRouter(
    prefix="/api/v1", tags=["notifications"], dependencies=[Depends(storable_parameters)]
)

Status = Literal["pending", "sent", "failed", "skipped"]


@router.get("/notifications", response_model=schemas.NotificationList, responses=ERRORS)
async def list_notifications(
    request: Request,
    _: Annotated[Principal, Depends(viewer)],
    status: Status | None = None,
    namespace: Annotated[str | None, Query(max_length=63)] = None,
    name: Annotated[str | None, Query(max_length=253)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> schemas.NotificationList:
    """Notification deliveries, newest first (viewer: messages can name people)."""

    def read(conn: Connection) -> schemas.NotificationList:
        rows, total = outbox.list_items(
            conn, status=status, namespace=namespace, name=name, limit=limit, offset=offset
        )
        return schemas.NotificationList(
            items=[schemas.NotificationItem.model_validate(row) for row in rows],
            total=total,
            counts=outbox.count_by_status(conn),
        )

    db: Database = request.app.state.db
    return await db.read(read)
