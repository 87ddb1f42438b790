"""Where is a commit? Is it in production yet, and if not, where is it stuck and why? (pure)

Developers think in commits; Flagger and Puerta think in rollouts of canaries. This module turns
what Puerta recorded about one commit of one repository into an answer per environment, in the
policy's order, and a one-line summary:

* **live**: a canary in the environment runs the commit: its latest succeeded rollout ships it
  (a later failed or superseded rollout does not change that: Flagger kept the primary);
* **live-through-newer**: the canary's latest succeeded rollout ships a *newer* commit of the
  same repository that includes this one (the caller asks GitHub, see :func:`needed_checks`);
* otherwise the environment's latest rollout that ships the commit says why it is not there:
  **waiting** (pending or confirmed: a gate holds it), **progressing** (Flagger is rolling it
  out), **failed** (with the failed E2E run, the manual rollback or the gate's last word),
  **superseded** (a newer revision replaced it before it finished) or **replaced** (it was
  live, and a later rollout of a commit that does not include it, or not known to, replaced
  it);
* **promotion**: no rollout in the environment has shipped it (or its latest one ended before
  the commit was sent on again), but a rollout that shipped it succeeded in an environment
  with a ``promote`` section naming this one: the promotion says where it is (pending, held
  by a freeze or a halt, done with its release, or failed and why);
* **not-deployed**: no rollout in the environment has shipped it.

The caller reads the rows (``service/whereabouts.py``); nothing here touches the database, the
clock or GitHub, so every state is tested without them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from enum import StrEnum

#: the name given to rollouts of canaries no environment matched (``unmatched: pass``)
UNMATCHED = "(unmatched)"
#: the shortest SHA prefix taken as naming one commit (git's default abbreviation)
MIN_SHA = 7


class State(StrEnum):
    LIVE = "live"
    LIVE_THROUGH_NEWER = "live-through-newer"
    WAITING = "waiting"
    PROGRESSING = "progressing"
    FAILED = "failed"
    SUPERSEDED = "superseded"
    REPLACED = "replaced"
    PROMOTION = "promotion"
    NOT_DEPLOYED = "not-deployed"


LIVE_STATES = frozenset({State.LIVE, State.LIVE_THROUGH_NEWER})
_IN_FLIGHT = {
    "pending": State.WAITING,
    "confirmed": State.WAITING,
    "progressing": State.PROGRESSING,
}
#: the states of an environment's latest rollout of the commit that a later promotion of the
#: commit into it is news after (an in-flight or live rollout tells more than the promotion)
_OVER = frozenset({State.FAILED, State.SUPERSEDED, State.REPLACED})


@dataclass(frozen=True, slots=True)
class Environment:
    """An environment and the zone its people read times in (the policy's ``timezone``)."""

    name: str
    zone: tzinfo = UTC


@dataclass(frozen=True, slots=True)
class E2EFailure:
    """A failed E2E run of a rollout: the most concrete reason a rollout failed."""

    gate: str
    reason: str | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class Rollback:
    """Someone asked Puerta to roll the rollout back (``puerta rollback``)."""

    actor: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Promotion:
    """The promotion of a rollout that shipped the commit: Puerta sending the commit on from
    ``from_environment`` (where the rollout succeeded) to ``to_environment`` (its ``promote``
    section), e.g. by a GitHub release that starts the production pipeline."""

    to_environment: str
    status: str  # pending | held | done | failed
    created_at: datetime
    from_environment: str | None = None
    held_reason: str | None = None  # held: the freeze or halt
    tag: str | None = None  # done, github_release: the release's tag ...
    url: str | None = None  # ... and its page
    last_error: str | None = None  # failed: why; pending: why the last attempt did not go
    done_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SeenRollout:
    """One rollout of one canary and the commit it ships (``repository``/``sha``: None when
    Puerta could not tell what the rollout ships)."""

    canary: str  # namespace/name
    canary_id: int
    seq: int
    environment: str | None
    status: str  # pending | confirmed | progressing | succeeded | failed | superseded
    started_at: datetime
    repository: str | None = None
    sha: str | None = None
    image: str | None = None
    progressing_at: datetime | None = None
    finished_at: datetime | None = None
    waiting_reason: str | None = None
    waiting_since: datetime | None = None
    retry_at: datetime | None = None
    e2e_failure: E2EFailure | None = None
    rollback: Rollback | None = None
    promotion: Promotion | None = None  # succeeded in an environment that promotes


@dataclass(frozen=True, slots=True)
class Containment:
    """Whether a newer live commit includes the asked one; ``contains`` None: unknown, and
    ``unknown_because`` says why (GitHub did not answer, no GitHub access, ...)."""

    contains: bool | None
    unknown_because: str | None = None


#: the answer for a check the caller did not make (it has no way to compare commits)
NOT_CHECKED = Containment(None, "Puerta has no GitHub access to compare commits")


@dataclass(frozen=True, slots=True)
class Place:
    """Where the commit is in one environment.

    ``since``: when the current state began (live: when the rollout finished; waiting and
    progressing: when that started); ``at``: failed, superseded, replaced: when that happened;
    waiting, progressing: when the answer may change (a window opens), if known; promotion:
    ``since`` when it was recorded (done: when it was carried out). ``canary`` and
    ``rollout_seq`` name the rollout the answer is about (promotion: the promoted one, in the
    environment before).
    """

    environment: str
    state: State
    text: str  # the whole sentence, e.g. "in staging since 2026-11-26 10:02 UTC"
    reason: str | None = None  # why it is not (yet) there
    since: datetime | None = None
    at: datetime | None = None
    link: str | None = None  # the failed E2E run
    canary: str | None = None
    rollout_seq: int | None = None
    image: str | None = None
    through: str | None = None  # the newer commit that brought it
    note: str | None = None  # a comparison that could not be made
    promotion: Promotion | None = None  # state promotion: the promotion into this environment


@dataclass(frozen=True, slots=True)
class Whereabouts:
    """One commit of one repository, everywhere."""

    repository: str | None
    sha: str
    places: tuple[Place, ...]
    summary: str
    contains_checked: bool  # False: some newer live commit was not compared with this one


def same_commit(a: str, b: str) -> bool:
    """Whether two SHAs (either may be abbreviated, as image tags carry them) name the same
    commit: equal, or the shorter one (at least :data:`MIN_SHA` long) starts the longer."""
    a, b = a.strip().lower(), b.strip().lower()
    if a == b:
        return bool(a)
    shorter, longer = sorted((a, b), key=len)
    return len(shorter) >= MIN_SHA and longer.startswith(shorter)


def short(sha: str) -> str:
    return sha[:MIN_SHA]


def _same_repository(a: str | None, b: str | None) -> bool:
    # GitHub repository names are case-insensitive
    return a is not None and b is not None and a.casefold() == b.casefold()


def _ships(rollout: SeenRollout, repository: str | None, sha: str) -> bool:
    return (
        rollout.sha is not None
        and (repository is None or _same_repository(rollout.repository, repository))
        and same_commit(rollout.sha, sha)
    )


def _candidates(live: Iterable[SeenRollout], repository: str | None, sha: str) -> list[SeenRollout]:
    """Live rollouts of another commit of the same repository: they may include ``sha``."""
    return [
        r
        for r in live
        if r.sha is not None
        and _same_repository(r.repository, repository)
        and not same_commit(r.sha, sha)
    ]


def _environment_of(rollout: SeenRollout) -> str:
    return rollout.environment if rollout.environment is not None else UNMATCHED


def needed_checks(repository: str | None, sha: str, live: Sequence[SeenRollout]) -> list[str]:
    """The newer commits to ask ``CommitSource.contains(repository, sha, newer)`` about, each
    once, in a stable order: those live in an environment where ``sha`` is not live itself
    (there the answer could not change anything)."""
    direct = {_environment_of(r) for r in live if _ships(r, repository, sha)}
    wanted: list[str] = []
    for rollout in _candidates(live, repository, sha):
        newer = rollout.sha or ""  # candidates have one
        if _environment_of(rollout) not in direct and newer not in wanted:
            wanted.append(newer)
    return wanted


def locate(
    *,
    repository: str | None,
    sha: str,
    environments: Sequence[Environment],
    shipments: Sequence[SeenRollout],
    live: Sequence[SeenRollout],
    answers: Mapping[str, Containment],
    now: datetime,
    can_check: bool = True,
) -> Whereabouts:
    """Where ``sha`` of ``repository`` is.

    ``shipments``: the rollouts that ship the commit; ``live``: each canary's latest succeeded
    rollout (of this repository, and of every canary in ``shipments``); ``answers``: what the
    caller learnt for each of :func:`needed_checks` (a missing one counts as
    :data:`NOT_CHECKED`); ``can_check``: False when the caller has no way to compare commits.
    A shipment's ``promotion`` answers for its target environment while no rollout there
    tells more (see :func:`_promotion_is_news`). Environments that are not in
    ``environments`` (renamed or removed from the policy, or none matched) follow the
    policy's, when a rollout or promotion names them.
    """
    order = [env.name for env in environments]
    zones = {env.name: env.zone for env in environments}
    promoted = [r for r in shipments if r.promotion is not None]
    named = {_environment_of(r) for r in (*shipments, *live)}
    named |= {r.promotion.to_environment for r in promoted if r.promotion is not None}
    extra = sorted(named - set(order), key=lambda name: (name == UNMATCHED, name))
    places: list[Place] = []
    checked = can_check
    for name in (*order, *extra):
        place, known = _place(
            name,
            zones.get(name, UTC),
            repository,
            sha,
            [r for r in shipments if _environment_of(r) == name],
            [r for r in live if _environment_of(r) == name],
            answers,
            now,
            [r for r in promoted if r.promotion is not None and r.promotion.to_environment == name],
        )
        places.append(place)
        checked = checked and known
    return Whereabouts(
        repository=repository,
        sha=sha,
        places=tuple(places),
        summary=summarise(places),
        contains_checked=checked,
    )


def _place(
    env: str,
    zone: tzinfo,
    repository: str | None,
    sha: str,
    shipments: Sequence[SeenRollout],
    live: Sequence[SeenRollout],
    answers: Mapping[str, Containment],
    now: datetime,
    promoted: Sequence[SeenRollout] = (),
) -> tuple[Place, bool]:
    """The answer for one environment, and whether every comparison it needed was made.
    ``promoted``: the rollouts (in other environments) whose promotion sends the commit here."""
    direct = [r for r in live if _ships(r, repository, sha)]
    if direct:
        first = min(direct, key=_went_live)
        since = first.finished_at
        text = f"in {env} since {_at(since, zone)}" if since else f"in {env}"
        return _about(first, env, State.LIVE, text, since=since), True

    candidates = _candidates(live, repository, sha)
    verdicts = [(r, answers.get(r.sha or "", NOT_CHECKED)) for r in candidates]
    through = [r for r, answer in verdicts if answer.contains is True]
    if through:
        first = min(through, key=_went_live)
        newer = first.sha or ""  # candidates have one
        since = first.finished_at
        when = f" since {_at(since, zone)}" if since else ""
        text = f"in {env}{when} (through newer commit {short(newer)})"
        return (
            _about(first, env, State.LIVE_THROUGH_NEWER, text, since=since, through=newer),
            True,
        )

    unknown = [(r, answer) for r, answer in verdicts if answer.contains is None]
    note = _unknown_note(unknown)
    latest = max(shipments, key=lambda r: (r.started_at, r.seq), default=None)
    replacement = None
    if latest is None:
        place = Place(env, State.NOT_DEPLOYED, f"not deployed to {env}")
    else:
        replacement = next((r for r in live if r.canary_id == latest.canary_id), None)
        place = _not_live(latest, env, zone, now, replacement, answers)
    sent = max(promoted, key=_promoted_when, default=None)
    if sent is not None and _promotion_is_news(place, latest, sent):
        place = _promotion_place(sent, env, zone)
    if note is not None:
        shown = note
        if (
            place.state is State.REPLACED
            and replacement is not None
            and {r.sha for r, _ in unknown} == {replacement.sha}
        ):
            # the text already says "replaced by commit X, which may include it": only why
            shown = unknown[0][1].unknown_because or "not checked"
        place = _with_note(place, note, shown)
    return place, not unknown


def _went_live(rollout: SeenRollout) -> tuple[datetime, int]:
    return (rollout.finished_at or rollout.started_at, rollout.seq)


def _promoted_when(rollout: SeenRollout) -> tuple[datetime, int]:
    """Newest promotion last: a commit promoted twice (rolled out again) is told by the
    latest, which is the one the target environment's pipeline acts on."""
    assert rollout.promotion is not None  # only promoted rollouts are compared
    return (rollout.promotion.created_at, rollout.seq)


def _promotion_is_news(place: Place, latest: SeenRollout | None, sent: SeenRollout) -> bool:
    """Whether the promotion of ``sent`` says more about the environment than ``place``: the
    environment has no rollout of the commit yet, or its latest one ended (failed, superseded,
    replaced) and started before the commit was sent on again. A rollout under way or live
    there is always the better answer: the promotion has done its part."""
    promotion = sent.promotion
    if promotion is None:
        return False
    if place.state is State.NOT_DEPLOYED:
        return True
    return place.state in _OVER and latest is not None and latest.started_at < promotion.created_at


def _promotion_place(sent: SeenRollout, env: str, zone: tzinfo) -> Place:
    """The environment as the promotion into it tells: pending, held (why), done (when, and
    the release), or failed (why)."""
    promotion = sent.promotion
    assert promotion is not None  # only called for a promoted rollout
    reason: str | None
    since: datetime | None = promotion.created_at
    link: str | None = None
    if promotion.status == "held":
        reason = promotion.held_reason or "held"
        text = f"promotion to {env} held: {reason}"
    elif promotion.status == "done":
        reason = None
        since = promotion.done_at or promotion.created_at
        link = promotion.url
        text = _promoted(promotion, env, zone)
    elif promotion.status == "failed":
        reason = promotion.last_error or "no reason recorded"
        text = f"promotion to {env} failed: {reason}"
    else:  # pending: not tried yet, or retried after a transient failure
        reason = promotion.last_error
        retry = f" (retrying after: {reason})" if reason else ""
        text = f"promotion to {env} pending{retry}"
    place = _about(sent, env, State.PROMOTION, text, reason=reason, since=since, link=link)
    return replace(place, promotion=promotion)


def _promoted(promotion: Promotion, env: str, zone: tzinfo) -> str:
    """A done promotion: when, and what it made (the release and its page), so the reader can
    follow the target environment's pipeline from there."""
    when = f" at {_at(promotion.done_at, zone)}" if promotion.done_at else ""
    made = [f"release {promotion.tag}"] if promotion.tag else []
    made += [promotion.url] if promotion.url else []
    what = f" ({', '.join(made)})" if made else ""
    return f"promoted to {env}{when}{what}; not live there yet"


def _not_live(
    rollout: SeenRollout,
    env: str,
    zone: tzinfo,
    now: datetime,
    replacement: SeenRollout | None,
    answers: Mapping[str, Containment],
) -> Place:
    """The environment's latest rollout of the commit, which is not (or no longer) live."""
    state = _IN_FLIGHT.get(rollout.status)
    if state is not None:
        reason = rollout.waiting_reason or _default_wait(rollout, zone)
        # a past retry_at is stale (Flagger has not asked since): it would only confuse
        retry = rollout.retry_at if rollout.retry_at and rollout.retry_at > now else None
        if retry is not None and _day_at(retry, zone, weekday=False) not in reason:
            reason += f"; changes at {_day_at(retry, zone)}"
        since = rollout.waiting_since or (
            rollout.progressing_at if state is State.PROGRESSING else None
        )
        return _about(
            rollout,
            env,
            state,
            f"not in {env} yet: {reason}",
            reason=reason,
            since=since or rollout.started_at,
            at=retry,
        )
    finished = rollout.finished_at
    if rollout.status == "failed":
        reason, link = _failure(rollout)
        when = f" at {_at(finished, zone)}" if finished else ""
        text = f"failed on {env}{when} because {reason}"
        if link is not None and link not in reason:
            text += f": {link}"
        return _about(rollout, env, State.FAILED, text, reason=reason, at=finished, link=link)
    if rollout.status == "superseded":
        reason = "replaced by a newer revision before it finished"
        return _about(
            rollout, env, State.SUPERSEDED, f"not in {env}: {reason}", reason=reason, at=finished
        )
    # succeeded, but the canary's latest succeeded rollout ships something else now
    reason = _replaced_by(replacement, answers)
    at = replacement.finished_at if replacement is not None else None
    from_ = f" from {_at(finished, zone)}" if finished else ""
    until = f" until {_at(at, zone)}" if at else ""
    return _about(
        rollout,
        env,
        State.REPLACED,
        f"no longer in {env}: live{from_}{until}, {reason}",
        reason=reason,
        since=finished,
        at=at,
    )


def _default_wait(rollout: SeenRollout, zone: tzinfo) -> str:
    if rollout.status == "pending":
        return "waiting to start"
    if rollout.status == "confirmed":
        return "cleared to start, waiting for Flagger to begin"
    return f"rolling out since {_at(rollout.progressing_at or rollout.started_at, zone)}"


def _failure(rollout: SeenRollout) -> tuple[str, str | None]:
    """Why a rollout failed, most concrete first: a failed E2E run (with its link), a manual
    rollback, the last thing a gate said, else Flagger's own analysis."""
    run = rollout.e2e_failure
    if run is not None:
        detail = (run.reason or "").strip()
        if run.url and detail.endswith(run.url):
            detail = detail[: -len(run.url)].rstrip(" :-")
        reason = f"E2E {run.gate} failed" + (f": {detail}" if detail else "")
        return reason, run.url or None
    if rollout.rollback is not None:
        back = rollout.rollback
        return f"{back.actor} rolled it back" + (f": {back.reason}" if back.reason else ""), None
    if rollout.waiting_reason:
        return rollout.waiting_reason, None
    return "Flagger rolled it back", None


def _replaced_by(replacement: SeenRollout | None, answers: Mapping[str, Containment]) -> str:
    if replacement is None:
        return "replaced by a later rollout"
    if replacement.sha is None:
        return f"replaced by rollout #{replacement.seq}"
    answer = answers.get(replacement.sha, NOT_CHECKED)
    newer = f"replaced by commit {short(replacement.sha)}"
    if answer.contains is False:
        return f"{newer}, which does not include it"
    if answer.contains is None:
        return f"{newer}, which may include it"
    return newer


def _unknown_note(unknown: Sequence[tuple[SeenRollout, Containment]]) -> str | None:
    if not unknown:
        return None
    rollout, answer = unknown[0]
    shas = {r.sha for r, _ in unknown}
    more = f" (and {len(shas) - 1} more live commits)" if len(shas) > 1 else ""
    why = answer.unknown_because or "not checked"
    newer = short(rollout.sha or "")  # candidates have one
    return f"unknown whether {newer} live on {rollout.canary}{more} includes it: {why}"


def _with_note(place: Place, note: str, shown: str) -> Place:
    return replace(place, text=f"{place.text} ({shown})", note=note)


def _about(
    rollout: SeenRollout,
    env: str,
    state: State,
    text: str,
    *,
    reason: str | None = None,
    since: datetime | None = None,
    at: datetime | None = None,
    link: str | None = None,
    through: str | None = None,
) -> Place:
    return Place(
        environment=env,
        state=state,
        text=text,
        reason=reason,
        since=since,
        at=at,
        link=link,
        canary=rollout.canary,
        rollout_seq=rollout.seq,
        image=rollout.image,
        through=through,
    )


def summarise(places: Sequence[Place]) -> str:
    """One line: the furthest environment (in policy order) the commit is live in, then what
    happens in each one after it; nothing live: every environment. Environments it never
    reached are named together ("not deployed to qa or production")."""
    last_live = max((i for i, p in enumerate(places) if p.state in LIVE_STATES), default=0)
    parts: list[str] = []
    absent: list[str] = []
    for place in places[last_live:]:
        if place.state is State.NOT_DEPLOYED and place.note is None:
            absent.append(place.environment)
            continue
        if absent:
            parts.append(f"not deployed to {_either(absent)}")
            absent = []
        parts.append(place.text)
    if absent:
        parts.append(f"not deployed to {_either(absent)}")
    return "; ".join(parts) or "not deployed anywhere"


def _either(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _at(moment: datetime, zone: tzinfo) -> str:
    """``2026-11-26 10:02 UTC``: to the minute, in the environment's zone."""
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M %Z}"


def _day_at(moment: datetime, zone: tzinfo, *, weekday: bool = True) -> str:
    """``Sun 2026-11-29 09:00 IST``: a moment to come reads better with its weekday (without
    it: how a window gate's reason already names the moment, to not say it twice)."""
    local = moment.astimezone(zone)
    return f"{local:%a %Y-%m-%d %H:%M %Z}" if weekday else f"{local:%Y-%m-%d %H:%M}"
