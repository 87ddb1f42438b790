"""Who may call the loadtester endpoints, and the shape every answer takes.

Endpoints Flagger calls (``/gate/check|approve|halt``, ``/rollback/check``, ``POST /``) follow
the rules of ``/hooks/*`` exactly: the payload is parsed by the same function, the optional
hook token travels in ``?token=`` or ``metadata.token``, and the namespace must be allowed by
``hooks.namespaces``. Endpoints that change a gate (``/gate/open|close``,
``/rollback/open|close``) are what people and scripts call, so they need a bearer token with
the approver role; the original loadtester had no authentication at all.

Every refusal is plain text with a reason and a 4xx status (Flagger shows 4xx bodies in its
events and retries 5xx, dropping the body).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from puerta.api.auth import Principal, Role, require
from puerta.api.hook_caller import CallerRefused
from puerta.api.hook_caller import check_hook_caller as check_caller
from puerta.api.hook_caller import check_namespace as check_caller_namespace
from puerta.api.hook_caller import read_payload as read_hook_payload
from puerta.domain.hooks import FlaggerPayload, HookType
from puerta.errors import BadRequest
from puerta.loadtester.metrics import LoadtesterMetrics

Endpoint = Callable[[Request], Awaitable[Response]]


class Refused(Exception):
    """Answer the request with ``status`` and a plain-text ``text`` right away."""

    def __init__(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.headers = headers


def text(status: int, body: str = "") -> PlainTextResponse:
    return PlainTextResponse(body, status_code=status)


def answering(name: str, handler: Endpoint) -> Endpoint:
    """Wrap an endpoint: refusals become plain-text answers, and every answer is counted."""

    async def endpoint(request: Request) -> Response:
        try:
            response = await handler(request)
        except Refused as exc:
            response = PlainTextResponse(exc.text, status_code=exc.status, headers=exc.headers)
        except BadRequest as exc:
            response = text(400, str(exc))
        except HTTPException as exc:  # from the bearer-token check
            response = PlainTextResponse(
                str(exc.detail), status_code=exc.status_code, headers=exc.headers
            )
        metrics: LoadtesterMetrics = request.app.state.loadtester_metrics
        metrics.requests.labels(name, str(response.status_code)).inc()
        return response

    endpoint.__name__ = f"loadtester_{name.strip('/').replace('/', '_') or 'task'}"
    endpoint.__doc__ = handler.__doc__
    return endpoint


async def read_payload(request: Request, hook: HookType = HookType.ROLLOUT) -> FlaggerPayload:
    """Flagger's payload, validated like a hook call's; :class:`BadRequest` names the field.

    ``hook`` only matters for ``event`` (which needs event metadata); the loadtester endpoints
    are called from gating hooks, so the default checks nothing more.
    """
    return await read_hook_payload(request, hook)


def check_hook_caller(request: Request, payload: FlaggerPayload) -> None:
    """The rules of ``/hooks/*``: the hook token (when the policy sets one), then the namespace."""
    try:
        check_caller(request, payload)
    except CallerRefused as exc:
        raise Refused(exc.status, exc.text) from exc


def check_namespace(request: Request, payload: FlaggerPayload) -> None:
    """Only the namespace rule (for endpoints that authenticate with a bearer token)."""
    try:
        check_caller_namespace(request, payload)
    except CallerRefused as exc:
        raise Refused(exc.status, exc.text) from exc


def approver(request: Request) -> Principal:
    """The caller of a state-changing endpoint: a bearer token with approver role or above."""
    return require(Role.APPROVER, request)
