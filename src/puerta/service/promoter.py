"""Carry out promotions: when a rollout succeeded in an environment with a ``promote`` section,
send its commit on (a GitHub release, a ``repository_dispatch`` event, or a signed webhook).

A promotion is recorded once, in the post-rollout call's transaction (``service/hooks.py``);
a Failed rollout never records one. Each round, a replica claims the due promotions under a
short lease and:

* holds it while a person holds it (``POST /api/v1/promotions/{id}/hold``) or, with the
  policy's ``manual_release``, until an approver releases it; while the source canary is
  halted; and while a freeze of the target environment covers where the commit will run there
  (the namespaces of the canaries of that name Puerta has seen in it; none seen yet: any
  freeze of it). It looks again every ``hold_recheck``;
* resolves the rollout's commit (``service/commit_resolver.py``); a commit Puerta cannot name
  fails the promotion with the reason;
* renders what it sends (a release's tag and name, a dispatch's event type) once, from the
  instant the rollout succeeded and, for ``{next_patch}`` and the like, the repository's tags,
  and stores it in a committed write before the first call: every retry sends the same, so a
  lost answer retried after midnight cannot make a second, differently dated release;
* carries out the action. A release is idempotent by its tag: one of the same commit that
  already exists is done, not an error, so retries, restarts and replicas make one release;
  a tag or release of another commit fails it. A transient failure (GitHub down, a 5xx, a rate
  limit) is retried with backoff; a permanent one fails it. A dispatch or webhook call whose
  answer was lost is sent again: both carry the promotion's delivery id for receivers to
  de-duplicate on.

Every promotion is audited (kind ``promotion``) and announced (notice ``promoted``) in the
transaction that records its outcome; holding and releasing by hand (:class:`PromotionHolds`)
are audited and announced like other admin actions. The same worker also looks up the commit
of every recent rollout, so ``puerta where`` knows what each environment runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import httpx
import structlog
from sqlalchemy import Row
from sqlalchemy.engine import Connection

from puerta.clock import Clock
from puerta.commits.github import MAX_EVENT_TYPE, GitHubRepos
from puerta.commits.rules import parse_image
from puerta.domain.freezes import Freeze
from puerta.domain.notices import Notice, NoticeKind
from puerta.errors import Conflict, NotFound
from puerta.external import PermanentError, ProviderError, RateLimited
from puerta.notify.base import Message
from puerta.notify.config import NotificationsConfig
from puerta.notify.webhooks import JsonWebhookSink
from puerta.policy.model import CompiledEnvironment, CompiledPolicy
from puerta.policy.promote import (
    MANUAL_RELEASE,
    PromoteConfig,
    highest_version,
    next_versions,
    render,
    uses_versions,
    version_prefix,
)
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
MAX_TAG = 300  # the ``tag`` column's size (GitHub's own limit is larger)


@dataclass(frozen=True, slots=True)
class Rendered:
    """What a promotion sends, rendered once and stored before its first attempt."""

    tag: str | None = None  # a release's tag
    name: str | None = None  # a release's name
    event_type: str | None = None  # a dispatch's event type


def delivery_id(promotion_id: int) -> str:
    """The id a dispatch (in ``client_payload``) and a webhook (``X-Puerta-Delivery`` and the
    body) carry: the same on every attempt, so a receiver can drop a repeat."""
    return f"puerta-promotion-{promotion_id}"


def held_by_hand(promotion_id: int, actor: str, note: str | None) -> str:
    """How a hand hold reads in ``held_reason``: who, why, and how to let it go."""
    why = f": {note}" if note else ""
    return f"held by {actor}{why} (release with: puerta promotions release {promotion_id})"


def manual_hold_reason(row: Row[Any], promote: PromoteConfig | None) -> str | None:
    """Why a person (or the policy's ``manual_release``) holds the promotion, with how to
    release it; None when nothing manual holds it."""
    if row.held_by is not None:
        return held_by_hand(row.id, row.held_by, row.held_note)
    if promote is not None and promote.manual_release and row.released_by is None:
        return f"{MANUAL_RELEASE} (release with: puerta promotions release {row.id})"
    return None


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
            taken = self.clock.now()  # the list may be minutes old by now: lease from now
            claim = partial(
                promotions.claim,
                item_id=row.id,
                owner=self.replica,
                now=taken,
                until=taken + self.lease,
                seen_attempts=row.attempts,
            )
            if not await self.db.write(claim):
                continue
            worked += 1
            self._held.add(row.id)
            try:
                # read again under the lease: a hold, release or halt since the list was read
                # must count (nobody changes it by hand while this replica holds it)
                fresh = await self.db.read(partial(promotions.get, item_id=row.id))
                if fresh is None:
                    continue  # its canary was deleted meanwhile
                row = fresh
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
        hold = await self.db.read(lambda c: self._hold(c, row, promote))
        if hold is not None:
            await self._held_now(row, hold)
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
        try:
            rendered = await self._rendered(row, promote, commit)
            if rendered is None:
                return  # another replica took it over (our lease ran out): it carries on
            outcome = await self._act(row, promote, commit, rendered)
        except PermanentError as exc:
            await self._failed(row, str(exc))
        except RateLimited as exc:
            await self._retry(row, str(exc), wait=exc.retry_after)
        except ProviderError as exc:
            await self._retry(row, str(exc))
        else:
            await self._done(row, promote, commit, outcome)

    def _hold(self, conn: Connection, row: Row[Any], promote: PromoteConfig) -> str | None:
        """Why the promotion must wait now, every reason at once (None: it may go)."""
        reasons = []
        manual = manual_hold_reason(row, promote)
        if manual is not None:
            reasons.append(manual)
        if row.halted:
            reasons.append(
                f"{row.namespace}/{row.name} is halted (by {row.halted_by}; approving it "
                "lifts the halt)"
            )
        target = self.policy.environment(row.to_environment)
        if target is not None:
            reasons.extend(self._freezes(conn, target, row.name, self.clock.now()))
        return "; ".join(reasons) or None

    def _freezes(
        self, conn: Connection, target: CompiledEnvironment, name: str, now: datetime
    ) -> list[str]:
        """The freezes of the target environment that hold a commit of canary ``name``: those
        covering a namespace where Puerta has seen a canary of that name in the target
        environment; when it has seen none there, every freeze in force (it cannot know where
        the commit will run, and sending it into a freeze is the worse mistake)."""
        in_force = [
            freeze
            for freeze in map(snapshot.freeze_of, repo.active_freezes(conn, target.name, now))
            if _whole(freeze).applies(target.name, "", now)
        ]
        if not in_force:
            return []
        namespaces = promotions.target_namespaces(conn, name, target.name)
        if not namespaces:
            unknown = (
                f" (Puerta has seen no {name} canary in {target.name} yet, so any freeze of "
                f"{target.name} holds it)"
            )
            return [freeze.describe(target.zone) + unknown for freeze in in_force]
        return [
            freeze.describe(target.zone)
            for freeze in in_force
            if any(freeze.applies(target.name, namespace, now) for namespace in namespaces)
        ]

    async def _rendered(
        self, row: Row[Any], promote: PromoteConfig, commit: Row[Any]
    ) -> Rendered | None:
        """What the promotion sends: the stored rendering, or rendered now and stored (a
        committed write) before the first call, so every retry sends exactly the same. None:
        this replica no longer holds the promotion."""
        if promote.github_release is not None and row.tag is not None:
            return Rendered(tag=row.tag, name=row.release_name or row.tag)
        if promote.repository_dispatch is not None and row.event_type is not None:
            return Rendered(event_type=row.event_type)
        if promote.github_release is None and promote.repository_dispatch is None:
            return Rendered()  # a webhook sends no template
        values = self._values(row, promote, commit)
        release = promote.github_release
        if release is None:
            assert promote.repository_dispatch is not None
            event_type = render(promote.repository_dispatch.event_type, values)
            _check_length("event_type", event_type, MAX_EVENT_TYPE)

            def store_event_type(conn: Connection) -> bool:
                return promotions.store_rendered(conn, row.id, self.replica, event_type=event_type)

            stored = await self.db.write(store_event_type)
            return Rendered(event_type=event_type) if stored else None
        repository = release.repository or commit.repository
        versions = uses_versions(release.tag, release.name)
        on_github = await self._repos().tag_names(repository) if versions else []

        def store_release(conn: Connection) -> Rendered | None:
            # the version is chosen where it is stored, under a lock per repository: a
            # version another promotion stored but has not released yet is taken too
            if versions:
                promotions.lock_versions(conn, repository)
                taken = [*on_github, *promotions.tags_taken(conn, repository, besides=row.id)]
                prefix = version_prefix(release.tag, values)
                values.update(next_versions(highest_version(taken, prefix)))
            tag = render(release.tag, values)
            _check_length("tag", tag, MAX_TAG)
            name = render(release.name, values) if release.name else tag
            columns = {"tag": tag, "release_name": name, "repository": repository}
            stored = promotions.store_rendered(conn, row.id, self.replica, **columns)
            return Rendered(tag=tag, name=name) if stored else None

        return await self.db.write(store_release)

    def _values(self, row: Row[Any], promote: PromoteConfig, commit: Row[Any]) -> dict[str, str]:
        """The template fields. ``{date}``/``{time}`` are when the rollout succeeded (the
        promotion was recorded), the same on every attempt and every replica."""
        at = row.created_at
        image_tag = parse_image(commit.image).tag if commit.image else None
        return {
            "date": f"{at:%Y%m%d}",
            "time": f"{at:%H%M%S}",
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
        self, row: Row[Any], promote: PromoteConfig, commit: Row[Any], rendered: Rendered
    ) -> dict[str, Any]:
        # 8 top-level keys: GitHub takes at most 10 in a dispatch's client_payload
        payload = {
            "canary": f"{row.namespace}/{row.name}",
            "rollout": row.rollout_seq,
            "environment": row.environment,
            "to": promote.to,
            "repository": commit.repository,
            "sha": commit.sha,
            "image": commit.image,
            "delivery_id": delivery_id(row.id),
        }
        if promote.github_release is not None:
            release = promote.github_release
            repository = release.repository or commit.repository
            assert rendered.tag is not None
            result = await self._repos().create_release(
                repository,
                tag=rendered.tag,
                target=commit.sha,
                name=rendered.name or rendered.tag,
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
            assert rendered.event_type is not None
            await self._repos().dispatch(repository, rendered.event_type, payload)
            return {"repository": repository, "tag": None, "url": None, "created": True}
        assert promote.webhook is not None
        secret = self.webhook_secrets[row.environment]
        sink = JsonWebhookSink(self.client, promote.webhook.url, secret)
        text = (
            f"promote {payload['canary']} {commit.sha[:7]} from {row.environment} to {promote.to}"
        )
        await sink.send(Message(text, fields=payload), delivery_id=delivery_id(row.id))
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

    async def _held_now(self, row: Row[Any], reason: str) -> None:
        """Keep the promotion held and look again later. The moment it starts to wait (it was
        pending, or ``manual_release`` recorded it held) is audited and announced with why,
        once: a freeze or a halt holding a commit back is news to whoever waits for it. A hold
        by hand was announced by the person's action."""
        now = self.clock.now()
        news = row.status != "held" or row.held_reason == MANUAL_RELEASE

        def work(conn: Connection) -> None:
            finished = promotions.finish(
                conn,
                row.id,
                self.replica,
                status="held",
                held_reason=reason,
                next_attempt_at=now + self.hold_recheck,
                updated_at=now,
            )
            if finished and news:
                text = f"promotion {row.id} to {row.to_environment} held: {reason}"
                record_promotion_news(
                    conn,
                    self.notifications,
                    row,
                    now=now,
                    action="promotion-held",
                    text=text,
                    notice=NoticeKind.PROMOTION_HELD,
                )

        await self.db.write(work)

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
            record_promotion_news(
                conn,
                self.notifications,
                row,
                now=now,
                action=f"promote-{row.action}",
                text=f"promotion to {row.to_environment} failed: {error}",
            )

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
            record_promotion_news(
                conn,
                self.notifications,
                row,
                now=now,
                action=f"promote-{row.action}",
                text=text,
                details={**outcome, "link": outcome["url"]},
                link=outcome["url"],
            )

        await self.db.write_persistently(work, within=self.lease.total_seconds() / 2)
        log.info("promotion done", promotion=row.id, result=text)


def _whole(freeze: Freeze) -> Freeze:
    """The freeze as if it covered every namespace: whether it is in force at all."""
    return replace(freeze, namespaces=())


def _check_length(what: str, value: str, limit: int) -> None:
    """A rendered value too long to send (or store) fails the promotion with the reason,
    before anything is stored."""
    if len(value) > limit:
        raise PermanentError(
            f"the rendered {what} {value[:40]!r}... has {len(value)} characters; "
            f"at most {limit} are allowed"
        )


# ---- holding and releasing by hand ----------------------------------------------------------


class PromotionHolds:
    """Hold and release promotions by hand (the API checks the approver role): each is audited
    with its actor and announced like the other admin actions, in the transaction that makes
    it. Neither happens while a replica is carrying the promotion out (it may be sending it at
    this moment); the caller is told to look again."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        policy: CompiledPolicy,
        notifications: NotificationsConfig,
    ) -> None:
        self.db = db
        self.clock = clock
        self.policy = policy
        self.notifications = notifications

    async def hold(self, promotion_id: int, *, actor: str, reason: str) -> Row[Any]:
        """Keep a pending or held promotion from going out until someone releases it."""

        def work(conn: Connection) -> Row[Any]:
            now = self.clock.now()
            row = self._active(conn, promotion_id, "held", now)
            if row.held_by is not None:
                raise Conflict(f"promotion {promotion_id} is already held by {row.held_by}")
            # what held it already (a freeze, a halt, manual_release) still does: keep saying
            # so until the worker looks again
            already = [row.held_reason] if row.status == "held" and row.held_reason else []
            shown = "; ".join([held_by_hand(promotion_id, actor, reason), *already])
            changed = promotions.hold(
                conn, promotion_id, actor=actor, note=reason, held_reason=shown, now=now
            )
            if not changed:
                raise Conflict(f"promotion {promotion_id} changed meanwhile; look at it again")
            message = (
                f"promotion {promotion_id} to {row.to_environment} held: it goes out only once "
                "released"
            )
            self._by_hand(conn, row, "promotion-hold", actor, reason, message, now)
            return self._reread(conn, promotion_id)

        return await self.db.write(work)

    async def release(self, promotion_id: int, *, actor: str, reason: str) -> Row[Any]:
        """Lift a hand hold (or the policy's ``manual_release`` wait): the promotion is due
        now. A freeze or a halt still holds it; those are lifted where they were set."""

        def work(conn: Connection) -> Row[Any]:
            now = self.clock.now()
            row = self._active(conn, promotion_id, "released", now)
            environment = self.policy.environment(row.environment)
            promote = environment.spec.promote if environment is not None else None
            if manual_hold_reason(row, promote) is None:
                waits = f" (it waits for: {row.held_reason})" if row.held_reason else ""
                raise Conflict(
                    f"promotion {promotion_id} is not held by hand{waits}: nothing to release"
                )
            if not promotions.release_hold(conn, promotion_id, actor=actor, now=now):
                raise Conflict(f"promotion {promotion_id} changed meanwhile; look at it again")
            message = (
                f"promotion {promotion_id} to {row.to_environment} released: it goes out now "
                "unless a freeze or a halt still holds it"
            )
            self._by_hand(conn, row, "promotion-release", actor, reason, message, now)
            return self._reread(conn, promotion_id)

        return await self.db.write(work)

    def _active(self, conn: Connection, promotion_id: int, verb: str, now: datetime) -> Row[Any]:
        """The promotion, if it can still be held or released: 404 unknown, 409 finished or
        being carried out right now."""
        row = promotions.get(conn, promotion_id)
        if row is None:
            raise NotFound(f"no promotion {promotion_id}")
        if row.status not in promotions.ACTIVE:
            raise Conflict(
                f"promotion {promotion_id} is {row.status}: only a pending or held promotion "
                f"can be {verb}"
            )
        if row.owner is not None and row.lease_until is not None and row.lease_until >= now:
            raise Conflict(
                f"promotion {promotion_id} is being carried out right now (by {row.owner}); "
                "look again in a moment and, if it is still pending or held, try again"
            )
        return row

    @staticmethod
    def _reread(conn: Connection, promotion_id: int) -> Row[Any]:
        row = promotions.get(conn, promotion_id)
        assert row is not None  # changed in this very transaction
        return row

    def _by_hand(
        self,
        conn: Connection,
        row: Row[Any],
        action: str,
        actor: str,
        reason: str,
        message: str,
        now: datetime,
    ) -> None:
        """Audit a person's hold or release (kind ``admin``, with who and why) and announce
        it in the rollout's thread."""
        record_promotion_news(
            conn,
            self.notifications,
            row,
            now=now,
            action=action,
            text=message + (f" (reason: {reason})" if reason else ""),
            notice=(
                NoticeKind.PROMOTION_HELD
                if action == "promotion-hold"
                else NoticeKind.PROMOTION_RELEASED
            ),
            audit_kind="admin",
            actor=actor,
            reason=reason,
            details={"result": message, "promotion_id": row.id},
        )


def record_promotion_news(
    conn: Connection,
    notifications: NotificationsConfig,
    row: Row[Any],
    *,
    now: datetime,
    action: str,
    text: str,
    notice: NoticeKind = NoticeKind.PROMOTED,
    audit_kind: str = "promotion",
    actor: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    link: str | None = None,
) -> None:
    """Audit what happened to a promotion and announce it in its rollout's thread, in the
    caller's transaction. ``actor``: a person (audited as them, and named in the notice);
    None: Puerta itself. ``reason``: what the audit records as why (default: ``text``)."""
    repo.insert_audit(
        conn,
        at=now,
        kind=audit_kind,
        actor=actor or "puerta",
        action=action,
        namespace=row.namespace,
        name=row.name,
        environment=row.environment,
        rollout_seq=row.rollout_seq,
        reason=text if reason is None else reason,
        details={"to": row.to_environment, **(details or {})},
    )
    if not notifications.routes:
        return
    announced = Notice(
        kind=notice,
        namespace=row.namespace,
        name=row.name,
        rollout_seq=row.rollout_seq,
        environment=row.environment,
        revision=row.revision or "",
        at=now,
        text=text,
        link=link,
        actor=actor,
    )
    record_notice(conn, notifications, canary_id=row.canary_id, notice=announced, now=now)
