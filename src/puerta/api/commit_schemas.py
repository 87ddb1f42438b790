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
    "not-deployed",
]


class CommitOut(BaseModel):
    sha: str = Field(description="the full SHA, as GitHub resolved it")
    url: str | None
    title: str | None = Field(description="the first line of the commit message")
    author_name: str | None
    committed_at: datetime | None


class EnvironmentWhereabouts(BaseModel):
    environment: str
    state: StateName = Field(
        description="live: a canary runs it; live-through-newer: a canary runs a newer commit "
        "that includes it; waiting / progressing: its rollout has not finished; failed; "
        "superseded: a newer revision replaced its rollout before it finished; replaced: it was "
        "live and a later commit (not known to include it) replaced it; not-deployed"
    )
    text: str = Field(description="the answer as a sentence")
    since: datetime | None = Field(
        description="when the current state began (live: when its rollout finished)"
    )
    at: datetime | None = Field(
        description="failed, superseded, replaced: when; waiting, progressing: when the answer "
        "may change (a window opens), if known"
    )
    reason: str | None = Field(description="why it is not (or no longer) there")
    link: str | None = Field(description="the failed E2E run")
    canary: str | None = Field(description="NAMESPACE/NAME of the canary this is about")
    rollout_seq: int | None
    image: str | None
    through: str | None = Field(description="live-through-newer: the newer commit's SHA")
    note: str | None = Field(description="a comparison with a newer commit that was not made")


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
