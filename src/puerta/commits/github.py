"""GitHub's repository API, the parts Puerta needs around a rollout: who wrote a commit (to
message them), whether a live commit already contains another (a commit counts as live once a
later live commit includes it), a release for a commit that passed staging (which starts the
production pipeline) and ``repository_dispatch`` events.

Headers, token handling and rate limits follow :mod:`puerta.ci.github` (the Actions client):
GitHub answers a rate limit with 429, or with **403** plus ``retry-after`` (secondary limit) or
``x-ratelimit-remaining: 0`` and ``x-ratelimit-reset`` (primary limit); those become
:class:`RateLimited`, any other 403 is a refusal (:class:`PermanentError`).

Creating a release must happen exactly once per tag even when replicas race or a worker
retries after a timeout: GitHub refuses a second release for a tag with 422
``already_exists``, which this client turns into "done" with the existing release's link, but
only when it is the release of the same commit. The tag decides which commit a release is of:
GitHub ignores ``target_commitish`` when the tag exists already, and a release's
``target_commitish`` may be a branch name, so the tag is looked up through the git refs API
(``GET /git/ref/tags/{tag}``, an annotated tag peeled through ``GET /git/tags/{sha}``). A tag
(or release) of another commit is a :class:`PermanentError`, before anything is created.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import httpx

from puerta.ci import http
from puerta.commits.base import CommitInfo
from puerta.external import PermanentError, TransientError
from puerta.github_rest import (
    PROVIDER,
    GitHubClient,
    json_object,
    parse_instant,
    repo_path,
)

__all__ = [
    "MAX_CLIENT_PAYLOAD_KEYS",
    "MAX_EVENT_TYPE",
    "TAG_PAGES",
    "GitHubRepos",
    "ReleaseResult",
]

MAX_EVENT_TYPE = 100  # GitHub: "Must be 100 characters or fewer."
MAX_CLIENT_PAYLOAD_KEYS = 10  # GitHub: "The maximum number of top-level properties is 10."

_CONTAINED = frozenset({"identical", "ahead"})  # compare base...head: head includes base
_NOT_CONTAINED = frozenset({"behind", "diverged"})
_MAKE_LATEST = frozenset({"true", "false", "legacy"})
_RELEASE_PAGES = 3  # where a draft (not findable by tag) is looked for, 100 per page
TAG_PAGES = 10  # tags read to find the highest version, 100 per page
_PEEL_DEPTH = 4  # annotated tags of annotated tags, followed this deep
_FULL_SHA = 40
_HEX = frozenset("0123456789abcdef")
_WORKFLOW_SCOPE_HINT = (
    "GitHub also answers 404 when the target commit changes .github/workflows/ "
    "and the token lacks the workflow scope"
)

MakeLatest = bool | Literal["true", "false", "legacy"]


@dataclass(frozen=True, slots=True)
class ReleaseResult:
    """The release for a tag: ``created`` is False when it already existed (still done)."""

    created: bool
    url: str  # html_url
    id: int
    tag: str


# ---- pure helpers --------------------------------------------------------------------------


def _short(sha: str) -> str:
    """How messages name a commit: the first seven characters, like GitHub's web pages."""
    return sha[:7]


def _ref(value: str, what: str) -> str:
    """A SHA (or ref) for a URL path; an empty one would silently list commits instead."""
    value = value.strip()
    if not value:
        raise PermanentError(f"{PROVIDER}: {what} is empty")
    return quote(value, safe="")


def _text(mapping: Any, *keys: str) -> str | None:
    """``mapping[k1][k2]...`` as a non-empty string, else None (GitHub nests and nulls freely)."""
    value = mapping
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value if isinstance(value, str) and value else None


def _commit_info(repository: str, body: dict[str, Any]) -> CommitInfo:
    """A ``GET /commits/{sha}`` answer as :class:`CommitInfo`.

    The committer date is when the commit took its final form (after a rebase or a squash
    merge), so it is preferred over the author date. A noreply email is kept: it is still
    the author's, and the login next to it is what finds them in chat.
    """
    sha = _text(body, "sha")
    when = parse_instant(_text(body, "commit", "committer", "date")) or parse_instant(
        _text(body, "commit", "author", "date")
    )
    if sha is None or when is None:
        raise TransientError(f"{PROVIDER}: commit answer without sha or date for {repository}")
    login = _text(body, "author", "login")
    message = _text(body, "commit", "message") or ""
    return CommitInfo(
        repository=repository,
        sha=sha,
        url=_text(body, "html_url") or "",
        title=message.strip().splitlines()[0] if message.strip() else "",
        author_name=_text(body, "commit", "author", "name") or login or "unknown",
        author_email=_text(body, "commit", "author", "email"),
        author_login=login,
        committed_at=when,
    )


def _contained(body: dict[str, Any]) -> bool:
    """Whether a compare answer says head includes base.

    ``status`` decides; a word this code does not know falls back to ``behind_by`` (head
    includes base exactly when base has nothing head lacks). Neither: an outage, never a guess.
    """
    status = body.get("status")
    if status in _CONTAINED:
        return True
    if status in _NOT_CONTAINED:
        return False
    behind = body.get("behind_by")
    if isinstance(behind, int) and not isinstance(behind, bool):
        return behind == 0
    raise TransientError(f"{PROVIDER}: compare answered an unknown status {status!r}")


def _error_body(response: httpx.Response) -> dict[str, Any]:
    """An error answer's JSON object, or an empty one (the message is then the status)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _json_list(response: httpx.Response) -> list[Any]:
    """A list answer (releases, tags); anything else reads as empty, which ends the search."""
    try:
        body = response.json()
    except ValueError:
        return []
    return body if isinstance(body, list) else []


def _errors(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [item for item in body.get("errors") or [] if isinstance(item, dict)]


def _tag_taken(body: Mapping[str, Any]) -> bool:
    """GitHub's 422 for a second release of the same tag."""
    return any(
        item.get("resource") == "Release"
        and item.get("code") == "already_exists"
        and item.get("field") == "tag_name"
        for item in _errors(body)
    )


def _describe_errors(body: Mapping[str, Any]) -> str:
    """``Validation Failed: Release.target_commitish invalid``: the message and each detail."""
    details = []
    for item in _errors(body):
        if isinstance(item.get("message"), str):
            details.append(item["message"])
        else:
            where = ".".join(str(item[k]) for k in ("resource", "field") if item.get(k))
            details.append(f"{where} {item.get('code', 'invalid')}".strip())
    message = str(body.get("message") or "refused")
    return f"{message}: {'; '.join(details)}" if details else message


def _release_result(body: dict[str, Any], *, created: bool, tag: str) -> ReleaseResult:
    """A release object as :class:`ReleaseResult`; id and link are what later steps need."""
    release_id, url = body.get("id"), _text(body, "html_url")
    if not isinstance(release_id, int) or url is None:
        raise TransientError(f"{PROVIDER}: release answer for tag {tag} without id or html_url")
    return ReleaseResult(
        created=created, url=url, id=release_id, tag=_text(body, "tag_name") or tag
    )


def _make_latest(value: MakeLatest | None) -> str | None:
    """GitHub takes ``make_latest`` as the strings "true", "false" or "legacy"."""
    if value is None:
        return None
    text = ("true" if value else "false") if isinstance(value, bool) else value
    if text not in _MAKE_LATEST:
        raise PermanentError(f'{PROVIDER}: make_latest must be "true", "false" or "legacy"')
    return text


def _release_body(
    tag: str,
    target: str,
    *,
    name: str | None,
    body: str | None,
    generate_notes: bool,
    draft: bool,
    prerelease: bool,
    make_latest: MakeLatest | None,
) -> dict[str, Any]:
    """The create-release request; unset optional fields are left to GitHub's defaults."""
    if not tag.strip():
        raise PermanentError(f"{PROVIDER}: a release needs a tag name")
    if not target.strip():
        raise PermanentError(f"{PROVIDER}: a release needs a target commit")
    request: dict[str, Any] = {
        "tag_name": tag,
        "target_commitish": target,
        "draft": draft,
        "prerelease": prerelease,
        "generate_release_notes": generate_notes,
    }
    optional = {"name": name, "body": body, "make_latest": _make_latest(make_latest)}
    request.update({key: value for key, value in optional.items() if value is not None})
    return request


def _commit_sha(value: str) -> str | None:
    """``value`` as a full commit SHA (lower case), or None for a branch, a short SHA or
    anything else: only a full SHA can be compared with a tag's commit."""
    lowered = value.strip().lower()
    return lowered if len(lowered) == _FULL_SHA and set(lowered) <= _HEX else None


def _other_commit(repository: str, tag: str, target: str, found: str, where: str) -> str:
    """Why a release for ``tag`` cannot be taken as this commit's (a PermanentError text)."""
    return (
        f"{where} {tag} already exists in {repository} for commit {_short(found)}, not "
        f"{_short(target)}: it is another commit's release, so this promotion is not done; "
        "use a tag template that names the commit (e.g. {short_sha}) or remove that tag"
    )


def _git_object(body: dict[str, Any], tag: str) -> tuple[str, str]:
    """(type, sha) of a git ref's or tag object's ``object``; missing: an outage, not a
    verdict."""
    kind, sha = _text(body, "object", "type"), _text(body, "object", "sha")
    if kind is None or sha is None:
        raise TransientError(f"{PROVIDER}: the answer for tag {tag} has no object type or sha")
    return kind, sha


def _check_dispatch(event_type: str, client_payload: Mapping[str, Any]) -> None:
    """Refuse before sending what GitHub would refuse: the limits are documented."""
    if not event_type.strip():
        raise PermanentError(f"{PROVIDER}: repository_dispatch needs an event_type")
    if len(event_type) > MAX_EVENT_TYPE:
        raise PermanentError(
            f"{PROVIDER}: event_type has {len(event_type)} characters; "
            f"GitHub takes at most {MAX_EVENT_TYPE}"
        )
    if len(client_payload) > MAX_CLIENT_PAYLOAD_KEYS:
        raise PermanentError(
            f"{PROVIDER}: client_payload has {len(client_payload)} top-level keys; "
            f"GitHub takes at most {MAX_CLIENT_PAYLOAD_KEYS}"
        )


# ---- the client ----------------------------------------------------------------------------


class GitHubRepos(GitHubClient):
    """Commits, compares, releases and dispatches of GitHub repositories (``owner/repo``).

    Implements :class:`~puerta.commits.base.CommitSource`. ``base_url`` is
    ``https://api.github.com`` or an Enterprise ``https://host/api/v3``; ``clock`` (UTC
    instants) turns ``x-ratelimit-reset`` into a wait. The token only ever goes into the
    Authorization header: it is neither logged nor shown by ``repr``.
    """

    # ---- CommitSource ------------------------------------------------------------------

    async def commit(self, repository: str, sha: str) -> CommitInfo:
        """Look a commit up by full or short SHA; PermanentError when the repository has none.

        GitHub answers 422 for an unknown (or ambiguous) SHA and 404 for an unknown or hidden
        repository; both mean the image names a commit Puerta cannot attribute.
        """
        path = f"{repo_path(repository)}/commits/{_ref(sha, 'commit SHA')}"
        response = await self._call("GET", path, accept=(404, 422))
        if response.status_code in (404, 422):
            raise PermanentError(
                f"commit {_short(sha)} not found in {repository} "
                f"({PROVIDER}: {http.error_message(response)})",
                status=response.status_code,
            )
        return _commit_info(repository, json_object(response))

    async def contains(self, repository: str, commit: str, newer: str) -> bool:
        """Whether ``newer`` is ``commit`` or has it as an ancestor (compare commit...newer).

        The same string twice is answered without a call. Histories without a common
        ancestor (GitHub's 404 "No common ancestor") do not contain each other.
        """
        if commit.strip().lower() == newer.strip().lower() and commit.strip():
            return True
        basehead = f"{_ref(commit, 'commit SHA')}...{_ref(newer, 'newer commit SHA')}"
        path = f"{repo_path(repository)}/compare/{basehead}"
        # per_page=1: only the status is read, not the list of commits between the two
        response = await self._call("GET", path, params={"per_page": "1"}, accept=(404,))
        if response.status_code == 404:
            message = http.error_message(response)
            if "no common ancestor" in message.lower():
                return False
            raise PermanentError(
                f"cannot compare {_short(commit)} with {_short(newer)} in {repository}: "
                f"one of them (or the repository) was not found ({PROVIDER}: {message})",
                status=404,
            )
        return _contained(json_object(response))

    # ---- releases ----------------------------------------------------------------------

    async def create_release(
        self,
        repository: str,
        *,
        tag: str,
        target: str,
        name: str | None = None,
        body: str | None = None,
        generate_notes: bool = True,
        draft: bool = False,
        prerelease: bool = False,
        make_latest: MakeLatest | None = None,
    ) -> ReleaseResult:
        """Create the release ``tag`` at ``target`` (a SHA or branch), exactly once.

        A release that already exists for the tag (an earlier attempt whose answer was lost,
        another replica) is done: ``created=False`` with its link. When ``target`` is a full
        SHA, a tag or release of another commit is a PermanentError, checked before creating
        (GitHub would make the release at the existing tag, whatever ``target`` says). Other
        refusals are PermanentErrors with GitHub's details.
        """
        commit = _commit_sha(target)
        if commit is not None:
            found = await self.tag_commit(repository, tag)
            if found is not None and found != commit:
                raise PermanentError(_other_commit(repository, tag, commit, found, "tag"))
        request = _release_body(
            tag,
            target,
            name=name,
            body=body,
            generate_notes=generate_notes,
            draft=draft,
            prerelease=prerelease,
            make_latest=make_latest,
        )
        path = f"{repo_path(repository)}/releases"
        response = await self._call("POST", path, json=request, accept=(404, 422))
        if response.status_code == 422:
            return await self._refused_release(repository, tag, response, commit)
        if response.status_code == 404:
            raise PermanentError(
                f"cannot create release {tag} in {repository}: "
                f"{http.error_message(response)} ({_WORKFLOW_SCOPE_HINT})",
                status=404,
            )
        return _release_result(json_object(response), created=True, tag=tag)

    async def _refused_release(
        self, repository: str, tag: str, response: httpx.Response, commit: str | None
    ) -> ReleaseResult:
        """A 422: the existing release when the tag is taken (and, for a full-SHA target, is
        of that commit), else GitHub's reasons."""
        error = _error_body(response)
        if not _tag_taken(error):
            raise PermanentError(
                f"cannot create release {tag} in {repository}: "
                f"{PROVIDER}: HTTP 422: {_describe_errors(error)}",
                status=422,
            )
        existing = await self._existing_release(repository, tag)
        if commit is not None:
            await self._check_release_commit(repository, tag, existing, commit)
        return _release_result(existing, created=False, tag=tag)

    async def _check_release_commit(
        self, repository: str, tag: str, release: dict[str, Any], commit: str
    ) -> None:
        """The existing release must be of ``commit``: its tag's commit decides; a draft has
        no tag yet, so its ``target_commitish`` must be that SHA (a branch name cannot be
        checked, and is not taken as done)."""
        found = await self.tag_commit(repository, tag)
        if found is None:
            target = _text(release, "target_commitish") or ""
            found = _commit_sha(target)
            if found is None:
                raise PermanentError(
                    f"release {tag} already exists in {repository} with target {target!r} "
                    f"and no tag yet: Puerta cannot tell whether it is of {_short(commit)}, so "
                    "this promotion is not done; publish or delete that release"
                )
        if found != commit:
            raise PermanentError(_other_commit(repository, tag, commit, found, "release"))

    # ---- tags --------------------------------------------------------------------------

    async def tag_names(self, repository: str, *, max_pages: int = TAG_PAGES) -> list[str]:
        """The repository's tag names (``GET /tags``, 100 per page, in GitHub's order, which
        is not by version). More than ``max_pages`` pages: a PermanentError, since the
        highest version might be among those not read."""
        path = f"{repo_path(repository)}/tags"
        names: list[str] = []
        for page in range(1, max_pages + 1):
            params = {"per_page": "100", "page": str(page)}
            response = await self._call("GET", path, params=params)
            listed = _json_list(response)
            names.extend(
                item["name"]
                for item in listed
                if isinstance(item, dict) and isinstance(item.get("name"), str)
            )
            if "next" not in response.links and len(listed) < 100:
                return names
        raise PermanentError(
            f"{repository} has more than {max_pages * 100} tags; Puerta reads at most that many "
            "to find the highest version: use a tag template without {next_patch}, "
            "{next_minor} or {next_major} there"
        )

    async def tag_commit(self, repository: str, tag: str) -> str | None:
        """The commit SHA the tag points at (an annotated tag peeled), None when no such tag
        exists (``GET /git/ref/tags/{tag}`` answers 404; unlike ``/git/refs/``, it never
        answers other tags that start with the name)."""
        _ref(tag, "tag")  # refuses an empty one
        path = f"{repo_path(repository)}/git/ref/tags/{quote(tag.strip(), safe='/')}"
        response = await self._call("GET", path, accept=(404,))
        if response.status_code == 404:
            return None
        kind, sha = _git_object(json_object(response), tag)
        for _ in range(_PEEL_DEPTH):
            if kind != "tag":
                break
            tag_path = f"{repo_path(repository)}/git/tags/{_ref(sha, 'tag object SHA')}"
            kind, sha = _git_object(json_object(await self._call("GET", tag_path)), tag)
        if kind != "commit":
            raise PermanentError(f"tag {tag} in {repository} points at a {kind}, not a commit")
        return sha.lower()

    async def _existing_release(self, repository: str, tag: str) -> dict[str, Any]:
        """The release GitHub says exists for ``tag``.

        By tag first; a draft has no tag yet, so it is looked for in the first pages of the
        release list. Not found at all (a replica lagging behind the refusal): transient.
        """
        path = f"{repo_path(repository)}/releases"
        response = await self._call("GET", f"{path}/tags/{_ref(tag, 'tag')}", accept=(404,))
        if response.status_code != 404:
            return json_object(response)
        for page in range(1, _RELEASE_PAGES + 1):
            params = {"per_page": "100", "page": str(page)}
            listed = _json_list(await self._call("GET", path, params=params))
            for release in listed:
                if isinstance(release, dict) and release.get("tag_name") == tag:
                    return release
            if len(listed) < 100:
                break
        raise TransientError(
            f"{PROVIDER}: a release for tag {tag} exists in {repository} but was not found yet"
        )

    # ---- repository_dispatch -----------------------------------------------------------

    async def dispatch(
        self, repository: str, event_type: str, client_payload: dict[str, Any]
    ) -> None:
        """Send a ``repository_dispatch`` event (GitHub answers 204; workflows on the default
        branch with ``on: repository_dispatch`` and this type start)."""
        _check_dispatch(event_type, client_payload)
        path = f"{repo_path(repository)}/dispatches"
        body = {"event_type": event_type, "client_payload": client_payload}
        await self._call("POST", path, json=body)
