"""``/api/v1/audit/verify`` and ``/api/v1/audit/export``: is the audit trail intact, and every
record of it, for an auditor or a copy kept elsewhere.

Both read the audit, so both need a token (viewer or above) like ``GET /api/v1/audit``. Both
walk the table in batches of one read transaction each: a trail of millions of records is
neither held in memory nor in one long transaction.

Verify can only vouch for the chain as the database has it now. Its answer carries the head
(``head_seq``, ``head_hash``) so that a caller can keep it outside the database and give it
back later as ``expect_head``: the one check against records cut from the end together with
the head, or against a chain rewritten with recomputed hashes.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from puerta.api.admin import ERRORS, viewer
from puerta.api.auth import Principal
from puerta.api.instants import check_instant
from puerta.api.text_guard import storable_parameters
from puerta.errors import BadRequest
from puerta.store import audit_chain
from puerta.store.db import Database
from puerta.store.repository import AuditFilter

router = APIRouter(
    prefix="/api/v1/audit", tags=["admin"], dependencies=[Depends(storable_parameters)]
)


class BrokenLink(BaseModel):
    chain_seq: int = Field(description="where the chain breaks")
    id: int | None = Field(description="the record's id; null when the record is missing")
    problem: str = Field(
        description="content mismatch (content edited), hash changed, hash mismatch, missing "
        "(deleted), deleted outside retention (records before the anchor gone without a prune "
        "record saying so), tail cut (the chain ends before expect_head), rewritten (the "
        "record at expect_head's chain_seq has another hash)"
    )


class AuditVerification(BaseModel):
    ok: bool
    checked: int = Field(description="sealed records checked, from the anchor to the head")
    unsealed: int = Field(description="records not sealed yet (not covered by the chain)")
    first_broken: BrokenLink | None
    anchor_seq: int = Field(description="chain_seq of the last pruned record (0: none pruned)")
    head_seq: int = Field(description="chain_seq of the newest sealed record (0: none)")
    head_hash: str = Field(
        description="its chain_hash: keep head_seq:head_hash outside the database and pass it "
        "as expect_head later"
    )
    expected_head: Literal["held", "not held", "pruned", "not reached"] | None = Field(
        default=None,
        description="with expect_head: held (the chain still has that record with that hash), "
        "not held (see first_broken), pruned (retention deleted it since: not compared), not "
        "reached (the chain broke before it)",
    )


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


_HEX = frozenset("0123456789abcdef")


def parse_head(text: str) -> tuple[int, str]:
    """``SEQ:HASH`` (as verify prints the head) as (chain_seq, chain_hash); a typo must be a
    400, never a comparison that fails and looks like tampering."""
    seq, sep, chain_hash = text.strip().partition(":")
    chain_hash = chain_hash.lower()
    number = seq.isascii() and seq.isdigit() and len(seq) <= 18  # "²" is a digit to isdigit
    if not sep or not number or len(chain_hash) != 64 or not set(chain_hash) <= _HEX:
        raise BadRequest(
            f"expect_head: expected SEQ:HASH (a chain_seq and its 64 hex digit chain_hash), "
            f"got {text!r}"
        )
    return int(seq), chain_hash


@router.get("/verify", response_model=AuditVerification, responses=ERRORS)
async def verify(
    request: Request,
    _: Annotated[Principal, Depends(viewer)],
    expect_head: Annotated[
        str | None,
        Query(
            description="SEQ:HASH, a head an earlier verify answered (or an export's newest "
            "sealed record), kept outside the database: fails if the chain no longer holds it"
        ),
    ] = None,
) -> AuditVerification:
    """Recompute the hash chain from its start (or the retention anchor) to the newest sealed
    record and report the first broken link; check that the newest prune record accounts for
    the anchor, and with ``expect_head`` that an earlier head is still in the chain. Needs a
    token (viewer or above)."""
    expected = parse_head(expect_head) if expect_head is not None else None
    result = await audit_chain.verify_chain(_db(request), expect_head=expected)
    broken = result.first_broken
    return AuditVerification(
        ok=result.ok,
        checked=result.checked,
        unsealed=result.unsealed,
        first_broken=(
            None
            if broken is None
            else BrokenLink(chain_seq=broken.chain_seq, id=broken.id, problem=broken.problem)
        ),
        anchor_seq=result.anchor_seq,
        head_seq=result.head_seq,
        head_hash=result.head_hash,
        expected_head=result.expected_head,
    )


def audit_filter(
    *,
    canary: str | None,
    namespace: str | None,
    environment: str | None,
    hook: str | None,
    decision: str | None,
    kind: str | None,
    actor: str | None,
    since: datetime | None,
    until: datetime | None,
) -> AuditFilter:
    """The filter of ``GET /api/v1/audit``'s query parameters, checked the same way."""
    name = None
    if canary is not None:
        ns, sep, name = canary.partition("/")
        if not sep or not ns or not name:
            raise BadRequest(f"canary: expected NAMESPACE/NAME, got {canary!r}")
        if namespace is not None and namespace != ns:
            raise BadRequest("canary and namespace disagree")
        namespace = ns
    return AuditFilter(
        namespace=namespace,
        name=name,
        environment=environment,
        hook=hook,
        verdict=decision,
        kind=kind,
        actor=actor,
        since=check_instant(since, "since"),
        until=check_instant(until, "until"),
    )


def _jsonl(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def _csv_line(values: list[Any]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(values)
    return out.getvalue()


def _csv_cell(field: str, value: Any) -> Any:
    """Null is an empty cell; JSON values are their JSON text."""
    if value is None:
        return ""
    if field in audit_chain.JSON_FIELDS:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return value


async def _lines(db: Database, where: AuditFilter, fmt: str) -> AsyncIterator[bytes]:
    fields = audit_chain.EXPORT_FIELDS
    if fmt == "csv":
        yield _csv_line(list(fields)).encode()
    async for records in audit_chain.export_records(db, where):
        if fmt == "csv":
            chunk = "".join(
                _csv_line([_csv_cell(f, record[f]) for f in fields]) for record in records
            )
        else:
            chunk = "".join(_jsonl(record) for record in records)
        yield chunk.encode()


_MEDIA = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        **ERRORS,
        200: {
            "description": "every matching record, oldest first, with chain_seq and chain_hash",
            "content": {media: {} for media in _MEDIA.values()},
        },
    },
)
async def export(
    request: Request,
    _: Annotated[Principal, Depends(viewer)],
    fmt: Annotated[Literal["jsonl", "csv"], Query(alias="format")] = "jsonl",
    canary: Annotated[str | None, Query(description="NAMESPACE/NAME")] = None,
    namespace: str | None = None,
    environment: str | None = None,
    hook: str | None = None,
    decision: Annotated[
        str | None, Query(description="pass, wait, fail, rollback, carry-on, recorded")
    ] = None,
    kind: Annotated[str | None, Query(description="hook, admin, promotion or audit")] = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> StreamingResponse:
    """Every matching record, oldest first, as JSON lines or CSV (a header row; payload and
    details as JSON text; an empty cell is null), streamed. Needs a token (viewer or above)."""
    where = audit_filter(
        canary=canary,
        namespace=namespace,
        environment=environment,
        hook=hook,
        decision=decision,
        kind=kind,
        actor=actor,
        since=since,
        until=until,
    )
    return StreamingResponse(
        _lines(_db(request), where, fmt),
        media_type=_MEDIA[fmt],
        headers={"Content-Disposition": f"attachment; filename=puerta-audit.{fmt}"},
    )
