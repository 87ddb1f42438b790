"""Sign in with a Puerta token, sign out.

The token is checked once against the same registry as the API's bearer tokens and then
forgotten: the session cookie carries the token's name and role, never the token. A failed
sign-in is logged (with the client address, never the token) and answered 401.
"""

from __future__ import annotations

import hmac
from typing import Annotated

import structlog
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from puerta.api.auth import TokenRegistry
from puerta.dashboard.access import CSRF_FIELD, Visitor, check_same_site, current_visitor
from puerta.dashboard.errors import forbidden
from puerta.dashboard.forms import read_form
from puerta.dashboard.responses import clear_cookie, redirect, render, set_cookie
from puerta.dashboard.session import SESSION_COOKIE, SESSION_LIFETIME, Flash
from puerta.dashboard.state import dashboard_state

router = APIRouter()
log = structlog.get_logger("puerta.dashboard")

HOME = "/ui/"


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a dashboard path only (no open redirect)."""
    if (
        not value
        or not value.startswith("/ui/")
        or value.startswith("//")
        or any(c in value for c in "\\\r\n")
    ):
        return HOME
    return value


@router.get("/login")
async def login_form(
    request: Request, next_path: Annotated[str, Query(alias="next")] = HOME
) -> HTMLResponse:
    """The sign-in form (and, when signed in, who you are and a sign-out button)."""
    visitor = current_visitor(request)
    target = safe_next(next_path)
    return render(
        request, "login.html", visitor, title="Sign in", nav="login", next=target, error=None
    )


@router.post("/login")
async def login(request: Request) -> Response:
    check_same_site(request)
    form = await read_form(request)
    token = form.get("token")
    registry: TokenRegistry = request.app.state.tokens
    principal = registry.principal(token) if token else None
    next_path = safe_next(form.get("next"))
    client = request.client.host if request.client else None
    if principal is None:
        log.warning("dashboard sign-in refused", client=client)
        return render(
            request,
            "login.html",
            Visitor(None),
            status=401,
            title="Sign in",
            nav="login",
            next=next_path,
            error="That is not a token Puerta knows. Check it and try again.",
        )
    state = dashboard_state(request)
    _, value = state.signer.issue(principal, request.app.state.clock.now())
    role = principal.role.name.lower()
    log.info("dashboard sign-in", name=principal.name, role=role, client=client)
    response = redirect(request, next_path, Flash(f"Signed in as {principal.name} ({role})."))
    set_cookie(response, request, SESSION_COOKIE, value, int(SESSION_LIFETIME.total_seconds()))
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session (the form carries the CSRF token, so no other site can sign you out)."""
    check_same_site(request)
    form = await read_form(request)
    session = current_visitor(request).session
    if session is not None and not hmac.compare_digest(
        form.get(CSRF_FIELD).encode(), session.csrf.encode()
    ):
        raise forbidden("the form's security token is missing or stale: reload the page")
    public = request.app.state.policy.policy.auth.public_read
    response = redirect(request, HOME if public else "/ui/login", Flash("Signed out."))
    clear_cookie(response, request, SESSION_COOKIE)
    return response


@router.get("/logout")
async def logout_page(request: Request) -> Response:
    """Signing out is a POST (a link could be forged); this sends you to the form that has it."""
    return redirect(request, "/ui/login")
