"""Build the commit resolver from the policy's ``commits`` section (Kubernetes for the
workload, the rules, GitHub for the author) and the chat sink (for users by email)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from puerta.clock import Clock
from puerta.commits.github import GitHubRepos
from puerta.commits.kubernetes import WorkloadReaders
from puerta.commits.rules import rule_resolver
from puerta.domain.durations import parse_duration
from puerta.notify.registry import Sinks
from puerta.policy.model import Policy
from puerta.secret_refs import read_secret
from puerta.service.commit_resolver import CommitResolver
from puerta.store.db import Database


def read_github_token(policy: Policy, environ: Mapping[str, str]) -> str | None:
    """The commits section's GitHub token (read when the app is built: fail fast)."""
    github = policy.commits.github
    if github is None:
        return None
    return read_secret(github.token, "commits.github.token", environ)


@dataclass
class CommitSources:
    resolver: CommitResolver
    readers: WorkloadReaders | None
    client: httpx.AsyncClient | None
    github: GitHubRepos | None = None

    async def aclose(self) -> None:
        if self.readers is not None:
            await self.readers.aclose()
        if self.client is not None:
            await self.client.aclose()


def build_commit_sources(
    policy: Policy, github_token: str | None, db: Database, clock: Clock, sinks: Sinks
) -> CommitSources:
    commits = policy.commits
    readers = WorkloadReaders(commits.kubernetes) if commits.rules else None
    rules = rule_resolver(commits.rules) if commits.rules else None
    client: httpx.AsyncClient | None = None
    github: GitHubRepos | None = None
    if commits.github is not None and github_token is not None:
        timeout = parse_duration(commits.github.timeout).total_seconds()
        client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        github = GitHubRepos(
            client, base_url=commits.github.base_url, token=github_token, clock=clock.now
        )
    resolver = CommitResolver(
        db,
        clock,
        workloads=readers,
        rules=rules,
        commits=github,
        chat=sinks.chat,
        people=policy.notifications.direct_messages.people,
    )
    return CommitSources(resolver, readers, client, github)


def read_promote_secrets(policy: Policy, environ: Mapping[str, str]) -> dict[str, str]:
    """Each environment's promote webhook secret (read at start: fail fast)."""
    secrets: dict[str, str] = {}
    for name, env in policy.environments.items():
        if env.promote is not None and env.promote.webhook is not None:
            path = f"environments.{name}.promote.webhook.secret"
            secrets[name] = read_secret(env.promote.webhook.secret, path, environ)
    return secrets
