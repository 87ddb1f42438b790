"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from puerta.metrics import Metrics
from puerta.store.db import Database

router = APIRouter(tags=["health"])


@router.get("/healthz", response_class=PlainTextResponse)
async def healthz() -> str:
    """The process is up."""
    return "ok"


@router.get("/readyz", response_class=PlainTextResponse, responses={503: {}})
async def readyz(request: Request) -> PlainTextResponse:
    """Ready to answer hooks: the database answers."""
    db: Database = request.app.state.db
    try:
        await db.ping()
    except (SQLAlchemyError, OSError) as exc:
        return PlainTextResponse(f"database unreachable: {type(exc).__name__}", status_code=503)
    return PlainTextResponse("ready")


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus exposition of Puerta's metrics."""
    registry: Metrics = request.app.state.metrics
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
