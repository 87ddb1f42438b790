"""Carry out promotions: when a rollout succeeded in an environment with a ``promote`` section,
send its commit on (a GitHub release, a ``repository_dispatch`` event, or a signed webhook).

A promotion is recorded once, in the post-rollout call's transaction (``service/hooks.py``);
a Failed rollout never records one. Each round, a replica claims the due promotions under a
short lease and:

* holds it while the target environment is frozen (a freeze that applies to the canary's
  namespace) or the canary is halted, and looks again every ``hold_recheck``;
* resolves the rollout's commit (``service/commit_resolver.py``); a commit Puerta cannot name
  fails the promotion with the reason;
* carries out the action. A release is idempotent by its tag: one that already exists is done,
  not an error, so retries, restarts and replicas make one release. A transient failure
  (GitHub down, a 5xx, a rate limit) is retried with backoff; a permanent one fails it.

Every promotion is audited (kind ``promotion``) and announced (notice ``promoted``) in the
transaction that records its outcome. The same worker also looks up the commit of every recent
rollout, so ``puerta where`` knows what each environment runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import httpx
import structlog
from sqlalchemy import Row
from sqlalchemy.engine import Connection

from puerta.clock import Clock
from puerta.commits.github import GitHubRepos
from puerta.commits.rules import parse_image
from puerta.domain.notices import Notice, NoticeKind
from puerta.external import PermanentError, ProviderError, RateLimited
from puerta.notify.base import Message
from puerta.notify.config import NotificationsConfig
from puerta.notify.webhooks import JsonWebhookSink
from puerta.policy.model import CompiledPolicy
from puerta.policy.promote import PromoteConfig, render
from puerta.service import snapshot
from puerta.service.commit_resolver import CommitResolver, RolloutTarget
from puerta.service.load_runner import replica_name
from puerta.service.notices import record_notice
from puerta.service.worker import BackgroundWorker
from puerta.store import outbox, promotions
from puerta.store import repository as repo
from puerta.store.db import Database

log = structlog.get_logger("puerta.promote")
MAX_BACKOFF = 300.0
TRACK_WINDOW = timedelta(days=2)


class Promoter(BackgroundWorker):
    name = "puerta-promoter"

    def __init__(
        self,
        db: Database,
        clock: Clock,
        policy: CompiledPolicy,
        *,
        resolver: CommitResolver,
        repos: GitHubRepos | None,
        client: httpx.AsyncClient,
        webhook_secrets: Mapping[str, str],  # environment -> its promote webhook secret
        notifications: NotificationsConfig,
        replica: str | None = None,
        lease: timedelta = timedelta(seconds=60),
        interval: float = 1.0,
        hold_recheck: timedelta = timedelta(seconds=30),
    ) -> None:
        super().__init__(interval)
        self.db = db
        self.clock = clock
        self.policy = policy
        self.resolver = resolver
        self.repos = repos
        self.client = client
        self.webhook_secrets = webhook_secrets
        self.notifications = notifications
        self.replica = replica or replica_name()
        self.lease = lease
        self.hold_recheck = hold_recheck

    async def round(self) -> None:
        await self.tick()
        await self.track()

    async def release(self, item_id: int) -> None:
        await self.db.write(partial(promotions.release, item_id=item_id, owner=self.replica))

    # ---- commit tracking ------------------------------------------------------------------

    async def track(self) -> int:
        """Look up the commit of recent rollouts that have none yet (a few per round)."""
        if not self.resolver.enabled:
            return 0
        since = self.clock.now() - TRACK_WINDOW
        rows = await self.db.read(lambda c: outbox.untracked_rollouts(c, since, 20))
        done = 0
        for row in rows:
            target = RolloutTarget(row.canary_id, row.namespace, row.name, row.seq, row.environment)
            try:
                await self.resolver.commit(target)
            except ProviderError as exc:
                log.info(
                    "commit lookup deferred", canary=f"{row.namespace}/{row.name}", error=str(exc)
                )
                break  # an outage: try again next round
            done += 1
        return done

    # ---- promotions -----------------------------------------------------------------------

    async def tick(self) -> int:
        now = self.clock.now()
        due = await self.db.read(lambda c: promotions.due(c, now, 50))
        worked = 0
        for row in due:
            if self.stopping:
                break  # shutting down: take nothing new
            claim = partial(
                promotions.claim,
                item_id=row.id,
                owner=self.replica,
                now=now,
                until=now + self.lease,
                seen_attempts=row.attempts,
            )
            if not await self.db.write(claim):
                continue
            worked += 1
            self._held.add(row.id)
            try:
                await self._work(row)
            except Exception:
                log.exception("promotion crashed", promotion=row.id)
                with contextlib.suppress(Exception):
                    await self._finish(row, attempts=row.attempts + 1)
            finally:
                self._held.discard(row.id)
        return worked

    async def _work(self, row: Row[Any]) -> None:
        environment = self.policy.environment(row.environment)
        promote = environment.spec.promote if environment is not None else None
        if promote is None:
            await self._failed(row, f"{row.environment} no longer has a promote section")
            return
        hold = await self.db.read(lambda c: self._hold(c, row))
        if hold is not None:
            await self._finish(
                row,
                status="held",
                held_reason=hold,
                next_attempt_at=self.clock.now() + self.hold_recheck,
            )
            return
        target = RolloutTarget(
            row.canary_id, row.namespace, row.name, row.rollout_seq, row.environment
        )
        try:
            commit = await self.resolver.commit(target)
        except ProviderError as exc:
            await self._retry(row, str(exc))
            return
        if commit is None or commit.status != "resolved" or not commit.sha:
            why = commit.reason if commit is not None else "commit tracking is not configured"
            await self._failed(row, f"the rollout's commit is not known: {why}")
            return
        values = self._values(row, promote, commit)
        try:
            outcome = await self._act(row, promote, commit, values)
        except PermanentError as exc:
            await self._failed(row, str(exc))
        except RateLimited as exc:
            await self._retry(row, str(exc), wait=exc.retry_after)
        except ProviderError as exc:
            await self._retry(row, str(exc))
        else:
            await self._done(row, promote, commit, outcome)

    def _hold(self, conn: Connection, row: Row[Any]) -> str | None:
        """Why the promotion must wait now (None: it may go)."""
        environment = self.policy.environment(row.to_environment)
        if row.halted:
            return f"{row.namespace}/{row.name} is halted (by {row.halted_by})"
        if environment is None:
            return None
        now = self.clock.now()
        freezes = [
            freeze
            for freeze in map(snapshot.freeze_of, repo.active_freezes(conn, environment.name, now))
            if freeze.applies(environment.name, row.namespace, now)
        ]
        if freezes:
            return "; ".join(freeze.describe(environment.zone) for freeze in freezes)
        return None

    def _values(self, row: Row[Any], promote: PromoteConfig, commit: Row[Any]) -> dict[str, str]:
        now = self.clock.now()
        image_tag = parse_image(commit.image).tag if commit.image else None
        return {
            "date": f"{now:%Y%m%d}",
            "time": f"{now:%H%M%S}",
            "sha": commit.sha,
            "short_sha": commit.sha[:7],
            "repository": commit.repository or "",
            "name": row.name,
            "namespace": row.namespace,
            "environment": row.environment,
            "to": promote.to,
            "image_tag": image_tag or "",
            "rollout": str(row.rollout_seq),
        }

    async def _act(
        self, row: Row[Any], promote: PromoteConfig, commit: Row[Any], values: dict[str, str]
    ) -> dict[str, Any]:
        payload = {
            "canary": f"{row.namespace}/{row.name}",
            "rollout": row.rollout_seq,
            "environment": row.environment,
            "to": promote.to,
            "repository": commit.repository,
            "sha": commit.sha,
            "image": commit.image,
        }
        if promote.github_release is not None:
            release = promote.github_release
            repository = release.repository or commit.repository
            tag = render(release.tag, values)
            result = await self._repos().create_release(
                repository,
                tag=tag,
                target=commit.sha,
                name=render(release.name, values) if release.name else tag,
                generate_notes=release.generate_notes,
                draft=release.draft,
                prerelease=release.prerelease,
            )
            return {
                "repository": repository,
                "tag": result.tag,
                "url": result.url,
                "created": result.created,
            }
        if promote.repository_dispatch is not None:
            dispatch = promote.repository_dispatch
            repository = dispatch.repository or commit.repository
            await self._repos().dispatch(repository, render(dispatch.event_type, values), payload)
            return {"repository": repository, "tag": None, "url": None, "created": True}
        assert promote.webhook is not None
        secret = self.webhook_secrets[row.environment]
        sink = JsonWebhookSink(self.client, promote.webhook.url, secret)
        text = (
            f"promote {payload['canary']} {commit.sha[:7]} from {row.environment} to {promote.to}"
        )
        await sink.send(Message(text, fields=payload), delivery_id=f"puerta-promotion-{row.id}")
        return {"repository": commit.repository, "tag": None, "url": None, "created": True}

    def _repos(self) -> GitHubRepos:
        if self.repos is None:
            raise PermanentError("no GitHub configured (commits.github)")
        return self.repos

    # ---- outcomes -------------------------------------------------------------------------

    async def _finish(self, row: Row[Any], **values: Any) -> None:
        now = self.clock.now()
        await self.db.write(
            lambda c: promotions.finish(c, row.id, self.replica, updated_at=now, **values)
        )

    async def _retry(self, row: Row[Any], error: str, *, wait: float | None = None) -> None:
        delay = wait if wait is not None else float(min(MAX_BACKOFF, 2 ** min(row.attempts, 10)))
        await self._finish(
            row,
            status="pending",
            held_reason=None,
            attempts=row.attempts + 1,
            last_error=error[:1000],
            next_attempt_at=self.clock.now() + timedelta(seconds=delay),
        )
        log.warning("promotion delayed", promotion=row.id, error=error, retry_in_s=delay)

    async def _failed(self, row: Row[Any], error: str) -> None:
        now = self.clock.now()

        def work(conn: Connection) -> None:
            promotions.finish(
                conn,
                row.id,
                self.replica,
                status="failed",
                attempts=row.attempts + 1,
                last_error=error[:1000],
                updated_at=now,
            )
            self._record(conn, row, now, f"promotion to {row.to_environment} failed: {error}", {})

        await self.db.write(work)
        log.error("promotion failed", promotion=row.id, error=error)

    async def _done(
        self, row: Row[Any], promote: PromoteConfig, commit: Row[Any], outcome: dict[str, Any]
    ) -> None:
        now = self.clock.now()
        made = "created" if outcome["created"] else "already existed"
        what = {
            "github_release": f"release {outcome['tag']} {made}",
            "repository_dispatch": f"repository_dispatch sent to {outcome['repository']}",
            "webhook": "webhook called",
        }[promote.action]
        text = f"{commit.repository}@{commit.sha[:7]} promoted to {promote.to}: {what}"

        def work(conn: Connection) -> None:
            promotions.finish(
                conn,
                row.id,
                self.replica,
                status="done",
                held_reason=None,
                attempts=row.attempts + 1,
                last_error=None,
                repository=outcome["repository"],
                sha=commit.sha,
                tag=outcome["tag"],
                url=outcome["url"],
                created=outcome["created"],
                done_at=now,
                updated_at=now,
            )
            self._record(conn, row, now, text, {**outcome, "link": outcome["url"]})

        await self.db.write_persistently(work, within=self.lease.total_seconds() / 2)
        log.info("promotion done", promotion=row.id, result=text)

    def _record(
        self, conn: Connection, row: Row[Any], now: datetime, text: str, details: dict[str, Any]
    ) -> None:
        """Audit and announce a promotion's outcome, in its transaction."""
        repo.insert_audit(
            conn,
            at=now,
            kind="promotion",
            actor="puerta",
            action=f"promote-{row.action}",
            namespace=row.namespace,
            name=row.name,
            environment=row.environment,
            rollout_seq=row.rollout_seq,
            reason=text,
            details={"to": row.to_environment, **details},
        )
        if self.notifications.routes:
            notice = Notice(
                kind=NoticeKind.PROMOTED,
                namespace=row.namespace,
                name=row.name,
                rollout_seq=row.rollout_seq,
                environment=row.environment,
                revision=row.revision or "",
                at=now,
                text=text,
                link=details.get("link"),
            )
            record_notice(conn, self.notifications, canary_id=row.canary_id, notice=notice, now=now)
