"""GitHub Actions: start a ``workflow_dispatch`` run, follow it, cancel it.

GitHub only recently learnt to answer a dispatch with the run's id (``return_run_details``);
github.com and newer GitHub Enterprise Server answer 200 with it, older servers answer 204 with
no body or refuse the flag outright. Without an id the run is found later by listing the
workflow's runs and matching :attr:`Target.correlation` against the ``display_title``, which is
only possible when the workflow echoes a Puerta input in its ``run-name``. The same search is
:meth:`GitHubActions.find`: the run of a dispatch whose answer was lost (a timeout) even where
GitHub returns run ids.

Rate limiting is GitHub's own: besides 429 it answers **403** with ``retry-after`` (secondary
limits) or with ``x-ratelimit-remaining: 0`` plus ``x-ratelimit-reset`` (primary limit). Those
become :class:`RateLimited`; any other 403 is a refusal (:class:`PermanentError`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from puerta.ci.base import (
    CannotTell,
    Part,
    PermanentError,
    ProviderError,
    RunRef,
    RunState,
    RunStatus,
    Target,
    carries_correlation,
)
from puerta.github_rest import (
    PROVIDER,
    GitHubClient,
    json_object,
    parse_instant,
    repo_path,
    split_repo,
)

MAX_INPUTS = 25  # GitHub refuses a dispatch with more inputs

_SEARCH_MARGIN = timedelta(minutes=1)  # clocks differ; a run is never created before dispatch
_PER_PAGE = 100
_MAX_PAGES = 10  # GitHub caps filtered run lists at 1,000 results

_WAITING = frozenset({"requested", "queued", "pending", "waiting"})
_FAILED = frozenset({"failure", "timed_out", "startup_failure", "action_required", "stale"})
_NOT_A_SUCCESS = frozenset({"neutral", "skipped"})  # GitHub's "didn't fail"; a gate needs a pass
_FAILED_JOB = frozenset({"failure", "timed_out", "startup_failure", "action_required"})
_WEBHOOK_ACTIONS = frozenset({"requested", "in_progress", "completed"})


# ---- status words -> RunState (pure, shared by polling and the webhook) --------------------


def run_state(status: str | None, conclusion: str | None) -> RunState:
    """Map a run's (or job's) ``status``/``conclusion`` to a :class:`RunState`.

    Anything unknown after ``completed`` is a failure: an E2E gate must never pass on a word
    it does not understand. An unknown status before completion counts as running.
    """
    if status in _WAITING:
        return RunState.QUEUED
    if status != "completed":
        return RunState.RUNNING
    if conclusion == "success":
        return RunState.SUCCEEDED
    if conclusion == "cancelled":
        return RunState.CANCELED
    return RunState.FAILED


def _raw(status: str | None, conclusion: str | None) -> str:
    """GitHub's own words for the history: ``completed/failure``, or the status alone."""
    return f"{status}/{conclusion}" if conclusion else str(status)


def _title(run: Mapping[str, Any]) -> str:
    """``workflow "E2E" run 42``: how reasons name a run."""
    name = run.get("name") or "workflow"
    number = run.get("run_number") or run.get("id")
    return f'workflow "{name}" run {number}'


def _reason(run: Mapping[str, Any], state: RunState) -> str:
    """One line for people, ending with the run's link where there is one."""
    status, conclusion = run.get("status"), run.get("conclusion")
    link = f": {run['html_url']}" if run.get("html_url") else ""
    title = _title(run)
    if state is RunState.QUEUED:
        return f"{title} is {status}{link}"
    if state is RunState.RUNNING:
        return f"{title} is in progress{link}"
    if state is RunState.SUCCEEDED:
        return f"{title} succeeded{link}"
    if state is RunState.CANCELED:
        return f"{title} was cancelled{link}"
    if conclusion in _NOT_A_SUCCESS:
        return f"{title} failed ({conclusion}; the gate needs a success){link}"
    return f"{title} failed ({conclusion or 'no conclusion'}){link}"


def run_status(run: Mapping[str, Any]) -> RunStatus:
    """The :class:`RunStatus` of one workflow-run object (REST or webhook), without jobs."""
    status, conclusion = run.get("status"), run.get("conclusion")
    state = run_state(status, conclusion)
    return RunStatus(
        state=state,
        raw=_raw(status, conclusion),
        reason=_reason(run, state),
        url=run.get("html_url"),
    )


def parse_workflow_run_event(body: Mapping[str, Any]) -> tuple[str, RunStatus] | None:
    """(run id, status) from a ``workflow_run`` webhook payload; None for anything else.

    Signatures are checked by the webhook route, not here. Jobs are not looked up (a
    webhook handler should answer fast); a poll names the failed jobs.
    """
    if body.get("action") not in _WEBHOOK_ACTIONS:
        return None
    run = body.get("workflow_run")
    if not isinstance(run, Mapping) or run.get("id") is None:
        return None
    return str(run["id"]), run_status(run)


def _job_parts(jobs: Sequence[Mapping[str, Any]]) -> tuple[Part, ...]:
    """Jobs as :class:`Part`s; ``status`` is the conclusion once there is one."""
    return tuple(
        Part(
            name=str(job.get("name") or job.get("id")),
            status=str(job.get("conclusion") or job.get("status")),
            state=run_state(job.get("status"), job.get("conclusion")),
            url=job.get("html_url"),
        )
        for job in jobs
    )


def _failure_reason(run: Mapping[str, Any], jobs: Sequence[Mapping[str, Any]]) -> str | None:
    """``workflow "E2E" run 42 failed (job "playwright" failure): <job link>``, if jobs failed."""
    failed = [job for job in jobs if job.get("conclusion") in _FAILED_JOB]
    if not failed:
        return None
    named = ", ".join(f'"{job.get("name")}" {job.get("conclusion")}' for job in failed)
    noun = "job" if len(failed) == 1 else "jobs"
    link = failed[0].get("html_url") or run.get("html_url")
    return f"{_title(run)} failed ({noun} {named})" + (f": {link}" if link else "")


# ---- plumbing ------------------------------------------------------------------------------


def _iso(instant: datetime) -> str:
    """``2026-03-02T10:00:00Z``: the form GitHub's ``created`` search qualifier takes."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _branch_filter(ref: str | None, is_tag: bool) -> str | None:
    """The ``branch`` filter for the run list (runs on a tag are not filtered by branch)."""
    if not ref or is_tag or ref.startswith("refs/tags/"):
        return None
    return ref.removeprefix("refs/heads/")


def _ref_of(run: Mapping[str, Any], triggered_at: str | None, data: dict[str, str]) -> RunRef:
    """The ref of a run found in a run list."""
    number = run.get("run_number")
    return RunRef(
        id=str(run["id"]),
        url=run.get("html_url"),
        number=str(number) if number is not None else None,
        triggered_at=triggered_at,
        data=data,
    )


def _rejects_flag(exc: PermanentError) -> bool:
    """Older GHES refuse ``return_run_details`` (400/422 naming it): retry without the flag."""
    return exc.status in (400, 422) and "return_run_details" in str(exc)


class GitHubActions(GitHubClient):
    """A :class:`~puerta.ci.base.CiProvider` for GitHub Actions (github.com or Enterprise).

    ``base_url`` is ``https://api.github.com`` or an Enterprise ``https://host/api/v3``.
    ``clock`` (UTC instants) stamps triggers and turns ``x-ratelimit-reset`` into a wait.
    The token only ever goes into the Authorization header.
    """

    kind: str = PROVIDER

    # ---- the CiProvider contract -------------------------------------------------------

    async def trigger(self, target: Target) -> RunRef:
        """Dispatch the workflow; the ref carries the run id when the server returns one."""
        workflow, ref = self._check_target(target)
        path = f"{repo_path(target.project)}/actions/workflows/{quote(workflow, safe='')}"
        body: dict[str, Any] = {"ref": ref, "inputs": dict(target.parameters)}
        triggered_at = _iso(self._clock())
        try:
            response = await self._call(
                "POST", f"{path}/dispatches", json={**body, "return_run_details": True}
            )
        except PermanentError as exc:
            if not _rejects_flag(exc):
                raise
            response = await self._call("POST", f"{path}/dispatches", json=body)
        data = {"repo": target.project, "workflow": workflow}
        return self._dispatched(response, triggered_at, data)

    async def status(self, ref: RunRef, target: Target) -> RunStatus:
        """Poll the run (finding it first when the dispatch gave no id)."""
        repo = ref.data.get("repo") or target.project
        if ref.id is None:
            return await self._status_by_correlation(ref, target, repo)
        response = await self._call(
            "GET", f"{repo_path(repo)}/actions/runs/{quote(ref.id, safe='')}"
        )
        run = json_object(response)
        status = await self._with_jobs(repo, run)
        if ref.number is None and run.get("run_number") is not None:
            learnt = dataclasses.replace(
                ref, number=str(run["run_number"]), url=run.get("html_url") or ref.url
            )
            status = dataclasses.replace(status, ref=learnt)
        return status

    def can_find(self, target: Target) -> bool:
        """Only a run whose title carries the correlation can be found: an input must carry
        ``{run_id}`` (and the workflow must echo it in its ``run-name``, which Puerta cannot
        check: without it :meth:`find` answers None and the dispatch is sent again)."""
        return carries_correlation(target.parameters, target.correlation)

    async def find(self, target: Target, since: datetime) -> RunRef | None:
        """The earliest dispatched run created since ``since`` whose title has the
        correlation: the same search that finds a run after a 204."""
        if not self.can_find(target):
            raise CannotTell(
                f"{PROVIDER}: no workflow input carries the run id ({{run_id}}), so the run "
                "cannot be found by its title"
            )
        workflow, _ = self._check_target(target)
        run = await self._find_run(target.project, workflow, target, since)
        if run is None:
            return None
        data = {"repo": target.project, "workflow": workflow}
        return _ref_of(run, _iso(since), data)

    async def cancel(self, ref: RunRef) -> bool:
        """Ask GitHub to cancel the run; a run already completed counts as done."""
        if ref.id is None:
            return False
        repo = ref.data.get("repo")
        if not repo:
            raise PermanentError(f"{PROVIDER}: run ref {ref.id} does not name its repository")
        try:
            await self._call(
                "POST", f"{repo_path(repo)}/actions/runs/{quote(ref.id, safe='')}/cancel"
            )
        except PermanentError as exc:
            if exc.status == 409:  # "Cannot cancel a workflow run that is completed."
                return True
            raise
        return True

    # ---- trigger helpers ---------------------------------------------------------------

    @staticmethod
    def _check_target(target: Target) -> tuple[str, str]:
        """Refuse what GitHub would refuse, before any request: (workflow, ref)."""
        split_repo(target.project)
        if not target.workflow:
            raise PermanentError(
                f"{PROVIDER}: a workflow (file name such as e2e.yml, or its id) is required"
            )
        if not target.ref:
            raise PermanentError(f"{PROVIDER}: a ref (branch or tag) is required to dispatch")
        if len(target.parameters) > MAX_INPUTS:
            raise PermanentError(
                f"{PROVIDER}: {len(target.parameters)} inputs given; "
                f"workflow_dispatch takes at most {MAX_INPUTS}"
            )
        return target.workflow, target.ref

    @staticmethod
    def _dispatched(response: httpx.Response, triggered_at: str, data: dict[str, str]) -> RunRef:
        """200 with run details gives the id; 204 (or a 200 without it) means find it later."""
        try:
            body = response.json() if response.status_code != 204 else None
        except ValueError:
            body = None  # the dispatch happened; raising now would only dispatch it twice
        run_id = body.get("workflow_run_id") if isinstance(body, dict) else None
        if not isinstance(body, dict) or run_id is None:
            return RunRef(id=None, triggered_at=triggered_at, data=data)
        return RunRef(
            id=str(run_id), url=body.get("html_url"), triggered_at=triggered_at, data=data
        )

    # ---- status helpers ----------------------------------------------------------------

    async def _status_by_correlation(self, ref: RunRef, target: Target, repo: str) -> RunStatus:
        """Find the dispatched run by its title; QUEUED while GitHub does not list it yet."""
        workflow = ref.data.get("workflow") or target.workflow
        if not workflow:
            raise PermanentError(f"{PROVIDER}: the run has no id and no workflow to search")
        if not target.correlation:
            raise PermanentError(
                f"{PROVIDER}: this server does not return run ids, so Puerta finds the run by "
                "its title: the workflow must echo the {run_id} input in its run-name "
                "(e.g. run-name: E2E ${{ inputs.puerta_run }}) and the gate must pass it"
            )
        since = parse_instant(ref.triggered_at)
        run = await self._find_run(
            repo, workflow, target, since - _SEARCH_MARGIN if since is not None else None
        )
        if run is None:
            return RunStatus(
                RunState.QUEUED,
                raw="not found yet",
                reason=(
                    f"waiting for GitHub to list the run of {workflow} in {repo} "
                    f"whose title contains {target.correlation!r}"
                ),
            )
        found = _ref_of(run, ref.triggered_at, dict(ref.data))
        status = await self._with_jobs(repo, run)
        return dataclasses.replace(status, ref=found)

    async def _find_run(
        self, repo: str, workflow: str, target: Target, since: datetime | None
    ) -> dict[str, Any] | None:
        """The earliest dispatched run created since ``since`` whose title has the
        correlation."""
        params = self._run_filters(target, since)
        path = f"{repo_path(repo)}/actions/workflows/{quote(workflow, safe='')}/runs"
        matches: list[dict[str, Any]] = []
        for page in range(1, _MAX_PAGES + 1):
            response = await self._call("GET", path, params={**params, "page": str(page)})
            runs = json_object(response).get("workflow_runs") or []
            matches += [
                run
                for run in runs
                if isinstance(run, dict)
                and target.correlation in str(run.get("display_title") or "")
                and run.get("id") is not None
            ]
            if len(runs) < _PER_PAGE:
                break
        return min(matches, key=lambda run: int(run["id"])) if matches else None

    @staticmethod
    def _run_filters(target: Target, since: datetime | None) -> dict[str, str]:
        """Query for the run list: dispatched runs, created since ``since``."""
        params = {"event": "workflow_dispatch", "per_page": str(_PER_PAGE)}
        if since is not None:
            params["created"] = f">={_iso(since)}"
        branch = _branch_filter(target.ref, target.ref_is_tag)
        if branch:
            params["branch"] = branch
        return params

    async def _with_jobs(self, repo: str, run: dict[str, Any]) -> RunStatus:
        """The run's status; on failure the failed jobs are named and linked."""
        status = run_status(run)
        if status.state is not RunState.FAILED:
            return status
        try:
            response = await self._call(
                "GET",
                f"{repo_path(repo)}/actions/runs/{run['id']}/jobs",
                params={"filter": "latest", "per_page": str(_PER_PAGE)},
            )
        except ProviderError:
            return status  # the verdict is known; the job names are a courtesy
        jobs = [job for job in json_object(response).get("jobs") or [] if isinstance(job, dict)]
        reason = _failure_reason(run, jobs) or status.reason
        return dataclasses.replace(status, reason=reason, parts=_job_parts(jobs))
