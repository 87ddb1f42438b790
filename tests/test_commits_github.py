"""GitHubRepos against a fake GitHub repository API served over real HTTP: commit lookup (full
and short SHAs), containment from compare, exactly-once releases (also under concurrency) that
are never another commit's, tags (every page, bounded; annotated tags peeled),
repository_dispatch, and GitHub's error and rate-limit answers mapped to Puerta's errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from fakes.base import Received
from fakes.github_repos import FakeGitHubRepos, fake_sha
from fakes.server import serve_in_thread
from puerta.clock import ManualClock
from puerta.commits.base import CommitSource
from puerta.commits.github import GitHubRepos, ReleaseResult
from puerta.external import PermanentError, RateLimited, TransientError

TOKEN = "ghp_test_9d2e71c0aa"
START = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)
REPO = "acme/podinfo"

ROOT = fake_sha("root")
FIX = fake_sha("fix")
FEATURE = fake_sha("feature")
HOTFIX = fake_sha("hotfix")
ORPHAN = fake_sha("orphan")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def fake(clock: ManualClock) -> FakeGitHubRepos:
    """main: ROOT -> FIX -> FEATURE; branch hotfix: ROOT -> HOTFIX; ORPHAN has no parents."""
    fake = FakeGitHubRepos(token=TOKEN, now=clock.now)
    fake.add_commit(REPO, ROOT, author_email="ana@acme.example", message="Initial import")
    fake.add_commit(
        REPO,
        FIX,
        author_email="12345+bo@users.noreply.github.com",
        author_name="Bo Builder",
        login="bo",
        message="Fix the readiness probe\n\nIt timed out under load.",
        date=datetime(2026, 3, 1, 12, 30, tzinfo=UTC),
        author_date=datetime(2026, 2, 27, 8, 0, tzinfo=UTC),
    )
    fake.add_commit(REPO, FEATURE, author_email="cy@acme.example", message="Add /metrics")
    fake.add_commit(REPO, HOTFIX, author_email="di@acme.example", parents=[ROOT], branch="hotfix")
    fake.add_commit(REPO, ORPHAN, author_email="ed@acme.example", parents=(), branch=None)
    return fake


@pytest.fixture
def base_url(fake: FakeGitHubRepos) -> Iterator[str]:
    with serve_in_thread(fake.app) as url:
        yield url


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


@pytest.fixture
def github(client: httpx.AsyncClient, base_url: str, clock: ManualClock) -> GitHubRepos:
    return GitHubRepos(client, base_url=base_url, token=TOKEN, clock=clock.now)


def sent(fake: FakeGitHubRepos, method: str, fragment: str) -> list[Received]:
    return fake.requests_to(method, fragment)


# ---- commit lookup -------------------------------------------------------------------------


def test_is_a_commit_source(github: GitHubRepos) -> None:
    source: CommitSource = github
    assert source is github


async def test_commit_by_full_sha(github: GitHubRepos, fake: FakeGitHubRepos) -> None:
    info = await github.commit(REPO, FEATURE)

    assert info.repository == REPO
    assert info.sha == FEATURE
    assert info.title == "Add /metrics"
    assert info.author_email == "cy@acme.example"
    assert info.author_name == "Dana Developer"
    assert info.author_login is None
    assert info.url == f"https://github.com/{REPO}/commit/{FEATURE}"
    request = sent(fake, "GET", f"/commits/{FEATURE}")[0]
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["accept"] == "application/vnd.github+json"
    assert request.headers["x-github-api-version"] == "2022-11-28"


async def test_commit_by_short_sha_returns_the_full_sha(github: GitHubRepos) -> None:
    info = await github.commit(REPO, FIX[:7])

    assert info.sha == FIX


async def test_noreply_email_is_kept_with_the_login(github: GitHubRepos) -> None:
    info = await github.commit(REPO, FIX)

    assert info.author_email == "12345+bo@users.noreply.github.com"
    assert info.author_login == "bo"
    assert info.author_name == "Bo Builder"
    assert info.title == "Fix the readiness probe"


async def test_committed_at_is_the_committer_date(github: GitHubRepos) -> None:
    info = await github.commit(REPO, FIX)

    assert info.committed_at == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


@pytest.mark.parametrize("status", [422, 404])
async def test_missing_commit_is_permanent(
    github: GitHubRepos, fake: FakeGitHubRepos, status: int
) -> None:
    fake.missing_commit_status = status

    with pytest.raises(PermanentError, match=f"commit abc1234 not found in {REPO}") as caught:
        await github.commit(REPO, "abc1234")

    assert caught.value.status == status


async def test_ambiguous_short_sha_is_not_found(github: GitHubRepos, fake: FakeGitHubRepos) -> None:
    twins = ("deadbee" + "0" * 33, "deadbee" + "1" * 33)
    for sha in twins:
        fake.add_commit(REPO, sha, author_email="tw@acme.example", branch=None, parents=[ROOT])

    with pytest.raises(PermanentError, match="commit deadbee not found"):
        await github.commit(REPO, "deadbee")
    assert (await github.commit(REPO, twins[1][:8])).sha == twins[1]


async def test_empty_sha_is_refused_without_a_request(
    github: GitHubRepos, fake: FakeGitHubRepos
) -> None:
    with pytest.raises(PermanentError, match="empty"):
        await github.commit(REPO, " ")

    assert fake.commit_lookups == 0


async def test_commit_lookups_are_counted(github: GitHubRepos, fake: FakeGitHubRepos) -> None:
    await github.commit(REPO, ROOT)
    await github.commit(REPO, ROOT[:10])

    assert fake.commit_lookups == 2


# ---- contains ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("commit", "newer", "expected"),
    [
        (FIX, FIX[:9], True),  # identical (a short and a full SHA of one commit)
        (ROOT, FEATURE, True),  # ahead: FEATURE descends from ROOT
        (FEATURE, ROOT, False),  # behind
        (FEATURE, HOTFIX, False),  # diverged
        (FEATURE, ORPHAN, False),  # no common ancestor
    ],
)
async def test_contains(github: GitHubRepos, commit: str, newer: str, expected: bool) -> None:
    assert await github.contains(REPO, commit, newer) is expected


async def test_contains_asks_compare_base_then_head(
    github: GitHubRepos, fake: FakeGitHubRepos
) -> None:
    await github.contains(REPO, ROOT, FEATURE)

    (request,) = sent(fake, "GET", "/compare/")
    assert request.path.endswith(f"/compare/{ROOT}...{FEATURE}")
    assert fake.compares == 1


async def test_contains_the_same_sha_needs_no_request(
    github: GitHubRepos, fake: FakeGitHubRepos
) -> None:
    assert await github.contains(REPO, FIX, FIX) is True
    assert fake.compares == 0


async def test_contains_with_an_unknown_commit_is_permanent(github: GitHubRepos) -> None:
    with pytest.raises(PermanentError, match=f"cannot compare 0000000 with {FEATURE[:7]}"):
        await github.contains(REPO, "0" * 40, FEATURE)


# ---- releases ------------------------------------------------------------------------------


async def test_create_release_then_again_is_done(
    github: GitHubRepos, fake: FakeGitHubRepos
) -> None:
    first = await github.create_release(REPO, tag="v1.2.0", target=FEATURE)
    again = await github.create_release(REPO, tag="v1.2.0", target=FEATURE)

    url = f"https://github.com/{REPO}/releases/tag/v1.2.0"
    assert first == ReleaseResult(created=True, url=url, id=first.id, tag="v1.2.0")
    assert again == ReleaseResult(created=False, url=url, id=first.id, tag="v1.2.0")
    assert len(fake.releases) == 1
    assert len(sent(fake, "GET", "/releases/tags/v1.2.0")) == 1


async def test_concurrent_create_release_makes_one(
    github: GitHubRepos, fake: FakeGitHubRepos
) -> None:
    results = await asyncio.gather(
        *(github.create_release(REPO, tag="v2.0.0", target=FEATURE) for _ in range(5))
    )

    assert len(fake.releases) == 1
    release = fake.releases[0]
    assert {result.url for result in results} == {release.html_url}
    assert {result.id for result in results} == {release.id}
    assert sorted(result.created for result in results) == [False] * 4 + [True]


async def test_release_request_and_answer_shape(
    github: GitHubRepos, fake: FakeGitHubRepos, clock: ManualClock
) -> None:
    await github.create_release(
        REPO,
        tag="v1.3.0-rc.1",
        target=FIX,
        name="podinfo 1.3.0 rc1",
        body="Passed staging.",
        generate_notes=False,
        prerelease=True,
        make_latest=False,
    )

    (request,) = sent(fake, "POST", "/releases")
    assert request.json() == {
        "tag_name": "v1.3.0-rc.1",
        "target_commitish": FIX,
        "name": "podinfo 1.3.0 rc1",
        "body": "Passed staging.",
        "draft": False,
        "prerelease": True,
        "generate_release_notes": False,
        "make_latest": "false",
    }
    answer = fake.release(REPO, "v1.3.0-rc.1")
    assert answer is not None
    shape = answer.as_json()
    assert shape["target_commitish"] == FIX
    assert shape["name"] == "podinfo 1.3.0 rc1"
    assert shape["body"] == "Passed staging."
    assert shape["published_at"] == START.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert shape["upload_url"].endswith("/assets{?name,label}")


async def test_optional_release_fields_are_left_out(
    github: GitHubRepos, fake: FakeGitHubRepos
) -> None:
    await github.create_release(REPO, tag="v1.0.0", target=ROOT)

    body: dict[str, Any] = sent(fake, "POST", "/releases")[0].json()
    assert body == {
        "tag_name": "v1.0.0",
        "target_commitish": ROOT,
        "draft": False,
        "prerelease": False,
        "generate_release_notes": True,
    }


async def test_generated_notes_list_commits_since_the_previous_release(
    github: GitHubRepos, fake: FakeGitHubRepos
) -> None:
    await github.create_release(REPO, tag="v1.0.0", target=ROOT)
    await github.create_release(REPO, tag="v1.1.0", target=FEATURE, body="Staging passed.")

    release = fake.release(REPO, "v1.1.0")
    assert release is not None
    assert release.body == (
        "Staging passed.\n\n"
        "## What's Changed\n"
        f"* Add /metrics by Dana Developer in {FEATURE[:7]}\n"
        f"* Fix the readiness probe by @bo in {FIX[:7]}\n\n"
        f"**Full Changelog**: https://github.com/{REPO}/compare/v1.0.0...v1.1.0"
    )
    assert release.name == "v1.1.0"


async def test_duplicate_draft_is_found_in_the_release_list(
    github: GitHubRepos, fake: FakeGitHubRepos
) -> None:
    first = await github.create_release(REPO, tag="v3.0.0", target=FEATURE, draft=True)
    again = await github.create_release(REPO, tag="v3.0.0", target=FEATURE, draft=True)

    assert again == ReleaseResult(created=False, url=first.url, id=first.id, tag="v3.0.0")
    assert len(sent(fake, "GET", "/releases/tags/")) == 1
    assert sent(fake, "GET", "/releases")[-1].query == {"per_page": "100", "page": "1"}


async def test_other_release_refusals_are_permanent_with_details(github: GitHubRepos) -> None:
    with pytest.raises(PermanentError) as caught:
        await github.create_release(REPO, tag="v9.9.9", target="no-such-branch")

    message = str(caught.value)
    assert caught.value.status == 422
    assert "Validation Failed" in message
    assert "Release.target_commitish invalid" in message
    assert "v9.9.9" in message


async def test_release_refusal_message_is_used(github: GitHubRepos, fake: FakeGitHubRepos) -> None:
    body = {
        "message": "Validation Failed",
        "errors": [{"resource": "Release", "code": "custom", "message": "tag_name is not valid"}],
    }
    fake.fail_next_on("/releases", status=422, body=body)

    with pytest.raises(PermanentError, match="Validation Failed: tag_name is not valid"):
        await github.create_release(REPO, tag="v 1", target=ROOT)


async def test_release_in_unknown_repository_explains_404(github: GitHubRepos) -> None:
    with pytest.raises(PermanentError, match="workflow scope") as caught:
        await github.create_release("acme/nope", tag="v1.0.0", target=ROOT)

    assert caught.value.status == 404


async def test_release_arguments_are_checked_before_sending(
    github: GitHubRepos, fake: FakeGitHubRepos
) -> None:
    with pytest.raises(PermanentError, match="tag"):
        await github.create_release(REPO, tag="", target=ROOT)
    with pytest.raises(PermanentError, match="make_latest"):
        await github.create_release(REPO, tag="v1", target=ROOT, make_latest="maybe")  # type: ignore[arg-type]

    assert sent(fake, "POST", "/releases") == []


async def test_a_release_of_another_commit_is_not_done(
    github: GitHubRepos, fake: FakeGitHubRepos
) -> None:
    await github.create_release(REPO, tag="v1.5.0", target=FIX)

    with pytest.raises(PermanentError) as caught:
        await github.create_release(REPO, tag="v1.5.0", target=FEATURE)

    assert str(caught.value).startswith(
        f"tag v1.5.0 already exists in {REPO} for commit {FIX[:7]}, not {FEATURE[:7]}"
    )
    assert [(r.tag_name, r.target_sha) for r in fake.releases] == [("v1.5.0", FIX)]


async def test_a_tag_of_another_commit_is_refused_before_creating(
    github: GitHubRepos, fake: FakeGitHubRepos
) -> None:
    fake.add_tag(REPO, "v1.6.0", FIX, annotated=True)

    with pytest.raises(PermanentError, match=f"for commit {FIX[:7]}, not {FEATURE[:7]}"):
        await github.create_release(REPO, tag="v1.6.0", target=FEATURE)

    assert sent(fake, "POST", "/releases") == []
    (ref,) = sent(fake, "GET", "/git/ref/tags/v1.6.0")
    assert sent(fake, "GET", "/git/tags/")[0].path.endswith(fake.tags[REPO]["v1.6.0"].object_sha)
    assert ref.path == f"/repos/{REPO}/git/ref/tags/v1.6.0"


async def test_a_tag_of_the_same_commit_gets_its_release(
    github: GitHubRepos, fake: FakeGitHubRepos
) -> None:
    fake.add_tag(REPO, "v1.7.0", FEATURE, annotated=True)

    made = await github.create_release(REPO, tag="v1.7.0", target=FEATURE.upper())

    assert made.created
    assert [(r.tag_name, r.target_sha) for r in fake.releases] == [("v1.7.0", FEATURE)]


async def test_a_draft_is_done_only_for_the_same_commit(
    github: GitHubRepos, fake: FakeGitHubRepos
) -> None:
    await github.create_release(REPO, tag="v4.0.0", target="main", draft=True)  # no tag yet

    with pytest.raises(PermanentError, match="with target 'main' and no tag yet"):
        await github.create_release(REPO, tag="v4.0.0", target=FEATURE)
    await github.create_release(REPO, tag="v4.1.0", target=FIX, draft=True)
    with pytest.raises(PermanentError, match=f"for commit {FIX[:7]}, not {FEATURE[:7]}"):
        await github.create_release(REPO, tag="v4.1.0", target=FEATURE)
    assert len(fake.releases) == 2


async def test_tag_commit_peels_annotated_tags(github: GitHubRepos, fake: FakeGitHubRepos) -> None:
    fake.add_tag(REPO, "v0.1.0", ROOT)
    fake.add_tag(REPO, "release/v0.2.0", FIX, annotated=True)

    assert await github.tag_commit(REPO, "v0.1.0") == ROOT
    assert await github.tag_commit(REPO, "release/v0.2.0") == FIX
    assert await github.tag_commit(REPO, "v0.1") is None  # a prefix is not the tag


async def test_tag_names_reads_every_page(github: GitHubRepos, fake: FakeGitHubRepos) -> None:
    names = {f"v1.{minor}.{patch}" for minor in range(25) for patch in range(10)}
    for name in sorted(names):
        fake.add_tag(REPO, name, ROOT)

    assert set(await github.tag_names(REPO)) == names
    pages = [r.query for r in sent(fake, "GET", f"/repos/{REPO}/tags")]
    assert pages == [{"per_page": "100", "page": str(page)} for page in (1, 2, 3)]


async def test_tag_names_refuses_to_guess_beyond_its_bound(
    github: GitHubRepos, fake: FakeGitHubRepos
) -> None:
    for patch in range(201):
        fake.add_tag(REPO, f"v2.0.{patch}", ROOT)

    with pytest.raises(PermanentError, match="more than 200 tags"):
        await github.tag_names(REPO, max_pages=2)
    assert len(sent(fake, "GET", f"/repos/{REPO}/tags")) == 2


# ---- repository_dispatch -------------------------------------------------------------------


async def test_dispatch_sends_the_event(github: GitHubRepos, fake: FakeGitHubRepos) -> None:
    payload = {"sha": FEATURE, "environment": "production"}

    await github.dispatch(REPO, "puerta-promote", payload)

    (request,) = sent(fake, "POST", "/dispatches")
    assert request.path == f"/repos/{REPO}/dispatches"
    assert request.json() == {"event_type": "puerta-promote", "client_payload": payload}
    assert fake.dispatches == [
        {"repo": REPO, "event_type": "puerta-promote", "client_payload": payload}
    ]


@pytest.mark.parametrize(
    ("event_type", "payload", "match"),
    [
        ("x" * 101, {}, "at most 100"),
        ("deploy", {f"k{i}": i for i in range(11)}, "at most 10"),
        ("", {}, "needs an event_type"),
    ],
)
async def test_dispatch_limits_are_checked_before_sending(
    github: GitHubRepos,
    fake: FakeGitHubRepos,
    event_type: str,
    payload: dict[str, Any],
    match: str,
) -> None:
    with pytest.raises(PermanentError, match=match):
        await github.dispatch(REPO, event_type, payload)

    assert fake.received == []


async def test_dispatch_at_the_limits_is_sent(github: GitHubRepos, fake: FakeGitHubRepos) -> None:
    await github.dispatch(REPO, "x" * 100, {f"k{i}": i for i in range(10)})

    assert len(fake.dispatches) == 1


# ---- errors and rate limits ----------------------------------------------------------------


async def test_bad_token_is_permanent_and_readable(
    client: httpx.AsyncClient, base_url: str
) -> None:
    github = GitHubRepos(client, base_url=base_url, token="ghp_wrong")

    with pytest.raises(PermanentError, match="HTTP 401: Bad credentials") as caught:
        await github.dispatch(REPO, "deploy", {})

    assert caught.value.status == 401
    assert "ghp_wrong" not in str(caught.value)


async def test_unknown_repository_is_permanent(github: GitHubRepos) -> None:
    with pytest.raises(PermanentError, match="HTTP 404: Not Found") as caught:
        await github.dispatch("acme/nope", "deploy", {})

    assert "/repos/acme/nope/dispatches" in str(caught.value)


async def test_outage_is_transient(github: GitHubRepos, fake: FakeGitHubRepos) -> None:
    fake.fail_next(status=503)

    with pytest.raises(TransientError) as caught:
        await github.commit(REPO, FIX)

    assert not isinstance(caught.value, PermanentError | RateLimited)
    assert caught.value.status == 503


@pytest.mark.parametrize("route", ["commit", "compare", "release", "dispatch"])
async def test_faults_are_injected_on_every_route(
    github: GitHubRepos, fake: FakeGitHubRepos, route: str
) -> None:
    fake.fail_next(status=502)
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "commit": lambda: github.commit(REPO, FIX),
        "compare": lambda: github.contains(REPO, ROOT, FIX),
        "release": lambda: github.create_release(REPO, tag="v1", target=FIX),
        "dispatch": lambda: github.dispatch(REPO, "deploy", {}),
    }

    with pytest.raises(TransientError, match="HTTP 502"):
        await calls[route]()
    assert fake.releases == [] and fake.dispatches == []


async def test_429_is_rate_limited(github: GitHubRepos, fake: FakeGitHubRepos) -> None:
    fake.fail_next(status=429, retry_after="17")

    with pytest.raises(RateLimited) as caught:
        await github.commit(REPO, FIX)

    assert caught.value.retry_after == 17.0


async def test_primary_rate_limit_waits_until_reset(
    github: GitHubRepos, fake: FakeGitHubRepos
) -> None:
    fake.primary_rate_limit_next(reset_in=600)

    with pytest.raises(RateLimited) as caught:
        await github.contains(REPO, ROOT, FIX)

    assert caught.value.status == 403
    assert caught.value.retry_after == pytest.approx(600.0)


async def test_secondary_rate_limit_uses_retry_after(
    github: GitHubRepos, fake: FakeGitHubRepos
) -> None:
    fake.secondary_rate_limit_next(retry_after=42)

    with pytest.raises(RateLimited, match="secondary rate limit") as caught:
        await github.create_release(REPO, tag="v1", target=FIX)

    assert caught.value.retry_after == 42.0
    assert fake.releases == []


async def test_plain_403_is_a_refusal(github: GitHubRepos, fake: FakeGitHubRepos) -> None:
    fake.fail_next_on("/dispatches", status=403, message="Resource not accessible by integration")

    with pytest.raises(PermanentError, match="Resource not accessible by integration"):
        await github.dispatch(REPO, "deploy", {})


async def test_enterprise_base_url(
    client: httpx.AsyncClient, base_url: str, fake: FakeGitHubRepos, clock: ManualClock
) -> None:
    github = GitHubRepos(client, base_url=f"{base_url}/api/v3/", token=TOKEN, clock=clock.now)

    info = await github.commit(REPO, FIX[:7])
    result = await github.create_release(REPO, tag="v1.0.0", target=FIX)

    assert info.sha == FIX and result.created
    assert sent(fake, "GET", "/api/v3/repos/")


def test_repr_hides_the_token(client: httpx.AsyncClient) -> None:
    github = GitHubRepos(client, token=TOKEN)

    assert TOKEN not in repr(github)
    assert "api.github.com" in repr(github)


def test_token_is_required(client: httpx.AsyncClient) -> None:
    with pytest.raises(ValueError, match="token"):
        GitHubRepos(client, token="")


def test_fake_dates_default_to_one_minute_apart(fake: FakeGitHubRepos) -> None:
    first = fake.commits[REPO][ROOT]
    third = fake.commits[REPO][FEATURE]

    assert third.date - first.date == timedelta(minutes=2)
