"""The audit trail's hash chain: sealing, verification, retention and export, through the HTTP
API and the CLI, on SQLite and PostgreSQL.

The sealer is driven by hand (``seal_once`` through the app's event loop) rather than waited
for. The app's own sealer runs in the background too, as it would in production: every
assertion holds whichever sealer got to a record first. Tampering goes straight to the
database, as an attacker with database access would.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import ValidationError
from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection
from typer.testing import CliRunner

from conftest import ADMIN, APPROVER, VIEWER, Puerta
from puerta.cli.main import app as cli
from puerta.policy import parse_policy
from puerta.policy.audit import AuditConfig
from puerta.service.audit_sealer import AuditSealer
from puerta.store import audit_chain, repository
from puerta.store.db import Database
from puerta.store.tables import audit_anchor, audit_events
from test_manual_gates import live  # noqa: F401  (fixture)

T = TypeVar("T")
PROD = {"namespace": "prod", "name": "podinfo"}


class _AnyHash:
    """Equal to any chain hash (64 hex digits): for records whose hash is not the point."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and len(other) == 64 and set(other) <= set("0123456789abcdef")

    def __repr__(self) -> str:
        return "ANY_HASH"


ANY_HASH: Any = _AnyHash()


# ---- helpers -------------------------------------------------------------------------------


def db_of(puerta: Puerta) -> Database:
    db: Database = puerta.http.app.state.db  # type: ignore[attr-defined]
    return db


def on_db(puerta: Puerta, work: Callable[[Connection], T]) -> T:
    """Run ``work`` in one write transaction of the app's database (no API involved)."""
    result: T = puerta.http.portal.call(db_of(puerta).write, work)
    return result


def seal(puerta: Puerta) -> int:
    sealer: AuditSealer = puerta.http.app.state.audit_sealer  # type: ignore[attr-defined]
    sealed: int = puerta.http.portal.call(sealer.seal_once)
    return sealed


def verify(puerta: Puerta, expect_head: str | None = None) -> dict[str, Any]:
    params = {"expect_head": expect_head} if expect_head is not None else {}
    response = puerta.api("GET", "/audit/verify", token=VIEWER, params=params)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def stored_hash(puerta: Puerta, chain_seq: int) -> str:
    return on_db(
        puerta,
        lambda c: c.execute(
            select(audit_events.c.chain_hash).where(audit_events.c.chain_seq == chain_seq)
        ).scalar_one(),
    )


def head(data: dict[str, Any]) -> str:
    """The head as verify answers it, as an operator would keep it: ``SEQ:HASH``."""
    return f"{data['head_seq']}:{data['head_hash']}"


def chain(puerta: Puerta) -> list[tuple[int, int | None]]:
    """(id, chain_seq) of every record, in id order."""
    rows = on_db(
        puerta,
        lambda c: c.execute(
            select(audit_events.c.id, audit_events.c.chain_seq).order_by(audit_events.c.id)
        ).all(),
    )
    return [(row.id, row.chain_seq) for row in rows]


def record_id(puerta: Puerta, chain_seq: int) -> int:
    return on_db(
        puerta,
        lambda c: c.execute(
            select(audit_events.c.id).where(audit_events.c.chain_seq == chain_seq)
        ).scalar_one(),
    )


def tamper(puerta: Puerta, chain_seq: int, **values: Any) -> None:
    on_db(
        puerta,
        lambda c: c.execute(
            update(audit_events).where(audit_events.c.chain_seq == chain_seq).values(**values)
        ),
    )


def remove(puerta: Puerta, chain_seq: int) -> None:
    on_db(
        puerta,
        lambda c: c.execute(delete(audit_events).where(audit_events.c.chain_seq == chain_seq)),
    )


def activity(puerta: Puerta, rounds: int = 2) -> None:
    """Hook calls of two canaries and admin actions: a mixed audit trail."""
    for _ in range(rounds):
        puerta.hook("confirm-rollout", namespace="staging", name="web")
        puerta.hook("confirm-rollout", **PROD)
        puerta.clock.advance(timedelta(minutes=1))
    puerta.api("POST", "/canaries/prod/podinfo/approve", token=APPROVER, json={"reason": "go"})
    puerta.hook("confirm-rollout", **PROD)
    puerta.api(
        "POST", "/canaries/staging/web/halt", token=ADMIN, json={"reason": 'looks odd: "x"\n'}
    )


def export(puerta: Puerta, fmt: str, **params: Any) -> Any:
    response = puerta.api("GET", "/audit/export", token=VIEWER, params={"format": fmt, **params})
    assert response.status_code == 200, response.text
    return response


def jsonl_records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


_INTS = ("id", "rollout_seq", "http_status", "chain_seq")


def csv_records(text: str) -> list[dict[str, Any]]:
    """The CSV parsed back: empty cells are null, JSON cells parsed, numbers as numbers."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert tuple(reader.fieldnames or ()) == audit_chain.EXPORT_FIELDS
    records = []
    for raw in reader:
        record: dict[str, Any] = {}
        for field, cell in raw.items():
            value: Any = None if cell == "" else cell
            if value is not None and field in _INTS:
                value = int(value)
            elif value is not None and field == "duration_ms":
                value = float(value)
            elif value is not None and field in audit_chain.JSON_FIELDS:
                value = json.loads(value)
            record[field] = value
        records.append(record)
    return records


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    """A record as ``GET /api/v1/audit`` has it: no chain fields, instants as instants, and
    empty text as null (CSV cannot tell them apart)."""
    out = {k: v for k, v in record.items() if k not in ("chain_seq", "chain_hash")}
    out["at"] = datetime.fromisoformat(out["at"])
    return {k: (None if v == "" else v) for k, v in out.items()}


# ---- the canonical form --------------------------------------------------------------------


def test_every_audit_column_is_either_hashed_or_part_of_the_chain() -> None:
    """A new audit column must be decided on in audit_chain.CHAIN_FIELDS (see its comment)."""
    columns = [c.name for c in audit_events.c]
    assert sorted(columns) == sorted(audit_chain.CHAIN_FIELDS + audit_chain.UNHASHED_FIELDS)


def test_canonical_form_is_sorted_compact_json_with_utc_instants() -> None:
    record = {field: None for field in audit_chain.CHAIN_FIELDS}
    record.update(
        at=datetime(2026, 11, 26, 12, 0, 0, 250000, tzinfo=UTC),
        kind="admin",
        actor="approver",
        action="approve",
        details={"b": 1, "a": [1.5, "ü"]},
        id=7,
        chain_seq=3,
        chain_hash="f" * 64,
    )
    text = audit_chain.canonical(record)
    assert text.startswith('{"action":"approve","actor":"approver","at":"2026-11-26T12:00:00.25')
    assert '"details":{"a":[1.5,"\\u00fc"],"b":1}' in text
    assert '"reason":null' in text and " " not in text
    assert '"id"' not in text and "chain" not in text
    expected = __import__("hashlib").sha256(("0" * 64 + text).encode()).hexdigest()
    assert audit_chain.link_hash(audit_chain.GENESIS, record) == expected


# ---- sealing and verification ----------------------------------------------------------------


def test_hook_calls_and_admin_actions_are_sealed_in_order_and_verify(puerta: Puerta) -> None:
    activity(puerta)
    seal(puerta)
    rows = chain(puerta)
    assert len(rows) == 7
    assert [seq for _, seq in rows] == list(range(1, 8))  # all sealed, in id order
    assert {e["kind"] for e in puerta.audit(limit=1000)} == {"hook", "admin"}
    assert verify(puerta) == {
        "ok": True,
        "checked": 7,
        "unsealed": 0,
        "first_broken": None,
        "anchor_seq": 0,
        "head_seq": 7,
        "head_hash": stored_hash(puerta, 7),
        "expected_head": None,
    }

    puerta.hook("confirm-rollout", **PROD)
    seal(puerta)
    assert seal(puerta) == 0  # nothing left
    assert chain(puerta)[-1][1] == 8
    assert verify(puerta)["checked"] == 8


def test_verify_of_an_empty_trail_is_ok(puerta: Puerta) -> None:
    assert verify(puerta) == {
        "ok": True,
        "checked": 0,
        "unsealed": 0,
        "first_broken": None,
        "anchor_seq": 0,
        "head_seq": 0,
        "head_hash": audit_chain.GENESIS,
        "expected_head": None,
    }


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"reason": "approved by nobody"}, "content mismatch"),
        ({"verdict": "fail"}, "content mismatch"),
        ({"chain_hash": "0" * 64}, "hash changed"),
    ],
)
def test_a_changed_record_is_reported_at_its_chain_seq(
    puerta: Puerta, values: dict[str, Any], problem: str
) -> None:
    activity(puerta)
    seal(puerta)
    tamper(puerta, 3, **values)
    result = verify(puerta)
    assert result["ok"] is False
    assert result["first_broken"] == {
        "chain_seq": 3,
        "id": record_id(puerta, 3),
        "problem": problem,
    }
    assert result["checked"] == 4  # the broken record and its witness were checked


def test_the_newest_record_changed_is_judged_against_the_head(puerta: Puerta) -> None:
    activity(puerta)
    seal(puerta)
    tamper(puerta, 7, actor="someone else")
    assert verify(puerta)["first_broken"] == {
        "chain_seq": 7,
        "id": record_id(puerta, 7),
        "problem": "content mismatch",
    }


def test_a_rewritten_record_with_a_recomputed_hash_breaks_the_next_link(puerta: Puerta) -> None:
    activity(puerta)
    seal(puerta)

    def forge(conn: Connection) -> None:
        rows = conn.execute(select(audit_events).where(audit_events.c.chain_seq.in_((3, 4)))).all()
        before, target = rows[0]._mapping, dict(rows[1]._mapping)
        target["verdict"] = "pass"
        conn.execute(
            update(audit_events)
            .where(audit_events.c.chain_seq == 4)
            .values(verdict="pass", chain_hash=audit_chain.link_hash(before["chain_hash"], target))
        )

    on_db(puerta, forge)
    # the forged record links fine; the break shows at the next one
    broken = verify(puerta)["first_broken"]
    assert broken == {"chain_seq": 5, "id": record_id(puerta, 5), "problem": "content mismatch"}


@pytest.mark.parametrize("gone", [1, 4, 7])
def test_a_deleted_record_is_a_gap(puerta: Puerta, gone: int) -> None:
    activity(puerta)
    seal(puerta)
    remove(puerta, gone)
    result = verify(puerta)
    assert result["ok"] is False
    assert result["first_broken"] == {"chain_seq": gone, "id": None, "problem": "missing"}


def test_records_sealed_after_the_newest_was_deleted_still_show_the_gap(puerta: Puerta) -> None:
    activity(puerta)
    seal(puerta)
    remove(puerta, 7)
    puerta.hook("confirm-rollout", **PROD)
    seal(puerta)
    assert chain(puerta)[-1][1] == 8  # the sealer goes on from its head, not from the table
    assert verify(puerta)["first_broken"] == {"chain_seq": 7, "id": None, "problem": "missing"}


def test_records_committed_late_get_a_later_chain_seq(puerta: Puerta) -> None:
    """PostgreSQL commits ids out of order: a record with a lower id, committed after a higher
    one was sealed, is sealed after it, and the chain stays valid."""
    activity(puerta)
    seal(puerta)
    last_id = chain(puerta)[-1][0]
    at = puerta.clock.now()

    def insert(row_id: int) -> Callable[[Connection], None]:
        return lambda conn: repository.insert_audit(
            conn, id=row_id, at=at, kind="hook", actor="flagger", action="confirm-rollout"
        )

    on_db(puerta, insert(last_id + 2))
    seal(puerta)
    on_db(puerta, insert(last_id + 1))
    seal(puerta)
    sealed = dict(chain(puerta))
    assert (sealed[last_id + 2], sealed[last_id + 1]) == (8, 9)
    assert verify(puerta)["ok"] is True


def test_the_sealer_survives_a_database_hiccup(puerta: Puerta, tmp_path: Path) -> None:
    """A round that fails (here: no tables at all) is logged, and the loop goes on."""

    class Counting(AuditSealer):
        rounds = 0
        again: asyncio.Event

        async def seal_once(self) -> int:
            self.rounds += 1
            if self.rounds == 3:
                self.again.set()
            return await super().seal_once()

    async def three_rounds() -> int:
        db = Database(f"sqlite:///{tmp_path / 'empty.db'}")
        sealer = Counting(db, puerta.clock, interval=0)
        sealer.again = asyncio.Event()
        try:
            await sealer.start()
            await asyncio.wait_for(sealer.again.wait(), 30)
            await sealer.stop()
        finally:
            await db.dispose()
        return sealer.rounds

    assert puerta.http.portal.call(three_rounds) >= 3
    with pytest.raises(ValueError, match="longer than zero"):
        AuditSealer(db_of(puerta), puerta.clock, retention=timedelta(0))


# ---- concurrency -------------------------------------------------------------------------------


def test_concurrent_hook_calls_while_sealing_leave_a_valid_chain(
    puerta: Puerta,
    live: str,  # noqa: F811  (a second replica on the same database, sealing in the background)
) -> None:
    second = Database(puerta.database_url)
    other = AuditSealer(second, puerta.clock, batch=3)

    def calls(worker: int) -> None:
        for i in range(6):
            response = puerta.hook("confirm-rollout", namespace="staging", name=f"w{worker}-{i}")
            assert response.status_code == 200, response.text

    def sealing() -> int:
        total = 0
        for _ in range(10):
            total += seal(puerta) + puerta.http.portal.call(other.seal_once)
        return total

    try:
        with ThreadPoolExecutor(6) as pool:
            workers = [pool.submit(calls, w) for w in range(4)]
            sealers = [pool.submit(sealing) for _ in range(2)]
            for future in workers + sealers:
                future.result()
        seal(puerta)
    finally:
        puerta.http.portal.call(second.dispose)
    rows = chain(puerta)
    assert len(rows) == 24
    assert sorted(seq for _, seq in rows if seq is not None) == list(range(1, 25))
    result = verify(puerta)
    assert result["ok"] is True and result["checked"] == 24 and result["unsealed"] == 0


# ---- retention -----------------------------------------------------------------------------


def test_audit_config_retention() -> None:
    assert AuditConfig().retention_period() is None
    assert AuditConfig(retention="400d").retention_period() == timedelta(days=400)
    for bad in ("0s", "soon", ""):
        with pytest.raises(ValidationError):
            AuditConfig(retention=bad)
    with pytest.raises(ValidationError):
        AuditConfig.model_validate({"retention": "1d", "keep": True})

    policy = parse_policy("version: 1\naudit: {retention: 2h}\n").policy
    assert policy.audit.retention_period() == timedelta(hours=2)


def _old_and_new(puerta: Puerta) -> AuditSealer:
    """Four records 30 days old and three new ones; a sealer keeping 10 days."""
    for i in range(4):
        puerta.hook("confirm-rollout", namespace="staging", name=f"old-{i}")
    puerta.clock.advance(timedelta(days=30))
    for i in range(3):
        puerta.hook("confirm-rollout", namespace="staging", name=f"new-{i}")
    seal(puerta)
    return AuditSealer(db_of(puerta), puerta.clock, retention=timedelta(days=10), batch=3)


def test_retention_prunes_old_records_and_verify_starts_at_the_anchor(puerta: Puerta) -> None:
    pruner = _old_and_new(puerta)
    assert puerta.http.portal.call(pruner.prune_once) == 4  # in batches of 3
    hooks = puerta.audit(limit=1000, kind="hook")
    assert [e["name"] for e in hooks] == ["new-2", "new-1", "new-0"]
    # each pruning transaction left a record of what it deleted, in the chain
    pruned = [(e["actor"], e["action"], e["details"]) for e in reversed(puerta.audit(kind="audit"))]
    assert pruned == [
        ("puerta", "prune", {"upto_seq": upto, "upto_hash": ANY_HASH, "removed": removed,
                             "retention": "10d"})
        for upto, removed in ((3, 3), (4, 1))
    ]  # fmt: skip
    assert puerta.audit(kind="audit")[-1]["reason"] == (
        "retention 10d: deleted chain_seq 1-3 (3 records)"
    )
    anchor = on_db(puerta, audit_chain.read_anchor)
    assert anchor is not None and anchor.chain_seq == 4 and anchor.head_seq == 9
    assert anchor.pruned_at == puerta.clock.now()
    assert pruned[-1][2]["upto_hash"] == anchor.chain_hash
    assert verify(puerta) == {
        "ok": True,
        "checked": 5,  # three hook calls, two prune records
        "unsealed": 0,
        "first_broken": None,
        "anchor_seq": 4,
        "head_seq": 9,
        "head_hash": stored_hash(puerta, 9),
        "expected_head": None,
    }
    assert puerta.http.portal.call(pruner.prune_once) == 0
    assert len(puerta.audit(kind="audit")) == 2  # nothing deleted, nothing recorded

    tamper(puerta, 5, reason="nothing to see")
    assert verify(puerta)["first_broken"] == {
        "chain_seq": 5,
        "id": record_id(puerta, 5),
        "problem": "content mismatch",
    }


def test_tampering_with_the_anchor_is_found(puerta: Puerta) -> None:
    pruner = _old_and_new(puerta)
    puerta.http.portal.call(pruner.prune_once)
    on_db(puerta, lambda c: c.execute(update(audit_anchor).values(chain_hash="1" * 64)))
    assert verify(puerta)["first_broken"]["chain_seq"] == 5


def test_pruning_stops_before_a_broken_link_and_keeps_the_evidence(puerta: Puerta) -> None:
    pruner = _old_and_new(puerta)
    tamper(puerta, 3, verdict="fail")
    assert puerta.http.portal.call(pruner.prune_once) == 2
    assert verify(puerta)["first_broken"] == {
        "chain_seq": 3,
        "id": record_id(puerta, 3),
        "problem": "content mismatch",
    }
    remove(puerta, 3)
    assert puerta.http.portal.call(pruner.prune_once) == 0  # a gap stops it too
    assert verify(puerta)["first_broken"] == {"chain_seq": 3, "id": None, "problem": "missing"}


def test_a_deleted_anchor_row_is_rebuilt_and_reported(puerta: Puerta) -> None:
    pruner = _old_and_new(puerta)
    puerta.http.portal.call(pruner.prune_once)
    on_db(puerta, lambda c: c.execute(delete(audit_anchor)))
    puerta.hook("confirm-rollout", **PROD)
    seal(puerta)  # goes on after the newest sealed record (the second prune record, 9)
    assert chain(puerta)[-1][1] == 10
    assert verify(puerta)["first_broken"] == {"chain_seq": 1, "id": None, "problem": "missing"}


# ---- prune evidence and the head -------------------------------------------------------------


def cut_prefix(puerta: Puerta, upto: int) -> None:
    """An attacker's cut of the chain's start: records up to ``upto`` deleted and the anchor
    moved to the last of them, as the pruner would have moved it."""

    def work(conn: Connection) -> None:
        last = conn.execute(select(audit_events).where(audit_events.c.chain_seq == upto)).one()
        conn.execute(delete(audit_events).where(audit_events.c.chain_seq <= upto))
        conn.execute(update(audit_anchor).values(chain_seq=upto, chain_hash=last.chain_hash))

    on_db(puerta, work)


def cut_tail(puerta: Puerta, keep: int) -> None:
    """An attacker's cut of the chain's end: records after ``keep`` deleted and the head moved
    back to ``keep``, so the sealer goes on from there."""

    def work(conn: Connection) -> None:
        last = conn.execute(select(audit_events).where(audit_events.c.chain_seq == keep)).one()
        conn.execute(delete(audit_events).where(audit_events.c.chain_seq > keep))
        conn.execute(update(audit_anchor).values(head_seq=keep, head_hash=last.chain_hash))

    on_db(puerta, work)


def test_a_prefix_cut_without_retention_is_reported(puerta: Puerta) -> None:
    """No retention ever pruned anything: an anchor past 0 has no prune record behind it."""
    activity(puerta)
    seal(puerta)
    assert verify(puerta)["ok"] is True
    cut_prefix(puerta, 3)
    result = verify(puerta)
    assert result["ok"] is False
    assert result["anchor_seq"] == 3
    assert result["first_broken"] == {
        "chain_seq": 1,
        "id": None,
        "problem": "deleted outside retention",
    }


def test_a_prefix_cut_past_the_last_prune_is_reported(puerta: Puerta) -> None:
    pruner = _old_and_new(puerta)
    assert puerta.http.portal.call(pruner.prune_once) == 4
    assert verify(puerta)["ok"] is True
    cut_prefix(puerta, 6)  # two of the new records, which retention keeps
    assert verify(puerta)["first_broken"] == {
        "chain_seq": 5,
        "id": None,
        "problem": "deleted outside retention",
    }


def test_a_prune_record_cannot_be_edited_or_dropped_to_cover_a_cut(puerta: Puerta) -> None:
    pruner = _old_and_new(puerta)
    pruner.batch = 10
    assert puerta.http.portal.call(pruner.prune_once) == 4  # one prune record, the head (8)
    (record,) = puerta.audit(kind="audit")
    assert chain(puerta)[-1] == (record["id"], 8)
    cut_prefix(puerta, 6)

    # the prune record rewritten to vouch for the new anchor: its link breaks
    tamper(puerta, 8, details={**record["details"], "upto_seq": 6})
    assert verify(puerta)["first_broken"] == {
        "chain_seq": 8,
        "id": record["id"],
        "problem": "content mismatch",
    }
    # the prune record deleted and the head moved back before it: nothing vouches at all
    cut_tail(puerta, 7)
    assert verify(puerta)["first_broken"] == {
        "chain_seq": 1,
        "id": None,
        "problem": "deleted outside retention",
    }


def test_retention_verifies_before_and_after_several_prunes(puerta: Puerta) -> None:
    """Day after day of activity with a week's retention: every verify is ok, the anchor is
    always what the newest prune record says, and a head kept from before is held until it is
    pruned itself."""
    pruner = AuditSealer(db_of(puerta), puerta.clock, retention=timedelta(days=7), batch=4)
    kept: list[str] = []
    for day in range(12):
        for i in range(3):
            puerta.hook("confirm-rollout", namespace="staging", name=f"day{day}-{i}")
        seal(puerta)
        before = verify(puerta)
        assert before["ok"] is True, before
        kept.append(head(before))
        puerta.http.portal.call(pruner.prune_once)
        after = verify(puerta, expect_head=kept[0])
        assert after["ok"] is True, after
        newest = puerta.audit(kind="audit", limit=1)
        if newest:
            assert newest[0]["details"]["upto_seq"] == after["anchor_seq"]
        assert verify(puerta, expect_head=kept[-1])["expected_head"] == "held"
        puerta.clock.advance(timedelta(days=1))
    final = verify(puerta, expect_head=kept[0])
    assert final["anchor_seq"] > 0 and final["expected_head"] == "pruned"
    assert {e["name"] for e in puerta.audit(kind="hook", limit=1000)} == {
        f"day{day}-{i}" for day in range(4, 12) for i in range(3)
    }  # a week and a day: the records of days 4-11 (day 11 being today)
    held = [verify(puerta, expect_head=h)["expected_head"] for h in kept]
    assert "held" in held and held == sorted(held, key=lambda x: x != "pruned")


def test_verify_while_pruning_follows_the_anchor_and_its_prune_record(puerta: Puerta) -> None:
    """A prune between two batches of a verify walk: the walk goes on from the new anchor to
    the pruner's head, where the prune record vouching for it is (no false alarm)."""
    pruner = _old_and_new(puerta)
    db = db_of(puerta)

    class PruneMidWalk:
        pruned = 0

        async def read(self, work: Callable[[Connection], T]) -> T:
            result = await db.read(work)
            if getattr(work, "func", None) is audit_chain.chain_rows and not self.pruned:
                self.pruned = await pruner.prune_once()
            return result

    proxy = PruneMidWalk()
    result = puerta.http.portal.call(
        lambda: audit_chain.verify_chain(proxy, batch=2)  # type: ignore[arg-type]
    )
    assert proxy.pruned == 4
    assert result.ok is True, result
    assert (result.anchor_seq, result.head_seq) == (4, 9)


def test_a_tail_cut_is_reported_against_an_earlier_head(puerta: Puerta) -> None:
    activity(puerta)
    seal(puerta)
    earlier = head(verify(puerta))
    assert earlier == f"7:{stored_hash(puerta, 7)}"
    assert verify(puerta, expect_head=earlier)["expected_head"] == "held"

    cut_tail(puerta, 5)
    # the database alone cannot tell: head and records agree
    assert verify(puerta)["ok"] is True
    result = verify(puerta, expect_head=earlier)
    assert result["ok"] is False and result["expected_head"] == "not held"
    assert result["first_broken"] == {"chain_seq": 6, "id": None, "problem": "tail cut"}

    # new records sealed where the cut ones were: the earlier head's chain_seq is taken by
    # another record
    activity(puerta, rounds=1)
    seal(puerta)
    result = verify(puerta, expect_head=earlier)
    assert result["first_broken"] == {
        "chain_seq": 7,
        "id": record_id(puerta, 7),
        "problem": "rewritten",
    }


def test_a_rewritten_chain_is_reported_against_an_earlier_head(puerta: Puerta) -> None:
    """Every record from 4 on rewritten with recomputed hashes, the head too: consistent in
    the database, not with a head kept outside it."""
    activity(puerta)
    seal(puerta)
    earlier = head(verify(puerta))

    def rewrite(conn: Connection) -> None:
        rows = conn.execute(select(audit_events).order_by(audit_events.c.chain_seq)).all()
        previous = rows[2].chain_hash
        for row in rows[3:]:
            content = {**row._mapping, "reason": "nothing happened"}
            previous = audit_chain.link_hash(previous, content)
            conn.execute(
                update(audit_events)
                .where(audit_events.c.id == row.id)
                .values(reason="nothing happened", chain_hash=previous)
            )
        conn.execute(update(audit_anchor).values(head_hash=previous))

    on_db(puerta, rewrite)
    assert verify(puerta)["ok"] is True
    assert verify(puerta, expect_head=earlier)["first_broken"] == {
        "chain_seq": 7,
        "id": record_id(puerta, 7),
        "problem": "rewritten",
    }


def test_expected_head_at_the_anchor_and_before_it(puerta: Puerta) -> None:
    pruner = _old_and_new(puerta)
    at_four = f"4:{stored_hash(puerta, 4)}"
    at_two = f"2:{stored_hash(puerta, 2)}"
    puerta.http.portal.call(pruner.prune_once)
    # the last record pruned is the anchor: still comparable; one before is not
    assert verify(puerta, expect_head=at_four)["expected_head"] == "held"
    result = verify(puerta, expect_head=at_two)
    assert result["ok"] is True and result["expected_head"] == "pruned"
    wrong = verify(puerta, expect_head="4:" + "a" * 64)
    assert wrong["first_broken"] == {"chain_seq": 4, "id": None, "problem": "rewritten"}


def test_a_broken_chain_does_not_compare_the_expected_head(puerta: Puerta) -> None:
    activity(puerta)
    seal(puerta)
    earlier = head(verify(puerta))
    tamper(puerta, 3, reason="edited")
    result = verify(puerta, expect_head=earlier)
    assert result["first_broken"]["problem"] == "content mismatch"
    assert result["expected_head"] == "not reached"


@pytest.mark.parametrize(
    "bad",
    [
        "7",
        "7:",
        "x:" + "a" * 64,
        "-1:" + "a" * 64,
        "7:" + "g" * 64,
        "7:" + "a" * 63,
        "\u00b2:" + "a" * 64,  # a digit to str.isdigit, not to int()
        "9" * 5000 + ":" + "a" * 64,  # beyond int()'s digit limit
    ],
)
def test_a_malformed_expected_head_is_refused(puerta: Puerta, bad: str) -> None:
    response = puerta.api("GET", "/audit/verify", token=VIEWER, params={"expect_head": bad})
    assert response.status_code == 400
    assert "expect_head: expected SEQ:HASH" in response.json()["detail"]


# ---- export ------------------------------------------------------------------------------------


def test_export_round_trips_as_jsonl_and_csv(puerta: Puerta) -> None:
    activity(puerta)
    seal(puerta)
    puerta.hook("confirm-rollout", **PROD)  # perhaps not sealed yet: exported all the same
    api = [comparable(e) for e in reversed(puerta.audit(limit=1000))]

    jsonl = export(puerta, "jsonl")
    assert jsonl.headers["content-type"] == "application/x-ndjson"
    assert jsonl.headers["content-disposition"] == "attachment; filename=puerta-audit.jsonl"
    from_jsonl = jsonl_records(jsonl.text)
    assert [comparable(r) for r in from_jsonl] == api

    csv_response = export(puerta, "csv")
    assert csv_response.headers["content-type"] == "text/csv; charset=utf-8"
    assert csv_response.headers["content-disposition"] == "attachment; filename=puerta-audit.csv"
    from_csv = csv_records(csv_response.text)
    assert [comparable(r) for r in from_csv] == api
    # (the last record may have been sealed between the two exports)
    assert [(r["chain_seq"], r["chain_hash"]) for r in from_csv[:7]] == [
        (r["chain_seq"], r["chain_hash"]) for r in from_jsonl[:7]
    ]
    assert any(r["payload"] for r in from_csv) and any(r["details"] for r in from_csv)

    # anyone can check the chain from an export alone
    previous = audit_chain.GENESIS
    for record in from_jsonl[:7]:
        content = {**record, "at": datetime.fromisoformat(record["at"])}
        previous = audit_chain.link_hash(previous, content)
        assert record["chain_hash"] == previous


def test_export_streams_every_batch(puerta: Puerta) -> None:
    for i in range(5):
        puerta.hook("confirm-rollout", namespace="staging", name=f"svc-{i}")

    async def collect() -> list[int]:
        ids = []
        async for records in audit_chain.export_records(
            db_of(puerta), audit_chain.AuditFilter(), batch=2
        ):
            assert len(records) <= 2
            ids += [r["id"] for r in records]
        return ids

    ids = puerta.http.portal.call(collect)
    assert len(ids) == 5 and ids == sorted(ids)


def test_export_filters_like_the_audit_query(puerta: Puerta) -> None:
    start = puerta.clock.now()
    activity(puerta)
    for params in (
        {"canary": "prod/podinfo"},
        {"namespace": "staging"},
        {"environment": "production"},
        {"hook": "confirm-rollout"},
        {"decision": "wait"},
        {"kind": "admin"},
        {"actor": "approver"},
        {"since": (start + timedelta(minutes=1)).isoformat()},
        {"until": (start + timedelta(minutes=1)).isoformat()},
    ):
        expected = [e["id"] for e in reversed(puerta.audit(limit=1000, **params))]
        assert expected, params
        for fmt, parse in (("jsonl", jsonl_records), ("csv", csv_records)):
            got = [r["id"] for r in parse(export(puerta, fmt, **params).text)]
            assert got == expected, (fmt, params)
    for params, needle in (
        ({"canary": "podinfo"}, "canary: expected NAMESPACE/NAME"),
        ({"since": "2026-11-26T10:00:00"}, "since: give a time zone"),
        ({"format": "xml"}, "format"),
        ({"actor": "a\x00b"}, "actor"),
    ):
        response = puerta.api("GET", "/audit/export", token=VIEWER, params=params)
        assert response.status_code == 400, params
        assert needle in response.json()["detail"]


# ---- the CLI -------------------------------------------------------------------------------


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


@pytest.fixture
def served(puerta: Puerta, live: str) -> Iterator[str]:  # noqa: F811
    activity(puerta)
    seal(puerta)
    yield live


def test_cli_verify_exit_codes(puerta: Puerta, served: str) -> None:
    code, out = run("audit", "verify", "--server", served, "--token", VIEWER)
    assert code == 0, out
    assert out.startswith("audit chain ok: 7 records checked")

    tamper(puerta, 2, reason="edited")
    code, out = run("audit", "verify", "--server", served, "--token", VIEWER)
    assert code == 1
    assert f"BROKEN at chain_seq 2 (id {record_id(puerta, 2)}): content mismatch" in out

    remove(puerta, 1)
    code, out = run("audit", "verify", "--server", served, "--token", VIEWER)
    assert code == 1 and "chain_seq 1 (record gone): missing" in out

    assert run("audit", "verify", "--server", served)[0] == 1  # no token: refused
    assert run("audit", "verify", "--bogus")[0] == 2
    assert run("audit", "verify", "--server", "http://127.0.0.1:9")[0] == 2


def test_cli_verify_prints_the_head_and_checks_an_earlier_one(puerta: Puerta, served: str) -> None:
    code, out = run("audit", "verify", "--server", served, "--token", VIEWER)
    assert code == 0, out
    printed = out.splitlines()[1]
    assert printed == f"head 7:{stored_hash(puerta, 7)}"
    earlier = printed.removeprefix("head ")

    code, out = run("audit", "verify", "--expect-head", earlier, "--server", served,
                    "--token", VIEWER)  # fmt: skip
    assert code == 0, out
    assert f"expected head {earlier}: still in the chain" in out

    cut_tail(puerta, 5)
    code, out = run("audit", "verify", "--server", served, "--token", VIEWER)
    assert code == 0 and "head 5:" in out  # alone, the database cannot tell
    code, out = run("audit", "verify", "--expect-head", earlier, "--server", served,
                    "--token", VIEWER)  # fmt: skip
    assert code == 1
    assert "audit chain BROKEN at chain_seq 6 (record gone): tail cut" in out
    assert f"expected head {earlier}: NOT in the chain any more" in out

    code, out = run("audit", "verify", "--expect-head", "7", "--server", served,
                    "--token", VIEWER)  # fmt: skip
    assert code == 1 and "expect_head: expected SEQ:HASH" in out and "(HTTP 400)" in out


def test_cli_verify_reports_a_prefix_cut(puerta: Puerta, served: str) -> None:
    cut_prefix(puerta, 3)
    code, out = run("audit", "verify", "--server", served, "--token", VIEWER)
    assert code == 1
    assert out.startswith(
        "audit chain BROKEN at chain_seq 1 (record gone): deleted outside retention"
        " (4 records checked after pruned chain_seq 3)"
    )


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_cli_verify_since_an_export(puerta: Puerta, served: str, tmp_path: Path, fmt: str) -> None:
    kept = tmp_path / f"audit.{fmt}"
    code, out = run("audit", "export", "--format", fmt, "-o", str(kept), "--server", served,
                    "--token", VIEWER)  # fmt: skip
    assert code == 0, out
    args = ("audit", "verify", "--since-export", str(kept), "--server", served, "--token", VIEWER)
    code, out = run(*args)
    assert code == 0, out
    assert f"expected head 7:{stored_hash(puerta, 7)}: still in the chain" in out

    cut_tail(puerta, 6)
    code, out = run(*args)
    assert code == 1 and "(record gone): tail cut" in out


def test_cli_verify_usage_errors(served: str, tmp_path: Path) -> None:
    unsealed = tmp_path / "unsealed.jsonl"
    unsealed.write_text('{"id": 1, "chain_seq": null, "chain_hash": null}\n')
    for args in (
        ("--since-export", str(tmp_path / "nowhere.jsonl")),
        ("--since-export", str(unsealed)),
        ("--since-export", str(unsealed), "--expect-head", "1:" + "a" * 64),
    ):
        code, out = run("audit", "verify", *args, "--server", served, "--token", VIEWER)
        assert code == 2, (args, out)


def test_cli_export_to_a_file_and_stdout(puerta: Puerta, served: str, tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    target = folder / "audit.csv"
    code, out = run(
        "audit", "export", "--format", "csv", "--output", str(target),
        "--server", served, "--token", VIEWER,
    )  # fmt: skip
    assert code == 0, out
    with target.open(newline="") as exported:
        records = csv_records(exported.read())
    assert [comparable(r) for r in records] == [
        comparable(e) for e in reversed(puerta.audit(limit=1000))
    ]
    assert list(folder.iterdir()) == [target]  # no .part left behind

    code, out = run("audit", "export", "--kind", "admin", "--server", served, "--token", VIEWER)
    assert code == 0, out
    assert [r["action"] for r in jsonl_records(out)] == ["approve", "halt"]

    assert run("audit", "export", "--format", "xml", "--server", served)[0] == 2
    code, out = run("audit", "export", "--canary", "nope", "--server", served, "--token", VIEWER)
    assert code == 1 and "canary: expected NAMESPACE/NAME" in out and "(HTTP 400)" in out
    refused = folder / "refused.jsonl"
    assert run("audit", "export", "-o", str(refused), "--server", served)[0] == 1
    assert list(folder.iterdir()) == [target]


def test_cli_audit_alone_still_queries(served: str) -> None:
    code, out = run("audit", "--kind", "admin", "--format", "jsonl", "--server", served,
                    "--token", VIEWER)  # fmt: skip
    assert code == 0, out
    assert [json.loads(line)["action"] for line in out.splitlines()] == ["halt", "approve"]
