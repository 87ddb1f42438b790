"""The dashboard through HTTP: what each page shows, sign-in and sessions, CSRF and roles, the
buttons' effect on the hooks Flagger calls next, commit search, errors and access rules."""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta

import pytest
from ui_helpers import (
    NEW,
    OLD,
    cookie_data,
    local,
    section,
    sign_in,
    text_of,
    use_example_policy,
)

from conftest import ADMIN, APPROVER, VIEWER, Puerta
from puerta.errors import ConfigError

PROD = {"namespace": "prod"}


def page(puerta: Puerta, path: str, status: int = 200) -> str:
    response = puerta.http.get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    return text_of(response.text)


def row(html: str, key: str) -> str:
    """The text of the overview row of canary ``key``."""
    match = re.search(rf'<tr data-canary="{re.escape(key)}".*?</tr>', html, re.S)
    assert match is not None, f"no row for {key}"
    return text_of(match.group(0))


def admin_actions(puerta: Puerta) -> list[tuple[str, str, str]]:
    return [(e["action"], e["actor"], e["reason"]) for e in puerta.audit(kind="admin")]


# ---- what the pages show --------------------------------------------------------------------


def test_overview_lists_each_canary_with_what_it_waits_for_in_words(puerta: Puerta) -> None:
    use_example_policy(puerta)
    puerta.clock.set(local(2026, 11, 27, 14, 0))  # Friday afternoon: production is closed
    for name in ("first", "second"):
        puerta.hook("confirm-rollout", namespace="prod", name=name, checksum=OLD)
    puerta.hook("confirm-rollout", namespace="staging", checksum=OLD)
    puerta.hook("pre-rollout", namespace="staging", checksum=NEW, phase="Progressing")
    puerta.hook("confirm-rollout", namespace="elsewhere", checksum=OLD)

    html = puerta.http.get("/ui/").text
    second = row(html, "prod/second")
    assert "outside the production deployment window" in second
    assert "opens Sun 2026-11-29 09:00 IST" in second
    assert "2nd in line" in second
    assert "pending" in second and "#1" in second
    assert "1st in line" in row(html, "prod/first")
    staging = row(html, "staging/podinfo")
    assert "Progressing" in staging and "progressing" in staging
    assert "the analysis to finish" in staging
    assert NEW in staging  # the revision: Flagger's checksum
    # What Flagger does not send is shown as unknown, with the reason, never invented.
    assert "Flagger does not send the canary weight" in second
    assert "Puerta does not know commits yet" in second
    # Environments in policy order, then the canaries that match none.
    headings = re.findall(r"<h2 id=\"env-([^\"]+)\"", html)
    assert headings == ["staging", "production", "unmatched"]
    assert "elsewhere/podinfo" in row(html, "elsewhere/podinfo")


def test_overview_refreshes_a_live_region_from_its_fragment(puerta: Puerta) -> None:
    html = puerta.http.get("/ui/").text
    region = re.search(r"<div id=\"overview\"[^>]*>", html)
    assert region is not None
    assert 'data-refresh="/ui/fragments/overview"' in region.group(0)
    assert 'aria-live="polite"' in region.group(0)

    puerta.hook("confirm-rollout", namespace="staging", checksum=OLD)
    fragment = puerta.http.get("/ui/fragments/overview")
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and "<table" in fragment.text
    assert "Initialized" in row(fragment.text, "staging/podinfo")
    puerta.hook("rollout", namespace="staging", checksum=NEW, phase="Progressing")
    assert "Progressing" in row(puerta.http.get("/ui/fragments/overview").text, "staging/podinfo")


def test_times_are_utc_for_the_server_and_rewritten_locally_by_the_script(puerta: Puerta) -> None:
    puerta.hook("confirm-rollout", checksum=OLD, **PROD)
    html = puerta.http.get("/ui/canaries/prod/podinfo").text
    assert (
        '<time datetime="2026-11-26T10:00:00Z" data-local>Thu 2026-11-26 10:00 UTC</time>' in html
    )
    script = re.search(r'<script src="(/ui/static/dashboard\.js\?v=\w+)" defer>', html)
    assert script is not None
    served = puerta.http.get(script.group(1))
    assert served.status_code == 200
    assert "Intl.DateTimeFormat" in served.text and "data-refresh" in served.text


def test_canary_page_shows_the_rollout_and_a_timeline_newest_first(puerta: Puerta) -> None:
    puerta.hook("confirm-rollout", checksum=OLD, **PROD)
    puerta.clock.advance(timedelta(minutes=5))
    puerta.hook("confirm-rollout", checksum=OLD, phase="Waiting", **PROD)
    puerta.clock.advance(timedelta(minutes=5))
    puerta.api("POST", "/canaries/prod/podinfo/halt", token=APPROVER, json={"reason": "inc 7"})

    anonymous = page(puerta, "/ui/canaries/prod/podinfo")
    # A halt comes first in "waiting for"; the gate the rollout waits at is still shown.
    assert "Waiting for halted by approver: inc 7 (an approval resumes it)" in anonymous
    assert "Waiting at confirm-rollout, gate confirm-rollout[0] release-manager" in anonymous
    assert "Halted by approver" in anonymous
    assert "needs a sign-in" in anonymous  # the audit is never public, as in the API
    assert "confirm-rollout call" not in anonymous

    sign_in(puerta, VIEWER)
    html = puerta.http.get("/ui/canaries/prod/podinfo").text
    entries = [text_of(e) for e in re.findall(r'<li class="entry.*?</li>', html, re.S)]
    assert re.findall(r'<li class="entry entry-(\w+)">', html) == ["admin", "hook", "hook"]
    assert "halt by approver" in entries[0] and "reason: inc 7" in entries[0]
    assert "confirm-rollout call (Waiting)" in entries[1]
    assert "wait HTTP 403" in entries[1]
    assert "waiting for manual approval" in entries[1]
    assert "gate confirm-rollout[0] release-manager" in entries[1]
    assert "confirm-rollout call (Initialized)" in entries[2]
    assert "#1 pending production" in section(html, r'<table class="history.*?</table>')


def test_flagger_events_appear_with_their_message(puerta: Puerta) -> None:
    puerta.hook("confirm-rollout", namespace="staging", checksum=OLD)
    puerta.hook("event", namespace="staging", checksum=NEW)  # "Starting canary analysis ..."
    sign_in(puerta, VIEWER)
    html = puerta.http.get("/ui/canaries/staging/podinfo").text
    newest = section(html, r'<li class="entry entry-event">.*?</li>')
    assert "Flagger event (Progressing), Normal" in newest
    assert "Starting canary analysis for podinfo.test" in newest


def test_environment_page_shows_the_release_train_in_arrival_order(puerta: Puerta) -> None:
    use_example_policy(puerta)
    puerta.clock.set(local(2026, 11, 29, 8, 0))  # Sunday, before the window opens
    for name in ("first", "second", "third"):
        puerta.hook("confirm-rollout", namespace="prod", name=name, checksum=OLD)
        puerta.clock.advance(timedelta(minutes=1))
    html = puerta.http.get("/ui/environments/production").text
    queue = re.search(r'<ol class="queue">.*?</ol>', html, re.S)
    assert queue is not None
    assert re.findall(r"prod/(\w+) rollout #1", text_of(queue.group(0))) == [
        "first",
        "second",
        "third",
    ]
    assert "No rollout is under way." in text_of(html)

    puerta.clock.set(local(2026, 11, 29, 9, 0))
    assert puerta.hook("confirm-rollout", namespace="prod", name="first").status_code == 200
    text = page(puerta, "/ui/environments/production")
    assert re.search(r"Rolling out prod/first rollout #1, left the train", text)
    assert "1 rollout at a time" in text and "Time zone Asia/Jerusalem" in text
    assert "No freeze" in text
    assert "staging has no release train" in page(puerta, "/ui/environments/staging")


# ---- sign-in and sessions -------------------------------------------------------------------


def test_sign_in_sets_a_strict_http_only_cookie_that_does_not_hold_the_token(
    puerta: Puerta,
) -> None:
    form = {"token": APPROVER, "next": "/ui/environments/production"}
    response = puerta.http.post("/ui/login", data=form, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/environments/production"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("puerta_session=")
    )
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/ui"} <= flags
    assert "secure" not in flags  # plain http here; see the https test
    value = cookie.split(";")[0].split("=", 1)[1]
    assert APPROVER not in value
    data = cookie_data(value)
    assert set(data) == {"name", "role", "iat", "csrf"}
    assert (data["name"], data["role"]) == ("approver", "approver")

    assert "Signed in as approver (approver)." in page(puerta, "/ui/environments/production")
    assert "You are signed in as approver (approver)." in page(puerta, "/ui/login")


def test_over_https_the_session_cookie_is_secure(puerta: Puerta) -> None:
    response = puerta.http.post(
        "https://testserver/ui/login", data={"token": VIEWER}, follow_redirects=False
    )
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("puerta_session=")
    )
    assert "secure" in cookie.lower()


def test_a_wrong_token_is_refused_and_sets_no_session(puerta: Puerta) -> None:
    response = puerta.http.post("/ui/login", data={"token": "not-a-token"})
    assert response.status_code == 401
    assert "That is not a token Puerta knows" in text_of(response.text)
    assert "puerta_session" not in response.headers.get("set-cookie", "")
    assert puerta.http.post("/ui/login", data={}).status_code == 401


def test_a_tampered_or_expired_session_counts_as_signed_out(puerta: Puerta) -> None:
    puerta.hook("confirm-rollout", checksum=OLD, **PROD)
    csrf = sign_in(puerta, VIEWER)
    data = cookie_data(puerta.http.cookies["puerta_session"])
    mac = puerta.http.cookies["puerta_session"].split(".")[1]
    promoted = base64.urlsafe_b64encode(json.dumps({**data, "role": "admin"}).encode())
    forged = f"{promoted.decode().rstrip('=')}.{mac}"  # the viewer's signature, an admin's role
    puerta.http.cookies.clear()
    headers = {"Cookie": f"puerta_session={forged}"}
    assert "Sign out" not in puerta.http.get("/ui/", headers=headers).text
    approve = "/ui/canaries/prod/podinfo/approve"
    assert puerta.http.post(approve, data={"csrf": csrf}, headers=headers).status_code == 403

    csrf = sign_in(puerta, APPROVER)
    puerta.clock.advance(timedelta(hours=8))  # sessions last 8 hours
    assert "Sign out" not in puerta.http.get("/ui/").text
    refused = puerta.http.post(approve, data={"csrf": csrf})
    assert refused.status_code == 403
    assert "sign in with a Puerta token first" in text_of(refused.text)
    assert admin_actions(puerta) == []


def test_sign_out_needs_the_csrf_token_and_clears_the_session(puerta: Puerta) -> None:
    csrf = sign_in(puerta, VIEWER)
    assert puerta.http.post("/ui/logout", data={"csrf": "wrong"}).status_code == 403
    assert "Sign out" in puerta.http.get("/ui/").text
    response = puerta.http.post("/ui/logout", data={"csrf": csrf}, follow_redirects=False)
    assert response.status_code == 303
    assert any(
        c.startswith('puerta_session=""') or "max-age=0" in c.lower()
        for c in response.headers.get_list("set-cookie")
    )
    assert "Sign out" not in puerta.http.get("/ui/").text


def signed_in_after_restart(puerta: Puerta, policy_text: str | None = None) -> bool:
    """Restart Puerta and present the session cookie issued before: is it still honoured?"""
    cookie = {"Cookie": f"puerta_session={puerta.http.cookies['puerta_session']}"}
    puerta.restart(policy_text)
    return "Sign out" in puerta.http.get("/ui/", headers=cookie).text


def test_sessions_end_on_restart_unless_a_session_secret_is_shared(puerta: Puerta) -> None:
    sign_in(puerta, VIEWER)
    assert not signed_in_after_restart(puerta)  # a new random key: the cookie fails to verify

    puerta.environ["PUERTA_SESSION_SECRET"] = "s" * 40
    puerta.restart()
    sign_in(puerta, VIEWER)
    assert signed_in_after_restart(puerta)  # the same secret: restarts and replicas agree

    puerta.stop()
    puerta.environ["PUERTA_SESSION_SECRET"] = "short"
    with pytest.raises(ConfigError, match="PUERTA_SESSION_SECRET"):
        puerta.build_app()


def test_a_session_ends_when_the_policy_changes_its_role(puerta: Puerta, policy_text: str) -> None:
    puerta.environ["PUERTA_SESSION_SECRET"] = "s" * 40
    puerta.restart()
    sign_in(puerta, APPROVER)
    assert signed_in_after_restart(puerta)
    sign_in(puerta, APPROVER)
    demoted = policy_text.replace(
        "- name: approver\n      role: approver", "- name: approver\n      role: viewer"
    )
    assert demoted != policy_text
    assert not signed_in_after_restart(puerta, demoted)


# ---- acting: CSRF, origin, roles ------------------------------------------------------------


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(puerta: Puerta) -> None:
    puerta.hook("confirm-rollout", checksum=OLD, **PROD)
    csrf = sign_in(puerta, APPROVER)
    url = "/ui/canaries/prod/podinfo/approve"
    for data in ({}, {"csrf": ""}, {"csrf": csrf[:-1] + "x"}):
        refused = puerta.http.post(url, data=data)
        assert refused.status_code == 403
        assert "security token is missing or stale" in text_of(refused.text)
    assert admin_actions(puerta) == []
    assert puerta.hook("confirm-rollout", checksum=OLD, **PROD).status_code == 403


def test_a_post_from_another_site_is_refused_even_with_the_token(puerta: Puerta) -> None:
    puerta.hook("confirm-rollout", checksum=OLD, **PROD)
    csrf = sign_in(puerta, APPROVER)
    url = "/ui/canaries/prod/podinfo/approve"
    for headers in (
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
    ):
        refused = puerta.http.post(url, data={"csrf": csrf}, headers=headers)
        assert refused.status_code == 403, headers
        assert "from other sites are refused" in text_of(refused.text)
    assert admin_actions(puerta) == []
    same = {"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"}
    assert puerta.http.post(url, data={"csrf": csrf}, headers=same).status_code == 200


def test_a_viewer_sees_no_buttons_and_the_server_refuses_them(puerta: Puerta) -> None:
    puerta.hook("confirm-rollout", checksum=OLD, **PROD)
    html = puerta.http.get("/ui/canaries/prod/podinfo").text
    assert "<button" not in html  # anonymous: no buttons at all
    assert puerta.http.post("/ui/canaries/prod/podinfo/approve", data={}).status_code == 403

    csrf = sign_in(puerta, VIEWER)
    html = puerta.http.get("/ui/canaries/prod/podinfo").text
    buttons = re.findall(r"<button[^>]*>([^<]*)</button>", html)
    assert buttons == ["Sign out"]
    assert "role viewer" in text_of(html)
    for action in ("approve", "halt", "rollback", "override"):
        refused = puerta.http.post(
            f"/ui/canaries/prod/podinfo/{action}", data={"csrf": csrf, "reason": "please"}
        )
        assert refused.status_code == 403
        assert "viewer has role viewer; this needs" in text_of(refused.text)
    assert admin_actions(puerta) == []
    assert puerta.hook("confirm-rollout", checksum=OLD, **PROD).status_code == 403


def test_an_approver_approves_and_the_next_confirm_rollout_passes(puerta: Puerta) -> None:
    assert puerta.hook("confirm-rollout", checksum=OLD, **PROD).status_code == 403
    csrf = sign_in(puerta, APPROVER)
    html = puerta.http.get("/ui/canaries/prod/podinfo").text
    assert re.findall(r"<button[^>]*>([^<]*)</button>", html) == [
        "Sign out",
        "Approve",
        "Halt",
        "Roll back",
    ]
    response = puerta.http.post(
        "/ui/canaries/prod/podinfo/approve",
        data={"csrf": csrf, "reason": "release 42"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/canaries/prod/podinfo"
    shown = page(puerta, "/ui/canaries/prod/podinfo")
    assert "approved rollout #1 for confirm-rollout (by approver)" in shown
    assert 'class="flash' not in puerta.http.get("/ui/canaries/prod/podinfo").text  # shown once

    passed = puerta.hook("confirm-rollout", checksum=OLD, phase="Waiting", **PROD)
    assert (passed.status_code, passed.text) == (
        200,
        "passed confirm-rollout[0] release-manager: approved by approver",
    )
    assert admin_actions(puerta) == [("approve", "approver", "release 42")]


def test_halt_and_rollback_need_a_reason_and_then_act(puerta: Puerta) -> None:
    ns = {"namespace": "staging"}
    puerta.hook("confirm-rollout", checksum=OLD, **ns)
    puerta.hook("pre-rollout", checksum=NEW, **ns)
    csrf = sign_in(puerta, APPROVER)
    base = "/ui/canaries/staging/podinfo"
    refused = puerta.http.post(f"{base}/halt", data={"csrf": csrf, "reason": "  "})
    assert refused.status_code == 400
    assert "halt refused: give a reason" in text_of(refused.text)
    assert admin_actions(puerta) == []

    puerta.http.post(f"{base}/halt", data={"csrf": csrf, "reason": "incident 142"})
    assert "Halted by approver" in page(puerta, base)
    assert puerta.hook("confirm-traffic-increase", checksum=NEW, **ns).status_code == 403
    puerta.http.post(f"{base}/rollback", data={"csrf": csrf, "reason": "error budget"})
    rolled = puerta.hook("rollback", checksum=NEW, **ns)
    assert (rolled.status_code, rolled.text) == (
        200,
        "rollback requested by approver: error budget",
    )
    assert admin_actions(puerta) == [
        ("rollback", "approver", "error budget"),
        ("halt", "approver", "incident 142"),
    ]


def test_a_refused_action_shows_the_reason_with_its_status(puerta: Puerta) -> None:
    puerta.hook("confirm-rollout", namespace="staging", checksum=OLD)
    puerta.hook("post-rollout", namespace="staging", checksum=NEW, phase="Succeeded")
    csrf = sign_in(puerta, APPROVER)
    conflict = puerta.http.post("/ui/canaries/staging/podinfo/approve", data={"csrf": csrf})
    assert conflict.status_code == 409
    assert "approve refused: staging/podinfo has no rollout waiting" in text_of(conflict.text)
    missing = puerta.http.post("/ui/canaries/prod/nope/approve", data={"csrf": csrf})
    assert missing.status_code == 404
    unknown = puerta.http.post("/ui/canaries/staging/podinfo/promote", data={"csrf": csrf})
    assert unknown.status_code == 404


def test_override_is_for_admins_and_lets_the_rollout_through_the_window(puerta: Puerta) -> None:
    use_example_policy(puerta)
    puerta.clock.set(local(2026, 11, 27, 14, 0))  # Friday: closed
    assert puerta.hook("confirm-rollout", name="hotfix", **PROD).status_code == 403
    csrf = sign_in(puerta, APPROVER)
    assert "Override" not in puerta.http.get("/ui/canaries/prod/hotfix").text
    body = {"csrf": csrf, "reason": "CVE-2026-1234"}
    assert puerta.http.post("/ui/canaries/prod/hotfix/override", data=body).status_code == 403

    csrf = sign_in(puerta, ADMIN)
    assert "Override (break-glass)" in page(puerta, "/ui/canaries/prod/hotfix")
    done = puerta.http.post(
        "/ui/canaries/prod/hotfix/override", data={"csrf": csrf, "reason": "CVE-2026-1234"}
    )
    assert done.status_code == 200
    assert "override for rollout #1" in text_of(done.text)
    passed = puerta.hook("confirm-rollout", name="hotfix", **PROD)
    assert passed.status_code == 200
    assert "overridden by admin: CVE-2026-1234" in passed.text


def test_an_admin_freezes_and_lifts_an_environment_from_its_page(puerta: Puerta) -> None:
    use_example_policy(puerta)
    puerta.clock.set(local(2026, 11, 29, 10, 0))  # window open
    csrf = sign_in(puerta, APPROVER)
    assert "New freeze" not in page(puerta, "/ui/environments/production")
    form = {"csrf": csrf, "reason": "incident 142", "duration": "2h"}
    assert puerta.http.post("/ui/environments/production/freeze", data=form).status_code == 403

    csrf = sign_in(puerta, ADMIN)
    bad = puerta.http.post(
        "/ui/environments/production/freeze", data={**form, "csrf": csrf, "duration": "soon"}
    )
    assert bad.status_code == 400
    assert "freeze refused: duration: invalid duration 'soon'" in text_of(bad.text)
    done = puerta.http.post(
        "/ui/environments/production/freeze", data={**form, "csrf": csrf}, follow_redirects=False
    )
    assert done.status_code == 303
    shown = page(puerta, "/ui/environments/production")
    assert "freeze 1 created by admin: incident 142" in shown
    assert "#1 incident 142 admin" in shown
    assert "Frozen by admin: incident 142 (until Sun 2026-11-29 10:00 UTC)" in page(puerta, "/ui/")
    frozen = puerta.hook("confirm-rollout", name="api", **PROD)
    assert frozen.status_code == 403
    assert frozen.text.startswith("production is frozen by admin: incident 142")

    lifted = puerta.http.post(
        "/ui/environments/production/unfreeze", data={"csrf": csrf, "freeze_id": "1"}
    )
    assert lifted.status_code == 200
    assert "lifted freeze 1 of production (by admin)" in text_of(lifted.text)
    assert puerta.hook("confirm-rollout", name="api", **PROD).status_code == 200
    again = puerta.http.post("/ui/environments/production/unfreeze", data={"csrf": csrf})
    assert again.status_code == 409
    assert admin_actions(puerta) == [
        ("unfreeze", "admin", ""),
        ("freeze", "admin", "incident 142"),
    ]


# ---- where is my commit? --------------------------------------------------------------------


def test_commit_search_finds_revisions_and_metadata(puerta: Puerta) -> None:
    puerta.hook("confirm-rollout", namespace="staging", checksum=OLD)
    puerta.hook("pre-rollout", namespace="staging", checksum=NEW)
    sha = "0123456789abcdef0123456789abcdef01234567"
    puerta.hook("confirm-rollout", namespace="prod", name="api", metadata={"commit": sha})

    found = page(puerta, f"/ui/commits?q={NEW[:7].upper()}")
    assert "Puerta does not know commits yet; matched Flagger revisions:" in found
    assert "staging/podinfo #1 staging progressing revision 85d557f47b" in found
    previous = page(puerta, f"/ui/commits?q={OLD}")
    assert "staging/podinfo #1 staging progressing previous revision 6d9d8b5c7f" in previous

    assert "needs a sign-in" in page(puerta, f"/ui/commits?q={sha}")
    sign_in(puerta, VIEWER)
    by_metadata = page(puerta, f"/ui/commits?q={sha}")
    assert f"prod/api rollout #1: metadata commit={sha} on 1 hook call" in by_metadata
    assert "None: no rollout's revision" in by_metadata
    nothing = page(puerta, "/ui/commits?q=fffffff")
    assert "No hook call carried a metadata value equal to fffffff" in nothing


@pytest.mark.parametrize("query", ["main", "85d55", "85d557f47b-x", "g" * 10, "a" * 65])
def test_commit_search_explains_what_it_accepts(puerta: Puerta, query: str) -> None:
    fragment = puerta.http.get("/ui/fragments/commits", params={"q": query})
    assert fragment.status_code == 400
    assert "is not a commit SHA or Flagger checksum: paste 7 to 64 hexadecimal" in text_of(
        fragment.text
    )
    assert puerta.http.get("/ui/commits", params={"q": query}).status_code == 400
    assert "Paste a commit SHA" in page(puerta, "/ui/commits")  # no query: just the form


# ---- errors and access ----------------------------------------------------------------------


def test_unknown_canaries_and_environments_are_helpful_404s(puerta: Puerta) -> None:
    missing = page(puerta, "/ui/canaries/prod/nope", 404)
    assert "canary prod/nope has never called Puerta" in missing
    unknown = page(puerta, "/ui/environments/prodution", 404)
    assert "no environment 'prodution'; its environments: staging, production" in unknown
    assert puerta.http.get("/ui/fragments/canaries/prod/nope").status_code == 404


def test_without_public_read_visitors_are_sent_to_sign_in(puerta: Puerta, policy_text: str) -> None:
    puerta.restart(policy_text.replace("public_read: true", "public_read: false"))
    puerta.hook("confirm-rollout", checksum=OLD, **PROD)
    for path in ("/ui/", "/ui/canaries/prod/podinfo", "/ui/environments/staging", "/ui/commits"):
        response = puerta.http.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/ui/login?next=%2Fui%2F")
    assert puerta.http.get("/ui/fragments/overview").status_code == 401
    assert puerta.http.get("/ui/login").status_code == 200

    response = puerta.http.post(
        "/ui/login",
        data={"token": VIEWER, "next": "/ui/canaries/prod/podinfo"},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/ui/canaries/prod/podinfo"
    assert "waiting for manual approval" in page(puerta, "/ui/canaries/prod/podinfo")


@pytest.mark.parametrize(
    "target", ["//evil.example/", "https://evil.example/", "/api/v1/audit", "/ui/\\evil"]
)
def test_sign_in_never_redirects_off_the_dashboard(puerta: Puerta, target: str) -> None:
    response = puerta.http.post(
        "/ui/login", data={"token": VIEWER, "next": target}, follow_redirects=False
    )
    assert response.headers["location"] == "/ui/"


def test_pages_forbid_framing_and_anything_not_served_by_puerta(puerta: Puerta) -> None:
    puerta.hook("confirm-rollout", checksum=OLD, **PROD)
    sign_in(puerta, ADMIN)
    for path in ("/ui/", "/ui/canaries/prod/podinfo", "/ui/environments/production"):
        response = puerta.http.get(path)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        assert not re.search(r'(src|href|action)="(https?:)?//', response.text)  # no CDN
    css = re.search(r'href="(/ui/static/dashboard\.css\?v=\w+)"', puerta.http.get("/ui/").text)
    assert css is not None and puerta.http.get(css.group(1)).status_code == 200


def test_pages_have_landmarks_a_skip_link_and_labelled_controls(puerta: Puerta) -> None:
    puerta.hook("confirm-rollout", checksum=OLD, **PROD)
    sign_in(puerta, ADMIN)
    html = puerta.http.get("/ui/canaries/prod/podinfo").text
    assert '<a class="skip-link" href="#main">' in html and '<main id="main"' in html
    assert "<header" in html and '<nav aria-label="Main">' in html
    for field in re.findall(r'<input id="([^"]+)"', html):
        assert f'<label for="{field}">' in html
    overview = puerta.http.get("/ui/").text
    assert overview.count("<caption>") == 2  # staging, production
    assert '<th scope="col">Waiting for</th>' in overview
