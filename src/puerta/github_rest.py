"""GitHub REST plumbing shared by the Actions client (``ci/github.py``) and the repositories
client (``commits/github.py``): the API version, reading GitHub's rate-limit answers the same
way in both (429, or 403 with ``retry-after``, ``x-ratelimit-remaining: 0`` or a "rate limit"
message), and small readers of its bodies."""

from __future__ import annotations

from collections.abc import Callable, Collection, Generator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from puerta.ci import http
from puerta.external import PermanentError, ProviderError, RateLimited, TransientError

PROVIDER = "github"
API_VERSION = "2022-11-28"  # the version whose dispatch schema knows ``return_run_details``
SECONDARY_WAIT = 60.0  # GitHub: "otherwise, wait for at least one minute"


class GitHubClient:
    """What each GitHub REST client holds: the HTTP client (built in the app factory), the API
    base (``https://api.github.com`` or an Enterprise ``https://host/api/v3``), the token and
    a clock of UTC instants (turns ``x-ratelimit-reset`` into a wait). The token only ever
    goes into the Authorization header: ``repr`` leaves it out."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str = "https://api.github.com",
        token: str,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if not token:
            raise ValueError(f"{type(self).__name__} needs a token")
        self._client = client
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._clock = clock or (lambda: datetime.now(UTC))

    def __repr__(self) -> str:  # never show the token
        return f"{type(self).__name__}(base_url={self._base_url!r})"

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        accept: Collection[int] = (),
    ) -> httpx.Response:
        """One request with GitHub's headers and rate-limit rules.

        A 4xx in ``accept`` is returned (with its body) for the caller to interpret; other
        failures raise as ``http.request`` classifies them, GitHub's rate limits as
        :class:`RateLimited`, and refusals name the request.
        """
        observed = Observed(self._token)
        try:
            return await http.request(
                self._client,
                method,
                self._base_url + path,
                provider=PROVIDER,
                headers={
                    "Accept": "application/vnd.github+json",
                    "X-GitHub-Api-Version": API_VERSION,
                },
                params=params,
                json=json,
                auth=observed,
                follow_redirects=True,  # GitHub redirects renamed repositories
            )
        except ProviderError as exc:
            response = observed.response
            limited = rate_limited(exc, response, self._clock())
            if limited is not None:
                raise limited from exc
            if not isinstance(exc, PermanentError):
                raise
            if response is not None and exc.status in accept:
                return response
            raise PermanentError(f"{exc} ({method} {path})", status=exc.status) from exc


class Observed(httpx.Auth):
    """Adds the bearer token and keeps the final answer of one call.

    ``http.request`` turns a 403 into a PermanentError without its headers; keeping the
    response here lets the clients tell GitHub's rate-limit 403 from a
    refusal. One instance per call, so concurrent calls never share it.
    """

    def __init__(self, token: str) -> None:
        self._token = token
        self.response: httpx.Response | None = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        self.response = yield request


def parse_instant(value: str | None) -> datetime | None:
    """An ISO-8601 instant (naive means UTC); None when absent or unreadable."""
    if not value:
        return None
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        return None
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The body as a JSON object; anything else is treated as an outage, never a pass."""
    try:
        body = response.json()
    except ValueError as exc:
        raise TransientError(
            f"{PROVIDER}: HTTP {response.status_code} without a JSON body",
            status=response.status_code,
        ) from exc
    if not isinstance(body, dict):
        raise TransientError(
            f"{PROVIDER}: HTTP {response.status_code}: expected a JSON object",
            status=response.status_code,
        )
    return body


def split_repo(project: str) -> tuple[str, str]:
    """``owner/repo`` -> (owner, repo); anything else is a policy mistake."""
    parts = project.strip().split("/")
    if len(parts) != 2 or not all(parts):
        raise PermanentError(f'{PROVIDER}: project must be "owner/repo", got {project!r}')
    return parts[0], parts[1]


def repo_path(project: str) -> str:
    owner, repo = split_repo(project)
    return f"/repos/{quote(owner, safe='')}/{quote(repo, safe='')}"


def until_reset(response: httpx.Response, now: datetime) -> float:
    """Seconds until ``x-ratelimit-reset`` (UTC epoch seconds); a minute if it is absent."""
    reset = response.headers.get("x-ratelimit-reset", "")
    try:
        return max(0.0, float(reset) - now.timestamp())
    except ValueError:
        return SECONDARY_WAIT


def rate_limited(
    exc: ProviderError, response: httpx.Response | None, now: datetime
) -> RateLimited | None:
    """GitHub's rate-limit answers (429, or 403 with its headers or message), else None (a
    403 without any of the signs is a refusal: the token may not do this)."""
    if exc.status not in (403, 429) or response is None:
        return None
    message = http.error_message(response)
    wait = http.retry_after(response, now)
    if wait is None and response.headers.get("x-ratelimit-remaining") == "0":
        wait = until_reset(response, now)
    if wait is None and (exc.status == 429 or "rate limit" in message.lower()):
        wait = SECONDARY_WAIT
    if wait is None:
        return None
    return RateLimited(
        f"{PROVIDER}: rate limited (HTTP {exc.status}): {message}",
        retry_after=wait,
        status=exc.status,
    )
