"""``/api/v1/promotions``: what was sent on after a rollout succeeded, and what is held; and
holding and releasing a promotion by hand (approver role, audited with the token's name,
announced like the other admin actions)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import Row
from sqlalchemy.engine import Connection

from puerta.api import schemas
from puerta.api.admin import ACTION_ERRORS, ERRORS, approver, count_action, reader
from puerta.api.auth import Principal
from puerta.api.text_guard import storable_parameters
from puerta.service.promoter import Promoter, PromotionHolds
from puerta.store import promotions
from puerta.store.db import Database

router = APIRouter(
    prefix="/api/v1", tags=["promotions"], dependencies=[Depends(storable_parameters)]
)

#: the largest id the ``promotions.id`` column (a 32-bit integer) holds
MAX_PROMOTION_ID = 2**31 - 1
PromotionId = Annotated[int, Path(ge=1, le=MAX_PROMOTION_ID, description="the promotion's id")]


class PromotionView(schemas.Promotion):
    """A promotion, with what it sends (rendered once, before its first attempt) and who holds
    or released it by hand."""

    status: str = Field(
        description="pending, held (by hand, manual_release, a freeze or a halt: held_reason "
        "says which), done or failed"
    )
    release_name: str | None = Field(default=None, description="the release's name, once known")
    event_type: str | None = Field(default=None, description="the dispatch's event type")
    held_by: str | None = Field(default=None, description="who holds it by hand")
    released_by: str | None = Field(default=None, description="who last released it by hand")
    released_at: datetime | None = None
    next_attempt_at: datetime | None = Field(
        default=None,
        description="pending or held: when a replica looks at it next (a held one is "
        "checked again every 30 s)",
    )


class PromotionPage(BaseModel):
    promotions: list[PromotionView]
    total: int


class PromotionActionResponse(schemas.ActionResponse):
    promotion: PromotionView


@router.get("/promotions", response_model=PromotionPage, responses=ERRORS)
async def list_promotions(
    request: Request,
    _: Annotated[Principal | None, Depends(reader)],
    namespace: Annotated[str | None, Query(max_length=63)] = None,
    name: Annotated[str | None, Query(max_length=253)] = None,
    status: Literal["pending", "held", "done", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> PromotionPage:
    """Promotions, newest first."""

    def read(conn: Connection) -> PromotionPage:
        rows, total = promotions.list_promotions(
            conn, namespace=namespace, name=name, status=status, limit=limit, offset=offset
        )
        return PromotionPage(
            promotions=[PromotionView.model_validate(row) for row in rows], total=total
        )

    db: Database = request.app.state.db
    return await db.read(read)


@router.post(
    "/promotions/{promotion_id}/hold",
    response_model=PromotionActionResponse,
    responses=ACTION_ERRORS,
)
async def hold(
    request: Request,
    promotion_id: PromotionId,
    principal: Annotated[Principal, Depends(approver)],
    body: schemas.ActionRequest | None = None,
) -> PromotionActionResponse:
    """Hold a pending or held promotion: it does not go out until someone releases it.
    Needs approver; 409 when it is done, failed, already held by hand or being sent now."""
    reason = (body or schemas.ActionRequest()).reason
    row = await _holds(request).hold(promotion_id, actor=principal.name, reason=reason)
    count_action(request, "promotion-hold")
    return _answer("hold", row, principal, f"promotion {promotion_id} held")


@router.post(
    "/promotions/{promotion_id}/release",
    response_model=PromotionActionResponse,
    responses=ACTION_ERRORS,
)
async def release(
    request: Request,
    promotion_id: PromotionId,
    principal: Annotated[Principal, Depends(approver)],
    body: schemas.ActionRequest | None = None,
) -> PromotionActionResponse:
    """Release a promotion held by hand (or waiting under ``manual_release``): it is due now.
    A freeze or a halt still holds it. Needs approver; 409 when nothing manual holds it."""
    reason = (body or schemas.ActionRequest()).reason
    row = await _holds(request).release(promotion_id, actor=principal.name, reason=reason)
    count_action(request, "promotion-release")
    promoter: Promoter | None = request.app.state.promoter
    if promoter is not None:
        promoter.wake()
    return _answer("release", row, principal, f"promotion {promotion_id} released")


def _holds(request: Request) -> PromotionHolds:
    """Built per call from the app's state (cheap): the database, clock, policy and
    notification routes every replica shares."""
    state = request.app.state
    return PromotionHolds(state.db, state.clock, state.policy, state.policy.policy.notifications)


def _answer(
    action: str, row: Row[Any], principal: Principal, message: str
) -> PromotionActionResponse:
    view = PromotionView.model_validate(row)
    if view.held_reason:
        message += f": {view.held_reason}"
    return PromotionActionResponse(
        action=f"promotion-{action}",
        namespace=row.namespace,
        name=row.name,
        rollout_seq=row.rollout_seq,
        message=message,
        actor=principal.name,
        promotion=view,
    )
