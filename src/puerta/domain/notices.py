"""What Puerta tells people about a rollout, and in which words (pure).

A :class:`Notice` is something that happened to a rollout: a Flagger event (the ``event``
hook), or one of Puerta's own decisions (queued for a window, released, E2E started / passed /
failed, approved, halted, rollback requested, override used, succeeded, rolled back). Notices
are written to an outbox in the same transaction as what caused them; the texts below are
composed when they are delivered.

Three audiences:

* the central channel: one parent message per rollout (canary + revision) that always shows
  the current phase, weight, what it waits for and the commit; every notice as a reply in its
  thread; a notice identical to the previous reply is folded into the parent ("x12") instead;
* a raw channel (optional): every notice as it comes, one line each;
* the commit's author, by direct message: only what matters to them (:data:`CURATED`).

A canary gated by no Puerta hook (Flagger sends it only to the global ``-event-webhook``)
never opens a Puerta rollout. Its events are grouped into *episodes* instead
(:func:`episode_step`): one per revision Flagger analyses, opened by "New revision detected!"
(or any analysis event when none is open) and closed by "Promotion completed!" or "Canary
failed!"; each episode gets a thread like a rollout's. Outbox rows and threads key an episode
by ``-N`` where a rollout has its seq (:attr:`Notice.thread_key`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from puerta.domain.hooks import HookType
from puerta.domain.rollouts import PROGRESSING_PHASES


class NoticeKind(StrEnum):
    EVENT = "event"  # a Flagger event, verbatim
    QUEUED = "queued"  # confirm-rollout waits for a window, a freeze or the release train
    RELEASED = "released"  # confirm-rollout passed: the rollout starts
    E2E_STARTED = "e2e-started"
    E2E_PASSED = "e2e-passed"
    E2E_FAILED = "e2e-failed"
    APPROVED = "approved"
    HALTED = "halted"
    ROLLBACK_REQUESTED = "rollback-requested"
    OVERRIDE = "override"
    SUCCEEDED = "succeeded"  # post-rollout with phase Succeeded: promoted in this environment
    FAILED = "failed"  # post-rollout with phase Failed: rolled back
    NOTE = "note"  # Puerta about its own notifications (e.g. why the author got no DM)
    PROMOTED = "promoted"  # the commit was sent on to the next environment (release, ...)
    #: a promotion waits for a person: held by hand, or ``manual_release`` waits for one
    PROMOTION_HELD = "promotion-held"
    PROMOTION_RELEASED = "promotion-released"  # a person let a held promotion go


#: what the developer whose commit is rolling out hears about, by direct message
CURATED = frozenset(
    {NoticeKind.QUEUED, NoticeKind.E2E_FAILED, NoticeKind.FAILED, NoticeKind.SUCCEEDED}
)

_WEIGHT = re.compile(r"\bweight (\d{1,3})\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Notice:
    kind: NoticeKind
    namespace: str
    name: str
    rollout_seq: int
    environment: str | None
    revision: str
    at: datetime
    text: str  # one line: the event message, or Puerta's reason
    link: str | None = None
    actor: str | None = None
    phase: str = ""
    warning: bool = False  # Flagger's eventType Warning
    details: dict[str, Any] = field(default_factory=dict)
    episode: int = 0  # N of the canary's N-th event episode (no Puerta rollout), else 0

    @property
    def canary(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def thread_key(self) -> int:
        """What outbox rows and threads are keyed by: the rollout's seq, or ``-N`` for event
        episode N (0: neither; such a notice goes only where no thread is needed)."""
        return self.rollout_seq or -self.episode

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "namespace": self.namespace,
            "name": self.name,
            "rollout_seq": self.rollout_seq,
            "environment": self.environment,
            "revision": self.revision,
            "at": self.at.isoformat(),
            "text": self.text,
            "link": self.link,
            "actor": self.actor,
            "phase": self.phase,
            "warning": self.warning,
            "details": dict(self.details),
            "episode": self.episode,
        }

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Notice:
        return cls(
            kind=NoticeKind(value["kind"]),
            namespace=value["namespace"],
            name=value["name"],
            rollout_seq=int(value["rollout_seq"]),
            environment=value.get("environment"),
            revision=value.get("revision") or "",
            at=datetime.fromisoformat(value["at"]),
            text=value.get("text") or "",
            link=value.get("link"),
            actor=value.get("actor"),
            phase=value.get("phase") or "",
            warning=bool(value.get("warning")),
            details=dict(value.get("details") or {}),
            episode=int(value.get("episode") or 0),
        )

    @property
    def fold_key(self) -> str:
        """Two notices with the same key are "the same again" (Flagger repeats some events
        every interval, e.g. waiting for approval)."""
        return f"{self.kind.value}|{self.warning}|{self.text}"

    @property
    def weight(self) -> int | None:
        """The canary weight a Flagger event announces ("Advance ... canary weight 20")."""
        if self.kind is not NoticeKind.EVENT:
            return None
        match = _WEIGHT.search(self.text)
        return int(match.group(1)) if match else None


_ICONS = {
    NoticeKind.QUEUED: ":hourglass_flowing_sand:",
    NoticeKind.RELEASED: ":arrow_forward:",
    NoticeKind.E2E_STARTED: ":test_tube:",
    NoticeKind.E2E_PASSED: ":white_check_mark:",
    NoticeKind.E2E_FAILED: ":x:",
    NoticeKind.APPROVED: ":thumbsup:",
    NoticeKind.HALTED: ":octagonal_sign:",
    NoticeKind.ROLLBACK_REQUESTED: ":rewind:",
    NoticeKind.OVERRIDE: ":rotating_light:",
    NoticeKind.SUCCEEDED: ":rocket:",
    NoticeKind.FAILED: ":boom:",
    NoticeKind.NOTE: ":grey_exclamation:",
    NoticeKind.PROMOTED: ":package:",
    NoticeKind.PROMOTION_HELD: ":raised_hand:",
    NoticeKind.PROMOTION_RELEASED: ":arrow_forward:",
}


def reply_text(notice: Notice) -> str:
    """A notice as a reply in the rollout's thread (and as a line in the raw channel)."""
    if notice.kind is NoticeKind.EVENT:
        icon = ":warning:" if notice.warning else ":information_source:"
        return f"{icon} {notice.text}"
    by = f" by {notice.actor}" if notice.actor else ""
    link = f" <{notice.link}|link>" if notice.link else ""
    return f"{_ICONS[notice.kind]} *{notice.kind.value}*{by}: {notice.text}{link}"


def raw_text(notice: Notice) -> str:
    """One line for the raw channel: every notice, with its canary and revision."""
    return f"`{notice.canary}` rev `{notice.revision[:10]}` {reply_text(notice)}"


@dataclass(frozen=True, slots=True)
class CommitLine:
    """What the parent message says about the commit (resolved or why not)."""

    text: str  # e.g. "acme/podinfo@3f9a2c1 “Fix checkout” by Alice" or "commit unknown: ..."


@dataclass(frozen=True, slots=True)
class RolloutSummary:
    """The state the parent message shows; read from the database when it is posted."""

    namespace: str
    name: str
    rollout_seq: int
    environment: str | None
    revision: str
    status: str  # pending, confirmed, progressing, succeeded, failed, superseded
    phase: str
    waiting: str | None  # what it waits for, if it does
    weight: int | None
    commit: CommitLine | None
    repeats: int = 0  # notices folded into the parent (identical repeats)
    last_repeat: str | None = None
    episode: bool = False  # an event episode (``rollout_seq`` is its N), not a Puerta rollout


_STATUS_ICON = {
    "pending": ":hourglass_flowing_sand:",
    "confirmed": ":arrow_forward:",
    "progressing": ":arrows_counterclockwise:",
    "succeeded": ":rocket:",
    "failed": ":boom:",
    "superseded": ":fast_forward:",
}


def parent_text(summary: RolloutSummary) -> str:
    """The rollout's one line in the central channel (updated in place)."""
    env = f" to *{summary.environment}*" if summary.environment else ""
    label = (
        episode_label(summary.rollout_seq) if summary.episode else f"rollout #{summary.rollout_seq}"
    )
    head = (
        f"{_STATUS_ICON.get(summary.status, ':grey_question:')} `{summary.namespace}/"
        f"{summary.name}` {label}{env}: *{summary.status}*"
    )
    parts = [head]
    if summary.phase:
        parts.append(f"phase {summary.phase}")
    if summary.weight is not None:
        parts.append(f"weight {summary.weight}%")
    parts.append(f"rev `{summary.revision[:10] or '?'}`")
    line = ", ".join(parts)
    if summary.waiting:
        line += f"\nwaiting: {summary.waiting}"
    if summary.commit is not None:
        line += f"\n{summary.commit.text}"
    if summary.repeats and summary.last_repeat:
        line += f"\n(repeated x{summary.repeats + 1}: {summary.last_repeat})"
    return line


def dm_text(notice: Notice, commit: str | None) -> str:
    """The direct message to the commit's author: short, and only what they need."""
    what = f"`{notice.canary}`" + (f" ({commit})" if commit else "")
    env = notice.environment or "its environment"
    link = f" {notice.link}" if notice.link else ""
    if notice.kind is NoticeKind.QUEUED:
        return (
            f":hourglass_flowing_sand: Your change {what} is waiting to go to {env}: {notice.text}"
        )
    if notice.kind is NoticeKind.E2E_FAILED:
        return f":x: End-to-end tests failed for your change {what} in {env}: {notice.text}{link}"
    if notice.kind is NoticeKind.FAILED:
        return f":boom: Your change {what} failed in {env} and was rolled back: {notice.text}"
    if notice.kind is NoticeKind.SUCCEEDED:
        return f":rocket: Your change {what} reached {env}."
    return f"{reply_text(notice)} ({what})"


# ---- why a rollout failed ------------------------------------------------------------------

#: hooks whose refusal Flagger counts as a failed check (too many of them roll it back);
#: a confirm-* hook that waits only holds the rollout, it never fails it
_COUNTED_HOOKS = frozenset({HookType.PRE_ROLLOUT.value, HookType.ROLLOUT.value})
#: Warning events that only say *that* it failed, never why
_MUTE_WARNINGS = ("Canary failed",)
FALLBACK_FAILURE = "Flagger rolled it back"


def tells_why(message: str) -> bool:
    """Whether a Warning event can explain a failure ("Rolling back ... threshold reached 5",
    "Halt advancement ... pre-rollout check e2e failed ..."), unlike "Canary failed!"."""
    return bool(message) and not message.startswith(_MUTE_WARNINGS)


def failure_reason(
    *,
    rollback: str | None,
    waiting_hook: str | None,
    waiting_reason: str | None,
    last_warning: str | None,
) -> str:
    """The best words for why a rollout failed, most telling first: the reason Puerta gave
    when it answered the rollback hook "roll back" (someone's rollback request, a failed
    E2E run); what a pre-rollout / rollout gate refused it for (Flagger counts each refusal
    until its threshold); the last Warning Flagger sent about it; else only that it happened.
    """
    if rollback:
        return rollback
    if waiting_hook in _COUNTED_HOOKS and waiting_reason:
        return waiting_reason
    if last_warning:
        return last_warning
    return FALLBACK_FAILURE


# ---- event episodes (canaries with no Puerta rollout) ------------------------------------

_STARTS = ("New revision detected",)  # Flagger: "... Scaling up x.ns" / "... Restarting ..."
_SUCCEEDS = ("Promotion completed",)
_FAILS = ("Canary failed",)
_OPENERS = ("Starting canary analysis",)


@dataclass(frozen=True, slots=True)
class EpisodeStep:
    """What one Flagger event does to a canary's episodes (see :func:`episode_step`)."""

    supersede: bool = False  # end the open episode as superseded first
    open: bool = False  # open a new episode with this event
    attach: bool = False  # the event belongs to an episode (the new one, else the open one)
    close_as: str | None = None  # "succeeded" / "failed": the event ends its episode


NO_EPISODE = EpisodeStep()


def episode_key(message: str, checksum: str) -> str:
    """Identifies the event that opened an episode, to tell a repeat of it from a new one."""
    return f"{checksum}|{message}"


def episode_step(open_by: str | None, message: str, phase: str, checksum: str) -> EpisodeStep:
    """Where an event of a canary with no Puerta rollout goes (pure).

    ``open_by``: :func:`episode_key` of the event that opened the canary's open episode, None
    when none is open. "New revision detected!" starts a new episode (a Flagger restart for a
    newer revision supersedes the open one), unless it repeats the very event that opened the
    open one (Flagger emits it again when it could not store the phase; a retried webhook).
    Any other event joins the open episode; "Promotion completed!" / "Canary failed!" end it.
    With none open, an analysis event opens one (Puerta started mid-analysis, or the start
    was missed), but events of an idle canary (initialising, or after the end: a retried
    "Promotion completed!") open none: they stay out of every thread, as before.
    """
    close_as = _closes(message)
    if message.startswith(_STARTS):
        if open_by == episode_key(message, checksum):
            return EpisodeStep(attach=True)
        return EpisodeStep(supersede=open_by is not None, open=True, attach=True)
    if open_by is not None:
        return EpisodeStep(attach=True, close_as=close_as)
    if close_as is None and (phase in PROGRESSING_PHASES or message.startswith(_OPENERS)):
        return EpisodeStep(open=True, attach=True)
    return NO_EPISODE


def _closes(message: str) -> str | None:
    if message.startswith(_SUCCEEDS):
        return "succeeded"
    if message.startswith(_FAILS):
        return "failed"
    return None


def event_revision(message: str, checksum: str) -> str | None:
    """The revision an episode's event tells, if any: "New revision detected!" carries the
    checksum of the revision before it (Flagger has not synced its status yet)."""
    return None if message.startswith(_STARTS) or not checksum else checksum


def episode_label(number: int) -> str:
    """How threads and messages name event episode ``number``."""
    return f"rollout #{number} (from Flagger events)"
