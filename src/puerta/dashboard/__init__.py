"""Puerta's web dashboard, under ``/ui/``: every rollout, why it waits, where a revision is,
and the buttons to act on it.

Server-rendered (Jinja2), no front-end build and nothing loaded from elsewhere: one CSS file and
one small script served from ``static/``. The script only rewrites times into the viewer's time
zone and refreshes the marked parts of a page by polling; every page works without it.
:func:`install` is the one call the app factory makes.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter, Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from puerta.api.text_guard import storable_parameters
from puerta.dashboard import actions, login, pages
from puerta.dashboard.errors import LoginRequired, PageError
from puerta.dashboard.render import STATIC_DIR, STATIC_PREFIX
from puerta.dashboard.responses import login_required, page_error
from puerta.dashboard.state import DashboardState

router = APIRouter(
    prefix="/ui", include_in_schema=False, dependencies=[Depends(storable_parameters)]
)
router.include_router(pages.router)
router.include_router(actions.router)
router.include_router(login.router)

__all__ = ["install", "router"]


def install(app: FastAPI, environ: Mapping[str, str]) -> None:
    """Serve the dashboard from ``app``; ``environ`` may hold ``PUERTA_SESSION_SECRET`` and
    ``PUERTA_UI_REFRESH_SECONDS``. Needs ``app.state.policy`` to be set."""
    app.state.dashboard = DashboardState.build(app.state.policy, environ)
    app.include_router(router)
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="dashboard-static")
    app.add_exception_handler(PageError, page_error)
    app.add_exception_handler(LoginRequired, login_required)
