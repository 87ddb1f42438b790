"""Build the configured CI providers (in the app factory, never at import time), each with
its own HTTP client whose every request first draws from the provider's shared budget.

The budget is a token bucket in the database (``store/ci_runs.take_token``), so all replicas
together stay under ``requests_per_minute``. The CI runner books the token of a run's first
request when it claims the run (``prepaid_token``). A request the budget cannot grant now is
not sent: :class:`BudgetExhausted` (a :class:`RateLimited`) tells the runner how long to wait.
A granted request goes out on a worker thread (``ci/threaded_transport.py``), off the event
loop that answers Flagger.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial

import httpx

from puerta.ci.base import CiProvider, RateLimited
from puerta.ci.circleci import CircleCI
from puerta.ci.config import CiConfig, CiProviderConfig
from puerta.ci.github import GitHubActions
from puerta.ci.gitlab import GitLabCI
from puerta.ci.jenkins import Jenkins
from puerta.ci.threaded_transport import ThreadedTransport
from puerta.clock import Clock
from puerta.secret_refs import read_secret
from puerta.store import ci_runs
from puerta.store.db import Database


class BudgetExhausted(RateLimited):
    """Puerta's own budget for this provider is used up for now: wait ``retry_after``."""


#: a provider whose budget already granted this task's next request its token (see
#: ``prepaid_token``); a context variable, so it belongs to one asyncio task
_PREPAID: ContextVar[str | None] = ContextVar("puerta_ci_prepaid_token", default=None)


@contextmanager
def prepaid_token(provider: str) -> Iterator[None]:
    """Within the block, the task's next request to ``provider`` uses a token the caller
    already has (the runner books it in the transaction that claims the run, which saves a
    transaction per request); any later request takes its own. A token left unused is
    simply spent: the budget errs on the side of fewer requests."""
    reset = _PREPAID.set(provider)
    try:
        yield
    finally:
        _PREPAID.reset(reset)


class BudgetedTransport(httpx.AsyncBaseTransport):
    """Sends a request only once the provider's budget grants it a token."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        take: Callable[[], Awaitable[float]],
        provider: str,
    ) -> None:
        self.inner = inner
        self.take = take
        self.provider = provider
        self.sent = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if _PREPAID.get() == self.provider:
            _PREPAID.set(None)  # this request's token was taken with its run's claim
            wait = 0.0
        else:
            wait = await self.take()
        if wait > 0:
            raise BudgetExhausted(
                f"{self.provider}: request budget used up; next request in {wait:.1f}s",
                retry_after=wait,
                status=None,
            )
        self.sent += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class ProviderHandle:
    name: str
    config: CiProviderConfig
    provider: CiProvider
    client: httpx.AsyncClient
    transport: BudgetedTransport


def read_tokens(config: CiConfig, environ: Mapping[str, str]) -> dict[str, str]:
    """Each provider's API token; ConfigError naming the setting when one is missing (read
    when the app is built, so ``serve`` refuses to start rather than fail the first run)."""
    return {
        name: read_secret(provider.token, f"ci.providers.{name}.token", environ)
        for name, provider in config.providers.items()
    }


def build_providers(
    config: CiConfig,
    tokens: Mapping[str, str],
    db: Database,
    clock: Clock,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> dict[str, ProviderHandle]:
    """One handle per configured provider, its HTTP client drawing from the shared budget."""
    handles: dict[str, ProviderHandle] = {}
    for name, provider_config in config.providers.items():
        token = tokens[name]
        take = partial(_take, db, clock, name, provider_config)
        budgeted = BudgetedTransport(transport or ThreadedTransport(), take, name)
        client = httpx.AsyncClient(
            transport=budgeted,
            timeout=provider_config.request_timeout.total_seconds(),
            follow_redirects=False,
        )
        provider = _provider(provider_config, client, token, clock)
        handles[name] = ProviderHandle(name, provider_config, provider, client, budgeted)
    return handles


async def _take(db: Database, clock: Clock, name: str, config: CiProviderConfig) -> float:
    rate = config.requests_per_minute / 60.0
    now = clock.now()
    return await db.write(lambda conn: ci_runs.take_token(conn, name, now, rate, config.burst))


def _provider(
    config: CiProviderConfig, client: httpx.AsyncClient, token: str, clock: Clock
) -> CiProvider:
    base = config.api_url
    if config.type == "circleci":
        app_url = config.app_url or "https://app.circleci.com"
        return CircleCI(client, base_url=base, token=token, app_url=app_url, clock=clock)
    if config.type == "github":
        return GitHubActions(client, base_url=base, token=token, clock=clock.now)
    if config.type == "gitlab":
        return GitLabCI(client, base_url=base, token=token)
    assert config.user is not None  # the policy model requires it for jenkins
    return Jenkins(client, base_url=base, user=config.user, token=token)


async def close_providers(handles: Mapping[str, ProviderHandle]) -> None:
    for handle in handles.values():
        await handle.client.aclose()
