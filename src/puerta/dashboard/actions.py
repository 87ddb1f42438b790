"""The buttons: approve, halt, roll back, override a canary; freeze and unfreeze an environment.

Each post is checked first (same site, CSRF token, role: :func:`access.authorize`) and refused
with 403 before anything is read or changed. The work is done by :class:`AdminService`, the
same code the API calls, which audits it with the signed-in person's name as the actor. Success
redirects back to the page with the result (post/redirect/get); a refusal by the service
(nothing to approve, a reason missing) shows the page again with the message and its status.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response

from puerta.api.admin import count_action
from puerta.api.auth import Role
from puerta.dashboard.access import authorize, current_visitor
from puerta.dashboard.errors import not_found
from puerta.dashboard.forms import Form, read_form
from puerta.dashboard.pages import canary_page, environment_page, known_environment
from puerta.dashboard.render import url_segment
from puerta.dashboard.responses import redirect
from puerta.dashboard.session import Flash
from puerta.domain.durations import parse_duration
from puerta.errors import BadRequest, Conflict, NotFound
from puerta.service.admin import ActionResult, AdminService

router = APIRouter()

MAX_REASON = 2000
_STATUS = {BadRequest: 400, Conflict: 409}

Call = Callable[[AdminService, str, str, str, str], Awaitable[ActionResult]]


@dataclass(frozen=True)
class CanaryAction:
    role: Role
    reason_required: bool
    call: Call


async def _approve(s: AdminService, ns: str, name: str, actor: str, reason: str) -> ActionResult:
    return await s.approve(ns, name, actor=actor, reason=reason)


async def _halt(s: AdminService, ns: str, name: str, actor: str, reason: str) -> ActionResult:
    return await s.halt(ns, name, actor=actor, reason=reason)


async def _rollback(s: AdminService, ns: str, name: str, actor: str, reason: str) -> ActionResult:
    return await s.rollback(ns, name, actor=actor, reason=reason)


async def _override(s: AdminService, ns: str, name: str, actor: str, reason: str) -> ActionResult:
    return await s.override(ns, name, actor=actor, reason=reason)


#: the same roles as the API's endpoints (``api/admin.py``)
CANARY_ACTIONS = {
    "approve": CanaryAction(Role.APPROVER, False, _approve),
    "halt": CanaryAction(Role.APPROVER, True, _halt),
    "rollback": CanaryAction(Role.APPROVER, True, _rollback),
    "override": CanaryAction(Role.ADMIN, True, _override),
}


def _service(request: Request) -> AdminService:
    service: AdminService = request.app.state.admin_service
    return service


def _reason(form: Form, required: bool) -> str:
    reason = form.get("reason")
    if required and not reason:
        raise BadRequest("give a reason: it is recorded in the audit and shown to Flagger")
    if len(reason) > MAX_REASON:
        raise BadRequest(f"the reason is longer than {MAX_REASON} characters")
    return reason


def _status(exc: BadRequest | Conflict) -> int:
    return next(code for cls, code in _STATUS.items() if isinstance(exc, cls))


@router.post("/canaries/{namespace}/{name}/{action}")
async def canary_action(request: Request, namespace: str, name: str, action: str) -> Response:
    """Approve (reason optional), halt, roll back (approver) or override (admin) a canary."""
    spec = CANARY_ACTIONS.get(action)
    if spec is None:
        raise not_found(f"no action {action!r}; actions: {', '.join(CANARY_ACTIONS)}")
    form = await read_form(request)
    principal = authorize(request, form, spec.role)
    try:
        reason = _reason(form, spec.reason_required)
        result = await spec.call(_service(request), namespace, name, principal.name, reason)
    except NotFound as exc:
        raise not_found(str(exc)) from exc
    except (BadRequest, Conflict) as exc:
        flash = Flash(f"{action} refused: {exc}", "error")
        visitor = current_visitor(request)
        status = _status(exc)
        return await canary_page(request, visitor, namespace, name, status=status, flash=flash)
    count_action(request, action)
    url = f"/ui/canaries/{url_segment(namespace)}/{url_segment(name)}"
    return redirect(request, url, Flash(f"{result.message} (by {principal.name})"))


def _namespaces(text: str) -> list[str]:
    """``prod-pay*, prod-billing`` (commas or blanks between globs)."""
    return [part for part in text.replace(",", " ").split() if part]


def _duration(text: str) -> timedelta | None:
    if not text:
        return None
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise BadRequest(f"duration: {exc}") from exc
    if value <= timedelta(0):
        raise BadRequest("duration: must be longer than 0s (leave it empty: until lifted)")
    return value


@router.post("/environments/{environment}/freeze")
async def freeze(request: Request, environment: str) -> Response:
    """Freeze the environment (or some namespaces of it) now, until lifted or for a duration.
    Needs admin."""
    form = await read_form(request)
    principal = authorize(request, form, Role.ADMIN)
    known_environment(request, environment)
    now = request.app.state.clock.now()
    try:
        reason = _reason(form, True)
        duration = _duration(form.get("duration"))
        row = await _service(request).freeze(
            environment,
            actor=principal.name,
            reason=reason,
            until=now + duration if duration is not None else None,
            namespaces=_namespaces(form.get("namespaces")),
        )
    except (BadRequest, Conflict) as exc:
        return await _environment_error(request, environment, "freeze", exc)
    count_action(request, "freeze")
    message = f"freeze {row.id} created by {principal.name}: {reason}"
    return redirect(request, f"/ui/environments/{url_segment(environment)}", Flash(message))


@router.post("/environments/{environment}/unfreeze")
async def unfreeze(request: Request, environment: str) -> Response:
    """Lift one freeze (``freeze_id``) or every active freeze of the environment. Needs admin."""
    form = await read_form(request)
    principal = authorize(request, form, Role.ADMIN)
    known_environment(request, environment)
    raw_id = form.get("freeze_id")
    try:
        if raw_id and not raw_id.isdigit():
            raise BadRequest(f"freeze_id: {raw_id!r} is not a freeze number")
        ids = await _service(request).unfreeze(
            environment,
            actor=principal.name,
            reason=_reason(form, False),
            freeze_id=int(raw_id) if raw_id else None,
        )
    except NotFound as exc:
        raise not_found(str(exc)) from exc
    except (BadRequest, Conflict) as exc:
        return await _environment_error(request, environment, "unfreeze", exc)
    count_action(request, "unfreeze")
    lifted = ", ".join(str(i) for i in ids)
    message = f"lifted freeze {lifted} of {environment} (by {principal.name})"
    return redirect(request, f"/ui/environments/{url_segment(environment)}", Flash(message))


async def _environment_error(
    request: Request, environment: str, action: str, exc: BadRequest | Conflict
) -> Response:
    flash = Flash(f"{action} refused: {exc}", "error")
    visitor = current_visitor(request)
    return await environment_page(request, visitor, environment, status=_status(exc), flash=flash)
