"""Jenkins behind :class:`~puerta.ci.base.CiProvider`.

Jenkins does not start a build when asked: it queues an item and answers ``201`` with
``Location: <root>/queue/item/<q>/``. The build (and so its number and URL, Puerta's run id)
only exists once the item leaves the queue, so a fresh :class:`RunRef` has ``id=None`` and the
queue URL in ``data["queue_url"]``; :meth:`Jenkins.status` follows the queue item and returns
the build's ref (``RunStatus.ref``) as soon as it has one, for the caller to store.

Limitation: Jenkins forgets a queue item about five minutes after it left the queue. If no
poll saw the item turn into a build within that time, the build cannot be found any more; the
queue item then answers 404 and :meth:`Jenkins.status` raises :class:`TransientError` (not a
pass, not a verdict) until the runner's deadline fails the run.

Finding a build again: with parameters, Puerta also sends the run's correlation id as the build
parameter ``PUERTA_RUN_ID`` (unless a gate parameter already carries ``{run_id}``). Jenkins keeps
only the parameters a job declares (it drops the others with a warning in its log), so a job
that should be found after a lost trigger answer declares a string parameter ``PUERTA_RUN_ID``.
:meth:`Jenkins.find` then looks in the queue (``/queue/api/json``) and among the job's recent
builds (``tree=builds[...]{0,N}``) for the item or build whose parameters carry the id. A job
triggered without parameters (``/build``) carries nothing: it cannot be found.

Authentication is HTTP Basic with a user and an API token (API tokens need no CSRF crumb).
Every request goes to the configured ``base_url``'s origin, even when Jenkins hands out URLs
under another root URL (a misconfigured "Jenkins URL" behind a proxy), so the credentials are
never sent to any other host. The token never appears in messages or logs.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import structlog

from puerta.ci.base import (
    CannotTell,
    PermanentError,
    RunRef,
    RunState,
    RunStatus,
    Target,
    TransientError,
    carries_correlation,
    with_correlation,
)
from puerta.ci.http import request

log = structlog.get_logger("puerta.ci.jenkins")

PROVIDER = "jenkins"

# find: the job's newest builds searched (one request; a lost trigger's build is recent)
_RECENT_BUILDS = 50
_PARAMETERS = "actions[parameters[name,value]]"
_QUEUE_TREE = f"items[id,task[name],{_PARAMETERS}]"
_JOB_TREE = (
    f"property[parameterDefinitions[name]],builds[number,url,timestamp,{_PARAMETERS}]"
    f"{{0,{_RECENT_BUILDS}}}"
)

# Build results (``result`` once ``building`` is false) -> Puerta's states.
_RESULTS: dict[str, RunState] = {
    "SUCCESS": RunState.SUCCEEDED,
    "FAILURE": RunState.FAILED,
    "UNSTABLE": RunState.FAILED,  # tests failed: the canary must not go on
    "NOT_BUILT": RunState.FAILED,
    "ABORTED": RunState.CANCELED,
}

_TITLE = re.compile(r"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")


def job_url_path(job: str) -> str:
    """``folder/sub/job`` -> ``/job/folder/job/sub/job/job`` (each segment URL-encoded)."""
    segments = [segment for segment in job.split("/") if segment]
    if not segments:
        raise PermanentError(f"{PROVIDER}: the job path is empty")
    return "".join(f"/job/{quote(segment, safe='')}" for segment in segments)


def map_result(result: str) -> RunState:
    """Puerta's state for a finished build's result; an unknown result is never a pass."""
    return _RESULTS.get(result, RunState.FAILED)


def html_message(text: str) -> str:
    """Jenkins' error pages are HTML: keep their ``<title>`` (or the text without tags)."""
    match = _TITLE.search(text)
    found = match.group(1) if match else _TAG.sub(" ", text)
    return " ".join(found.split())


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Jenkins:
    """Triggers and follows Jenkins builds through its remote access API."""

    kind = "jenkins"

    def __init__(self, client: httpx.AsyncClient, *, base_url: str, user: str, token: str) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        self._origin = httpx.URL(self._base + "/")
        self._user = user
        self._auth = httpx.BasicAuth(user, token)

    def __repr__(self) -> str:  # keeps the token out of reprs in tracebacks and logs
        return f"Jenkins(base_url={self._base!r}, user={self._user!r})"

    # -- the protocol ----------------------------------------------------------------------
    async def trigger(self, target: Target) -> RunRef:
        """Queue a build: ``buildWithParameters`` (form fields) or, without parameters, ``build``.

        Form fields rather than a query string: parameter values (JSON, long lists of URLs)
        can outgrow what proxies accept in a URL.
        """
        job = target.project.strip("/")
        job_url = self._base + job_url_path(job)
        parameters = sent_parameters(target)
        if parameters:
            url, data = job_url + "/buildWithParameters", parameters
        else:
            url, data = job_url + "/build", None
        response = await self._call("POST", url, job=job, data=data)
        location = response.headers.get("location", "")
        if "/queue/item/" not in location:
            raise PermanentError(
                f'{PROVIDER}: Jenkins returned no queue item for job "{job}" '
                f"(HTTP {response.status_code})",
                status=response.status_code,
            )
        queue_url = _slash(str(self._origin.join(location)))
        log.info("jenkins build queued", job=job, queue_url=queue_url)
        return RunRef(
            id=None,
            url=job_url + "/",
            triggered_at=_now_iso(),
            data={"queue_url": queue_url, "job": job},
        )

    async def status(self, ref: RunRef, target: Target) -> RunStatus:
        """Follow the queue item until it is a build, then the build until it has a result."""
        job = ref.data.get("job") or target.project.strip("/")
        found: RunRef | None = None
        if ref.id is None:
            item = await self._queue_item(ref, job)
            waiting = _queue_status(item, ref, job)
            if waiting is not None:
                return waiting
            found = ref = _build_ref(item["executable"], ref)
            log.info("jenkins build started", job=job, build=ref.id)
        build = await self._get_json(_slash(ref.id or ""), job=job, what="build")
        return replace(_build_status(build, ref, job), ref=found)

    def can_find(self, target: Target) -> bool:
        """Only a build triggered with parameters carries the correlation (see module doc)."""
        return carries_correlation(sent_parameters(target), target.correlation)

    async def find(self, target: Target, since: datetime) -> RunRef | None:
        """The queue item or recent build (started since ``since``) whose parameters carry
        the correlation id. The queue is read first: an item that leaves it meanwhile is
        then among the builds. CannotTell when the job does not declare a parameter that
        carries the id (Jenkins dropped it)."""
        if not self.can_find(target):
            raise CannotTell(f"{PROVIDER}: a build triggered without parameters carries no id")
        job = target.project.strip("/")
        job_url = self._base + job_url_path(job)
        queue = await self._get_json(
            self._base + "/queue/", job=job, what="queue", params={"tree": _QUEUE_TREE}
        )
        for item in _list(queue, "items"):
            if item.get("id") is not None and _carries(item, target.correlation):
                return RunRef(
                    id=None,
                    url=job_url + "/",
                    triggered_at=since.isoformat(timespec="seconds"),
                    data={"queue_url": f"{self._base}/queue/item/{item['id']}/", "job": job},
                )
        info = await self._get_json(job_url + "/", job=job, what="job", params={"tree": _JOB_TREE})
        self._check_declared(info, target, job)
        earliest = since.timestamp() * 1000
        builds = [
            build
            for build in _list(info, "builds")
            if build.get("url")
            and _carries(build, target.correlation)
            and float(build.get("timestamp") or earliest) >= earliest
        ]
        if not builds:
            return None
        build = min(builds, key=lambda found: int(found.get("number") or 0))
        queued = RunRef(id=None, triggered_at=since.isoformat(timespec="seconds"))
        return replace(_build_ref(build, queued), data={"job": job})

    async def cancel(self, ref: RunRef) -> bool:
        """Stop the build, or cancel the queue item (stopping its build if it just started).

        The queue item is read first because it may have become a build since the last
        poll; ``cancelItem`` would then silently do nothing and the build would run on.
        """
        job = ref.data.get("job", "")
        if ref.id is not None:
            await self._call("POST", _slash(ref.id) + "stop", job=job, what="build")
            log.info("jenkins build stopped", job=job, build=ref.id)
            return True
        if not ref.data.get("queue_url"):
            return False
        try:
            item = await self._queue_item(ref, job)
        except TransientError as exc:
            if exc.status != 404:
                raise
            log.warning("jenkins queue item gone; cannot cancel", job=job, error=str(exc))
            return False
        return await self._cancel_item(item, job)

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    def _check_declared(info: dict[str, Any], target: Target, job: str) -> None:
        """CannotTell unless the job declares a parameter that carries the correlation."""
        declared = {
            str(definition.get("name"))
            for prop in _list(info, "property")
            for definition in _list(prop, "parameterDefinitions")
        }
        carriers = sorted(
            name for name, value in sent_parameters(target).items() if target.correlation in value
        )
        if not declared.intersection(carriers):
            raise CannotTell(
                f'{PROVIDER}: job "{job}" does not declare the parameter {", ".join(carriers)} '
                "that carries the run id; Jenkins drops undeclared parameters, so its builds "
                "cannot be told apart"
            )

    async def _cancel_item(self, item: dict[str, Any], job: str) -> bool:
        executable = item.get("executable")
        if executable:
            url = _slash(str(executable["url"])) + "stop"
            await self._call("POST", url, job=job, what="build")
        elif not item.get("cancelled"):
            params = {"id": str(item.get("id", ""))}
            url = self._base + "/queue/cancelItem"
            await self._call("POST", url, job=job, what="queue item", params=params)
        log.info("jenkins queue item cancelled", job=job, item=item.get("id"))
        return True

    async def _queue_item(self, ref: RunRef, job: str) -> dict[str, Any]:
        """The queue item's JSON; its 404 (item forgotten) is a TransientError, see module doc."""
        queue_url = ref.data.get("queue_url")
        if not queue_url:
            raise PermanentError(f"{PROVIDER}: the run has neither a build nor a queue item")
        try:
            return await self._get_json(_slash(queue_url), job=job, what="queue item")
        except PermanentError as exc:
            if exc.status != 404:
                raise
            raise TransientError(
                f'{PROVIDER}: queue item {queue_url} of job "{job}" is gone (HTTP 404); Jenkins '
                "forgets queue items about 5 minutes after they leave the queue, so the build "
                "it became cannot be followed",
                status=404,
            ) from exc

    async def _get_json(
        self, url: str, *, job: str, what: str, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """GET ``<url>api/json``; a redirect (to a sign-in page) or non-JSON is not an answer."""
        response = await self._call("GET", url + "api/json", job=job, what=what, params=params)
        if response.is_redirect:
            where = response.headers.get("location", "?")
            raise PermanentError(
                f"{PROVIDER}: {url}api/json was redirected (HTTP {response.status_code}) to "
                f"{where}; check base_url and the credentials",
                status=response.status_code,
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise TransientError(f"{PROVIDER}: {url}api/json did not answer JSON") from exc
        if not isinstance(body, dict):
            raise TransientError(f"{PROVIDER}: unexpected {what} JSON from {url}")
        return body

    async def _call(
        self, method: str, url: str, *, job: str, what: str = "job", **kwargs: Any
    ) -> httpx.Response:
        """One request to the configured origin, with Jenkins' HTML errors made readable."""
        try:
            return await request(
                self._client,
                method,
                self._on_origin(url),
                provider=PROVIDER,
                auth=self._auth,
                **kwargs,
            )
        except PermanentError as exc:
            raise PermanentError(self._explain(exc, job, what), status=exc.status) from exc

    def _on_origin(self, url: str) -> str:
        """``url`` moved to ``base_url``'s scheme, host and port (see the module docstring)."""
        target = self._origin.join(url)
        origin = self._origin
        if (target.scheme, target.host, target.port) == (origin.scheme, origin.host, origin.port):
            return str(target)
        return str(target.copy_with(scheme=origin.scheme, host=origin.host, port=origin.port))

    def _explain(self, exc: PermanentError, job: str, what: str) -> str:
        """A message for people instead of an HTML error page."""
        status = exc.status
        if status == 401:
            return f"{PROVIDER}: authentication failed (HTTP 401): check the user and API token"
        if status == 403:
            return (
                f'{PROVIDER}: user {self._user!r} may not do this on job "{job}" (HTTP 403); '
                "with a password instead of an API token Jenkins also wants a CSRF crumb"
            )
        if status == 404:
            subject = f'job "{job}"' if what == "job" else f'{what} of job "{job}"'
            return f"{PROVIDER}: {subject} not found (HTTP 404)"
        detail = str(exc).partition(f"HTTP {status}: ")[2]
        text = html_message(detail)
        return f'{PROVIDER}: job "{job}" refused the request (HTTP {status}): {text}'


def sent_parameters(target: Target) -> dict[str, str]:
    """The build parameters a trigger sends: the gate's plus the correlation id, or none
    (``/build``: a job without parameters refuses ``buildWithParameters``)."""
    return with_correlation(target) if target.parameters else {}


def _list(value: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The objects in ``value[key]`` (Jenkins answers ``{}`` for actions outside the tree)."""
    found = value.get(key)
    return [item for item in found if isinstance(item, dict)] if isinstance(found, list) else []


def _carries(thing: dict[str, Any], correlation: str) -> bool:
    """Whether a queue item's or build's parameters carry the correlation id."""
    return any(
        correlation in str(parameter.get("value", ""))
        for action in _list(thing, "actions")
        for parameter in _list(action, "parameters")
    )


def _queue_status(item: dict[str, Any], ref: RunRef, job: str) -> RunStatus | None:
    """The status while the item has no build yet; None once it has one."""
    if item.get("cancelled"):
        return RunStatus(
            state=RunState.CANCELED,
            raw="cancelled",
            reason=f'queue item {item.get("id")} of job "{job}" was cancelled',
            url=ref.url,
        )
    executable = item.get("executable")
    if isinstance(executable, dict) and executable.get("url"):
        return None
    why = " ".join(str(item.get("why") or "waiting").split())
    return RunStatus(
        state=RunState.QUEUED,
        raw="queued",
        reason=f'job "{job}" is queued: {why}',
        url=ref.url,
    )


def _build_ref(executable: dict[str, Any], queued: RunRef) -> RunRef:
    """The ref of the build a queue item became (its URL is the id from now on)."""
    url = _slash(str(executable["url"]))
    number = executable.get("number")
    return RunRef(
        id=url,
        url=url,
        number=None if number is None else str(number),
        triggered_at=queued.triggered_at,
        data=dict(queued.data),
    )


def _build_status(build: dict[str, Any], ref: RunRef, job: str) -> RunStatus:
    """Map the build JSON; ``building`` wins over an early ``result`` (post-build steps run)."""
    url = _slash(str(build.get("url") or ref.id or ""))
    label = f'build #{build.get("number", ref.number)} of "{job}"'
    result = build.get("result")
    if build.get("building") or result is None:
        return RunStatus(RunState.RUNNING, "building", f"{label} is running: {url}", url)
    word = str(result)
    state = map_result(word)
    if state is RunState.SUCCEEDED:
        reason = f"{label} succeeded: {url}"
    elif state is RunState.CANCELED:
        reason = f"{label} was aborted: {url}"
    else:
        reason = f"{label} {word}: {url}console"
    return RunStatus(state, word, reason, url)
