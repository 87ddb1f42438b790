"""The audit trail's hash chain: canonical form, sealing, verification, pruning and export reads.

Why a chain, and why sealed later: ``audit_events`` is written on the hot path of every hook
call, by several replicas at once on PostgreSQL, where ids commit out of order. Hashing in the
insert would need a global lock on that path. Instead the insert stays as it is (``chain_seq``
and ``chain_hash`` NULL) and a background sealer (``service/audit_sealer.py``), one at a time
across replicas, links the committed records in id order:

    chain_seq  = previous chain_seq + 1
    chain_hash = sha256(previous chain_hash + canonical(record)).hexdigest()

The first record follows :data:`GENESIS` (64 zeros). A record committed late simply gets a later
``chain_seq``. ``canonical`` is the JSON of the record's content fields (:data:`CHAIN_FIELDS`:
every column but ``id``, ``chain_seq`` and ``chain_hash``), keys sorted, no whitespace, ASCII,
null values kept, datetimes as ``datetime.isoformat()`` of the UTC instant (for example
``2026-11-26T10:00:00+00:00``). Anyone can recompute it from an export.

The ``audit_anchor`` row (id 1) says where the chain starts, after pruning (the last pruned
record's ``chain_seq`` and ``chain_hash``; 0 and the genesis value before any pruning), and where
it ends (``head_seq``/``head_hash``, the last sealed record). The sealer continues from the head,
never from the table's newest row, so deleting the newest records shows as missing records.

The anchor is only a row, so it must not be trusted on its own word: moving its start forward
would hide deleted records at the start of the chain. So the pruner, in the transaction that
deletes records and moves the anchor, appends a record to the chain itself (kind
:data:`PRUNE_KIND`, action :data:`PRUNE_ACTION`, details ``upto_seq``, ``upto_hash``,
``removed``, ``retention``), and verify requires the newest such record to name the anchor
exactly (no such record: the anchor must be at 0). Moving the start without a matching prune
record, or editing that record, breaks the chain where verify looks. The chain has no secret,
though: whoever can write the database and knows this format can append a prune record of
their own, with a valid hash. It stays in the trail for people to see (a prune without a
retention, or of records younger than it); verify cannot tell it from the pruner's.

The end cannot be vouched for from inside the database: whoever can delete the newest records
can also move ``head_seq``/``head_hash`` back (or rewrite every record after a point, with
recomputed hashes, and the anchor too). What verify can do is compare with a head seen earlier
and kept outside the database (printed by an earlier verify, or the newest record of an export):
``expect_head`` checks that the chain still holds that record with that hash.

What the chain cannot do: protect records not sealed yet (up to one sealer interval), or stand
against someone who rewrites every later record and the anchor too, unless a head or an export
kept elsewhere is compared (each export carries the hashes).

Work functions here are synchronous over the caller's connection, like ``repository.py``; the
async walks (verify, prune, export) call them batch after batch, each batch its own transaction,
so no walk holds a transaction or all records in memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Row, and_, bindparam, delete, func, select, text, update
from sqlalchemy.engine import Connection

from puerta.domain.durations import format_duration
from puerta.store.db import Database
from puerta.store.repository import AuditFilter
from puerta.store.tables import audit_anchor, audit_events

GENESIS = "0" * 64
#: the record's content: what the hash covers. A column added to ``audit_events`` later must be
#: decided on here (tests/test_audit_chain.py checks that every column is): adding it to this
#: list changes the canonical form of every stored record, so it needs a new chain version.
CHAIN_FIELDS = (
    "at",
    "kind",
    "actor",
    "action",
    "namespace",
    "name",
    "environment",
    "rollout_seq",
    "hook",
    "phase",
    "checksum",
    "verdict",
    "http_status",
    "reason",
    "gate",
    "payload",
    "details",
    "duration_ms",
)
#: columns outside the hash: the row's own id (ids may be reused, chain_seq is the order) and the
#: chain itself
UNHASHED_FIELDS = ("id", "chain_seq", "chain_hash")
#: records per transaction (seal, prune, verify and export batches)
BATCH = 1000
#: pg_advisory_xact_lock key held by whoever writes the chain (sealer and pruner)
CHAIN_LOCK_KEY = 0x61756474  # "audt"
ANCHOR_ID = 1

#: problems ``verify`` reports, at the first record whose link fails
#: the record's content (with the previous hash) no longer gives its chain_hash, which the next
#: record confirms: its content was edited (or the record before it was rewritten together with
#: a recomputed hash, which only shows here)
CONTENT_MISMATCH = "content mismatch"
#: its chain_hash was edited: its content still gives the hash the next record links to
HASH_CHANGED = "hash changed"
#: the link fails and the next record cannot tell which part changed (several edits)
HASH_MISMATCH = "hash mismatch"
#: no record with this chain_seq: deleted
MISSING = "missing"
#: the chain starts (the anchor) after records that no prune record in the chain accounts for:
#: deleted, and the anchor moved over them, outside retention
DELETED_OUTSIDE_RETENTION = "deleted outside retention"
#: the expected head (a head seen earlier) is beyond the chain's head: the newest records were
#: deleted and the head moved back
TAIL_CUT = "tail cut"
#: the record at the expected head's chain_seq has another hash than seen earlier: the chain
#: was rewritten up to there (or cut and sealed on again)
REWRITTEN = "rewritten"

#: the record the pruner appends to the chain with every deletion (see the module docstring)
PRUNE_KIND = "audit"
PRUNE_ACTION = "prune"
PRUNE_ACTOR = "puerta"

#: what ``verify`` says about an expected head
#: the chain holds the record at that chain_seq with that hash
HEAD_HELD = "held"
#: it does not (see ``first_broken``)
HEAD_NOT_HELD = "not held"
#: retention deleted it since (it lies before the anchor): not compared
HEAD_PRUNED = "pruned"
#: the chain broke before it: not compared
HEAD_NOT_REACHED = "not reached"


# ---- the canonical form ----------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:  # UTCDateTime never returns one; be strict anyway
            raise ValueError("naive datetime in an audit record")
        return value.astimezone(UTC).isoformat()
    return value


def canonical(record: Mapping[Any, Any]) -> str:
    """The record's content as canonical JSON (see the module docstring)."""
    content = {field: _plain(record[field]) for field in CHAIN_FIELDS}
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def link_hash(previous: str, record: Mapping[Any, Any]) -> str:
    """The chain_hash of ``record`` following a record whose chain_hash is ``previous``."""
    return hashlib.sha256((previous + canonical(record)).encode("ascii")).hexdigest()


# ---- the anchor --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Anchor:
    """Where the chain starts (after pruning) and where the sealer left it."""

    chain_seq: int
    chain_hash: str
    head_seq: int
    head_hash: str
    pruned_at: datetime | None = None
    sealed_at: datetime | None = None


_ANCHOR = select(audit_anchor).where(audit_anchor.c.id == ANCHOR_ID)


def read_anchor(conn: Connection) -> Anchor | None:
    """The anchor row, or None when the sealer never ran (or someone deleted it)."""
    row = conn.execute(_ANCHOR).one_or_none()
    if row is None:
        return None
    return Anchor(
        chain_seq=row.chain_seq,
        chain_hash=row.chain_hash,
        head_seq=row.head_seq,
        head_hash=row.head_hash,
        pruned_at=row.pruned_at,
        sealed_at=row.sealed_at,
    )


def lock_chain(conn: Connection) -> None:
    """One chain writer at a time across replicas (PostgreSQL; SQLite writers are serialised
    already). Taken first in the transaction, so every read after it sees the last writer's
    commit (READ COMMITTED takes a new snapshot per statement)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"SELECT pg_advisory_xact_lock({CHAIN_LOCK_KEY})"))


def _writer_anchor(conn: Connection) -> Anchor:
    """The anchor for a chain writer (holding the lock), created when missing.

    A missing row with sealed records means someone deleted it: the head is rebuilt from the
    newest sealed record so sealing goes on (records keep being protected), and the start falls
    back to genesis, so verify reports the pruned records as missing rather than hiding it.
    """
    anchor = read_anchor(conn)
    if anchor is not None:
        return anchor
    last = conn.execute(
        select(audit_events.c.chain_seq, audit_events.c.chain_hash)
        .where(audit_events.c.chain_seq.is_not(None))
        .order_by(audit_events.c.chain_seq.desc())
        .limit(1)
    ).one_or_none()
    head_seq, head_hash = (last.chain_seq, last.chain_hash) if last is not None else (0, GENESIS)
    anchor = Anchor(chain_seq=0, chain_hash=GENESIS, head_seq=head_seq, head_hash=head_hash)
    conn.execute(
        audit_anchor.insert().values(
            id=ANCHOR_ID,
            chain_seq=anchor.chain_seq,
            chain_hash=anchor.chain_hash,
            head_seq=anchor.head_seq,
            head_hash=anchor.head_hash,
        )
    )
    return anchor


# ---- sealing -----------------------------------------------------------------------------------

_UNSEALED = (
    select(audit_events)
    .where(audit_events.c.chain_seq.is_(None))
    .order_by(audit_events.c.id)
    .limit(bindparam("limit"))
)
_SEAL = (
    update(audit_events)
    .where(audit_events.c.id == bindparam("row_id"))
    .values(chain_seq=bindparam("seq"), chain_hash=bindparam("hash"))
)
_SET_HEAD = (
    update(audit_anchor)
    .where(audit_anchor.c.id == ANCHOR_ID)
    .values(head_seq=bindparam("seq"), head_hash=bindparam("hash"), sealed_at=bindparam("now"))
)


_ANY_UNSEALED = select(audit_events.c.id).where(audit_events.c.chain_seq.is_(None)).limit(1)


def any_unsealed(conn: Connection) -> bool:
    """Cheap check before taking the chain lock (SQLite: before taking the write lock)."""
    return conn.execute(_ANY_UNSEALED).first() is not None


def seal_batch(conn: Connection, now: datetime, limit: int = BATCH) -> int:
    """Link up to ``limit`` unsealed records, oldest id first; returns how many.

    Safe to run again (SQLite may rerun a unit of work): it reads what is unsealed inside its
    own transaction.
    """
    lock_chain(conn)
    rows = conn.execute(_UNSEALED, {"limit": limit}).all()
    if not rows:
        return 0
    anchor = _writer_anchor(conn)
    seq, chain_hash = anchor.head_seq, anchor.head_hash
    links = []
    for row in rows:
        seq += 1
        chain_hash = link_hash(chain_hash, row._mapping)
        links.append({"row_id": row.id, "seq": seq, "hash": chain_hash})
    conn.execute(_SEAL, links)
    conn.execute(_SET_HEAD, {"seq": seq, "hash": chain_hash, "now": now})
    return len(rows)


# ---- pruning -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pruned:
    """One pruning batch: records deleted, and why it stopped short of the cutoff (if so)."""

    deleted: int
    stopped: str | None = None  # a broken link in what would have been pruned
    more: bool = False  # a full batch was pruned: there may be more


def prune_batch(
    conn: Connection, retention: timedelta, now: datetime, limit: int = BATCH
) -> Pruned:
    """Delete the sealed records at the start of the chain written more than ``retention``
    before ``now`` (at most ``limit``), move the anchor to the last one deleted, and append a
    prune record saying so, all in this one transaction.

    Only a prefix that verifies is deleted: a broken link stops pruning there, so the evidence
    stays (and verify keeps reporting it) until someone has looked.
    """
    cutoff = now - retention
    lock_chain(conn)
    anchor = read_anchor(conn)
    if anchor is None:
        return Pruned(0)
    a = audit_events
    rows = conn.execute(
        select(a)
        .where(a.c.chain_seq > anchor.chain_seq, a.c.chain_seq <= anchor.head_seq)
        .order_by(a.c.chain_seq)
        .limit(limit)
    ).all()
    seq, chain_hash = anchor.chain_seq, anchor.chain_hash
    stopped: str | None = None
    for row in rows:
        if row.at >= cutoff:
            break
        if row.chain_seq != seq + 1:
            stopped = f"chain_seq {seq + 1}: {MISSING}"
            break
        if link_hash(chain_hash, row._mapping) != row.chain_hash:
            stopped = f"chain_seq {row.chain_seq} (id {row.id}): {HASH_MISMATCH}"
            break
        seq, chain_hash = row.chain_seq, row.chain_hash
    if seq == anchor.chain_seq:
        return Pruned(0, stopped)
    deleted = conn.execute(
        delete(a).where(a.c.chain_seq > anchor.chain_seq, a.c.chain_seq <= seq)
    ).rowcount
    conn.execute(
        update(audit_anchor)
        .where(audit_anchor.c.id == ANCHOR_ID)
        .values(chain_seq=seq, chain_hash=chain_hash, pruned_at=now)
    )
    details = {
        "upto_seq": seq,
        "upto_hash": chain_hash,
        "removed": deleted,
        "retention": format_duration(retention),
    }
    reason = (
        f"retention {details['retention']}: deleted chain_seq {anchor.chain_seq + 1}-{seq}"
        f" ({deleted} records)"
    )
    _append_sealed(conn, anchor, now, details=details, reason=reason)
    full = stopped is None and len(rows) == limit and seq == rows[-1].chain_seq
    return Pruned(deleted, stopped, more=full)


def _append_sealed(
    conn: Connection, anchor: Anchor, now: datetime, *, details: dict[str, Any], reason: str
) -> None:
    """Insert the prune record and seal it at once after the head (the caller holds the chain
    lock): sealed in the pruning transaction, the anchor never moves without the record that
    vouches for it. Records committed before it but not sealed yet simply follow it.

    The hash is computed from the row as read back, as ``seal_batch`` does, so it covers what
    the database stores, not what Python meant to store.
    """
    values: dict[str, Any] = {field: None for field in CHAIN_FIELDS}
    values.update(
        at=now,
        kind=PRUNE_KIND,
        actor=PRUNE_ACTOR,
        action=PRUNE_ACTION,
        reason=reason,
        details=details,
    )
    inserted = conn.execute(audit_events.insert().values(values)).inserted_primary_key
    assert inserted is not None  # a single-row insert always has one
    row_id = inserted[0]
    row = conn.execute(select(audit_events).where(audit_events.c.id == row_id)).one()
    seq, chain_hash = anchor.head_seq + 1, link_hash(anchor.head_hash, row._mapping)
    conn.execute(_SEAL, {"row_id": row_id, "seq": seq, "hash": chain_hash})
    conn.execute(_SET_HEAD, {"seq": seq, "hash": chain_hash, "now": now})


# ---- verification ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Break:
    """The first broken link: the record's chain_seq, its id (None when it is missing)."""

    chain_seq: int
    id: int | None
    problem: str


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    unsealed: int
    first_broken: Break | None
    anchor_seq: int = 0  # where the walk started (the last pruned record)
    #: where it ended: the sealed head (with no anchor row, the last record walked), to print
    #: and keep outside the database for a later ``expect_head``
    head_seq: int = 0
    head_hash: str = GENESIS
    expected_head: str | None = None  # HEAD_HELD ... HEAD_NOT_REACHED; None: none given


@dataclass(frozen=True)
class _Suspect:
    chain_seq: int
    id: int
    stored: str
    computed: str


class ChainWalker:
    """Checks records fed in chain_seq order, one link at a time, keeping only the last link.

    A record whose link fails is held until the next record (or the head) tells which part was
    edited: if the next record links to the stored hash, the content was changed; if it links
    to the hash recomputed from the content, the stored hash was changed.
    """

    def __init__(self, chain_seq: int, chain_hash: str, *, watch: int | None = None) -> None:
        self.prev_seq = chain_seq
        self.prev_hash = chain_hash
        self.prev_id: int | None = None
        self.position = chain_seq  # the last chain_seq fed
        self.checked = 0
        self.broken: Break | None = None
        self._suspect: _Suspect | None = None
        #: (upto_seq, upto_hash) of the newest prune record walked; None: none yet
        self.last_prune: tuple[int | None, str | None] | None = None
        #: the chain_seq of an expected head, and (id, chain_hash) of its record once walked
        self.watch = watch
        self.watched: tuple[int, str] | None = None

    def rebase(self, anchor: Anchor) -> None:
        """Start again after ``anchor``: the records before it were pruned while walking (the
        pruner verified them before deleting them). The prune record that vouches for the new
        anchor lies after it, so it is walked again from there."""
        self.prev_seq = self.position = anchor.chain_seq
        self.prev_hash = anchor.chain_hash
        self.prev_id = None
        self.broken = None
        self._suspect = None
        self.last_prune = None

    def feed(self, rows: Sequence[Mapping[str, Any]]) -> None:
        for row in rows:
            if self.broken is not None:
                return
            self._one(row)

    def _one(self, row: Mapping[str, Any]) -> None:
        seq: int = row["chain_seq"]
        stored: str = row["chain_hash"]
        self.position = seq
        suspect = self._suspect
        if suspect is not None:
            if seq != suspect.chain_seq + 1:
                self.broken = Break(suspect.chain_seq, suspect.id, HASH_MISMATCH)
                return
            self.checked += 1  # the witness: its link is computed too
            if link_hash(suspect.stored, row) == stored:
                self.broken = Break(suspect.chain_seq, suspect.id, CONTENT_MISMATCH)
            elif link_hash(suspect.computed, row) == stored:
                self.broken = Break(suspect.chain_seq, suspect.id, HASH_CHANGED)
            else:
                self.broken = Break(suspect.chain_seq, suspect.id, HASH_MISMATCH)
            return
        if seq != self.prev_seq + 1:
            self.broken = Break(self.prev_seq + 1, None, MISSING)
            return
        self.checked += 1
        computed = link_hash(self.prev_hash, row)
        if computed != stored:
            self._suspect = _Suspect(seq, row["id"], stored, computed)
            return
        self.prev_seq, self.prev_hash, self.prev_id = seq, stored, row["id"]
        if row["kind"] == PRUNE_KIND and row["action"] == PRUNE_ACTION:
            self.last_prune = _prune_upto(row["details"])
        if seq == self.watch:
            self.watched = (row["id"], stored)

    def finish(self, head_seq: int | None, head_hash: str | None) -> None:
        """The end of the walk: a held record is judged against the head; records short of
        the head are missing."""
        if self.broken is not None:
            return
        suspect = self._suspect
        if suspect is not None:
            if suspect.chain_seq == head_seq and head_hash == suspect.stored:
                problem = CONTENT_MISMATCH
            elif suspect.chain_seq == head_seq and head_hash == suspect.computed:
                problem = HASH_CHANGED
            else:
                problem = HASH_MISMATCH
            self.broken = Break(suspect.chain_seq, suspect.id, problem)
            return
        if head_seq is not None and self.prev_seq < head_seq:
            self.broken = Break(self.prev_seq + 1, None, MISSING)
            return
        if head_seq is not None and self.prev_seq == head_seq and self.prev_hash != head_hash:
            # the newest record links fine but is not the one the sealer sealed
            self.broken = Break(head_seq, self.prev_id, HASH_MISMATCH)


def _prune_upto(details: Any) -> tuple[int | None, str | None]:
    """What a prune record says the anchor is; (None, None) when it cannot say (its details
    are not what the pruner writes), which no anchor matches."""
    if not isinstance(details, dict):
        return None, None
    seq, chain_hash = details.get("upto_seq"), details.get("upto_hash")
    return (
        seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
        chain_hash if isinstance(chain_hash, str) else None,
    )


def check_start(walker: ChainWalker, start: Anchor) -> Break | None:
    """After a walk without a break: does the newest prune record walked name the anchor the
    walk started from? Without any prune record, the chain must start at genesis.

    The break is placed at the first record the anchor skips that no prune record accounts
    for (the record is gone, so no id).
    """
    upto_seq, upto_hash = walker.last_prune or (0, GENESIS)
    if upto_seq == start.chain_seq and upto_hash == start.chain_hash:
        return None
    accounted = start.chain_seq if upto_seq is None else min(upto_seq, start.chain_seq)
    return Break(accounted + 1, None, DELETED_OUTSIDE_RETENTION)


def check_expected_head(
    walker: ChainWalker, start: Anchor, head_seq: int, expect: tuple[int, str]
) -> tuple[str, Break | None]:
    """Compare a head seen earlier (``expect``: chain_seq, chain_hash) with the chain just
    walked: what to report about it, and the break it shows (None if it shows none).

    Records before the anchor were pruned (verify vouches for that with the prune record), so
    an expected head there cannot be compared any more: ``pruned``, not a break.
    """
    seq, expected_hash = expect
    if walker.watched is not None:
        record_id, stored = walker.watched
        if stored == expected_hash:
            return HEAD_HELD, None
        return HEAD_NOT_HELD, Break(seq, record_id, REWRITTEN)
    if walker.broken is not None:
        return HEAD_NOT_REACHED, None
    if seq == start.chain_seq:
        if start.chain_hash == expected_hash:
            return HEAD_HELD, None
        return HEAD_NOT_HELD, Break(seq, None, REWRITTEN)
    if seq < start.chain_seq:
        return HEAD_PRUNED, None
    if seq > head_seq:
        return HEAD_NOT_HELD, Break(head_seq + 1, None, TAIL_CUT)
    return HEAD_NOT_REACHED, None  # not walked although in range: cannot happen unbroken


def chain_rows(
    conn: Connection, *, after: int, upto: int | None, limit: int = BATCH
) -> list[dict[str, Any]]:
    """Sealed records with ``after < chain_seq <= upto``, in chain order."""
    a = audit_events
    query = select(a).where(a.c.chain_seq > after)
    if upto is not None:
        query = query.where(a.c.chain_seq <= upto)
    rows = conn.execute(query.order_by(a.c.chain_seq).limit(limit)).all()
    return [dict(row._mapping) for row in rows]


def count_unsealed(conn: Connection) -> int:
    query = select(func.count()).select_from(audit_events).where(audit_events.c.chain_seq.is_(None))
    return int(conn.execute(query).scalar_one())


async def verify_chain(
    db: Database, *, batch: int = BATCH, expect_head: tuple[int, str] | None = None
) -> Verification:
    """Walk the chain from the anchor to the head, batch by batch, recomputing every link;
    then check that the newest prune record vouches for the anchor and, with ``expect_head``
    (a chain_seq and chain_hash seen earlier), that the chain still holds that record.

    Records sealed after the walk began are beyond the head it read, and left for the next
    verification. Hashing runs in a worker thread: a long chain must not stall hook calls.
    """
    anchor = await db.read(read_anchor)
    start = anchor or Anchor(0, GENESIS, 0, GENESIS)
    head_seq = anchor.head_seq if anchor is not None else None
    head_hash = anchor.head_hash if anchor is not None else None
    watch = expect_head[0] if expect_head is not None else None
    walker = ChainWalker(start.chain_seq, start.chain_hash, watch=watch)
    while True:
        rows = await db.read(partial(chain_rows, after=walker.position, upto=head_seq, limit=batch))
        if rows:
            await asyncio.to_thread(walker.feed, rows)
        if walker.broken is None and len(rows) == batch:
            continue
        walker.finish(head_seq, head_hash)
        if walker.broken is not None and walker.broken.problem == MISSING:
            # the pruner may have deleted records while we walked: go on after its anchor
            moved = await db.read(read_anchor)
            if moved is not None and moved.chain_seq > walker.prev_seq:
                walker.rebase(moved)
                start = moved
                # on to the pruner's head: it holds the prune record for the new anchor
                head_seq, head_hash = moved.head_seq, moved.head_hash
                continue
        break
    end_seq = head_seq if head_seq is not None else walker.prev_seq
    end_hash = head_hash if head_hash is not None else walker.prev_hash
    broken = walker.broken
    if broken is None:
        broken = check_start(walker, start)
    expected: str | None = None
    if expect_head is not None:
        expected, tail = check_expected_head(walker, start, end_seq, expect_head)
        broken = broken or tail
    unsealed = await db.read(count_unsealed)
    return Verification(
        ok=broken is None,
        checked=walker.checked,
        unsealed=unsealed,
        first_broken=broken,
        anchor_seq=start.chain_seq,
        head_seq=end_seq,
        head_hash=end_hash,
        expected_head=expected,
    )


# ---- export ------------------------------------------------------------------------------------

#: the columns of an export, in this order (the CSV header)
EXPORT_FIELDS = tuple(column.name for column in audit_events.c)
#: export columns holding JSON values (a JSON text cell in CSV)
JSON_FIELDS = ("payload", "details")


def export_rows(
    conn: Connection, *, where: AuditFilter, after_id: int, limit: int = BATCH
) -> Sequence[Row[Any]]:
    """Matching records with ``id > after_id``, oldest first."""
    a = audit_events
    clauses = [*where.clauses(), a.c.id > after_id]
    return conn.execute(select(a).where(and_(*clauses)).order_by(a.c.id).limit(limit)).all()


def export_record(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A record as exported: every column, datetimes as ISO UTC (``Z``, as the API writes them)."""
    record: dict[str, Any] = {}
    for field in EXPORT_FIELDS:
        value = row[field]
        if isinstance(value, datetime):
            value = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
        record[field] = value
    return record


async def export_records(
    db: Database, where: AuditFilter, *, batch: int = BATCH
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every matching record, oldest first, a batch (one read transaction) at a time."""
    after_id = 0
    while True:
        rows = await db.read(partial(export_rows, where=where, after_id=after_id, limit=batch))
        if not rows:
            return
        yield [export_record(row._mapping) for row in rows]
        if len(rows) < batch:
            return
        after_id = rows[-1].id
