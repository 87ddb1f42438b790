"""``GET /api/v1/commits/{sha}``: is my commit in production yet, and if not, where is it stuck
and why?

Read like the canary list (``reader``: open when ``auth.public_read``), since it tells the same
story per commit instead of per canary. The commit source (GitHub, to learn whether a newer
live commit includes this one) is whatever the app put in ``app.state.commit_source``; without
one the answer says ``contains_checked: false``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from puerta.api import commit_schemas as out
from puerta.api import schemas
from puerta.api.admin import ERRORS, reader
from puerta.api.auth import Principal
from puerta.api.text_guard import storable_parameters
from puerta.commits.base import CommitSource
from puerta.domain.whereabouts import Place, Promotion
from puerta.service.whereabouts import CommitReport, WhereaboutsService

router = APIRouter(prefix="/api/v1", tags=["commits"], dependencies=[Depends(storable_parameters)])

RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    400: {"model": schemas.Problem, "description": "not a commit SHA (7-64 hex), or ambiguous"},
    404: {"model": schemas.Problem, "description": "no rollout has shipped this commit"},
}


@router.get("/commits/{sha}", response_model=out.CommitWhereabouts, responses=RESPONSES)
async def where_is_commit(
    request: Request,
    sha: str,
    _: Annotated[Principal | None, Depends(reader)],
) -> out.CommitWhereabouts:
    """Where a commit is in each environment (policy order): live, live through a newer
    commit, waiting (and for what), rolling out, failed (and why), replaced, on its way by a
    promotion (pending, held, done, failed), or not deployed, with a one-line summary.
    ``sha``: at least 7 hexadecimal characters."""
    source: CommitSource | None = getattr(request.app.state, "commit_source", None)
    service = WhereaboutsService(
        request.app.state.db,
        request.app.state.policy,
        request.app.state.clock.now(),
        source,
    )
    return to_response(await service.find(sha))


def to_response(report: CommitReport) -> out.CommitWhereabouts:
    """The service's answer as the API's body (times in UTC: clients show local times)."""
    repositories = []
    for found in report.repositories:
        w, c = found.whereabouts, found.commit
        repositories.append(
            out.RepositoryWhereabouts(
                repository=w.repository,
                sha=w.sha,
                commit=(
                    out.CommitOut(
                        sha=c.sha,
                        url=c.url,
                        title=c.title,
                        author_name=c.author_name,
                        committed_at=_utc(c.committed_at),
                    )
                    if c is not None
                    else None
                ),
                environments=[_place(p) for p in w.places],
                summary=w.summary,
                contains_checked=w.contains_checked,
            )
        )
    return out.CommitWhereabouts(sha=report.sha, repositories=repositories)


def _place(place: Place) -> out.EnvironmentWhereabouts:
    return out.EnvironmentWhereabouts(
        environment=place.environment,
        state=place.state.value,
        text=place.text,
        since=_utc(place.since),
        at=_utc(place.at),
        reason=place.reason,
        link=place.link,
        canary=place.canary,
        rollout_seq=place.rollout_seq,
        image=place.image,
        through=place.through,
        note=place.note,
        promotion=_promotion(place.promotion) if place.promotion is not None else None,
    )


def _promotion(promotion: Promotion) -> out.PromotionOut:
    return out.PromotionOut(
        status=promotion.status,  # the table holds only these four
        from_environment=promotion.from_environment,
        created_at=promotion.created_at.astimezone(UTC),
        done_at=_utc(promotion.done_at),
        held_reason=promotion.held_reason,
        error=promotion.last_error,
        tag=promotion.tag,
        url=promotion.url,
    )


def _utc(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC) if moment is not None else None
