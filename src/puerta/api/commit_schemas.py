"""Response bodies of ``GET /api/v1/commits/{sha}`` ("where is my commit?"); they are its
OpenAPI schema, so clients (the CLI, chat bots, CI jobs waiting for production) can rely on
the field names and the list of states."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

StateName = Literal[
    "live",
    "live-through-newer",
    "waiting",
    "progressing",
    "failed",
    "superseded",
    "replaced",
    "promotion",
    "not-deployed",
]
PromotionStatus = Literal["pending", "held", "done", "failed"]


class CommitOut(BaseModel):
    sha: str = Field(description="the full SHA, as GitHub resolved it")
    url: str | None
    title: str | None = Field(description="the first line of the commit message")
    author_name: str | None
    committed_at: datetime | None


class PromotionOut(BaseModel):
    """The promotion that sends the commit into the environment (state ``promotion``)."""

    status: PromotionStatus = Field(
        description="pending: not carried out yet (or retried after a transient failure); "
        "held: a freeze of this environment or a halt of the canary holds it; done: carried "
        "out (the commit is on its way, not live yet); failed: given up"
    )
    from_environment: str | None = Field(description="where the promoted rollout succeeded")
    created_at: datetime = Field(description="when the promotion was recorded")
    done_at: datetime | None = Field(description="done: when it was carried out")
    held_reason: str | None = Field(description="held: the freeze or halt")
    error: str | None = Field(
        description="failed: why; pending: why the last attempt did not go through"
    )
    tag: str | None = Field(description="done, github_release: the release's tag")
    url: str | None = Field(description="done, github_release: the release's page")


class EnvironmentWhereabouts(BaseModel):
    environment: str
    state: StateName = Field(
        description="live: a canary runs it; live-through-newer: a canary runs a newer commit "
        "that includes it; waiting / progressing: its rollout has not finished; failed; "
        "superseded: a newer revision replaced its rollout before it finished; replaced: it was "
        "live and a later commit (not known to include it) replaced it; promotion: not rolled "
        "out here yet, and the promotion from the environment before tells where it is "
        "(see promotion); not-deployed"
    )
    text: str = Field(description="the answer as a sentence")
    since: datetime | None = Field(
        description="when the current state began (live: when its rollout finished; "
        "promotion: when it was recorded, done: when it was carried out)"
    )
    at: datetime | None = Field(
        description="failed, superseded, replaced: when; waiting, progressing: when the answer "
        "may change (a window opens), if known"
    )
    reason: str | None = Field(description="why it is not (or no longer) there")
    link: str | None = Field(description="the failed E2E run; promotion: the release")
    canary: str | None = Field(
        description="NAMESPACE/NAME of the canary this is about (promotion: the promoted one)"
    )
    rollout_seq: int | None
    image: str | None
    through: str | None = Field(description="live-through-newer: the newer commit's SHA")
    note: str | None = Field(description="a comparison with a newer commit that was not made")
    promotion: PromotionOut | None = Field(
        default=None, description="state promotion: the promotion into this environment"
    )


class RepositoryWhereabouts(BaseModel):
    repository: str | None = Field(description="owner/repo; null when not known")
    sha: str = Field(description="the commit's longest known SHA in this repository")
    commit: CommitOut | None = Field(description="null when GitHub never resolved the commit")
    environments: list[EnvironmentWhereabouts] = Field(description="in the policy's order")
    summary: str
    contains_checked: bool = Field(
        description="false: some newer live commit could not be compared with this one "
        "(no GitHub access, or GitHub did not answer), so live-through-newer may be missing"
    )


class CommitWhereabouts(BaseModel):
    sha: str = Field(description="as asked, lower-case")
    repositories: list[RepositoryWhereabouts] = Field(
        description="one per repository with a commit of that SHA (usually one)"
    )
