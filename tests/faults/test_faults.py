"""Fault injection with two real replica processes on one PostgreSQL database and fake CI,
Slack and GitHub servers on real sockets.

Each scenario breaks something in the middle of the work (kill -9 of a replica while it holds
a CI run, an outbox delivery, a release-train decision or a GitHub release; a database
restart; CI and Slack answering 5xx, timing out or rate limiting; SIGTERM) and then counts
what the fakes received against what should exist: duplicates (a CI run dispatched twice, a
Slack message posted twice, two releases, two rollouts released at once) and losses (a run
that never finishes, a notice never delivered, a canary never released) must both be zero,
and every rollout must reach the right end.

The fakes are served once per replica (see :class:`~faults.replicas.Valve`), so a test knows
which replica sent what, and can hold a replica's requests in flight before it kills it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from string import Template
from typing import Any

import httpx
import pytest
import yaml

from fakes.github import FakeGitHub
from fakes.github_repos import FakeGitHubRepos, fake_sha
from fakes.kubernetes import FakeKubernetes
from fakes.server import serve_in_thread
from fakes.slack import FakeSlack
from fakes.webhook_receiver import WebhookReceiver
from faults.conftest import ClusterFactory
from faults.replicas import (
    SECRETS,
    PrivatePostgres,
    Replica,
    Replicas,
    Valve,
    leaked_secrets,
    port_of,
    serve_per_replica,
    until,
)

pytestmark = [pytest.mark.faults, pytest.mark.postgres]

CI_REPO = "acme/e2e"

# ---- policies --------------------------------------------------------------------------------

HEADER = """version: 1
auth:
  tokens:
    - {name: admin, role: admin, token_env: PUERTA_ADMIN_TOKEN}
    - {name: viewer, role: viewer, token_env: PUERTA_VIEWER_TOKEN}
hooks:
  token: {token_env: PUERTA_HOOK_TOKEN}
"""

CI = Template("""ci:
  providers:
    gh:
      type: github
      base_url: $url
      token: {token_env: GH_TOKEN}
      webhook_secret: {token_env: GH_WEBHOOK_SECRET}
      timeout: $timeout
      poll_interval: 1s
      max_poll_interval: 2s
      requests_per_minute: 6000
      burst: 500
""")

SLACK = Template("""notifications:
  slack:
    token: {token_env: SLACK_TOKEN}
    base_url: $url/api/
    timeout: $timeout
    channel_interval: 0s
  routes:
    - match: {environment: "*"}
      channel: "#deploys"
      raw_channel: "#deploys-raw"
$extra""")

COMMITS = Template("""commits:
  kubernetes:
    default: {kubeconfig: $kubeconfig, context: fake}
  github: {base_url: "$url", token: {token_env: GITHUB_TOKEN}}
  rules:
    - repository: "acme/{name}"
      sha_from: image-tag
""")

E2E_GATES = Template("""    gates:
      pre-rollout:
        - type: e2e
          provider: gh
          project: acme/e2e
          workflow: e2e.yml
          ref: main
          parameters:
            target: "{canary_url}"
            revision: "{revision}"
            puerta_run: "{run_id}"
          wait: $wait
          hold: $hold
          deadline: 30m
      confirm-traffic-increase:
        - type: e2e-result
      confirm-promotion:
        - type: e2e-result
      rollback:
        - type: e2e-result
""")


def e2e_environment(name: str = "staging", *, wait: str = "background", hold: str = "50s") -> str:
    return plain_environment(name) + E2E_GATES.substitute(wait=wait, hold=hold)


def plain_environment(name: str = "staging") -> str:
    return f'  {name}:\n    match: [{{namespace: "{name}*"}}]\n'


def ci_section(url: str, timeout: str = "30s") -> str:
    return CI.substitute(url=url, timeout=timeout)


def slack_section(url: str, timeout: str = "30s", extra: str = "") -> str:
    return SLACK.substitute(url=url, timeout=timeout, extra=extra)


def policy(*sections: str, environments: str) -> str:
    text = HEADER + "".join(sections) + "environments:\n" + environments
    yaml.safe_load(text)  # a typo in a test's policy fails here, not in a replica's log
    return text


# ---- Flagger's side --------------------------------------------------------------------------


def payload(
    namespace: str,
    name: str,
    checksum: str = "rev-a",
    phase: str = "Progressing",
    **metadata: str,
) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "phase": phase,
        "checksum": checksum,
        "metadata": metadata,
    }


def event(replica: Replica, namespace: str, name: str, message: str) -> httpx.Response:
    body = payload(
        namespace,
        name,
        eventMessage=message,
        eventType="Normal",
        timestamp=str(int(time.time() * 1000)),
    )
    return replica.hook("event", body)


def start_e2e(replica: Replica, name: str, namespace: str = "staging") -> None:
    """confirm-rollout then pre-rollout: the rollout starts and its E2E run is recorded."""
    confirm = replica.hook("confirm-rollout", payload(namespace, name, phase="Initialized"))
    assert confirm.status_code == 200, confirm.text
    pre = replica.hook("pre-rollout", payload(namespace, name))
    assert pre.status_code == 200, pre.text
    assert "start E2E e2e on gh" in pre.text


def ci_runs(replica: Replica, **params: Any) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = replica.get_json("/ci/runs", limit=500, **params)["runs"]
    return runs


def run_statuses(replica: Replica, namespace: str = "staging") -> dict[str, str]:
    return {r["name"]: r["status"] for r in ci_runs(replica, namespace=namespace)}


def notifications(replica: Replica) -> dict[str, Any]:
    body: dict[str, Any] = replica.get_json("/notifications", limit=500)
    return body


def is_ready(replica: Replica) -> bool:
    return replica.http.get("/readyz").status_code == 200


def outbox_settled(replica: Replica) -> bool:
    counts = notifications(replica)["counts"]
    return bool(counts) and counts.get("pending", 0) == 0


# ---- fakes -----------------------------------------------------------------------------------


def github_actions() -> FakeGitHub:
    """GitHub Actions whose runs stay in progress until the test completes them."""
    fake = FakeGitHub(token=SECRETS.ci_token)
    fake.script = [("in_progress", None)]
    fake.add_workflow(
        CI_REPO, "e2e.yml", run_name="E2E {puerta_run}", inputs=["target", "revision"]
    )
    return fake


def dispatch_counts(fake: FakeGitHub) -> Counter[tuple[str, str]]:
    """Dispatches the fake accepted, per (canary URL, revision)."""
    with fake._lock:
        dispatches = list(fake.dispatches)
    return Counter((d["inputs"]["target"], d["inputs"]["revision"]) for d in dispatches)


def complete_all(fake: FakeGitHub) -> None:
    with fake._lock:
        ids = list(fake.runs)
    for run_id in ids:
        fake.complete(run_id)


def slack_fake() -> FakeSlack:
    fake = FakeSlack(token=SECRETS.slack)
    fake.add_channel("deploys", id="C0DEPLOYS")
    fake.add_channel("deploys-raw", id="C0DEPLRAW")
    return fake


def thread_texts(slack: FakeSlack, canary: str) -> list[str]:
    """The replies in the thread of the canary's parent message in #deploys, oldest first."""
    parents = [m for m in slack.messages("#deploys") if canary in m.text]
    assert len(parents) == 1, f"{canary}: {len(parents)} parent messages"
    return [m.text for m in slack.thread("#deploys", parents[0].ts)]


def raw_texts(slack: FakeSlack, canary: str) -> list[str]:
    return [m.text for m in slack.messages("#deploys-raw") if f"`{canary}`" in m.text]


def numbered(texts: list[str], label: str) -> list[int]:
    """The numbers of ``label #N.`` in ``texts``, in order (each text names at most one)."""
    found = []
    for text in texts:
        match = re.search(re.escape(label) + r" #(\d+)\.", text)
        if match:
            found.append(int(match.group(1)))
    return found


def run_id(path: str) -> str:
    """The run id in a GitHub Actions API path (``.../runs/ID`` or ``.../runs/ID/jobs``)."""
    found = re.search(r"/runs/(\d+)", path)
    return found.group(1) if found else ""


def replica_of(replicas: Replicas, urls: list[str], port: int) -> Replica:
    """The replica whose policy points at the fake's ``port``."""
    return replicas[[port_of(u) for u in urls].index(port)]


# ---- 1. kill -9 in the middle of CI runs -----------------------------------------------------


def _kill_the_holder(valve: Valve, replicas: Replicas, urls: list[str]) -> tuple[Replica, Replica]:
    """Kill -9 the replica of the first request held at the valve, once its requests are in
    flight; they are dropped (never accepted) when its connections close. Returns the victim
    and the survivor."""
    until(lambda: len(valve.held()) >= 1, what="a request in flight")
    victim = replica_of(replicas, urls, valve.held()[0].port)
    survivor = next(r for r in replicas if r is not victim)
    in_flight = valve.held(port=valve.held()[0].port)
    victim.kill9()
    until(lambda: all(s.state == "dropped" for s in in_flight), what="the victim's calls dropped")
    kinds = Counter("poll" if "/runs/" in s.path else s.path.rsplit("/", 1)[-1] for s in in_flight)
    print(f"killed {victim.name} with {len(in_flight)} requests in flight: {dict(kinds)}")
    return victim, survivor


def assert_each_run_once_and_passed(replica: Replica, fake: FakeGitHub, names: list[str]) -> None:
    """Once every run of ``names`` succeeded (as ``replica`` reports them): each canary had one
    run, dispatched once (no duplicate), none lost, and its promotion gate passes."""
    until(
        lambda: run_statuses(replica) == dict.fromkeys(names, "succeeded"),
        timeout=30,
        what="every run succeeded",
    )
    runs = ci_runs(replica)
    expected = {(f"http://{n}-canary.staging", "rev-a") for n in names}
    dispatched = dispatch_counts(fake)
    duplicates = sum(dispatched.values()) - len(runs)
    lost = [r["name"] for r in runs if r["status"] != "succeeded"]
    assert Counter(r["name"] for r in runs) == dict.fromkeys(names, 1)
    assert set(dispatched) == expected
    assert (duplicates, lost) == (0, []), dispatched
    for name in names:
        answer = replica.hook("confirm-promotion", payload("staging", name))
        assert answer.status_code == 200, answer.text


def test_kill9_while_holding_ci_runs_loses_and_doubles_no_run(cluster: ClusterFactory) -> None:
    """Six canaries' E2E runs on GitHub Actions, started through both replicas. A replica is
    killed with a dispatch in flight (the other triggers the run again: GitHub accepted only
    one), comes back, and then the replica polling runs is killed mid-poll (the other follows
    them after the lease). Every run is dispatched once and passes; every gate then passes."""
    fake = github_actions()
    valve = Valve(fake.app)
    names = [f"svc-{i}" for i in range(6)]
    with serve_per_replica(valve, 2) as urls:
        replicas = cluster([policy(ci_section(u), environments=e2e_environment()) for u in urls])
        a, b = replicas
        for i, name in enumerate(names[:4]):  # Flagger calls whichever replica it meets
            start_e2e(replicas[i % 2], name)
        until(
            lambda: run_statuses(b) == dict.fromkeys(names[:4], "running"),
            what="four runs in progress",
        )

        # a trigger in flight: the replica that sends it dies before GitHub answers
        valve.hold(method="POST", path="/dispatches")
        start_e2e(a, "svc-4")
        victim, survivor = _kill_the_holder(valve, replicas, urls)
        victim.start()  # it comes back while the lease it held runs out
        valve.open()
        until(lambda: len(fake.runs) == 5, what="the run triggered again")
        victim.wait_ready()

        # polls in flight: the replica following runs dies in the middle of them
        valve.hold(method="GET", path="/runs/")
        victim, survivor = _kill_the_holder(valve, replicas, urls)
        valve.open()
        start_e2e(survivor, "svc-5")
        until(lambda: len(fake.runs) == 6, what="the last run triggered")
        complete_all(fake)
        assert_each_run_once_and_passed(survivor, fake, names)


# ---- 2. kill -9 in the middle of an outbox delivery -------------------------------------------


def test_kill9_during_slack_delivery_delivers_every_notice_once_in_order(
    cluster: ClusterFactory,
) -> None:
    """Thirty Flagger events on one replica; after a dozen Slack messages, deliveries hang
    and the replica holding one is killed; it restarts and Slack heals. Every event is in the
    rollout's thread and in the raw channel exactly once, in order."""
    slack = slack_fake()
    valve = Valve(slack.app)
    count = 30
    with serve_per_replica(valve, 2) as urls:
        replicas = cluster(
            [policy(slack_section(u), environments=plain_environment()) for u in urls]
        )
        a, _ = replicas
        valve.hold(after=12)  # a dozen messages go out, then deliveries hang in flight
        confirm = a.hook("confirm-rollout", payload("staging", "podinfo", phase="Initialized"))
        assert confirm.status_code == 200, confirm.text
        for i in range(count):
            assert event(a, "staging", "podinfo", f"step #{i}.").status_code == 200
        holder, survivor = _kill_the_holder(valve, replicas, urls)
        holder.start()  # the killed replica comes back, on the same database
        valve.open()  # and Slack heals
        holder.wait_ready()
        until(lambda: outbox_settled(survivor), timeout=40, what="outbox delivered")
        until(lambda: outbox_settled(holder), timeout=5, what="outbox delivered (restarted)")

        thread = thread_texts(slack, "staging/podinfo")
        raw = raw_texts(slack, "staging/podinfo")
        expected = list(range(count))
        for where, texts in (("thread", thread), ("raw channel", raw)):
            doubled = {t: n for t, n in Counter(texts).items() if n > 1}
            steps = numbered(texts, "step")
            lost = sorted(set(expected) - set(steps))
            assert (doubled, lost) == ({}, []), where
            assert steps == expected, f"{where}: out of order"
        body = notifications(survivor)
        assert body["counts"] == {"sent": body["total"]}, body["counts"]


# ---- 3. kill -9 in the middle of a release-train decision -------------------------------------

TRAIN = """  production:
    match: [{namespace: "prod*"}]
    timezone: UTC
    train: {max_concurrent: 1}
    gates:
      confirm-rollout:
        - type: window
          name: always-open
"""


def _storm(
    replicas: list[Replica], names: list[str], kill: Replica | None
) -> list[tuple[str, str, int | None]]:
    """Every canary calls confirm-rollout on every replica, twice, all at once (Flagger's
    polling of several canaries); ``kill`` is killed with -9 while the calls are in flight."""
    calls = [(r, n) for _ in range(2) for n in names for r in replicas]
    answered = threading.Semaphore(0)

    def call(args: tuple[Replica, str]) -> tuple[str, str, int | None]:
        replica, name = args
        try:
            body = payload("prod", name, checksum="aaaaaaaaaa", phase="Succeeded")
            status: int | None = replica.hook("confirm-rollout", body).status_code
        except httpx.HTTPError:
            status = None  # the replica died under the call; Flagger retries next interval
        answered.release()
        return replica.name, name, status

    def killer() -> None:
        assert kill is not None
        for _ in range(3):
            answered.acquire(timeout=10)
        kill.kill9()

    with ThreadPoolExecutor(len(calls) + 1) as pool:
        killing = pool.submit(killer) if kill is not None else None
        results = list(pool.map(call, calls))
        if killing is not None:
            killing.result()
    return results


def test_kill9_during_release_train_releases_each_once_in_arrival_order(
    cluster: ClusterFactory,
) -> None:
    """Six canaries queue for a release train of one (window open); every canary calls
    confirm-rollout on both replicas at once, a replica is killed under those calls, Flagger
    keeps calling the survivor, the killed one comes back. Exactly one rollout is under way
    at a time, each is released once, in arrival order, and all six succeed."""
    replicas = cluster([policy(environments=TRAIN)] * 2)
    a, b = replicas
    names = [f"svc-{i}" for i in range(6)]
    for i, name in enumerate(names):  # arrival order: svc-0 first
        body = payload("prod", name, checksum="aaaaaaaaaa", phase="Succeeded")
        answer = replicas[i % 2].hook("confirm-rollout", body)
        assert answer.status_code == (200 if i == 0 else 403), answer.text

    released: list[str] = []
    finished: list[str] = []
    for turn in range(len(names)):
        waiting = [n for n in names if n not in finished]
        victim = b if turn == 1 else None  # mid-way: b dies under a storm of calls
        results = _storm(replicas.alive(), waiting, victim)
        statuses = Counter(status for _, _, status in results)
        assert set(statuses) <= {200, 403, None}, statuses
        assert None not in statuses or victim is not None, "a live replica did not answer"
        passed = {name for _, name, status in results if status == 200}
        assert len(passed) == 1, f"turn {turn}: released at once: {passed}"
        released += sorted(passed)
        on_the_way = [
            n
            for n in names
            if a.get_json(f"/canaries/prod/{n}")["rollout"]["status"]
            in ("confirmed", "progressing")
        ]
        assert on_the_way == sorted(passed), f"turn {turn}: under way: {on_the_way}"
        if turn == 3:
            b.restart()  # the killed replica comes back and answers again
        (leaving,) = passed
        survivor = replicas.alive()[turn % len(replicas.alive())]
        new = f"{turn}bbbbbbbbb"
        assert (
            survivor.hook("pre-rollout", payload("prod", leaving, checksum=new)).status_code == 200
        )
        done = survivor.hook("post-rollout", payload("prod", leaving, new, phase="Succeeded"))
        assert done.status_code == 200, done.text
        finished.append(leaving)

    assert released == names, "not in arrival order"
    for name in names:
        detail = a.get_json(f"/canaries/prod/{name}")
        assert detail["rollout"]["status"] == "succeeded", (name, detail["rollout"])
        assert [r["seq"] for r in detail["history"]] == [1], f"{name}: rollouts doubled"
    confirmed = [a.get_json(f"/canaries/prod/{n}")["rollout"]["confirmed_at"] for n in names]
    assert confirmed == sorted(confirmed)


# ---- 4. restart the database mid-scenario -----------------------------------------------------


class Hammer(threading.Thread):
    """Flagger calling while the database restarts: unique events and an E2E gate (which must
    never pass: the run is not finished), alternating between the replicas."""

    def __init__(self, replicas: Replicas) -> None:
        super().__init__(daemon=True)
        self.replicas = replicas
        self.results: list[tuple[str, int, int | None, float]] = []  # kind, n, status, at
        self.halt = threading.Event()
        self.errors: list[str] = []  # calls not answered at all
        self._lock = threading.Lock()

    def run(self) -> None:
        n = 0
        while not self.halt.is_set():
            replica = self.replicas[n % 2]
            for kind in ("event", "gate"):
                try:
                    if kind == "event":
                        status: int | None = event(
                            replica, "staging", "podinfo", f"outage #{n}."
                        ).status_code
                    else:
                        body = payload("staging", "podinfo")
                        status = replica.hook("confirm-promotion", body).status_code
                except httpx.HTTPError as exc:
                    status = None
                    with self._lock:
                        self.errors.append(f"{kind} #{n} on {replica.name}: {exc!r}")
                with self._lock:
                    self.results.append((kind, n, status, time.monotonic()))
            n += 1
            self.halt.wait(0.05)  # Flagger's cadence, compressed

    def answered(self, since: float, statuses: set[int | None]) -> int:
        with self._lock:
            return sum(1 for _, _, s, at in self.results if at >= since and s in statuses)


def test_database_restart_answers_503_then_resumes_without_losses(
    cluster: ClusterFactory, private_postgres: PrivatePostgres
) -> None:
    """PostgreSQL goes away (pg_ctl stop, then start; then a quick restart) while Flagger
    calls both replicas with events and an E2E gate, an E2E run is under way and notices are
    pending: calls get 503 (never a 500, never a gate passing early), then succeed; the run
    finishes once and every event answered 200 is announced once, in order."""
    github = github_actions()
    slack = slack_fake()
    with ExitStack() as stack:
        gh = stack.enter_context(serve_in_thread(github.app))
        sl = stack.enter_context(serve_in_thread(slack.app))
        text = policy(ci_section(gh), slack_section(sl), environments=e2e_environment())
        replicas = cluster([text, text])
        a, b = replicas
        start_e2e(a, "podinfo")
        until(lambda: run_statuses(b) == {"podinfo": "running"}, what="run in progress")
        until(lambda: outbox_settled(b), what="first notices delivered")

        hammer = Hammer(replicas)
        hammer.start()
        try:
            until(lambda: hammer.answered(0, {200}) >= 4, what="calls answered")
            # Slack refuses while the database is away: a message Slack accepts while its
            # outcome cannot be stored is the next test's subject, not this one's
            slack.fail_next(None, status=503)
            seen = len(slack.received)
            until(lambda: len(slack.received) >= seen + 2, what="Slack refusing")
            private_postgres.stop()
            stopped = time.monotonic()
            until(
                lambda: hammer.answered(stopped, {503, 500}) >= 6,
                what="calls during the outage",
            )
            for replica in replicas:
                ready = replica.http.get("/readyz")
                assert ready.status_code == 503, ready.text
            private_postgres.start()
            restarted = time.monotonic()
            slack.heal()
            until(
                lambda: hammer.answered(restarted, {200}) >= 6,
                timeout=30,
                what="calls answered again after the restart",
            )
            slack.fail_next(None, status=503)
            seen = len(slack.received)
            until(lambda: len(slack.received) >= seen + 2, what="Slack refusing again")
            private_postgres.restart()  # and once more, quickly (pg_ctl restart -m fast)
            restarted = time.monotonic()
            slack.heal()
            until(
                lambda: hammer.answered(restarted, {200}) >= 6,
                timeout=30,
                what="calls answered again after the quick restart",
            )
        finally:
            hammer.halt.set()
            hammer.join(10)
        complete_all(github)
        until(lambda: run_statuses(b) == {"podinfo": "succeeded"}, what="run finished")
        until(lambda: outbox_settled(a), timeout=40, what="outbox delivered")

        results = hammer.results
        during = [(k, n, s) for k, n, s, at in results if at >= stopped]
        print(
            f"{len(results)} calls, during and after the outage: {Counter(s for *_, s in during)}"
        )
        wrong = [r for r in results if r[0] == "gate" and r[2] == 200]
        assert wrong == [], "the E2E gate passed before its run finished"
        events_ok = {n for k, n, s, _ in results if k == "event" and s == 200}
        thread = thread_texts(slack, "staging/podinfo")
        in_thread = numbered(thread, "outage")
        doubled = {n: c for n, c in Counter(in_thread).items() if c > 1}
        lost = sorted(events_ok - set(in_thread))
        assert (doubled, lost) == ({}, [])
        assert in_thread == sorted(in_thread), "events out of order"
        assert sum("E2E e2e passed" in t for t in thread) == 1
        assert sum(dispatch_counts(github).values()) == 1
        assert a.hook("confirm-promotion", payload("staging", "podinfo")).status_code == 200
        # Flagger's contract: a database outage is a 503 (retried, maybe on another replica)
        assert hammer.errors == [], "calls not answered"
        assert [r for r in results if r[2] not in (200, 403, 503)] == [], "not 200/403/503"
        assert any(s == 503 for _, _, s in during), "no call met the outage"


def test_database_restart_under_calls_in_flight_sends_each_once(
    cluster: ClusterFactory, private_postgres: PrivatePostgres
) -> None:
    """A CI trigger and a Slack message are in flight when PostgreSQL goes away; GitHub and
    Slack accept them while the replicas cannot store that they did, and the database comes
    back well within the lease. Neither may be sent twice: no replica died, so this is not
    the documented window (a replica dying between the provider's answer and the commit)."""
    github, slack = github_actions(), slack_fake()
    gh_valve, slack_valve = Valve(github.app), Valve(slack.app)
    with ExitStack() as stack:
        gh_urls = stack.enter_context(serve_per_replica(gh_valve, 2))
        slack_urls = stack.enter_context(serve_per_replica(slack_valve, 2))
        replicas = cluster(
            [
                policy(ci_section(gh), slack_section(sl), environments=e2e_environment())
                for gh, sl in zip(gh_urls, slack_urls, strict=True)
            ]
        )
        a, b = replicas
        confirm = a.hook("confirm-rollout", payload("staging", "podinfo", phase="Initialized"))
        assert confirm.status_code == 200, confirm.text
        until(lambda: outbox_settled(a), what="first notices delivered")

        gh_valve.hold(method="POST", path="/dispatches")
        slack_valve.hold(method="POST", path="chat.postMessage")
        assert a.hook("pre-rollout", payload("staging", "podinfo")).status_code == 200
        assert event(a, "staging", "podinfo", "in flight #0.").status_code == 200
        until(lambda: bool(gh_valve.held()) and bool(slack_valve.held()), what="calls in flight")
        in_flight = gh_valve.held() + slack_valve.held()
        private_postgres.stop()
        gh_valve.open()  # GitHub and Slack take the calls while the database is away
        slack_valve.open()
        until(lambda: all(s.state == "released" for s in in_flight), what="calls accepted")
        until(lambda: len(github.dispatches) == 1, what="GitHub accepted the trigger")
        private_postgres.start()
        for replica in replicas:
            until(partial(is_ready, replica), what=f"{replica.name} ready again")

        until(lambda: run_statuses(b) == {"podinfo": "running"}, timeout=30, what="run running")
        complete_all(github)
        until(lambda: run_statuses(b) == {"podinfo": "succeeded"}, what="run passed")
        until(lambda: outbox_settled(b), timeout=30, what="outbox delivered")
        thread = thread_texts(slack, "staging/podinfo")
        raw = raw_texts(slack, "staging/podinfo")
        print(f"in flight across the restart: {[s.path for s in in_flight]}")
        found = {
            "thread": numbered(thread, "in flight"),
            "raw channel": numbered(raw, "in flight"),
            "dispatches": list(dispatch_counts(github).values()),
        }
        assert found == {
            "thread": [0],
            "raw channel": [0],
            "dispatches": [1],
        }


# ---- 5. CI and Slack misbehave for a while ----------------------------------------------------


def test_ci_and_slack_outages_rate_limits_and_timeouts_never_pass_and_lose_nothing(
    cluster: ClusterFactory,
) -> None:
    """GitHub and Slack answer 5xx, time out (a slow answer past the 1s timeout) and 429 with
    Retry-After for a while, then GitHub is down while the runs finish: the E2E gates wait
    (403) throughout, never pass; after healing every run is dispatched once and passes, and
    every notice is delivered once."""
    github = github_actions()
    slack = slack_fake()
    # the first requests meet trouble, in this order, whichever replica sends them
    github.fail_next(1, status=502)
    github.fail_next(1, status=503, delay=2.5)  # longer than the provider's timeout (1s)
    github.fail_next(1, status=429, retry_after="2")
    slack.fail_next(1, status=503)
    slack.fail_next(1, status=500, delay=2.5)  # a Slack timeout (1s)
    slack.fail_next(1, status=429, retry_after="1")
    names = ["svc-0", "svc-1", "svc-2"]
    with ExitStack() as stack:
        gh = stack.enter_context(serve_in_thread(github.app))
        sl = stack.enter_context(serve_in_thread(slack.app))
        text = policy(
            ci_section(gh, timeout="1s"),
            slack_section(sl, timeout="1s"),
            environments=e2e_environment(),
        )
        replicas = cluster([text, text])
        a, b = replicas
        gates: list[int] = []

        def gates_wait_while(condition: Callable[[], bool]) -> Callable[[], bool]:
            """Flagger asks every gate on each check; the condition is looked at after."""

            def check() -> bool:
                for i, name in enumerate(names):
                    body = payload("staging", name)
                    answer = replicas[i % 2].hook("confirm-traffic-increase", body)
                    gates.append(answer.status_code)
                return condition()

            return check

        for i, name in enumerate(names):
            start_e2e(replicas[i % 2], name)
            for n in range(3):
                event(replicas[(i + n) % 2], "staging", name, f"ev #{n}.")
        # while the trigger meets trouble, the gates wait
        until(
            gates_wait_while(lambda: len(dispatch_counts(github)) == 3),
            timeout=40,
            what="every run triggered through the trouble",
        )
        until(
            gates_wait_while(lambda: set(run_statuses(b).values()) == {"running"}),
            what="runs in progress",
        )
        # then an outage while the runs finish: CI answers 503 for a while
        github.fail_next(None, status=503)
        complete_all(github)
        seen = len(github.received)
        until(
            gates_wait_while(lambda: len(github.received) >= seen + 4),
            what="polls failing",
        )
        errors = [r["last_error"] for r in ci_runs(b)]
        assert any(errors), "the outage is not shown on the runs"
        assert set(run_statuses(b).values()) == {"running"}
        assert set(gates) == {403}, f"a gate passed during the trouble: {Counter(gates)}"
        github.heal()
        until(
            lambda: set(run_statuses(b).values()) == {"succeeded"}, timeout=20, what="runs passed"
        )
        for i, name in enumerate(names):
            body = payload("staging", name)
            assert replicas[i % 2].hook("confirm-traffic-increase", body).status_code == 200
        until(lambda: outbox_settled(a), timeout=40, what="outbox delivered")

        assert dispatch_counts(github) == {
            (f"http://{n}-canary.staging", "rev-a"): 1 for n in names
        }
        assert [r["status"] for r in ci_runs(b)] == ["succeeded"] * 3
        for name in names:
            thread = thread_texts(slack, f"staging/{name}")
            doubled = {t: n for t, n in Counter(thread).items() if n > 1}
            assert doubled == {}, name
            assert numbered(thread, "ev") == [0, 1, 2], name
            assert sum("E2E e2e started" in t for t in thread) == 1, name
            assert sum("E2E e2e passed" in t for t in thread) == 1, name
        for fake in (github, slack):
            with fake._lock:
                assert fake._faults == [], "some of the trouble was never met"
        retried = sum(1 for item in notifications(a)["items"] if item["attempts"] > 1)
        print(f"gates answered {Counter(gates)}; {retried} notices needed more than one attempt")


# ---- 6. a promotion across a kill -9 ----------------------------------------------------------

SHA = fake_sha("fix checkout")
PROMOTE = """  staging:
    match: [{namespace: "staging*"}]
    promote:
      to: production
      github_release:
        tag: "v{date}-{short_sha}"
        name: "{name} {short_sha}"
  production:
    match: [{namespace: "prod*"}]
"""


def kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": server}}],
                "users": [{"name": "fake", "user": {"token": SECRETS.kubernetes}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                "current-context": "fake",
            }
        )
    )
    return path


def repos_and_cluster() -> tuple[FakeGitHubRepos, FakeKubernetes]:
    k8s = FakeKubernetes(token=SECRETS.kubernetes)
    k8s.add_canary("staging", "podinfo")
    k8s.add_workload(
        "staging",
        "Deployment",
        "podinfo",
        containers={"podinfo": f"ghcr.io/acme/podinfo:1.4.2-{SHA[:7]}"},
    )
    github = FakeGitHubRepos(token=SECRETS.github)
    github.add_commit("acme/podinfo", SHA, author_email="d@acme.example", message="Fix checkout")
    return github, k8s


@pytest.mark.parametrize("accepted", [True, False], ids=["release-made-answer-lost", "not-made"])
def test_kill9_during_the_release_call_makes_one_release(
    cluster: ClusterFactory, tmp_path: Path, accepted: bool
) -> None:
    """A staging success promotes its commit with a GitHub release; the replica making the
    release call is killed while it is in flight. Whether GitHub made that release (the answer
    lost) or not, the survivor finishes the promotion and there is exactly one release."""
    github, k8s = repos_and_cluster()
    valve = Valve(github.app)
    with ExitStack() as stack:
        urls = stack.enter_context(serve_per_replica(valve, 2))
        k8s_url = stack.enter_context(serve_in_thread(k8s.app))
        config = kubeconfig(tmp_path / "kubeconfig", k8s_url)
        replicas = cluster(
            [
                policy(COMMITS.substitute(url=u, kubeconfig=config), environments=PROMOTE)
                for u in urls
            ]
        )
        a, _ = replicas
        valve.hold(method="POST", path="/releases", deliver_if_gone=accepted)
        confirm = a.hook("confirm-rollout", payload("staging", "podinfo", phase="Initialized"))
        assert confirm.status_code == 200, confirm.text
        assert a.hook("pre-rollout", payload("staging", "podinfo")).status_code == 200
        done = a.hook("post-rollout", payload("staging", "podinfo", phase="Succeeded"))
        assert done.status_code == 200, done.text
        until(lambda: len(valve.held()) == 1, what="the release call in flight")
        (call,) = valve.held()
        holder = replica_of(replicas, urls, call.port)
        survivor = next(r for r in replicas if r is not holder)
        holder.kill9()
        until(lambda: call.gone, what="the holder's connection closed")
        valve.open()  # accepted: GitHub makes the release, nobody hears the answer
        until(
            lambda: (
                [p["status"] for p in survivor.get_json("/promotions")["promotions"]] == ["done"]
            ),
            timeout=30,
            what="promotion done by the survivor",
        )

        (promotion,) = survivor.get_json("/promotions")["promotions"]
        (release,) = github.releases
        assert release.target_sha == SHA
        assert release.tag_name == promotion["tag"]
        assert promotion["url"] == release.html_url
        assert promotion["created"] is (not accepted)
        posts = github.requests_to("POST", "/releases")
        assert len(posts) == (2 if accepted else 1)
        audit = survivor.api("GET", "/audit", token=SECRETS.viewer, params={"kind": "promotion"})
        assert len(audit.json()["events"]) == 1


# ---- 7. SIGTERM: finish in flight, hand the work back at once --------------------------------


def test_sigterm_finishes_in_flight_calls_and_hands_work_back_before_the_lease(
    cluster: ClusterFactory,
) -> None:
    """a holds CI runs (polls in flight) and a Slack delivery when it gets SIGTERM, while a
    pre-rollout call of a ``wait: hold`` gate is held open: it stops taking connections, the
    held call is answered, it exits within the grace period, and b takes the work over at
    once, long before the lease a held it under runs out."""
    github = github_actions()
    slack = slack_fake()
    gh_valve, slack_valve = Valve(github.app), Valve(slack.app)
    lease, grace = 12.0, 6.0
    names = [f"svc-{i}" for i in range(4)]
    environments = e2e_environment() + e2e_environment("qa", wait="hold", hold="3s")
    with ExitStack() as stack:
        gh_urls = stack.enter_context(serve_per_replica(gh_valve, 2))
        slack_urls = stack.enter_context(serve_per_replica(slack_valve, 2))
        replicas = cluster(
            [
                policy(ci_section(gh), slack_section(sl), environments=environments)
                for gh, sl in zip(gh_urls, slack_urls, strict=True)
            ],
            env={"PUERTA_LEASE": str(int(lease)), "PUERTA_SHUTDOWN_GRACE": str(int(grace))},
        )
        a, b = replicas
        gh_a, slack_a = port_of(gh_urls[0]), port_of(slack_urls[0])
        for i, name in enumerate(names):
            start_e2e(replicas[i % 2], name)
        until(lambda: run_statuses(b) == dict.fromkeys(names, "running"), what="runs running")
        until(lambda: outbox_settled(b), what="first notices delivered")

        # a's calls to GitHub and Slack hang: it holds runs and a notice under its lease
        gh_valve.hold(port=gh_a)
        slack_valve.hold(port=slack_a)
        until(lambda: len(gh_valve.held(gh_a)) >= 1, what="a holding runs")
        n = 0

        def a_delivering() -> bool:
            nonlocal n
            if not slack_valve.held(slack_a):
                assert event(a, "staging", "svc-0", f"before SIGTERM #{n}.").status_code == 200
                n += 1
            return bool(slack_valve.held(slack_a))

        until(a_delivering, what="a holding a Slack delivery")
        # each was claimed (its lease began) just before a sent the request
        runs_claimed: dict[str, float] = {}
        for seen in gh_valve.held(gh_a):
            runs_claimed.setdefault(run_id(seen.path), seen.at)
        notice_claimed = min(s.at for s in slack_valve.held(slack_a))
        assert runs_claimed and "" not in runs_claimed, gh_valve.held(gh_a)

        confirm = a.hook("confirm-rollout", payload("qa", "held", phase="Initialized"))
        assert confirm.status_code == 200
        answers: list[httpx.Response | Exception] = []

        def held_call() -> None:
            try:
                answers.append(a.hook("pre-rollout", payload("qa", "held"), timeout=30))
            except Exception as exc:
                answers.append(exc)

        caller = threading.Thread(target=held_call)
        caller.start()
        until(lambda: bool(ci_runs(b, namespace="qa")), what="the held call recorded its run")

        sent = a.sigterm()

        def refused() -> bool:
            try:
                httpx.get(f"{a.url}/healthz", timeout=1)
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
                # refused outright, or accepted by the kernel just as the listener closed and
                # then dropped unanswered: either way a no longer serves new connections
                return True
            return False

        until(refused, timeout=3, what="a refusing new connections")
        assert caller.is_alive(), "the held call ended before a stopped taking calls"
        caller.join(20)
        (answer,) = answers
        assert isinstance(answer, httpx.Response), f"in-flight call not answered: {answer!r}"
        assert answer.status_code == 403 and answer.text.startswith("E2E e2e"), answer.text
        code = a.wait_exit(grace + 10)
        exited = time.monotonic()
        assert code in (0, -15), code

        def polled_by_b() -> dict[str, float]:
            firsts: dict[str, float] = {}
            for seen in gh_valve.requests(port=port_of(gh_urls[1])):
                run = run_id(seen.path)
                if run in runs_claimed and seen.at > sent:
                    firsts.setdefault(run, seen.at)
            return firsts

        until(
            lambda: polled_by_b().keys() == runs_claimed.keys(),
            timeout=lease + 5,
            what="b polled the runs a held",
        )
        runs_taken = polled_by_b()
        until(lambda: outbox_settled(b), timeout=lease + 5, what="b delivered the notices")
        notice_taken = time.monotonic()
        print(
            f"a exited {exited - sent:.2f}s after SIGTERM (grace {grace:.0f}s); b polled the runs "
            f"a held {max(runs_taken.values()) - sent:.2f}s after SIGTERM and had delivered "
            f"every notice {notice_taken - sent:.2f}s after it; a's leases would have let them "
            f"go {min(runs_claimed.values()) + lease - sent:.2f}s and "
            f"{notice_claimed + lease - sent:.2f}s after SIGTERM"
        )
        assert exited - sent <= grace + 1.5, "a did not exit within its grace period"
        # b waited for the lease to run out, or a handed its work back on the way out
        waited = {
            "runs": [run for run, at in runs_taken.items() if at >= runs_claimed[run] + lease],
            "notice": notice_taken >= notice_claimed + lease,
        }
        assert waited == {"runs": [], "notice": False}, "a did not hand its work back"

        gh_valve.open()
        slack_valve.open()
        complete_all(github)
        until(lambda: {r["status"] for r in ci_runs(b)} == {"succeeded"}, what="every run passed")
        assert sum(dispatch_counts(github).values()) == len(ci_runs(b)) == 5
        until(lambda: outbox_settled(b), what="every notice delivered")
        thread = thread_texts(slack, "staging/svc-0")
        assert numbered(thread, "before SIGTERM") == list(range(n))
        assert max(Counter(thread).values()) == 1, "a notice delivered twice"


# ---- 8. web and worker replicas: a worker dies, the web replica never notices -----------------


def test_kill9_of_a_worker_leaves_the_web_replica_answering_and_no_run_lost(
    cluster: ClusterFactory,
) -> None:
    """The Helm chart's worker.enabled: Flagger calls only the web replica, two worker
    replicas do the CI work. A worker is killed with dispatches in flight (GitHub accepted none
    of them); the other takes its runs over after the lease and triggers them. Every run is
    dispatched once and passes, the web replica never calls CI itself, answers every gate, and
    a worker refuses Flagger's calls with a 503 naming its role."""
    fake = github_actions()
    valve = Valve(fake.app)
    names = [f"svc-{i}" for i in range(4)]
    with serve_per_replica(valve, 3) as urls:
        web_url, worker_urls = urls[0], urls[1:]
        gates = e2e_environment()
        (web,) = cluster(
            [policy(ci_section(web_url), environments=gates)], env={"PUERTA_ROLE": "web"}
        )
        workers = cluster(
            [policy(ci_section(u), environments=gates) for u in worker_urls],
            env={"PUERTA_ROLE": "worker"},
        )
        call = payload("staging", "svc-x", phase="Initialized")
        refused = workers[0].hook("confirm-rollout", call)
        assert refused.status_code == 503, refused.text
        assert "PUERTA_ROLE=worker" in refused.text

        valve.hold(method="POST", path="/dispatches")
        for name in names:
            start_e2e(web, name)
        victim, survivor = _kill_the_holder(valve, workers, worker_urls)
        valve.open()
        until(lambda: len(fake.runs) == len(names), what="every run triggered")
        complete_all(fake)
        assert_each_run_once_and_passed(web, fake, names)
        assert valve.requests(port=port_of(web_url)) == [], "the web replica called CI"
        assert valve.requests(port=port_of(worker_urls[workers.replicas.index(survivor)]))
        assert not victim.alive


# ---- 9. secrets never in logs -----------------------------------------------------------------


def _signed(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_no_secret_reaches_the_logs_at_debug_level(cluster: ClusterFactory, tmp_path: Path) -> None:
    """Every secret-bearing path at debug level, errors included: admin and viewer tokens
    (and a wrong one), the hook token in the URL and in metadata.token (and a wrong one), the
    CI token and a signed (and a forged) CI webhook, Slack (messages, DMs), the signed
    notification webhook, GitHub and Kubernetes tokens (a release), the database password.
    No configured secret appears in anything the replicas wrote."""
    actions = github_actions()
    slack = slack_fake()
    slack.add_user("d@acme.example", "U0DANA")
    receiver = WebhookReceiver(secret=SECRETS.notify_webhook)
    repos, k8s = repos_and_cluster()
    with ExitStack() as stack:
        gh, sl, hook_url, repos_url, k8s_url = (
            stack.enter_context(serve_in_thread(app))
            for app in (actions.app, slack.app, receiver.app, repos.app, k8s.app)
        )
        config = kubeconfig(tmp_path / "kubeconfig", k8s_url)
        route_extra = (
            f"      webhook:\n        url: {hook_url}/puerta\n"
            "        secret: {token_env: NOTIFY_WEBHOOK_SECRET}\n"
            "      direct_messages: true\n"
            "  direct_messages: {enabled: true, kinds: [succeeded]}\n"
        )
        environments = (
            e2e_environment().replace(
                "    gates:\n",
                "    promote:\n      to: production\n"
                '      github_release: {tag: "v{date}-{short_sha}"}\n    gates:\n',
                1,
            )
            + '  production:\n    match: [{namespace: "prod*"}]\n'
        )
        text = policy(
            ci_section(gh),
            slack_section(sl, extra=route_extra),
            COMMITS.substitute(url=repos_url, kubeconfig=config),
            environments=environments,
        )
        replicas = cluster([text, text], env={"PUERTA_LOG_LEVEL": "debug"})
        a, b = replicas
        actions.fail_next(1, status=503)  # errors get logged too
        slack.fail_next(1, status=503)

        # the hook token in the URL, in metadata.token, and a wrong one (another secret)
        confirm = a.hook("confirm-rollout", payload("staging", "podinfo", phase="Initialized"))
        assert confirm.status_code == 200, confirm.text
        body = payload("staging", "podinfo", token=SECRETS.hook)
        assert b.hook("pre-rollout", body, token=None).status_code == 200
        wrong = payload("staging", "podinfo", phase="Initialized")
        assert a.hook("confirm-rollout", wrong, token=SECRETS.viewer).status_code == 401
        # admin and viewer tokens, and a wrong bearer token (another secret again)
        freeze = a.api("POST", "/freezes", json={"environment": "production", "reason": "test"})
        assert freeze.status_code in (200, 201), freeze.text
        unfreeze = b.api("POST", "/environments/production/unfreeze", json={"reason": "done"})
        assert unfreeze.status_code == 200, unfreeze.text
        assert a.api("GET", "/audit", token=SECRETS.viewer).status_code == 200
        assert a.api("GET", "/audit", token=SECRETS.slack).status_code == 401

        until(lambda: run_statuses(b) == {"podinfo": "running"}, what="run in progress")
        run = actions.last_run
        actions.complete(run.id)
        delivery = json.dumps(actions.workflow_run_event(run.id, "completed")).encode()
        headers = {
            "X-GitHub-Event": "workflow_run",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "Content-Type": "application/json",
        }
        forged = {**headers, "X-Hub-Signature-256": _signed(delivery, SECRETS.hook)}
        assert b.http.post("/webhooks/ci/gh", content=delivery, headers=forged).status_code == 401
        headers["X-Hub-Signature-256"] = _signed(delivery, SECRETS.ci_webhook)
        signed = a.http.post("/webhooks/ci/gh", content=delivery, headers=headers)
        assert signed.status_code == 200, signed.text
        until(lambda: run_statuses(b) == {"podinfo": "succeeded"}, what="run passed")
        assert b.hook("confirm-promotion", payload("staging", "podinfo")).status_code == 200
        post = payload("staging", "podinfo", phase="Succeeded")
        assert a.hook("post-rollout", post).status_code == 200
        until(
            lambda: [p["status"] for p in a.get_json("/promotions")["promotions"]] == ["done"],
            what="promotion done",
        )
        until(lambda: outbox_settled(a), timeout=30, what="notices delivered")
        assert receiver.deliveries, "the signed webhook got nothing"
        assert slack.dms("U0DANA"), "the author got no DM"
        assert len(repos.releases) == 1
        for replica in replicas:
            replica.sigterm()
        for replica in replicas:
            replica.wait_exit(20)

        logs = replicas.logs()
        assert '"hook answered"' in logs and '"puerta started"' in logs, logs[-2000:]
        assert leaked_secrets(logs) == {}
