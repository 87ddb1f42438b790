"""Where is my commit? Read what Puerta recorded about a commit and answer per environment.

The commit is named by a SHA prefix (at least 7 hexadecimal characters). Puerta knows which
commit each rollout ships from ``rollout_commits`` (one row per rollout, resolved from the
workload's image); this module reads, in one read transaction:

* the rollouts that ship the commit (its SHA starts with the prefix, or, since image tags carry
  abbreviated SHAs that GitHub could not always resolve, is an abbreviation of it), grouped by
  repository: a prefix found in several repositories is answered for each of them;
* each canary's latest succeeded rollout (what runs now) where it ships the same repository,
  or where the canary ever shipped the commit;
* the failed E2E runs and manual rollbacks of the failed rollouts (the reason it failed);
* the promotions of the succeeded ones (where the commit was sent on to: pending, held, done
  with its release, or failed), which answer for an environment the commit has not reached;
* the cached ``contains`` answers.

Then it asks the commit source (GitHub) whether newer live commits include the asked one, for
the checks the cache did not answer, and caches those answers in ``lookup_cache``: a commit's
ancestry never changes, so "yes" is kept for a day; "no" only for an hour (an abbreviated SHA
may be resolved differently later). GitHub being down, slow or refusing never fails the
request: that check is "unknown" and the answer says so (``contains_checked`` false, a note on
the environment). The answer itself is made by the pure ``domain/whereabouts.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeAlias

import structlog
from sqlalchemy import Row, and_, func, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from puerta.commits.base import CommitSource
from puerta.domain import whereabouts as where
from puerta.errors import BadRequest, NotFound
from puerta.external import PermanentError, ProviderError
from puerta.policy.model import CompiledPolicy
from puerta.store import outbox
from puerta.store.db import Database
from puerta.store.notify_tables import rollout_commits
from puerta.store.promotion_tables import promotions
from puerta.store.tables import canaries, ci_runs, manual_actions, rollouts

log = structlog.get_logger("puerta.whereabouts")

#: a row of any width (the queries here select a dozen columns)
_Row: TypeAlias = Row[*tuple[Any, ...]]

_HEX = re.compile(r"[0-9a-f]{7,64}")
CACHE_KIND = "contains"
#: "newer includes commit" never stops being true
CONTAINED_TTL = timedelta(days=1)
#: "does not include" is kept shorter: an abbreviated SHA may name another commit later
NOT_CONTAINED_TTL = timedelta(hours=1)
#: GitHub calls one request may make (each distinct newer live commit is one call) ...
MAX_CHECKS = 20
#: ... how many at once ...
CONCURRENT_CHECKS = 4
#: ... and how long they may take together: a slow GitHub must not hold the answer up
CHECK_BUDGET_S = 10.0
#: rollouts of one commit read at most (a commit is shipped by a few rollouts per canary)
MAX_SHIPMENTS = 1000
_KEY_LIMIT = 400  # lookup_cache.key


@dataclass(frozen=True, slots=True)
class CommitDetails:
    """The commit as GitHub described it when the rollout's image was resolved."""

    sha: str
    url: str | None
    title: str | None
    author_name: str | None
    committed_at: datetime | None


@dataclass(frozen=True, slots=True)
class RepositoryWhereabouts:
    whereabouts: where.Whereabouts
    commit: CommitDetails | None  # None: GitHub never resolved it (the SHA is as found)


@dataclass(frozen=True, slots=True)
class CommitReport:
    sha: str  # as asked, lower-case
    repositories: tuple[RepositoryWhereabouts, ...]


def parse_sha(raw: str) -> str:
    """The asked SHA (prefix), lower-case; :class:`BadRequest` unless 7 to 64 hex characters
    (shorter prefixes match too many commits to answer for one)."""
    sha = raw.strip().lower()
    if not _HEX.fullmatch(sha):
        shown = raw.strip()[:80]
        raise BadRequest(
            f"sha: {shown!r} is not a commit SHA: give 7 to 64 hexadecimal characters "
            "(0-9, a-f), e.g. 3f9a2c1"
        )
    return sha


def contains_key(repository: str, commit: str, newer: str) -> str:
    """The ``lookup_cache`` key of a ``contains`` answer: ``owner/repo:commit..newer`` (hashed
    in the rare case it would not fit the column)."""
    key = f"{repository.casefold()}:{commit.lower()}..{newer.lower()}"
    if len(key) <= _KEY_LIMIT:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


@dataclass
class _Group:
    """The rows of one repository that ship the asked commit."""

    repository: str | None
    sha: str
    rows: list[_Row]


@dataclass
class _Read:
    groups: list[_Group]
    shipments: dict[str | None, list[where.SeenRollout]]  # by repository key
    live: list[where.SeenRollout]
    checks: dict[str | None, list[str]]  # repository key -> newer SHAs not answered by the cache
    cached: dict[str | None, dict[str, bool]]


class WhereaboutsService:
    """Answers "where is my commit?". Holds nothing between requests: built per request with
    the app's commit source (None when Puerta has no GitHub access)."""

    def __init__(
        self,
        db: Database,
        policy: CompiledPolicy,
        now: datetime,
        source: CommitSource | None,
    ) -> None:
        self.db = db
        self.policy = policy
        self.now = now
        self.source = source

    async def find(self, raw_sha: str) -> CommitReport:
        prefix = parse_sha(raw_sha)
        read = await self.db.read(lambda conn: self._read(conn, prefix))
        if not read.groups:
            raise NotFound(f"commit {prefix} has not been seen in any rollout")
        environments = [where.Environment(env.name, env.zone) for env in self.policy.environments]
        answers: dict[str | None, dict[str, where.Containment]] = {}
        fresh: list[tuple[str, bool]] = []
        for group in read.groups:
            key = _repo_key(group.repository)
            known = {newer: where.Containment(value) for newer, value in read.cached[key].items()}
            asked = await self._compare(group, read.checks[key])
            for newer, answer in asked.items():
                if answer.contains is not None and group.repository is not None:
                    cache_key = contains_key(group.repository, group.sha, newer)
                    fresh.append((cache_key, answer.contains))
            answers[key] = {**known, **asked}
        if fresh:
            await self._remember(fresh)
        reports = []
        for group in read.groups:
            key = _repo_key(group.repository)
            found = where.locate(
                repository=group.repository,
                sha=group.sha,
                environments=environments,
                shipments=read.shipments[key],
                live=read.live,
                answers=answers[key],
                now=self.now,
                can_check=self.source is not None,
            )
            reports.append(RepositoryWhereabouts(found, _details(group)))
        return CommitReport(prefix, tuple(reports))

    # ---- reading ---------------------------------------------------------------------------

    def _read(self, conn: Connection, prefix: str) -> _Read:
        groups = _groups(_matching(conn, prefix), prefix)
        shipped = [row for group in groups for row in group.rows]
        failed = [row for row in shipped if row.status == "failed"]
        e2e = _failed_e2e(conn, failed)
        rollbacks = _rollbacks(conn, failed)
        promoted = _promotions(conn, [row for row in shipped if row.status == "succeeded"])
        shipments = {
            _repo_key(group.repository): [
                _seen(
                    row,
                    e2e=e2e.get((row.canary_id, row.seq)),
                    rollback=rollbacks.get((row.canary_id, row.seq)),
                    promotion=promoted.get((row.canary_id, row.seq)),
                )
                for row in group.rows
            ]
            for group in groups
        }
        repositories = {g.repository.casefold() for g in groups if g.repository is not None}
        live = [_seen(row) for row in _live(conn, repositories, {r.canary_id for r in shipped})]
        checks: dict[str | None, list[str]] = {}
        cached: dict[str | None, dict[str, bool]] = {}
        for group in groups:
            key = _repo_key(group.repository)
            wanted = where.needed_checks(group.repository, group.sha, live)
            cached[key], checks[key] = {}, []
            if self.source is None or group.repository is None:
                continue  # nothing can answer: the domain says "not checked"
            for newer in wanted:
                value = outbox.cached(
                    conn, CACHE_KIND, contains_key(group.repository, group.sha, newer), self.now
                )
                if isinstance(value, bool):
                    cached[key][newer] = value
                else:
                    checks[key].append(newer)
        return _Read(groups, shipments, live, checks, cached)

    # ---- asking GitHub ---------------------------------------------------------------------

    async def _compare(self, group: _Group, newers: Sequence[str]) -> dict[str, where.Containment]:
        """Ask the source about each newer commit, a few at a time, within the time budget;
        every failure is an "unknown" answer that says why."""
        source = self.source
        if source is None or group.repository is None or not newers:
            return {}
        repository = group.repository
        answers: dict[str, where.Containment] = {}
        for newer in newers[MAX_CHECKS:]:
            answers[newer] = where.Containment(
                None, f"more than {MAX_CHECKS} live commits to compare at once"
            )
        gate = asyncio.Semaphore(CONCURRENT_CHECKS)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CHECK_BUDGET_S

        async def ask(newer: str) -> where.Containment:
            async with gate:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return where.Containment(None, "GitHub did not answer in time")
                try:
                    contains = await asyncio.wait_for(
                        source.contains(repository, group.sha, newer), remaining
                    )
                except TimeoutError:
                    return where.Containment(None, "GitHub did not answer in time")
                except PermanentError as exc:
                    log.warning("cannot compare commits", repository=repository, error=str(exc))
                    return where.Containment(None, f"GitHub could not compare them ({exc})")
                except ProviderError as exc:  # TransientError, RateLimited: an outage
                    log.warning("commit comparison failed", repository=repository, error=str(exc))
                    return where.Containment(None, f"GitHub did not answer ({exc})")
                return where.Containment(contains)

        todo = list(newers[:MAX_CHECKS])
        results = await asyncio.gather(*(ask(newer) for newer in todo))
        answers.update(zip(todo, results, strict=True))
        return answers

    async def _remember(self, fresh: Sequence[tuple[str, bool]]) -> None:
        """Cache what GitHub answered. A failure to write costs a GitHub call next time, never
        this answer."""
        now = self.now

        def write(conn: Connection) -> None:
            for key, value in fresh:
                ttl = CONTAINED_TTL if value else NOT_CONTAINED_TTL
                outbox.cache(conn, CACHE_KIND, key, value, now + ttl)

        try:
            await self.db.write(write)
        except SQLAlchemyError as exc:  # e.g. two requests caching the same answer at once
            log.warning("could not cache commit comparisons", error=type(exc).__name__)


# ---- queries ----------------------------------------------------------------------------------


def _repo_key(repository: str | None) -> str | None:
    return repository.casefold() if repository is not None else None


#: a list typed loosely, so ``select(*columns)`` yields plain ``_Row`` rows
_ROLLOUT_COLUMNS: list[Any] = [
    rollouts.c.canary_id,
    rollouts.c.seq,
    rollouts.c.status,
    rollouts.c.environment,
    rollouts.c.started_at,
    rollouts.c.progressing_at,
    rollouts.c.finished_at,
    rollouts.c.waiting_reason,
    rollouts.c.waiting_since,
    rollouts.c.retry_at,
    canaries.c.namespace,
    canaries.c.name,
]


def _matching(conn: Connection, prefix: str) -> Sequence[_Row]:
    """Rollouts whose commit's SHA starts with ``prefix`` or abbreviates it, oldest first."""
    sha = func.lower(rollout_commits.c.sha)
    # the prefix is hexadecimal only, so it holds no LIKE wildcard
    condition: ColumnElement[bool] = sha.like(prefix + "%")
    shorter = [prefix[:n] for n in range(where.MIN_SHA, len(prefix))]
    if shorter:
        condition = or_(condition, sha.in_(shorter))
    query = (
        select(
            *_ROLLOUT_COLUMNS,
            rollout_commits.c.repository,
            rollout_commits.c.sha,
            rollout_commits.c.image,
            rollout_commits.c.url,
            rollout_commits.c.title,
            rollout_commits.c.author_name,
            rollout_commits.c.committed_at,
            rollout_commits.c.status.label("commit_status"),
        )
        .select_from(
            rollout_commits.join(
                rollouts,
                and_(
                    rollouts.c.canary_id == rollout_commits.c.canary_id,
                    rollouts.c.seq == rollout_commits.c.rollout_seq,
                ),
            ).join(canaries, canaries.c.id == rollout_commits.c.canary_id)
        )
        .where(rollout_commits.c.sha.is_not(None), condition)
        .order_by(rollouts.c.id)
        .limit(MAX_SHIPMENTS)
    )
    return conn.execute(query).all()


def _groups(rows: Sequence[_Row], prefix: str) -> list[_Group]:
    """The rows by repository, each with the commit's longest known SHA; :class:`BadRequest`
    when the prefix names two different commits of one repository (as git would)."""
    by_repo: dict[str | None, list[_Row]] = {}
    for row in rows:
        by_repo.setdefault(_repo_key(row.repository), []).append(row)
    groups = []
    for found in by_repo.values():
        shas = {str(row.sha).strip().lower() for row in found} | {prefix}
        longest = max(shas, key=lambda s: (len(s), s))
        if not all(where.same_commit(s, longest) for s in shas):
            named = ", ".join(sorted(shas - {prefix})[:5])
            repository = found[0].repository or "an unknown repository"
            raise BadRequest(
                f"sha: {prefix} is ambiguous in {repository} ({named}): give more characters"
            )
        groups.append(_Group(found[0].repository, longest, found))
    groups.sort(key=lambda g: (g.repository is None, _repo_key(g.repository) or ""))
    return groups


def _live(conn: Connection, repositories: set[str], canary_ids: set[int]) -> Sequence[_Row]:
    """Each canary's latest succeeded rollout (what runs now) with the commit it ships, for the
    canaries that run one of ``repositories`` or shipped the commit."""
    ships_repository = select(rollout_commits.c.canary_id).where(
        func.lower(rollout_commits.c.repository).in_(sorted(repositories))
    )
    latest = (
        select(rollouts.c.canary_id, func.max(rollouts.c.seq).label("seq"))
        .where(
            rollouts.c.status == "succeeded",
            # only canaries that ever shipped the repository (or the commit) are candidates
            or_(
                rollouts.c.canary_id.in_(ships_repository),
                rollouts.c.canary_id.in_(sorted(canary_ids)),
            ),
        )
        .group_by(rollouts.c.canary_id)
        .subquery()
    )
    query = (
        select(
            *_ROLLOUT_COLUMNS,
            rollout_commits.c.repository,
            rollout_commits.c.sha,
            rollout_commits.c.image,
        )
        .select_from(
            latest.join(
                rollouts,
                and_(rollouts.c.canary_id == latest.c.canary_id, rollouts.c.seq == latest.c.seq),
            )
            .join(canaries, canaries.c.id == rollouts.c.canary_id)
            .outerjoin(
                rollout_commits,
                and_(
                    rollout_commits.c.canary_id == rollouts.c.canary_id,
                    rollout_commits.c.rollout_seq == rollouts.c.seq,
                ),
            )
        )
        .where(
            or_(
                func.lower(rollout_commits.c.repository).in_(sorted(repositories)),
                rollouts.c.canary_id.in_(sorted(canary_ids)),
            )
        )
        .order_by(rollouts.c.canary_id)
    )
    return conn.execute(query).all()


def _failed_e2e(
    conn: Connection, failed: Sequence[_Row]
) -> dict[tuple[int, int], where.E2EFailure]:
    """The first failed E2E run of each failed rollout."""
    if not failed:
        return {}
    wanted = {(row.canary_id, row.seq) for row in failed}
    query = (
        select(
            ci_runs.c.canary_id,
            ci_runs.c.rollout_seq,
            ci_runs.c.gate,
            ci_runs.c.reason,
            ci_runs.c.url,
        )
        .where(
            ci_runs.c.status == "failed",
            ci_runs.c.canary_id.in_(sorted({cid for cid, _ in wanted})),
            ci_runs.c.rollout_seq.in_(sorted({seq for _, seq in wanted})),
        )
        .order_by(ci_runs.c.id)
    )
    found: dict[tuple[int, int], where.E2EFailure] = {}
    for row in conn.execute(query).all():
        key = (row.canary_id, row.rollout_seq)
        if key in wanted and key not in found:
            found[key] = where.E2EFailure(row.gate, row.reason, row.url)
    return found


def _rollbacks(conn: Connection, failed: Sequence[_Row]) -> dict[tuple[int, int], where.Rollback]:
    """The latest rollback someone asked for, of each failed rollout."""
    if not failed:
        return {}
    wanted = {(row.canary_id, row.seq) for row in failed}
    query = (
        select(
            manual_actions.c.canary_id,
            manual_actions.c.rollout_seq,
            manual_actions.c.actor,
            manual_actions.c.reason,
        )
        .where(
            manual_actions.c.action == "rollback",
            manual_actions.c.revoked_at.is_(None),
            manual_actions.c.canary_id.in_(sorted({cid for cid, _ in wanted})),
        )
        .order_by(manual_actions.c.id)
    )
    found: dict[tuple[int, int], where.Rollback] = {}
    for row in conn.execute(query).all():
        key = (row.canary_id, row.rollout_seq)
        if key in wanted:
            found[key] = where.Rollback(row.actor, row.reason or "")
    return found


def _promotions(
    conn: Connection, succeeded: Sequence[_Row]
) -> dict[tuple[int, int], where.Promotion]:
    """The promotion of each succeeded rollout that has one (one per rollout at most): where
    the commit went next, and how far that got."""
    if not succeeded:
        return {}
    wanted = {(row.canary_id, row.seq): row.environment for row in succeeded}
    query = (
        select(
            promotions.c.canary_id,
            promotions.c.rollout_seq,
            promotions.c.to_environment,
            promotions.c.status,
            promotions.c.held_reason,
            promotions.c.tag,
            promotions.c.url,
            promotions.c.last_error,
            promotions.c.created_at,
            promotions.c.done_at,
        )
        .where(
            promotions.c.canary_id.in_(sorted({cid for cid, _ in wanted})),
            promotions.c.rollout_seq.in_(sorted({seq for _, seq in wanted})),
        )
        .order_by(promotions.c.id)
    )
    found: dict[tuple[int, int], where.Promotion] = {}
    for row in conn.execute(query).all():
        key = (row.canary_id, row.rollout_seq)
        if key in wanted:
            found[key] = where.Promotion(
                to_environment=row.to_environment,
                status=row.status,
                created_at=row.created_at,
                from_environment=wanted[key],
                held_reason=row.held_reason,
                tag=row.tag,
                url=row.url,
                last_error=row.last_error,
                done_at=row.done_at,
            )
    return found


def _seen(
    row: _Row,
    *,
    e2e: where.E2EFailure | None = None,
    rollback: where.Rollback | None = None,
    promotion: where.Promotion | None = None,
) -> where.SeenRollout:
    return where.SeenRollout(
        canary=f"{row.namespace}/{row.name}",
        canary_id=row.canary_id,
        seq=row.seq,
        environment=row.environment,
        status=row.status,
        started_at=row.started_at,
        repository=row.repository,
        sha=row.sha,
        image=row.image,
        progressing_at=row.progressing_at,
        finished_at=row.finished_at,
        waiting_reason=row.waiting_reason,
        waiting_since=row.waiting_since,
        retry_at=row.retry_at,
        e2e_failure=e2e,
        rollback=rollback,
        promotion=promotion,
    )


def _details(group: _Group) -> CommitDetails | None:
    """The commit as GitHub resolved it (the newest resolved row), or None."""
    resolved = [row for row in group.rows if row.commit_status == "resolved"]
    if not resolved:
        return None
    row = resolved[-1]
    return CommitDetails(
        sha=row.sha,
        url=row.url,
        title=row.title,
        author_name=row.author_name,
        committed_at=row.committed_at,
    )
