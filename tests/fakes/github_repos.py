"""A fake GitHub repository API: commits on a commit graph (full and short SHAs, branches),
compare (``identical``/``ahead``/``behind``/``diverged`` worked out from ancestry), releases
(one per tag, GitHub's 422 ``already_exists`` for a second, generated notes), tags (the
paginated ``/tags`` list with its ``Link`` header, the git refs API, annotated tag objects) and
``repository_dispatch``, with GitHub's error bodies and rate-limit answers.

Tags behave as on GitHub: publishing a release creates its tag at ``target_commitish`` (a
draft has none yet); a release for a tag that exists already is made at that tag's commit,
whatever ``target_commitish`` says ("unused if the Git tag already exists").

Build history with :meth:`FakeGitHubRepos.add_commit` (each commit moves a branch, ``main``
by default, so a linear history needs no ``parents``). Routes answer both at ``/``
(github.com) and under ``/api/v3`` (GitHub Enterprise Server). State is guarded by the
FakeBase lock: tests call helpers from their own thread while uvicorn serves concurrent
requests in another.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from fakes.base import FakeBase

DOCS = "https://docs.github.com/rest"
API = "https://api.github.com"
WEB = "https://github.com"
UPLOADS = "https://uploads.github.com"
SUPPORTED_API_VERSIONS = frozenset({"2022-11-28", "2026-03-10"})
HISTORY_START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # default commit dates count from here
MIN_SHORT_SHA = 7
MAX_EVENT_TYPE = 100
MAX_CLIENT_PAYLOAD_KEYS = 10
MAKE_LATEST = frozenset({"true", "false", "legacy"})
DEFAULT_BRANCH = "main"
SECONDARY_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)
RELEASE_AUTHOR = {
    "login": "puerta-bot[bot]",
    "id": 7_002,
    "type": "Bot",
    "html_url": f"{WEB}/apps/puerta-bot",
}


def fake_sha(label: str) -> str:
    """A deterministic full SHA for a readable label: tests name commits, not hashes."""
    return hashlib.sha1(label.encode(), usedforsecurity=False).hexdigest()


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _stamp(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    """GitHub's error body: ``message``, ``documentation_url``, the status as a string."""
    headers = extra.pop("headers", None)
    body = {"message": message, **extra, "documentation_url": DOCS, "status": str(status)}
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_failed(resource: str, code: str, field_name: str) -> JSONResponse:
    """GitHub's 422 ``Validation Failed`` with one ``errors`` entry."""
    errors = [{"resource": resource, "code": code, "field": field_name}]
    return _error(422, "Validation Failed", errors=errors)


def _user(login: str) -> dict[str, Any]:
    return {
        "login": login,
        "id": 50_000 + sum(login.encode()),
        "type": "User",
        "html_url": f"{WEB}/{login}",
    }


@dataclass(frozen=True)
class FakeCommit:
    """One commit. ``index`` is the order of :meth:`FakeGitHubRepos.add_commit` calls."""

    repo: str
    sha: str
    parents: tuple[str, ...]
    author_email: str
    author_name: str
    login: str | None
    message: str
    date: datetime  # committer date
    author_date: datetime
    index: int

    @property
    def title(self) -> str:
        return self.message.strip().splitlines()[0] if self.message.strip() else ""

    @property
    def html_url(self) -> str:
        return f"{WEB}/{self.repo}/commit/{self.sha}"

    def as_json(self) -> dict[str, Any]:
        """The ``GET /repos/{o}/{r}/commits/{sha}`` object (without file diffs)."""
        api = f"{API}/repos/{self.repo}"
        return {
            "sha": self.sha,
            "node_id": f"C_kwDO{self.sha[:12]}",
            "url": f"{api}/commits/{self.sha}",
            "html_url": self.html_url,
            "comments_url": f"{api}/commits/{self.sha}/comments",
            "commit": {
                "author": {
                    "name": self.author_name,
                    "email": self.author_email,
                    "date": _stamp(self.author_date),
                },
                "committer": {
                    "name": "GitHub",
                    "email": "noreply@github.com",
                    "date": _stamp(self.date),
                },
                "message": self.message,
                "tree": {"sha": fake_sha(f"tree:{self.sha}"), "url": f"{api}/git/trees/x"},
                "url": f"{api}/git/commits/{self.sha}",
                "comment_count": 0,
                "verification": {"verified": False, "reason": "unsigned", "signature": None},
            },
            "author": _user(self.login) if self.login else None,
            "committer": _user("web-flow"),
            "parents": [
                {"sha": p, "url": f"{api}/commits/{p}", "html_url": f"{WEB}/{self.repo}/commit/{p}"}
                for p in self.parents
            ],
            "stats": {"total": 0, "additions": 0, "deletions": 0},
            "files": [],
        }


@dataclass
class FakeRelease:
    """One release: ``target_commitish`` as sent, ``target_sha`` what it resolved to."""

    id: int
    repo: str
    tag_name: str
    target_commitish: str
    target_sha: str
    name: str | None
    body: str | None
    draft: bool
    prerelease: bool
    make_latest: str
    generate_release_notes: bool
    created_at: datetime

    @property
    def html_url(self) -> str:
        return f"{WEB}/{self.repo}/releases/tag/{self.tag_name}"

    def as_json(self) -> dict[str, Any]:
        api = f"{API}/repos/{self.repo}"
        return {
            "id": self.id,
            "node_id": f"RE_kwDO{self.id}",
            "url": f"{api}/releases/{self.id}",
            "html_url": self.html_url,
            "assets_url": f"{api}/releases/{self.id}/assets",
            "upload_url": f"{UPLOADS}/repos/{self.repo}/releases/{self.id}/assets{{?name,label}}",
            "tarball_url": f"{api}/tarball/{self.tag_name}",
            "zipball_url": f"{api}/zipball/{self.tag_name}",
            "tag_name": self.tag_name,
            "target_commitish": self.target_commitish,
            "name": self.name,
            "body": self.body,
            "draft": self.draft,
            "prerelease": self.prerelease,
            "created_at": _stamp(self.created_at),
            "published_at": None if self.draft else _stamp(self.created_at),
            "author": RELEASE_AUTHOR,
            "assets": [],
        }


@dataclass(frozen=True)
class FakeTag:
    """A tag: lightweight (the ref points at the commit) or annotated (the ref points at a tag
    object, ``object_sha``, which points at the commit)."""

    repo: str
    name: str
    commit_sha: str
    object_sha: str | None = None  # annotated: the tag object's SHA
    message: str = ""

    def ref_json(self) -> dict[str, Any]:
        """``GET /repos/{o}/{r}/git/ref/tags/{name}``."""
        api = f"{API}/repos/{self.repo}/git"
        if self.object_sha is None:
            sha, kind, url = self.commit_sha, "commit", f"{api}/commits/{self.commit_sha}"
        else:
            sha, kind, url = self.object_sha, "tag", f"{api}/tags/{self.object_sha}"
        return {
            "ref": f"refs/tags/{self.name}",
            "node_id": f"REF_kwDO{fake_sha(self.name)[:12]}",
            "url": f"{api}/refs/tags/{self.name}",
            "object": {"sha": sha, "type": kind, "url": url},
        }

    def object_json(self) -> dict[str, Any]:
        """``GET /repos/{o}/{r}/git/tags/{object_sha}`` (annotated tags only)."""
        api = f"{API}/repos/{self.repo}/git"
        return {
            "node_id": f"TAG_kwDO{(self.object_sha or '')[:12]}",
            "tag": self.name,
            "sha": self.object_sha,
            "url": f"{api}/tags/{self.object_sha}",
            "message": self.message,
            "tagger": {
                "name": "Rel Eng",
                "email": "releng@acme.example",
                "date": "2026-03-02T09:00:00Z",
            },
            "object": {
                "sha": self.commit_sha,
                "type": "commit",
                "url": f"{api}/commits/{self.commit_sha}",
            },
            "verification": {"verified": False, "reason": "unsigned", "signature": None},
        }

    def list_json(self) -> dict[str, Any]:
        """One item of ``GET /repos/{o}/{r}/tags``."""
        api = f"{API}/repos/{self.repo}"
        return {
            "name": self.name,
            "commit": {"sha": self.commit_sha, "url": f"{api}/commits/{self.commit_sha}"},
            "zipball_url": f"{api}/zipball/refs/tags/{self.name}",
            "tarball_url": f"{api}/tarball/refs/tags/{self.name}",
            "node_id": f"REF_kwDO{fake_sha(self.name)[:12]}",
        }


@dataclass
class _Answer:
    """A canned answer armed for the next requests (rate limits, per-route faults)."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    remaining: int
    path_fragment: str = ""


@dataclass
class FakeGitHubRepos(FakeBase):
    """GitHub's repository API as far as Puerta uses it. See the module docstring.

    Test-facing state: ``releases`` (in creation order), ``tags`` (repo -> name -> tag),
    ``dispatches`` (``{"repo", "event_type", "client_payload"}``), ``commit_lookups`` and
    ``compares`` (requests that reached those routes), ``missing_commit_status`` (422 like
    github.com, or 404).
    """

    token: str = "ghp_fake_repos_0123456789"
    now: Callable[[], datetime] = _utcnow
    missing_commit_status: int = 422
    commits: dict[str, dict[str, FakeCommit]] = field(default_factory=dict)  # repo -> sha -> c
    branches: dict[str, dict[str, str]] = field(default_factory=dict)  # repo -> branch -> sha
    releases: list[FakeRelease] = field(default_factory=list)
    tags: dict[str, dict[str, FakeTag]] = field(default_factory=dict)  # repo -> name -> tag
    dispatches: list[dict[str, Any]] = field(default_factory=list)
    commit_lookups: int = 0
    compares: int = 0
    _answers: list[_Answer] = field(default_factory=list)
    _next_release_id: int = 150_000_001
    app: Starlette = field(init=False)

    def __post_init__(self) -> None:
        self.app = Starlette(routes=[*self._routes(), Mount("/api/v3", routes=self._routes())])

    # ---- set-up helpers for tests ------------------------------------------------------

    def add_repo(self, repo: str) -> None:
        """Make ``repo`` exist without commits (releases and dispatches need a repository)."""
        with self._lock:
            self.commits.setdefault(repo, {})
            self.branches.setdefault(repo, {})

    def add_commit(
        self,
        repo: str,
        sha: str,
        *,
        author_email: str,
        author_name: str = "Dana Developer",
        login: str | None = None,
        message: str = "Change things",
        parents: Iterable[str] | None = None,
        date: datetime | None = None,
        author_date: datetime | None = None,
        branch: str | None = DEFAULT_BRANCH,
    ) -> FakeCommit:
        """Add a commit (a full 40-hex SHA; :func:`fake_sha` makes one from a label).

        ``parents``: full SHAs already in ``repo``; None means the tip of ``branch`` (a
        linear history), ``()`` a root commit. ``date`` is the committer date (default: one
        minute per commit after ``HISTORY_START``), ``author_date`` defaults to it. The
        commit becomes the tip of ``branch`` (None: no branch moves).
        """
        sha = sha.lower()
        if len(sha) != 40 or any(c not in "0123456789abcdef" for c in sha):
            raise ValueError(f"a fake commit needs a full 40-hex SHA, got {sha!r}")
        with self._lock:
            known = self.commits.setdefault(repo, {})
            heads = self.branches.setdefault(repo, {})
            if sha in known:
                raise ValueError(f"commit {sha} already exists in {repo}")
            if parents is None:
                tip = heads.get(branch) if branch else None
                parents = (tip,) if tip else ()
            parent_shas = tuple(p.lower() for p in parents)
            missing = [p for p in parent_shas if p not in known]
            if missing:
                raise ValueError(f"parents {missing} are not commits of {repo}")
            index = sum(len(c) for c in self.commits.values())
            when = date or HISTORY_START + timedelta(minutes=index)
            commit = FakeCommit(
                repo=repo,
                sha=sha,
                parents=parent_shas,
                author_email=author_email,
                author_name=author_name,
                login=login,
                message=message,
                date=when,
                author_date=author_date or when,
                index=index,
            )
            known[sha] = commit
            if branch:
                heads[branch] = sha
        return commit

    def set_branch(self, repo: str, branch: str, sha: str) -> None:
        """Point ``branch`` at an existing commit."""
        with self._lock:
            if sha.lower() not in self.commits.get(repo, {}):
                raise ValueError(f"commit {sha} is not in {repo}")
            self.branches.setdefault(repo, {})[branch] = sha.lower()

    def release(self, repo: str, tag: str) -> FakeRelease | None:
        """The release of ``tag`` in ``repo``, if one exists."""
        with self._lock:
            return self._release_locked(repo, tag)

    def add_tag(self, repo: str, name: str, sha: str, *, annotated: bool = False) -> FakeTag:
        """Tag an existing commit (a ``git push`` of a tag, no release): lightweight, or
        ``annotated`` (the ref then points at a tag object)."""
        with self._lock:
            if sha.lower() not in self.commits.get(repo, {}):
                raise ValueError(f"commit {sha} is not in {repo}")
            if name in self.tags.get(repo, {}):
                raise ValueError(f"tag {name} already exists in {repo}")
            tag = FakeTag(
                repo=repo,
                name=name,
                commit_sha=sha.lower(),
                object_sha=fake_sha(f"tag object {repo} {name}") if annotated else None,
                message=f"Release {name}" if annotated else "",
            )
            self.tags.setdefault(repo, {})[name] = tag
        return tag

    def secondary_rate_limit_next(
        self, *, retry_after: int | None = 60, status: int = 403, count: int = 1
    ) -> None:
        """GitHub's secondary limit: 403 (or 429) with its message and ``retry-after``."""
        headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
        self._arm(_Answer(status, {"message": SECONDARY_LIMIT_MESSAGE}, headers, count))

    def primary_rate_limit_next(
        self, *, reset_in: int = 600, status: int = 403, count: int = 1
    ) -> None:
        """GitHub's primary limit: ``x-ratelimit-remaining: 0`` and the reset epoch."""
        headers = {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-used": "5000",
            "x-ratelimit-reset": str(int(self.now().timestamp()) + reset_in),
            "x-ratelimit-resource": "core",
        }
        message = "API rate limit exceeded for installation ID 4242."
        self._arm(_Answer(status, {"message": message}, headers, count))

    def fail_next_on(
        self,
        path_fragment: str,
        *,
        status: int = 503,
        message: str = "",
        body: dict[str, Any] | None = None,
        count: int = 1,
    ) -> None:
        """The next ``count`` requests whose path contains ``path_fragment`` get ``status``
        (with GitHub's error body, or ``body`` as given)."""
        answer = body if body is not None else {"message": message or f"injected HTTP {status}"}
        self._arm(_Answer(status, answer, {}, count, path_fragment))

    # ---- routing -----------------------------------------------------------------------

    def _routes(self) -> list[BaseRoute]:
        base = "/repos/{owner}/{repo}"
        routes: list[tuple[str, Callable[[Request], Awaitable[Response]], str]] = [
            (f"{base}/commits/{{ref:path}}", self._commit, "GET"),
            (f"{base}/compare/{{basehead:path}}", self._compare, "GET"),
            (f"{base}/releases", self._create_release, "POST"),
            (f"{base}/releases", self._list_releases, "GET"),
            (f"{base}/releases/tags/{{tag:path}}", self._release_by_tag, "GET"),
            (f"{base}/tags", self._list_tags, "GET"),
            (f"{base}/git/ref/{{ref:path}}", self._git_ref, "GET"),
            (f"{base}/git/tags/{{sha}}", self._git_tag, "GET"),
            (f"{base}/dispatches", self._dispatch, "POST"),
        ]
        return [Route(path, self._guard(handler), methods=[m]) for path, handler, m in routes]

    def _guard(
        self, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """Log, then injected faults, armed answers, API version and token, then the route."""

        async def endpoint(request: Request) -> Response:
            await self.record(request)
            fault = self.injected()
            if fault is not None:
                return await self.fault_response(fault)
            refused = self._armed(request.url.path) or self._refuse(request)
            if refused is not None:
                return refused
            if self._repo(request) not in self._repos():
                return _error(404, "Not Found")
            response = await handler(request)
            response.headers.update(self._rate_headers())
            return response

        return endpoint

    def _arm(self, answer: _Answer) -> None:
        with self._lock:
            self._answers.append(answer)

    def _armed(self, path: str) -> Response | None:
        with self._lock:
            for answer in self._answers:
                if answer.path_fragment in path:
                    answer.remaining -= 1
                    if answer.remaining <= 0:
                        self._answers.remove(answer)
                    body = {"documentation_url": DOCS, **answer.body}
                    return JSONResponse(body, answer.status, headers=answer.headers or None)
        return None

    def _refuse(self, request: Request) -> Response | None:
        """GitHub's checks before any route: API version, then the token."""
        version = request.headers.get("x-github-api-version")
        if version is not None and version not in SUPPORTED_API_VERSIONS:
            return _error(400, f"API version '{version}' is not supported.")
        authorization = request.headers.get("authorization", "")
        if not authorization:
            return _error(401, "Requires authentication")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() not in ("bearer", "token") or token != self.token:
            return _error(401, "Bad credentials")
        return None

    def _rate_headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4999",
            "x-ratelimit-used": "1",
            "x-ratelimit-reset": str(int(self.now().timestamp()) + 3600),
            "x-ratelimit-resource": "core",
        }

    @staticmethod
    def _repo(request: Request) -> str:
        return f"{request.path_params['owner']}/{request.path_params['repo']}"

    def _repos(self) -> set[str]:
        with self._lock:
            return set(self.commits)

    # ---- commit graph (callers hold the lock) ------------------------------------------

    def _resolve_locked(self, repo: str, ref: str) -> FakeCommit | None:
        """A full SHA, a branch, or a unique hex prefix of at least seven characters."""
        known = self.commits.get(repo, {})
        lowered = ref.lower()
        if lowered in known:
            return known[lowered]
        branch = self.branches.get(repo, {}).get(ref)
        if branch is not None:
            return known[branch]
        if len(lowered) < MIN_SHORT_SHA:
            return None
        matches = [commit for sha, commit in known.items() if sha.startswith(lowered)]
        return matches[0] if len(matches) == 1 else None  # ambiguous: not found, like GitHub

    def _ancestors_locked(self, commit: FakeCommit) -> set[str]:
        """``commit`` and everything reachable through its parents."""
        known = self.commits[commit.repo]
        seen: set[str] = set()
        todo = [commit.sha]
        while todo:
            sha = todo.pop()
            if sha not in seen:
                seen.add(sha)
                todo.extend(known[sha].parents)
        return seen

    def _ordered_locked(self, repo: str, shas: Iterable[str]) -> list[FakeCommit]:
        """Commits oldest first (creation order is a topological order)."""
        return sorted((self.commits[repo][sha] for sha in shas), key=lambda c: c.index)

    def _release_locked(self, repo: str, tag: str) -> FakeRelease | None:
        return next((r for r in self.releases if r.repo == repo and r.tag_name == tag), None)

    # ---- commits and compare -----------------------------------------------------------

    async def _commit(self, request: Request) -> Response:
        repo, ref = self._repo(request), request.path_params["ref"]
        with self._lock:
            self.commit_lookups += 1
            commit = self._resolve_locked(repo, ref)
        if commit is None:
            if self.missing_commit_status == 404:
                return _error(404, "Not Found")
            return _error(self.missing_commit_status, f"No commit found for SHA: {ref}")
        return JSONResponse(commit.as_json())

    async def _compare(self, request: Request) -> Response:
        repo, basehead = self._repo(request), request.path_params["basehead"]
        base_ref, sep, head_ref = basehead.partition("...")
        with self._lock:
            self.compares += 1
            base = self._resolve_locked(repo, base_ref) if sep else None
            head = self._resolve_locked(repo, head_ref) if sep else None
            if base is None or head is None:
                return _error(404, "Not Found")
            body = self._comparison_locked(repo, base, head, basehead)
        if body is None:
            return _error(404, f"No common ancestor between {base_ref} and {head_ref}.")
        return JSONResponse(_paginate_commits(body, request))

    def _comparison_locked(
        self, repo: str, base: FakeCommit, head: FakeCommit, basehead: str
    ) -> dict[str, Any] | None:
        """GitHub's compare object, or None when the histories share no commit."""
        base_set, head_set = self._ancestors_locked(base), self._ancestors_locked(head)
        common = base_set & head_set
        if not common:
            return None
        merge_base = max((self.commits[repo][sha] for sha in common), key=lambda c: c.index)
        ahead = self._ordered_locked(repo, head_set - base_set)
        behind_by = len(base_set - head_set)
        status = _status(len(ahead), behind_by)
        return {
            "url": f"{API}/repos/{repo}/compare/{basehead}",
            "html_url": f"{WEB}/{repo}/compare/{basehead}",
            "permalink_url": f"{WEB}/{repo}/compare/{base.sha}...{head.sha}",
            "diff_url": f"{WEB}/{repo}/compare/{basehead}.diff",
            "patch_url": f"{WEB}/{repo}/compare/{basehead}.patch",
            "base_commit": base.as_json(),
            "merge_base_commit": merge_base.as_json(),
            "status": status,
            "ahead_by": len(ahead),
            "behind_by": behind_by,
            "total_commits": len(ahead),
            "commits": [commit.as_json() for commit in ahead],
            "files": [],
        }

    # ---- releases ----------------------------------------------------------------------

    async def _create_release(self, request: Request) -> Response:
        body = await _json_body(request)
        if body is None:
            return _error(400, "Problems parsing JSON")
        problem = _check_release(body)
        if problem is not None:
            return problem
        repo = self._repo(request)
        with self._lock:
            if self._release_locked(repo, body["tag_name"]) is not None:
                return _validation_failed("Release", "already_exists", "tag_name")
            target = str(body.get("target_commitish") or DEFAULT_BRANCH)
            existing = self.tags.get(repo, {}).get(body["tag_name"])
            if existing is not None:  # GitHub: target_commitish is unused then
                commit: FakeCommit | None = self.commits[repo][existing.commit_sha]
            else:
                commit = self._resolve_locked(repo, target)
            if commit is None:
                return _validation_failed("Release", "invalid", "target_commitish")
            release = self._new_release_locked(repo, body, target, commit)
            if existing is None and not release.draft:
                tag = FakeTag(repo=repo, name=release.tag_name, commit_sha=commit.sha)
                self.tags.setdefault(repo, {})[release.tag_name] = tag
        return JSONResponse(release.as_json(), status_code=201)

    def _new_release_locked(
        self, repo: str, body: dict[str, Any], target: str, commit: FakeCommit
    ) -> FakeRelease:
        """Store a release; with ``generate_release_notes`` the notes follow ``body``."""
        generate = bool(body.get("generate_release_notes", False))
        text = body.get("body")
        if generate:
            notes = self._notes_locked(repo, body["tag_name"], commit)
            text = f"{text}\n\n{notes}" if text else notes
        name = body.get("name") or (body["tag_name"] if generate else None)
        release = FakeRelease(
            id=self._next_release_id,
            repo=repo,
            tag_name=body["tag_name"],
            target_commitish=target,
            target_sha=commit.sha,
            name=name,
            body=text,
            draft=bool(body.get("draft", False)),
            prerelease=bool(body.get("prerelease", False)),
            make_latest=str(body.get("make_latest", "true")),
            generate_release_notes=generate,
            created_at=self.now(),
        )
        self._next_release_id += 1
        self.releases.append(release)
        return release

    def _notes_locked(self, repo: str, tag: str, target: FakeCommit) -> str:
        """Generated notes: the titles of the commits since the previous published release."""
        previous = next(
            (r for r in reversed(self.releases) if r.repo == repo and not r.draft), None
        )
        shas = self._ancestors_locked(target)
        if previous is not None:
            shas -= self._ancestors_locked(self.commits[repo][previous.target_sha])
        lines = [
            f"* {c.title} by {'@' + c.login if c.login else c.author_name} in {c.sha[:7]}"
            for c in reversed(self._ordered_locked(repo, shas))
        ]
        changes = "\n".join(lines) or "No changes."
        compare = (
            f"{WEB}/{repo}/compare/{previous.tag_name}...{tag}"
            if previous is not None
            else f"{WEB}/{repo}/commits/{tag}"
        )
        return f"## What's Changed\n{changes}\n\n**Full Changelog**: {compare}"

    async def _release_by_tag(self, request: Request) -> Response:
        """A published release by tag; drafts have no tag yet, so they are not found here."""
        with self._lock:
            release = self._release_locked(self._repo(request), request.path_params["tag"])
            found = release.as_json() if release is not None and not release.draft else None
        return JSONResponse(found) if found is not None else _error(404, "Not Found")

    async def _list_releases(self, request: Request) -> Response:
        """Releases newest first, drafts included, paginated like GitHub."""
        try:
            per_page = min(int(request.query_params.get("per_page", "30")), 100)
            page = max(int(request.query_params.get("page", "1")), 1)
        except ValueError:
            return _error(422, "Validation Failed")
        with self._lock:
            mine = [r.as_json() for r in reversed(self.releases) if r.repo == self._repo(request)]
        return JSONResponse(mine[(page - 1) * per_page : page * per_page])

    # ---- tags --------------------------------------------------------------------------

    async def _list_tags(self, request: Request) -> Response:
        """Tags by name, descending (GitHub's order is not by version either), paginated with
        ``per_page`` (default 30, at most 100) and a ``Link`` header, like GitHub."""
        try:
            per_page = max(1, min(int(request.query_params.get("per_page", "30")), 100))
            page = max(int(request.query_params.get("page", "1")), 1)
        except ValueError:
            return _error(422, "Validation Failed")
        repo = self._repo(request)
        with self._lock:
            mine = sorted(self.tags.get(repo, {}).values(), key=lambda t: t.name, reverse=True)
        last = max(1, -(-len(mine) // per_page))
        links = []
        url = f"{API}/repositories/{fake_sha(repo)[:8]}/tags?per_page={per_page}"
        if page < last:
            links += [f'<{url}&page={page + 1}>; rel="next"', f'<{url}&page={last}>; rel="last"']
        if page > 1:
            links += [f'<{url}&page={page - 1}>; rel="prev"', f'<{url}&page=1>; rel="first"']
        headers = {"link": ", ".join(links)} if links else None
        items = [t.list_json() for t in mine[(page - 1) * per_page : page * per_page]]
        return JSONResponse(items, headers=headers)

    async def _git_ref(self, request: Request) -> Response:
        """``GET /git/ref/{ref}``: exactly one tag (or branch) ref, else 404 (unlike
        ``/git/refs/``, never the refs that start with the name)."""
        repo, ref = self._repo(request), request.path_params["ref"]
        kind, _, name = ref.partition("/")
        with self._lock:
            if kind == "tags" and name in self.tags.get(repo, {}):
                return JSONResponse(self.tags[repo][name].ref_json())
            branch = self.branches.get(repo, {}).get(name) if kind == "heads" else None
        if branch is None:
            return _error(404, "Not Found")
        api = f"{API}/repos/{repo}/git"
        return JSONResponse(
            {
                "ref": f"refs/heads/{name}",
                "node_id": f"REF_kwDO{fake_sha(name)[:12]}",
                "url": f"{api}/refs/heads/{name}",
                "object": {"sha": branch, "type": "commit", "url": f"{api}/commits/{branch}"},
            }
        )

    async def _git_tag(self, request: Request) -> Response:
        """``GET /git/tags/{sha}``: an annotated tag's object."""
        repo, sha = self._repo(request), request.path_params["sha"].lower()
        with self._lock:
            found = next((t for t in self.tags.get(repo, {}).values() if t.object_sha == sha), None)
        return JSONResponse(found.object_json()) if found else _error(404, "Not Found")

    # ---- repository_dispatch -----------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        body = await _json_body(request)
        if body is None:
            return _error(400, "Problems parsing JSON")
        problem = _check_dispatch(body)
        if problem is not None:
            return _error(422, problem)
        record = {
            "repo": self._repo(request),
            "event_type": body["event_type"],
            "client_payload": body.get("client_payload") or {},
        }
        with self._lock:
            self.dispatches.append(record)
        return Response(status_code=204)


# ---- request checks (GitHub's answers to bad bodies) ---------------------------------------


async def _json_body(request: Request) -> dict[str, Any] | None:
    try:
        body = json.loads(await request.body())
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _invalid(field_name: str, problem: str) -> JSONResponse:
    return _error(422, f"Invalid request.\n\nFor 'properties/{field_name}', {problem}")


def _check_release(body: dict[str, Any]) -> Response | None:
    """GitHub's refusals of a create-release body, or None when it is acceptable."""
    tag = body.get("tag_name")
    if not isinstance(tag, str) or not tag:
        return _validation_failed("Release", "missing_field", "tag_name")
    for key in ("draft", "prerelease", "generate_release_notes"):
        if key in body and not isinstance(body[key], bool):
            return _invalid(key, f"{json.dumps(body[key])} is not a boolean.")
    for key in ("name", "body", "target_commitish"):
        if body.get(key) is not None and not isinstance(body[key], str):
            return _invalid(key, f"{json.dumps(body[key])} is not a string.")
    if "make_latest" in body and body["make_latest"] not in MAKE_LATEST:
        return _invalid("make_latest", f"{json.dumps(body['make_latest'])} is not a member.")
    return None


def _check_dispatch(body: dict[str, Any]) -> str | None:
    """GitHub's 422 messages for a dispatch body, or None when it is acceptable."""
    for key in body:
        if key not in ("event_type", "client_payload"):
            return f'Invalid request.\n\n"{key}" is not a permitted key.'
    event_type = body.get("event_type")
    if not isinstance(event_type, str) or not event_type:
        return 'Invalid request.\n\n"event_type" wasn\'t supplied.'
    if len(event_type) > MAX_EVENT_TYPE:
        return (
            "Invalid request.\n\nFor 'properties/event_type', "
            f"is too long (maximum is {MAX_EVENT_TYPE} characters)."
        )
    payload = body.get("client_payload", {})
    if not isinstance(payload, dict):
        return "Invalid request.\n\nFor 'properties/client_payload', it is not an object."
    if len(payload) > MAX_CLIENT_PAYLOAD_KEYS:
        return (
            "Invalid request.\n\nFor 'properties/client_payload', "
            f"more than {MAX_CLIENT_PAYLOAD_KEYS} properties."
        )
    return None


def _status(ahead_by: int, behind_by: int) -> str:
    """Compare's ``status`` from the two counts."""
    if ahead_by == 0 and behind_by == 0:
        return "identical"
    if behind_by == 0:
        return "ahead"
    if ahead_by == 0:
        return "behind"
    return "diverged"


def _paginate_commits(body: dict[str, Any], request: Request) -> dict[str, Any]:
    """Compare paginates its ``commits`` (default 250 per page, like GitHub)."""
    try:
        per_page = max(1, min(int(request.query_params.get("per_page", "250")), 250))
        page = max(int(request.query_params.get("page", "1")), 1)
    except ValueError:
        return body
    commits = body["commits"][(page - 1) * per_page : page * per_page]
    return {**body, "commits": commits}
