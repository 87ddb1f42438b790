"""Find out what a rollout ships and who wrote it, once per rollout, with cached lookups.

Canary -> its workload's image and labels (Kubernetes) -> repository and commit (the policy's
``commits.rules``) -> the commit's author (GitHub) -> their chat user (the policy's
``direct_messages.people`` first, else Slack's users.lookupByEmail). The answer, or why there
is none, is stored in ``rollout_commits``; commit and chat-user lookups are cached in the
database for every replica. A step that fails for good (no rule, a workload Puerta may not
read, an unknown commit, no chat account) is recorded as the reason; a transient failure
(an outage) raises, so the caller retries later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Row

from puerta.clock import Clock
from puerta.commits.base import CommitRef, CommitSource, WorkloadInfo, WorkloadReader
from puerta.external import PermanentError
from puerta.notify.base import ChatSink
from puerta.store import outbox
from puerta.store.db import Database

log = structlog.get_logger("puerta.commits")

COMMIT_TTL = timedelta(days=7)  # a commit's author does not change
USER_TTL = timedelta(hours=6)  # people join Slack; look again now and then
NO_USER_TTL = timedelta(hours=1)

#: (workload, namespace, name) -> the commit, or why none
RuleResolver = Callable[[WorkloadInfo, str, str], "CommitRef | str"]


@dataclass(frozen=True, slots=True)
class RolloutTarget:
    canary_id: int
    namespace: str
    name: str
    rollout_seq: int
    environment: str | None


class CommitResolver:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        workloads: Callable[[str | None], WorkloadReader] | None,
        rules: RuleResolver | None,
        commits: CommitSource | None,
        chat: ChatSink | None,
        people: Mapping[str, str],
    ) -> None:
        self.db = db
        self.clock = clock
        self.workloads = workloads
        self.rules = rules
        self.commits = commits
        self.chat = chat
        self.people = {email.lower(): user for email, user in people.items()}
        # one resolution per rollout at a time in this process (the parent message and the
        # DM of a rollout are delivered side by side)
        self._locks: dict[tuple[int, int], asyncio.Lock] = {}

    @property
    def enabled(self) -> bool:
        return self.workloads is not None and self.rules is not None

    async def commit(self, target: RolloutTarget) -> Row[Any] | None:
        """The rollout's resolved commit row (resolving it the first time); None when commit
        tracking is not configured. Raises TransientError while a source is unreachable."""
        if not self.enabled:
            return None
        key = (target.canary_id, target.rollout_seq)
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                return await self._commit(target)
        finally:
            if not lock.locked() and self._locks.get(key) is lock:
                del self._locks[key]

    async def _commit(self, target: RolloutTarget) -> Row[Any]:
        stored = await self.db.read(
            lambda c: outbox.rollout_commit(c, target.canary_id, target.rollout_seq)
        )
        if stored is not None:
            return stored
        values = await self._resolve(target)
        now = self.clock.now()
        return await self.db.write(
            lambda c: outbox.store_rollout_commit(
                c,
                canary_id=target.canary_id,
                rollout_seq=target.rollout_seq,
                resolved_at=now,
                reported=False,
                **values,
            )
        )

    async def _resolve(self, target: RolloutTarget) -> dict[str, Any]:
        assert self.workloads is not None and self.rules is not None
        try:
            info = await self.workloads(target.environment).read(target.namespace, target.name)
        except PermanentError as exc:
            return {"status": "unresolved", "reason": f"could not read the workload: {exc}"}
        found = self.rules(info, target.namespace, target.name)
        if isinstance(found, str):
            image = info.containers[0].image if info.containers else None
            return {"status": "unresolved", "reason": found, "image": image}
        values: dict[str, Any] = {
            "status": "resolved",
            "image": found.image,
            "repository": found.repository,
            "sha": found.sha,
        }
        if self.commits is None:
            return values
        commit = await self._commit_info(found)
        if isinstance(commit, str):
            return {**values, "status": "unresolved", "reason": commit}
        return {**values, **commit}

    async def _commit_info(self, ref: CommitRef) -> dict[str, Any] | str:
        assert self.commits is not None
        key = f"{ref.repository}@{ref.sha}"
        now = self.clock.now()
        hit = await self.db.read(lambda c: outbox.cached(c, "commit", key, now))
        if hit is not outbox.MISSING:
            return _commit_values(hit)
        try:
            info = await self.commits.commit(ref.repository, ref.sha)
        except PermanentError as exc:
            value: dict[str, Any] | str = f"commit {ref.sha} of {ref.repository}: {exc}"
        else:
            value = {
                "sha": info.sha,
                "url": info.url,
                "title": info.title,
                "author_name": info.author_name,
                "author_email": info.author_email,
                "author_login": info.author_login,
                "committed_at": info.committed_at.isoformat(),
            }
        stored = value
        await self.db.write(lambda c: outbox.cache(c, "commit", key, stored, now + COMMIT_TTL))
        return _commit_values(value)

    async def chat_user(self, commit: Row[Any]) -> tuple[str | None, str]:
        """(chat user id, "") or (None, why not). Raises TransientError during an outage."""
        if commit.status != "resolved":
            return None, commit.reason or "the commit is not known"
        email = (commit.author_email or "").strip().lower()
        if not email:
            return None, f"GitHub shows no email for the author of {commit.sha[:10]}"
        if email in self.people:
            return self.people[email], ""
        if self.chat is None:
            return None, "no Slack configured"
        now = self.clock.now()
        hit = await self.db.read(lambda c: outbox.cached(c, "chat-user", email, now))
        if hit is outbox.MISSING:
            user = await self.chat.lookup_user(email)
            ttl = USER_TTL if user else NO_USER_TTL
            await self.db.write(lambda c: outbox.cache(c, "chat-user", email, user, now + ttl))
            hit = user
        if hit is None:
            return None, (
                f"{email} has no Slack account with that email "
                "(add it to notifications.direct_messages.people)"
            )
        return str(hit), ""


def _commit_values(value: Any) -> dict[str, Any] | str:
    """A looked-up (or cached, JSON-stored) commit as row values: the reason string when
    there is none, else its fields with ``committed_at`` as a datetime again."""
    if not isinstance(value, dict):
        return str(value)
    values = dict(value)
    when = values.get("committed_at")
    if isinstance(when, str):
        values["committed_at"] = datetime.fromisoformat(when)
    return values


def commit_line(commit: Row[Any] | None) -> str | None:
    """What the parent message says about the commit."""
    if commit is None:
        return None
    if commit.status != "resolved":
        return f"commit: unknown ({commit.reason})"
    short = (commit.sha or "")[:7]
    title = f" “{commit.title}”" if commit.title else ""
    who = commit.author_name or commit.author_login
    by = f" by {who}" if who else ""
    link = f" <{commit.url}|{short}>" if commit.url else f" {short}"
    return f"commit {commit.repository}@{link.strip()}{title}{by}"
