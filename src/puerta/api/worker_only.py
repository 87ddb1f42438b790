"""A replica with role ``worker`` answers only what keeps it running and observed.

It does the background work (CI runs, notifications, promotions, load generators) and answers
``/healthz``, ``/readyz`` and ``/metrics`` for its probes and Prometheus. Anything else reaching
it was routed wrongly (a Service selecting it, a port-forward to the wrong pod): it answers 503
naming its role, which Flagger retries and a load balancer takes as "try another replica",
rather than deciding a hook on a replica that was meant to stay off the hot path.
"""

from __future__ import annotations

from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

#: what a worker replica still answers
WORKER_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

REFUSAL = (
    "this Puerta replica only does background work (PUERTA_ROLE=worker); send hooks, API, "
    "dashboard and CI webhook calls to a replica with role web or all"
)


class WorkerOnly:
    """ASGI middleware: pass the worker's paths through, refuse the rest with a 503."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in WORKER_PATHS:
            await self.app(scope, receive, send)
            return
        response: Response
        if scope["path"].startswith("/hooks/"):
            response = PlainTextResponse(REFUSAL, status_code=503)  # Flagger reads plain text
        else:
            response = JSONResponse({"detail": REFUSAL}, status_code=503)
        await response(scope, receive, send)
