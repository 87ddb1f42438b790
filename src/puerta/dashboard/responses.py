"""Every dashboard response is built here: pages and fragments with the shared context,
redirects carrying a one-shot message, cookies with the same flags everywhere, and security
headers that forbid framing and any script or style not served by Puerta itself."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from puerta.dashboard.access import Visitor, current_visitor
from puerta.dashboard.errors import LoginRequired, PageError
from puerta.dashboard.session import FLASH_COOKIE, FLASH_LIFETIME, Flash
from puerta.dashboard.state import dashboard_state

COOKIE_PATH = "/ui"
FRAGMENT_PREFIX = "/ui/fragments/"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages carry CSRF tokens and live state
}


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    """HttpOnly, SameSite=Strict, Path=/ui, and Secure whenever the request came over https."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(
        name,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def render(
    request: Request,
    template: str,
    visitor: Visitor,
    *,
    status: int = 200,
    flash: Flash | None = None,
    **context: Any,
) -> HTMLResponse:
    """A page or fragment. A page shows (and clears) the message left by the last redirect."""
    state = dashboard_state(request)
    now = request.app.state.clock.now()
    is_page = not request.url.path.startswith(FRAGMENT_PREFIX)  # fragments leave it be
    consumed = flash is None and is_page and FLASH_COOKIE in request.cookies
    if consumed:
        flash = state.signer.read_flash(request.cookies[FLASH_COOKIE], now)
    context.setdefault("nav", "")  # which main-menu entry is the current page
    html = state.templates.get_template(template).render(
        visitor=visitor,
        flash=flash,
        environments=[env.name for env in request.app.state.policy.environments],
        public_read=request.app.state.policy.policy.auth.public_read,
        now=now,
        refresh_ms=state.refresh_seconds * 1000,
        path=request.url.path,
        **context,
    )
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    if consumed:
        clear_cookie(response, request, FLASH_COOKIE)
    return response


def redirect(request: Request, url: str, flash: Flash | None = None) -> RedirectResponse:
    """303 See Other (the browser follows with a GET), optionally with a message for it."""
    response = RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)
    if flash is not None:
        value = dashboard_state(request).signer.flash(flash, request.app.state.clock.now())
        set_cookie(response, request, FLASH_COOKIE, value, int(FLASH_LIFETIME.total_seconds()))
    return response


def login_url(next_path: str) -> str:
    return "/ui/login?" + urlencode({"next": next_path})


async def page_error(request: Request, exc: Exception) -> Response:
    """Exception handler: a :class:`PageError` as an HTML page (a short text for fragments)."""
    assert isinstance(exc, PageError)
    if request.url.path.startswith(FRAGMENT_PREFIX):
        return PlainTextResponse(exc.message, status_code=exc.status, headers=SECURITY_HEADERS)
    return render(
        request,
        "error.html",
        current_visitor(request),
        status=exc.status,
        title=exc.title,
        message=exc.message,
    )


async def login_required(request: Request, exc: Exception) -> Response:
    """Exception handler: fragments answer 401 (the script reloads the page), pages redirect."""
    assert isinstance(exc, LoginRequired)
    if request.url.path.startswith(FRAGMENT_PREFIX):
        return PlainTextResponse("sign in", status_code=401, headers=SECURITY_HEADERS)
    return redirect(request, login_url(exc.next_path))
