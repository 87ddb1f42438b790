"""Who is looking, and may they do this?

* Reading: a signed-in person, or anyone when ``auth.public_read`` is true (as for the API's
  ``GET /api/v1/canaries``); otherwise :class:`LoginRequired` sends them to the sign-in page.
  The audit (the timeline, metadata search) always needs a session, as the API's ``/audit``
  always needs a token.
* Acting (every POST): the request must come from this site (``Sec-Fetch-Site``, else
  ``Origin`` against ``Host``, when the browser sends them), carry the session's CSRF token and
  be made by a role high enough. Every refusal is a 403 before anything changes.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request

from puerta.api.auth import Principal, Role
from puerta.dashboard.errors import LoginRequired, forbidden
from puerta.dashboard.forms import Form
from puerta.dashboard.session import SESSION_COOKIE, Session
from puerta.dashboard.state import dashboard_state

CSRF_FIELD = "csrf"


@dataclass(frozen=True)
class Visitor:
    """The person behind a request: a session, or anonymous (``session`` None)."""

    session: Session | None = None

    @property
    def principal(self) -> Principal | None:
        return self.session.principal if self.session is not None else None

    @property
    def csrf(self) -> str:
        return self.session.csrf if self.session is not None else ""

    def can(self, role: Role) -> bool:
        return self.session is not None and self.session.role >= role

    @property
    def can_approve(self) -> bool:
        return self.can(Role.APPROVER)

    @property
    def can_admin(self) -> bool:
        return self.can(Role.ADMIN)

    @property
    def can_read_audit(self) -> bool:
        return self.can(Role.VIEWER)


def current_visitor(request: Request) -> Visitor:
    """The valid session in the request's cookie, if any.

    A session is honoured only while the policy still has a token of that name with that role,
    so demoting or removing a token (and restarting) ends the sessions it opened.
    """
    state = dashboard_state(request)
    now = request.app.state.clock.now()
    session = state.signer.session(request.cookies.get(SESSION_COOKIE), now)
    if session is not None and state.roles.get(session.name) != session.role:
        session = None
    return Visitor(session)


def reading_visitor(request: Request) -> Visitor:
    """The visitor, if they may read canary status; else sign in first."""
    visitor = current_visitor(request)
    if visitor.session is None and not request.app.state.policy.policy.auth.public_read:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(path)
    return visitor


def _authority(netloc: str) -> str:
    netloc = netloc.lower()
    for default in (":80", ":443"):
        if netloc.endswith(default):
            return netloc[: -len(default)]
    return netloc


def same_site(request: Request) -> bool:
    """False for a post a browser says came from another site.

    ``Sec-Fetch-Site`` is the browser's own verdict and survives proxies that rewrite ``Host``;
    older browsers send only ``Origin``, compared with ``Host``. With neither (not a browser),
    the CSRF token alone decides.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    return _authority(urlsplit(origin).netloc) == _authority(request.headers.get("host", ""))


def check_same_site(request: Request) -> None:
    if not same_site(request):
        raise forbidden("form posts from other sites are refused")


def authorize(request: Request, form: Form, role: Role) -> Principal:
    """The signed-in principal allowed to post this form, or a 403 saying why not."""
    check_same_site(request)
    session = current_visitor(request).session
    if session is None:
        raise forbidden("sign in with a Puerta token first (your session may have expired)")
    if not hmac.compare_digest(form.get(CSRF_FIELD).encode(), session.csrf.encode()):
        raise forbidden("the form's security token is missing or stale: reload the page, try again")
    if session.role < role:
        raise forbidden(
            f"{session.name} has role {session.role.name.lower()}; this needs {role.name.lower()}"
        )
    return session.principal
