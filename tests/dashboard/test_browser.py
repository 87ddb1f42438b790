"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

Puerta runs on a real socket (uvicorn in a thread) beside the test client that plays Flagger;
the two apps share the database and the manual clock, as two replicas would. The pages are
never reloaded by the tests while hooks arrive: what changes on screen comes from the page's
own polling, and Playwright's auto-waiting ``expect`` waits for it (no sleeps). Every page
visited is saved as ``artifacts/screenshots/<test>-<page>.png``.

Skipped when Chromium or Playwright is missing, unless ``PUERTA_REQUIRE_BROWSER=1`` (``.ci/run``
sets it), which turns the skip into a failure.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ui_helpers import NEW, OLD, local

from conftest import ADMIN, APPROVER, EXAMPLE_POLICY, VIEWER, Puerta, serve_in_thread
from required import skip_unless_required

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright

    PLAYWRIGHT_PROBLEM = None
except ImportError as exc:  # reported by the browser fixture, which skips or fails
    PLAYWRIGHT_PROBLEM = f"Playwright is not installed ({exc}); pip install -e '.[dev]'"

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}
STAGING = {"namespace": "staging"}
PROD = {"namespace": "prod"}


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: the pages' queries run on both databases in ``test_views.py``."""
    return f"sqlite+aiosqlite:///{tmp_path / 'puerta.db'}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    problem = PLAYWRIGHT_PROBLEM
    if problem is None and not Path(CHROMIUM).exists():
        problem = f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
    if problem is not None:
        skip_unless_required(problem, "PUERTA_REQUIRE_BROWSER")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def live(puerta: Puerta) -> Iterator[str]:
    """A second Puerta on the same database and clock, on a real socket, polled every second."""
    puerta.environ["PUERTA_UI_REFRESH_SECONDS"] = "1"
    with serve_in_thread(puerta.build_app()) as url:
        yield url


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser profile, in New York time, so local times differ from UTC visibly."""
    context = browser.new_context(viewport=DESKTOP, locale="en-US", timezone_id="America/New_York")
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def shot(page: Page, request: pytest.FixtureRequest, name: str) -> None:
    """Save a full-page screenshot as a test artifact."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    test = request.node.originalname.removeprefix("test_")
    page.screenshot(path=SCREENSHOTS / f"{test}-{name}.png", full_page=True)


def forged_post(page: Page, url: str, fields: dict[str, str]) -> Any:
    """POST a form from inside the page (same origin, with its cookie): the HTTP status."""
    return page.evaluate(
        """async ([url, fields]) => {
            const response = await fetch(url, {
                method: "POST",
                headers: {"Content-Type": "application/x-www-form-urlencoded"},
                body: new URLSearchParams(fields),
            });
            return response.status;
        }""",
        [url, fields],
    )


def sign_in(page: Page, token: str) -> None:
    page.get_by_label("Puerta token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def test_overview_follows_a_canary_through_its_phases(
    puerta: Puerta, live: str, page: Page, request: pytest.FixtureRequest
) -> None:
    puerta.hook("confirm-rollout", checksum=OLD, phase="Initialized", **STAGING)
    page.goto(f"{live}/ui/")
    canary = page.locator('[data-canary="staging/podinfo"]')
    phase = canary.locator('[data-field="phase"]')
    status = canary.locator('[data-field="status"]')
    expect(phase).to_have_text("Initialized")
    expect(status).to_have_text("confirmed")
    # Times are rewritten into the viewer's zone (New York); UTC stays as the tooltip.
    since = canary.locator("time").first
    expect(since).to_contain_text("EST")
    expect(since).to_have_attribute("title", "Thu 2026-11-26 10:00 UTC")
    page.evaluate("window.notReloaded = true")
    shot(page, request, "overview-initialized")

    for hook, flagger_phase, rollout_status in (
        ("pre-rollout", "Progressing", "progressing"),
        ("confirm-promotion", "Promoting", "progressing"),
        ("post-rollout", "Succeeded", "succeeded"),
    ):
        assert puerta.hook(hook, checksum=NEW, phase=flagger_phase, **STAGING).status_code == 200
        expect(phase).to_have_text(flagger_phase)  # arrives by polling
        expect(status).to_have_text(rollout_status)
        shot(page, request, f"overview-{flagger_phase.lower()}")
    expect(canary.locator('[data-field="waiting"]')).to_have_text("nothing: rolled out")
    assert page.evaluate("window.notReloaded") is True  # refreshed in place, never reloaded

    page.set_viewport_size(PHONE)
    expect(canary.locator('[data-field="phase"]')).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(page, request, "overview-375px")


def test_an_approver_signs_in_and_approves_and_the_rollout_passes(
    puerta: Puerta, live: str, page: Page, request: pytest.FixtureRequest
) -> None:
    assert puerta.hook("confirm-rollout", checksum=OLD, **PROD).status_code == 403
    page.goto(f"{live}/ui/canaries/prod/podinfo")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to main content")).to_be_focused()
    waiting = page.locator('#canary-status [data-field="waiting"]')
    expect(waiting).to_have_text(
        "confirm-rollout: waiting for manual approval (puerta approve prod/podinfo)"
    )
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    shot(page, request, "canary-anonymous")

    page.get_by_role("banner").get_by_role("link", name="Sign in").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shot(page, request, "login")
    sign_in(page, APPROVER)
    expect(page).to_have_url(f"{live}/ui/canaries/prod/podinfo")  # back where you were
    expect(page.get_by_role("status")).to_have_text("Signed in as approver (approver).")
    expect(page.locator("#canary-timeline .entry").first).to_contain_text("confirm-rollout call")
    shot(page, request, "canary-approver")

    reason = page.get_by_label("Reason (optional)")
    reason.fill("release 42 signed off")
    reason.press("Enter")  # keyboard only: Enter submits the form
    expect(page.get_by_role("status")).to_have_text(
        "approved rollout #1 for confirm-rollout (by approver)"
    )
    expect(page.locator("#canary-timeline .entry").first).to_contain_text("approve by approver")
    shot(page, request, "canary-approved")

    passed = puerta.hook("confirm-rollout", checksum=OLD, phase="Waiting", **PROD)
    assert (passed.status_code, passed.text) == (
        200,
        "passed confirm-rollout[0] release-manager: approved by approver",
    )
    expect(page.locator('#canary-status [data-field="status"]')).to_contain_text("confirmed")
    expect(waiting).to_have_text("Flagger to start the analysis (confirm-rollout passed)")
    shot(page, request, "canary-passed")
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(page, request, "canary-375px")


def test_a_viewer_sees_no_buttons_and_a_forged_post_is_refused(
    puerta: Puerta, live: str, page: Page, request: pytest.FixtureRequest
) -> None:
    assert puerta.hook("confirm-rollout", checksum=OLD, **PROD).status_code == 403
    page.goto(f"{live}/ui/login")
    sign_in(page, VIEWER)
    expect(page.get_by_role("status")).to_have_text("Signed in as viewer (viewer).")
    shot(page, request, "overview")

    page.get_by_role("link", name="prod/podinfo").click()
    expect(page.get_by_role("heading", name="prod/podinfo", exact=True)).to_be_visible()
    expect(page.get_by_role("button")).to_have_text(["Sign out"])  # and nothing else
    expect(page.get_by_text("approving, halting and rolling back need")).to_be_visible()
    shot(page, request, "canary-viewer")

    # The viewer's own, valid CSRF token (from the sign-out form) does not make them approver.
    csrf = page.locator('form[action="/ui/logout"] input[name="csrf"]').get_attribute("value")
    assert csrf
    approve = f"{live}/ui/canaries/prod/podinfo/approve"
    assert forged_post(page, approve, {"csrf": csrf, "reason": "let me"}) == 403
    assert forged_post(page, approve, {"reason": "no token"}) == 403
    assert puerta.hook("confirm-rollout", checksum=OLD, **PROD).status_code == 403
    assert puerta.audit(kind="admin") == []

    page.get_by_role("link", name="production").first.click()
    expect(page.get_by_role("heading", name="Environment production")).to_be_visible()
    expect(page.get_by_role("button")).to_have_text(["Sign out"])
    shot(page, request, "environment-viewer")
    page.get_by_role("link", name="Find a commit").click()
    page.get_by_label("Commit SHA or Flagger checksum").fill(OLD)
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("Puerta does not know commits yet")).to_be_visible()
    expect(page.get_by_role("link", name="prod/podinfo")).to_be_visible()
    shot(page, request, "commits")


@pytest.mark.parametrize("policy_text", [EXAMPLE_POLICY.read_text()])
def test_an_admin_watches_the_release_train_and_freezes_production(
    puerta: Puerta, live: str, page: Page, request: pytest.FixtureRequest
) -> None:
    puerta.clock.set(local(2026, 11, 29, 9, 0))  # Sunday: the window opens
    start = {"checksum": OLD, "phase": "Succeeded", **PROD}
    assert puerta.hook("confirm-rollout", name="first", **start).status_code == 200
    for name in ("second", "third"):
        assert puerta.hook("confirm-rollout", name=name, **start).status_code == 403
    page.goto(f"{live}/ui/login?next=/ui/environments/production")
    sign_in(page, ADMIN)
    expect(page.locator("ol.queue li")).to_have_text(
        [re.compile(r"^prod/second rollout #1, waiting since"), re.compile(r"^prod/third")]
    )
    expect(page.locator("ul.queue li")).to_have_text([re.compile(r"^prod/first rollout #1")])
    shot(page, request, "environment-train")

    page.get_by_label("Reason (required)").fill("incident 142")
    page.get_by_label("For how long").fill("2h")
    page.get_by_role("button", name="Freeze", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("freeze 1 created by admin: incident 142")
    expect(page.locator("table.freezes tbody tr")).to_contain_text("incident 142")
    frozen = puerta.hook("confirm-rollout", name="fourth", **start)
    assert frozen.text.startswith("production is frozen by admin: incident 142")
    expect(page.locator("ol.queue li")).to_have_count(3)  # the newcomer queues, by polling
    shot(page, request, "environment-frozen")
    page.goto(f"{live}/ui/")
    expect(page.locator(".banner-freeze")).to_contain_text("Frozen by admin: incident 142")
    shot(page, request, "overview-frozen")

    page.go_back()
    page.get_by_role("button", name="Lift freeze #1").click()
    expect(page.get_by_role("status")).to_have_text("lifted freeze 1 of production (by admin)")
    expect(page.get_by_text("No freeze: production is open")).to_be_visible()
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(page, request, "environment-375px")
