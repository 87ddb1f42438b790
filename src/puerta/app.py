"""The app factory: settings, policy, tokens, database and services are built here, never at
import time, so tests build as many isolated apps as they like (with their own clock)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from puerta import __version__
from puerta.api import admin, ci_webhooks, environments, explain, health, hooks
from puerta.api import audit as audit_api
from puerta.api import ci as ci_api
from puerta.api import commits as commits_api
from puerta.api import delivery as delivery_api
from puerta.api import notifications as notifications_api
from puerta.api import promotions as promotions_api
from puerta.api.auth import TokenRegistry
from puerta.api.worker_only import WorkerOnly
from puerta.ci.registry import build_providers, close_providers, read_tokens
from puerta.ci.webhooks import read_webhook_secrets
from puerta.clock import Clock, SystemClock
from puerta.dashboard import install as install_dashboard
from puerta.errors import BadRequest, Conflict, NotFound, PuertaError
from puerta.loadtester import install as loadtester
from puerta.metrics import Metrics
from puerta.notify.registry import NotifySecrets, build_sinks, read_notify_secrets
from puerta.policy import CompiledPolicy, load_policy
from puerta.service.admin import AdminService
from puerta.service.audit_sealer import AuditSealer
from puerta.service.ci_runner import CiRunner
from puerta.service.commit_wiring import (
    build_commit_sources,
    read_github_token,
    read_promote_secrets,
)
from puerta.service.delivery_metrics import DeliveryMetrics
from puerta.service.explain import ExplainService
from puerta.service.hooks import HookService
from puerta.service.load_runner import LoadRunner
from puerta.service.notifier import NotificationWorker
from puerta.service.promoter import Promoter
from puerta.service.run_changes import RunChanges
from puerta.settings import Settings
from puerta.store.db import Database

log = structlog.get_logger("puerta.app")

_STATUS = {BadRequest: 400, NotFound: 404, Conflict: 409}


def create_app(
    settings: Settings,
    *,
    policy: CompiledPolicy | None = None,
    clock: Clock | None = None,
    tokens: TokenRegistry | None = None,
    freeze_startup_objects: bool = False,
) -> FastAPI:
    """Build a Puerta app. Raises :class:`ConfigError` for an invalid policy or a missing secret.

    ``tokens`` replaces the tokens the policy names (``puerta simulate`` runs without them).
    ``freeze_startup_objects`` (``puerta serve``): once started, move every object alive then
    (imports, policy, clients: ~190,000) out of the garbage collector's sight. Each full
    collection otherwise walks them all and stops the event loop for ~120 ms, which was
    every hook call's p99.9; they live as long as the process anyway. Tests, which build many
    apps in one process, leave it off.
    """
    compiled = policy or load_policy(settings.config_path)
    if tokens is None:
        tokens = TokenRegistry.from_policy(compiled.policy, settings.environ)
    the_clock = clock or SystemClock()
    # Secrets are read only where they are used: in-process tools without outside effects
    # (simulate, explain --policy) read none, and a replica with role ``web`` (which may face
    # the internet, for the dashboard and the CI webhooks) reads none of the outbound ones
    # (CI, chat, promotion webhooks): only its background workers call out with them
    effects = settings.background
    workers = settings.runs_workers
    ci_tokens = read_tokens(compiled.policy.ci, settings.environ) if workers else {}
    webhook_secrets = read_webhook_secrets(compiled.policy.ci, settings.environ) if effects else {}
    notifications = compiled.policy.notifications
    notify_secrets = (
        read_notify_secrets(notifications, settings.environ) if workers else NotifySecrets()
    )
    github_token = read_github_token(compiled.policy, settings.environ) if effects else None
    promote_secrets = read_promote_secrets(compiled.policy, settings.environ) if workers else {}
    promotes = any(env.spec.promote for env in compiled.environments)
    database_url = settings.resolve_database_url(compiled.policy.database.url)
    lease = timedelta(seconds=settings.lease)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(database_url)
        if settings.migrate_on_start:
            await db.migrate()
        app.state.db = db
        app.state.hook_service = HookService(db, compiled, the_clock)
        app.state.admin_service = AdminService(db, the_clock, notifications)
        app.state.explain_service = ExplainService(db, compiled)
        # held hook calls wait on it; without outside effects nothing changes runs, so nothing
        # is held
        run_changes = RunChanges() if effects else None
        app.state.run_changes = run_changes
        commands = loadtester.start(app)  # flagger-loadtester task commands of this replica
        runner = (
            LoadRunner(db, the_clock, interval=settings.runner_interval, lease=lease)
            if workers
            else None
        )
        app.state.load_runner = runner
        if runner is not None:
            await runner.start()
        providers = build_providers(compiled.policy.ci, ci_tokens, db, the_clock) if workers else {}
        ci_runner = (
            CiRunner(
                db,
                the_clock,
                providers,
                interval=settings.runner_interval,
                lease=lease,
                metrics=app.state.metrics,
                notifications=notifications,
                changes=run_changes,
            )
            if workers
            else None
        )
        app.state.ci_runner = ci_runner
        if ci_runner is not None:
            await ci_runner.start()
        sealer = (
            AuditSealer(
                db,
                the_clock,
                interval=settings.runner_interval,
                retention=compiled.policy.audit.retention_period(),
            )
            if workers
            else None
        )
        app.state.audit_sealer = sealer
        if sealer is not None:
            await sealer.start()
        sinks = build_sinks(notifications, notify_secrets)
        sources = build_commit_sources(compiled.policy, github_token, db, the_clock, sinks)
        notifier = (
            NotificationWorker(
                db,
                the_clock,
                notifications,
                chat=sinks.chat,
                event_sinks=sinks.events,
                resolver=sources.resolver,
                interval=settings.runner_interval,
                lease=lease,
                metrics=app.state.metrics,
            )
            if workers and notifications.routes
            else None
        )
        app.state.notifier = notifier
        if notifier is not None:
            await notifier.start()
        app.state.commit_source = sources.github
        promoter = (
            Promoter(
                db,
                the_clock,
                compiled,
                resolver=sources.resolver,
                repos=sources.github,
                client=sinks.client,
                webhook_secrets=promote_secrets,
                notifications=notifications,
                interval=settings.runner_interval,
                lease=lease,
            )
            if workers and (bool(compiled.policy.commits.rules) or promotes)
            else None
        )
        app.state.promoter = promoter
        if promoter is not None:
            await promoter.start()
        delivery_metrics = (
            DeliveryMetrics(db, the_clock, app.state.metrics.registry) if workers else None
        )
        app.state.delivery_metrics = delivery_metrics
        if delivery_metrics is not None:
            await delivery_metrics.start()
        log.info(
            "puerta started",
            version=__version__,
            database=db.dialect,
            role=settings.role,
            environments=[e.name for e in compiled.environments],
        )
        if settings.background and not workers:
            log.info(
                "background work left to other replicas",
                role=settings.role,
                reason="CI runs, notifications, promotions, load tests and audit sealing run "
                "on replicas with role worker or all, on the same database",
            )
        if freeze_startup_objects:
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            # each step runs even if one before it failed: generators and commands must not
            # outlive the app, and the database closes last
            try:
                if delivery_metrics is not None:
                    await delivery_metrics.stop()
                if sealer is not None:
                    await sealer.stop()
                # together: each lets its round under way finish (briefly), then hands back
                # what it holds, so the other replicas take it over at once
                leased = [w for w in (promoter, notifier, ci_runner) if w is not None]
                await asyncio.gather(*(w.stop() for w in leased), return_exceptions=True)
                if runner is not None:
                    await runner.stop()
            finally:
                try:
                    await commands.stop()
                    await close_providers(providers)
                    await sinks.aclose()
                    await sources.aclose()
                finally:
                    await db.dispose()

    app = FastAPI(
        title="Puerta",
        version=__version__,
        description="Gating service for Flagger canary deployments.",
        lifespan=lifespan,
    )
    app.state.policy = compiled
    app.state.tokens = tokens
    app.state.metrics = Metrics()
    app.state.clock = the_clock
    app.state.ci_runner = None
    app.state.run_changes = None
    app.state.audit_sealer = None
    app.state.notifier = None
    app.state.promoter = None
    app.state.delivery_metrics = None
    app.state.commit_source = None
    app.state.webhook_secrets = webhook_secrets
    app.add_route(hooks.PATH, hooks.flagger_hook, methods=["POST"])
    app.include_router(admin.router)
    app.include_router(audit_api.router)
    app.include_router(environments.router)
    app.include_router(explain.router)
    app.include_router(health.router)
    app.include_router(ci_api.router)
    app.include_router(notifications_api.router)
    app.include_router(promotions_api.router)
    app.include_router(delivery_api.router)
    app.include_router(commits_api.router)
    app.add_route(ci_webhooks.PATH, ci_webhooks.ci_webhook, methods=["POST"])
    install_dashboard(app, settings.environ)  # the web dashboard under /ui/
    app.add_route("/", _to_dashboard, methods=["GET"], include_in_schema=False)
    loadtester.install(app)  # flagger-loadtester endpoints: /gate/*, /rollback/*, POST /
    _install_error_handlers(app)
    _document_hooks(app)
    if not settings.answers_calls:
        app.add_middleware(WorkerOnly)
    return app


def _document_hooks(app: FastAPI) -> None:
    """Add the Flagger hook endpoint (a plain Starlette route) to the OpenAPI document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema["paths"] = {hooks.PATH: hooks.OPENAPI_PATH, **schema["paths"]}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


async def _to_dashboard(request: Request) -> Response:
    """People who open Puerta's address in a browser want the dashboard."""
    return RedirectResponse("/ui/", status_code=307)


def _is_hook(request: Request) -> bool:
    return request.url.path.startswith("/hooks/")


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(PuertaError)
    async def _puerta_error(request: Request, exc: PuertaError) -> Response:
        status = next((code for cls, code in _STATUS.items() if isinstance(exc, cls)), 500)
        if _is_hook(request):
            return PlainTextResponse(str(exc), status_code=status)
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for error in exc.errors():
            loc = ".".join(str(p) for p in error["loc"] if p != "body")
            problems.append(f"{loc or 'body'}: {error['msg']}")
        return JSONResponse({"detail": "; ".join(problems)}, status_code=400)

    @app.exception_handler(SQLAlchemyError)
    async def _database(request: Request, exc: SQLAlchemyError) -> Response:
        # Transient: Flagger retries 5xx, and a 503 tells a load balancer to try another replica.
        log.error("database error", error=type(exc).__name__, path=request.url.path)
        unavailable = isinstance(exc, OperationalError)
        message = "database unavailable" if unavailable else "database error"
        if _is_hook(request):
            return PlainTextResponse(message, status_code=503)
        return JSONResponse({"detail": message}, status_code=503)
