"""The loadtester's gate endpoints, answering exactly as flagger-loadtester does.

* ``/gate/approve``: 200 ``OK``, always; ``/gate/halt``: 403 ``Forbidden``, always;
* ``/gate/check``: 200 ``Approved`` while the gate is open, else 403 ``Forbidden``;
* ``/rollback/check``: 200 ``Approved`` while the rollback gate is open (Flagger's rollback
  hook then rolls back), else 403 ``Forbidden``;
* ``/gate/open|close``, ``/rollback/open|close``: 202 with an empty body.

Flagger calls the first three kinds, so they follow the hook rules (``access.py``); the
switches are for people and scripts, so they need an approver token.

The answers are the loadtester's fixed words so that existing scripts and alerts keep working;
the reason behind each answer is in the audit and the logs. Bodies are Flagger's payload
(``{"name": ..., "namespace": ...}``); the loadtester accepts any method, Puerta accepts the
ones people use (POST is the documented one).
"""

from __future__ import annotations

import structlog
from starlette.requests import Request
from starlette.responses import Response

from puerta.errors import Conflict
from puerta.loadtester.access import (
    Endpoint,
    Refused,
    answering,
    approver,
    check_hook_caller,
    check_namespace,
    read_payload,
    text,
)
from puerta.loadtester.gates import GateKind, LoadtesterGates
from puerta.metrics import Metrics

log = structlog.get_logger("puerta.loadtester")

#: Flagger POSTs; people sometimes GET or PUT a check with curl.
CHECK_METHODS = ["GET", "POST", "PUT"]
#: State changes are never a GET.
CHANGE_METHODS = ["POST", "PUT"]


def _gates(request: Request) -> LoadtesterGates:
    state = request.app.state
    return LoadtesterGates(state.db, state.policy, state.clock)


def _fixed(name: str, status: int, body: str) -> Endpoint:
    passed = status == 200

    async def endpoint(request: Request) -> Response:
        payload = await read_payload(request)
        check_hook_caller(request, payload)
        await _gates(request).record_fixed(f"gate-{name}", payload, passed)
        log.info(f"loadtester gate {name}", canary=payload.canary, status=status)
        return text(status, body)

    endpoint.__doc__ = f"``/gate/{name}``: always {status} {body!r}."
    return endpoint


def _check(kind: GateKind) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        payload = await read_payload(request)
        check_hook_caller(request, payload)
        result = await _gates(request).check(kind, payload)
        log.info(
            f"loadtester {kind.value} check",
            canary=payload.canary,
            open=result.open,
            reason=result.reason,
        )
        return text(200, "Approved") if result.open else text(403, "Forbidden")

    endpoint.__doc__ = f"``/{kind.value}/check``: 200 Approved while open, else 403 Forbidden."
    return endpoint


def _change(kind: GateKind, opening: bool) -> Endpoint:
    verb = "open" if opening else "close"

    async def endpoint(request: Request) -> Response:
        principal = approver(request)
        payload = await read_payload(request)
        check_namespace(request, payload)
        reason = payload.metadata.get("reason", "")
        gates = _gates(request)
        change = gates.open if opening else gates.close
        try:
            message = await change(kind, payload, actor=principal.name, reason=reason)
        except Conflict as exc:
            raise Refused(409, str(exc)) from exc
        metrics: Metrics = request.app.state.metrics
        metrics.admin_actions.labels(f"{kind.value}-{verb}").inc()
        log.info(
            f"loadtester {kind.value} {verb}",
            canary=payload.canary,
            actor=principal.name,
            result=message,
        )
        return Response(status_code=202)

    endpoint.__doc__ = f"``/{kind.value}/{verb}``: 202; needs an approver token."
    return endpoint


def gate_routes() -> list[tuple[str, Endpoint, list[str]]]:
    """``(path, endpoint, methods)`` of every gate endpoint."""
    routes: list[tuple[str, Endpoint, list[str]]] = [
        ("/gate/approve", _fixed("approve", 200, "OK"), CHECK_METHODS),
        ("/gate/halt", _fixed("halt", 403, "Forbidden"), CHECK_METHODS),
    ]
    for kind in GateKind:
        routes += [
            (f"/{kind.value}/check", _check(kind), CHECK_METHODS),
            (f"/{kind.value}/open", _change(kind, opening=True), CHANGE_METHODS),
            (f"/{kind.value}/close", _change(kind, opening=False), CHANGE_METHODS),
        ]
    return [(path, answering(path, endpoint), methods) for path, endpoint, methods in routes]
