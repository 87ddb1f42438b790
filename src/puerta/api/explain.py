"""``GET /api/v1/explain``: why is a canary waiting, and when will that change?"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from puerta.api import schemas
from puerta.api.admin import ERRORS, reader
from puerta.api.auth import Principal
from puerta.api.instants import check_instant
from puerta.api.text_guard import storable_parameters
from puerta.domain.hooks import FlaggerPayload, HookType, parse_payload
from puerta.errors import BadRequest
from puerta.service.explain import HYPOTHETICAL_ID, ExplainService

router = APIRouter(prefix="/api/v1", tags=["explain"], dependencies=[Depends(storable_parameters)])


def _payload(canary: str, metadata: list[str]) -> FlaggerPayload:
    namespace, sep, name = canary.partition("/")
    if not sep:
        raise BadRequest(f"canary: expected NAMESPACE/NAME, got {canary!r}")
    pairs: dict[str, str] = {}
    for item in metadata:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise BadRequest(f"metadata: expected key=value, got {item!r}")
        pairs[key] = value
    body = json.dumps({"name": name, "namespace": namespace, "metadata": pairs}).encode()
    return parse_payload(body, HookType.CONFIRM_ROLLOUT)  # the same checks as a real call


def _utc(moment: datetime | None) -> datetime | None:
    """The API speaks UTC (clients show local times); window maths works in local zones."""
    return moment.astimezone(UTC) if moment is not None else None


@router.get("/explain", response_model=schemas.Explanation, responses=ERRORS)
async def explain(
    request: Request,
    _: Annotated[Principal | None, Depends(reader)],
    canary: Annotated[str, Query(description="NAMESPACE/NAME")],
    hook: HookType = HookType.CONFIRM_ROLLOUT,
    at: Annotated[
        datetime | None, Query(description="evaluate at this instant (with zone); default now")
    ] = None,
    metadata: Annotated[
        list[str], Query(description="webhook metadata as key=value, repeatable")
    ] = [],  # noqa: B006  (FastAPI copies query defaults)
) -> schemas.Explanation:
    """Which environment and gates apply to the canary, what each says at ``at``, its place in
    the release train, Puerta's answer, and the next moment that answer changes."""
    at = check_instant(at, "at")
    payload = _payload(canary, metadata)
    service: ExplainService = request.app.state.explain_service
    when = at or request.app.state.clock.now()
    result = await service.explain(payload, hook, when)
    train = None
    if result.train is not None:
        t = result.train
        this = result.rollout.id if result.rollout is not None else None
        train = schemas.TrainOut(
            max_concurrent=t.config.max_concurrent,
            queue=[
                f"{e.canary} (this rollout)"
                if e.rollout_id in (HYPOTHETICAL_ID, this)
                else f"{e.canary} #{e.seq}"
                for e in t.queue
            ],
            rolling_out=[f"{e.canary} #{e.seq}" for e in t.active],
            last_departure=t.last_release_at,
        )
    rollout = None
    if result.rollout is not None and not (result.hypothetical and result.rollout.id < 0):
        r = result.rollout
        rollout = schemas.ExplainRollout(
            seq=r.seq, status=r.status.value, revision=r.revision, started_at=r.started_at
        )
    d = result.decision
    return schemas.Explanation(
        canary=result.canary,
        hook=result.hook.value,
        at=_utc(result.at),
        environment=result.environment,
        timezone=result.timezone,
        matching=result.matching,
        rollout=rollout,
        hypothetical=result.hypothetical,
        decision=schemas.DecisionOut(
            verdict=d.verdict.value, http_status=d.http_status, reason=d.body, gate=d.gate
        ),
        gates=[
            schemas.GateExplanation(
                label=g.label,
                kind=g.kind,
                outcome=g.outcome,
                reason=g.reason,
                changes_at=_utc(g.changes_at),
            )
            for g in result.gates
        ],
        halted=result.halted,
        freezes=result.freezes,
        train=train,
        place_in_line=result.place_in_line,
        next_change=_utc(result.next_change),
        next_change_because=result.next_change_because,
    )
