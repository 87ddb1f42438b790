"""A whole canary lifecycle, in the order Flagger calls the hooks, through the HTTP API."""

from __future__ import annotations

from datetime import timedelta

from conftest import APPROVER, Puerta, flagger_payload

OLD, NEW = "6d9d8b5c7f", "85d557f47b"


def event(message: str, phase: str, checksum: str = NEW, **extra: str) -> dict[str, object]:
    return flagger_payload(
        "event",
        namespace="staging",
        phase=phase,
        checksum=checksum,
        metadata={
            "eventMessage": message,
            "eventType": "Normal",
            "timestamp": "1764151200000",
            **extra,
        },
    )


def test_staging_lifecycle_in_flaggers_order(puerta: Puerta) -> None:
    """Every hook passes in staging and the derived status follows Flagger's phases."""
    ns = {"namespace": "staging"}
    step = timedelta(seconds=30)

    assert (
        puerta.hook("confirm-rollout", checksum=OLD, phase="Initialized", **ns).status_code == 200
    )
    puerta.clock.advance(step)
    assert (
        puerta.hook(
            "event", event("New revision detected! Scaling up podinfo.staging", "Progressing")
        ).status_code
        == 200
    )
    assert puerta.hook("pre-rollout", checksum=NEW, **ns).status_code == 200
    puerta.clock.advance(step)
    assert puerta.hook("confirm-traffic-increase", checksum=NEW, **ns).status_code == 200
    assert puerta.hook("rollout", checksum=NEW, **ns).status_code == 200
    puerta.clock.advance(step)
    assert puerta.hook("confirm-traffic-increase", checksum=NEW, **ns).status_code == 200
    assert puerta.hook("rollout", checksum=NEW, **ns).status_code == 200
    assert puerta.hook("confirm-promotion", checksum=NEW, **ns).status_code == 200
    puerta.clock.advance(step)
    assert (
        puerta.hook(
            "event", event("Copying podinfo.staging template spec to podinfo-primary", "Promoting")
        ).status_code
        == 200
    )
    assert puerta.hook("post-rollout", checksum=NEW, phase="Succeeded", **ns).status_code == 200
    assert (
        puerta.hook("event", event("Promotion completed! podinfo.staging", "Succeeded")).status_code
        == 200
    )

    body = puerta.api("GET", "/canaries/staging/podinfo").json()
    assert body["environment"] == "staging"
    assert body["phase"] == "Succeeded"
    rollout = body["rollout"]
    assert rollout["seq"] == 1
    assert rollout["status"] == "succeeded"
    assert rollout["revision"] == NEW
    assert rollout["base_checksum"] == OLD
    assert rollout["waiting"] is None
    start = puerta.clock.now() - 4 * step
    assert rollout["started_at"].startswith(start.strftime("%Y-%m-%dT%H:%M:%S"))
    assert rollout["confirmed_at"] == rollout["started_at"]
    assert rollout["finished_at"] is not None
    assert [r["seq"] for r in body["history"]] == [1]

    calls = puerta.audit(canary="staging/podinfo", kind="hook", limit=100)
    assert [c["hook"] for c in reversed(calls)] == [
        "confirm-rollout",
        "event",
        "pre-rollout",
        "confirm-traffic-increase",
        "rollout",
        "confirm-traffic-increase",
        "rollout",
        "confirm-promotion",
        "event",
        "post-rollout",
        "event",
    ]
    assert {c["rollout_seq"] for c in calls} == {1}


def test_next_revision_opens_a_new_rollout(puerta: Puerta) -> None:
    """After a success, the next confirm-rollout (with the promoted checksum) is rollout #2."""
    ns = {"namespace": "staging"}
    puerta.hook("confirm-rollout", checksum=OLD, phase="Initialized", **ns)
    puerta.hook("pre-rollout", checksum=NEW, **ns)
    puerta.hook("post-rollout", checksum=NEW, phase="Succeeded", **ns)
    # Flagger sends the *previous* revision's checksum (NEW) and phase Succeeded.
    assert puerta.hook("confirm-rollout", checksum=NEW, phase="Succeeded", **ns).status_code == 200
    puerta.hook("pre-rollout", checksum="a1b2c3d4e5", **ns)

    body = puerta.api("GET", "/canaries/staging/podinfo").json()
    assert [(r["seq"], r["status"], r["revision"]) for r in body["history"]] == [
        (2, "progressing", "a1b2c3d4e5"),
        (1, "succeeded", NEW),
    ]


def test_new_revision_mid_analysis_supersedes_the_rollout(puerta: Puerta) -> None:
    """Flagger restarts the analysis for a newer revision without calling confirm-rollout."""
    ns = {"namespace": "staging"}
    puerta.hook("confirm-rollout", checksum=OLD, phase="Initialized", **ns)
    puerta.hook("pre-rollout", checksum=NEW, **ns)
    puerta.hook("rollout", checksum="ffff000011", **ns)

    history = puerta.api("GET", "/canaries/staging/podinfo").json()["history"]
    assert [(r["seq"], r["status"], r["revision"]) for r in history] == [
        (2, "progressing", "ffff000011"),
        (1, "superseded", NEW),
    ]


def test_failed_rollout_is_recorded_as_failed(puerta: Puerta) -> None:
    ns = {"namespace": "staging"}
    puerta.hook("confirm-rollout", checksum=OLD, phase="Initialized", **ns)
    puerta.hook("pre-rollout", checksum=NEW, **ns)
    puerta.hook("event", event("Canary failed! Scaling down podinfo.staging", "Failed"))
    assert puerta.hook("post-rollout", checksum=NEW, phase="Failed", **ns).status_code == 200
    rollout = puerta.api("GET", "/canaries/staging/podinfo").json()["rollout"]
    assert rollout["status"] == "failed"


def test_events_of_a_waiting_rollout_do_not_end_it(puerta: Puerta) -> None:
    """While confirm-rollout waits, Flagger's events still carry the previous run's phase."""
    ns = {"namespace": "prod"}
    puerta.hook("confirm-rollout", checksum=OLD, phase="Succeeded", **ns)
    waiting = event("Waiting for approval podinfo.prod", "Succeeded", checksum=OLD)
    waiting["namespace"] = "prod"
    puerta.hook("event", waiting)
    rollout = puerta.api("GET", "/canaries/prod/podinfo").json()["rollout"]
    assert rollout["status"] == "pending"
    assert rollout["waiting"]["hook"] == "confirm-rollout"


def test_canary_list_shows_phase_and_what_each_waits_for(puerta: Puerta) -> None:
    puerta.hook("confirm-rollout", namespace="prod", name="api")
    puerta.hook("confirm-rollout", namespace="staging", name="web")
    puerta.hook("pre-rollout", namespace="staging", name="web")
    canaries = puerta.api("GET", "/canaries").json()["canaries"]
    summary = {
        f"{c['namespace']}/{c['name']}": (
            c["environment"],
            c["phase"],
            c["rollout"]["status"],
            (c["rollout"]["waiting"] or {}).get("reason"),
        )
        for c in canaries
    }
    assert summary == {
        "prod/api": (
            "production",
            "Initialized",
            "pending",
            "waiting for manual approval (puerta approve prod/api)",
        ),
        "staging/web": ("staging", "Progressing", "progressing", None),
    }
    only_prod = puerta.api("GET", "/canaries", params={"environment": "production"}).json()
    assert [c["name"] for c in only_prod["canaries"]] == ["api"]


def test_confirm_promotion_gate_waits_then_passes(puerta: Puerta) -> None:
    """The production promotion sign-off: a second manual gate on confirm-promotion."""
    ns = {"namespace": "prod"}
    puerta.hook("confirm-rollout", checksum=OLD, phase="Initialized", **ns)
    puerta.api(
        "POST", "/canaries/prod/podinfo/approve", token=APPROVER, json={"hook": "confirm-rollout"}
    )
    assert (
        puerta.hook("confirm-rollout", checksum=OLD, phase="Initialized", **ns).status_code == 200
    )
    assert puerta.hook("pre-rollout", checksum=NEW, **ns).status_code == 200
    refused = puerta.hook("confirm-promotion", checksum=NEW, **ns)
    assert refused.status_code == 403
    assert refused.text == "waiting for manual approval (puerta approve prod/podinfo)"
    waiting = puerta.api("GET", "/canaries/prod/podinfo").json()["rollout"]["waiting"]
    assert waiting["hook"] == "confirm-promotion"
    assert waiting["gate"] == "confirm-promotion[0] promotion-sign-off"
    puerta.api("POST", "/canaries/prod/podinfo/approve", token=APPROVER)
    assert puerta.hook("confirm-promotion", checksum=NEW, **ns).status_code == 200
    assert puerta.api("GET", "/canaries/prod/podinfo").json()["rollout"]["waiting"] is None


def test_approving_the_start_does_not_sign_off_the_promotion(puerta: Puerta) -> None:
    """'approve' approves what waits now; the promotion gate asks again."""
    ns = {"namespace": "prod"}
    puerta.hook("confirm-rollout", checksum=OLD, phase="Initialized", **ns)
    approved = puerta.api("POST", "/canaries/prod/podinfo/approve", token=APPROVER)
    assert approved.json()["message"] == "approved rollout #1 for confirm-rollout"
    assert (
        puerta.hook("confirm-rollout", checksum=OLD, phase="Initialized", **ns).status_code == 200
    )
    puerta.hook("pre-rollout", checksum=NEW, **ns)
    assert puerta.hook("confirm-promotion", checksum=NEW, **ns).status_code == 403


def test_late_events_do_not_open_phantom_rollouts(puerta: Puerta) -> None:
    """Flagger's events carry a lagging phase: "Promotion completed!" arrives after
    post-rollout(Succeeded) with phase Finalising, "Canary Failed. Scaled down" after the
    failure with phase Progressing. Neither may open a rollout (and eat the next approval)."""
    ns = {"namespace": "prod"}
    puerta.hook("confirm-rollout", checksum=OLD, phase="Initialized", **ns)
    puerta.api("POST", "/canaries/prod/podinfo/approve", token=APPROVER)
    puerta.hook("confirm-rollout", checksum=OLD, phase="Initialized", **ns)
    puerta.hook("pre-rollout", checksum=NEW, **ns)
    puerta.api("POST", "/canaries/prod/podinfo/approve", token=APPROVER)
    puerta.hook("confirm-promotion", checksum=NEW, **ns)
    puerta.hook("post-rollout", checksum=NEW, phase="Succeeded", **ns)
    late = event("Promotion completed! Scaling down podinfo.prod", "Finalising")
    late["namespace"] = "prod"
    assert puerta.hook("event", late).status_code == 200
    history = puerta.api("GET", "/canaries/prod/podinfo").json()["history"]
    assert [(r["seq"], r["status"]) for r in history] == [(1, "succeeded")]
    # nothing to approve between rollouts; the next rollout waits for its own approval
    assert puerta.api("POST", "/canaries/prod/podinfo/approve", token=APPROVER).status_code == 409
    assert puerta.hook("confirm-rollout", checksum=NEW, phase="Succeeded", **ns).status_code == 403


def test_late_failure_event_does_not_open_a_rollout(puerta: Puerta) -> None:
    ns = {"namespace": "staging"}
    puerta.hook("confirm-rollout", checksum=OLD, phase="Initialized", **ns)
    puerta.hook("pre-rollout", checksum=NEW, **ns)
    puerta.hook("event", event("Canary failed! Scaling down podinfo.staging", "Failed"))
    puerta.hook("event", event("Canary Failed. Scaled down podinfo.staging", "Progressing"))
    puerta.hook("post-rollout", checksum=NEW, phase="Failed", **ns)
    history = puerta.api("GET", "/canaries/staging/podinfo").json()["history"]
    assert [(r["seq"], r["status"]) for r in history] == [(1, "failed")]


def test_a_canary_created_again_does_not_inherit_the_approval(puerta: Puerta) -> None:
    """A confirm-rollout that passed and is called again with another checksum is a new
    Canary object (deleted and created again), not a retry: it asks again."""
    ns = {"namespace": "prod"}
    puerta.hook("confirm-rollout", checksum=OLD, phase="Initialized", **ns)
    puerta.api("POST", "/canaries/prod/podinfo/approve", token=APPROVER)
    assert (
        puerta.hook("confirm-rollout", checksum=OLD, phase="Initialized", **ns).status_code == 200
    )
    assert (
        puerta.hook("confirm-rollout", checksum=OLD, phase="Initialized", **ns).status_code == 200
    )
    again = puerta.hook("confirm-rollout", checksum="9a9a9a9a9a", phase="Initialized", **ns)
    assert again.status_code == 403
    history = puerta.api("GET", "/canaries/prod/podinfo").json()["history"]
    assert [(r["seq"], r["status"]) for r in history] == [(2, "pending"), (1, "superseded")]
