"""KubernetesWorkloads against a fake API server over real HTTP: a Canary's target workload of
each kind (containers, workload labels under the pod template's), every way a read fails mapped
to Puerta's error classes with a message that says what to fix, cluster configuration from
kubeconfig files, and WorkloadReaders choosing each Puerta environment's cluster."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from lightkube import KubeConfig

from fakes.kubernetes import (
    TOKEN,
    UNKNOWN_RESOURCE,
    FakeKubernetes,
    kubeconfig,
    status_body,
    write_kubeconfig,
)
from fakes.server import serve_in_thread
from puerta.commits.base import Container, WorkloadInfo
from puerta.commits.config import KubeCluster, KubernetesConfig
from puerta.commits.kubernetes import KubernetesWorkloads, WorkloadReaders
from puerta.external import PermanentError, RateLimited, TransientError

IMAGE = "ghcr.io/acme/podinfo:6.5.1-abc1234"
CANARY_PATH = "/apis/flagger.app/v1beta1/namespaces/prod/canaries/podinfo"


@pytest.fixture
def fake() -> FakeKubernetes:
    fake = FakeKubernetes()
    fake.add_canary("prod", "podinfo")
    fake.add_workload("prod", "Deployment", "podinfo", {"podinfo": IMAGE})
    return fake


@pytest.fixture
def base_url(fake: FakeKubernetes) -> Iterator[str]:
    with serve_in_thread(fake.app) as url:
        yield url


@pytest.fixture
async def reader(base_url: str) -> AsyncIterator[KubernetesWorkloads]:
    reader = KubernetesWorkloads(KubeConfig.from_dict(kubeconfig(base_url)), timeout=5.0)
    yield reader
    await reader.aclose()


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# ---- reading ---------------------------------------------------------------------------------


async def test_reads_the_canary_s_deployment(
    fake: FakeKubernetes, reader: KubernetesWorkloads
) -> None:
    info = await reader.read("prod", "podinfo")
    assert info == WorkloadInfo(
        kind="Deployment",
        name="podinfo",
        namespace="prod",
        containers=(Container("podinfo", IMAGE),),
        labels={"app": "podinfo"},
        annotations={},
    )
    assert [r.path for r in fake.received] == [
        CANARY_PATH,
        "/apis/apps/v1/namespaces/prod/deployments/podinfo",
    ]
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in fake.received)


@pytest.mark.parametrize(
    ("kind", "plural"), [("StatefulSet", "statefulsets"), ("DaemonSet", "daemonsets")]
)
async def test_reads_other_workload_kinds(
    fake: FakeKubernetes, reader: KubernetesWorkloads, kind: str, plural: str
) -> None:
    fake.add_canary("prod", "cache", kind, "redis")
    fake.add_workload(
        "prod",
        kind,
        "redis",
        {"metrics": "oliver006/redis_exporter:v1.62", "redis": "acme/redis:7.2-def5678"},
        init_containers={"init": "busybox:1.36"},
    )
    info = await reader.read("prod", "cache")
    assert (info.kind, info.name, info.namespace) == (kind, "redis", "prod")
    assert info.containers == (
        Container("metrics", "oliver006/redis_exporter:v1.62"),
        Container("redis", "acme/redis:7.2-def5678"),
    )
    assert fake.requests_to("GET", f"/apis/apps/v1/namespaces/prod/{plural}/redis")


async def test_pod_template_metadata_overlays_the_workload_s(
    fake: FakeKubernetes, reader: KubernetesWorkloads
) -> None:
    fake.add_workload(
        "prod",
        "Deployment",
        "podinfo",
        labels={"team": "web", "org.opencontainers.image.revision": "old1234"},
        annotations={"deployment.kubernetes.io/revision": "3", "git/sha": "old1234"},
        template_labels={"org.opencontainers.image.revision": "new5678"},
        template_annotations={"git/sha": "new5678"},
    )
    info = await reader.read("prod", "podinfo")
    assert info.labels == {
        "team": "web",
        "app": "podinfo",
        "org.opencontainers.image.revision": "new5678",
    }
    assert info.annotations == {"deployment.kubernetes.io/revision": "3", "git/sha": "new5678"}


# ---- failures --------------------------------------------------------------------------------


async def test_missing_canary(reader: KubernetesWorkloads) -> None:
    with pytest.raises(PermanentError) as caught:
        await reader.read("prod", "nope")
    assert str(caught.value) == "Canary prod/nope not found"
    assert caught.value.status == 404


async def test_missing_workload(fake: FakeKubernetes, reader: KubernetesWorkloads) -> None:
    fake.add_canary("prod", "api", "Deployment", "api-server")
    with pytest.raises(PermanentError) as caught:
        await reader.read("prod", "api")
    assert str(caught.value) == "Deployment prod/api-server (the Canary's targetRef) not found"


async def test_cluster_without_flagger_s_crd(
    fake: FakeKubernetes, reader: KubernetesWorkloads
) -> None:
    fake.fail_next(status=404, body=status_body(404, "NotFound", UNKNOWN_RESOURCE))
    with pytest.raises(PermanentError, match="does not serve that resource type"):
        await reader.read("prod", "podinfo")


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (
            "canaries",
            "Puerta may not read Canary prod/podinfo: its Kubernetes identity needs the RBAC "
            "verb get on canaries.flagger.app in namespace prod",
        ),
        (
            "deployments.apps",
            "Puerta may not read Deployment prod/podinfo (the Canary's targetRef): its "
            "Kubernetes identity needs the RBAC verb get on deployments.apps in namespace prod",
        ),
    ],
)
async def test_forbidden_says_which_rbac_is_missing(
    fake: FakeKubernetes, reader: KubernetesWorkloads, resource: str, expected: str
) -> None:
    fake.forbid(resource)
    with pytest.raises(PermanentError) as caught:
        await reader.read("prod", "podinfo")
    assert str(caught.value).startswith(expected)
    assert 'User "system:serviceaccount:puerta:puerta" cannot get' in str(caught.value)
    assert caught.value.status == 403


async def test_rejected_credentials(fake: FakeKubernetes, base_url: str) -> None:
    reader = KubernetesWorkloads(KubeConfig.from_dict(kubeconfig(base_url, token="stale-9x7")))
    try:
        with pytest.raises(PermanentError) as caught:
            await reader.read("prod", "podinfo")
    finally:
        await reader.aclose()
    assert "did not accept Puerta's credentials" in str(caught.value)
    assert caught.value.status == 401
    assert "stale-9x7" not in str(caught.value)
    assert "stale-9x7" not in repr(reader)


@pytest.mark.parametrize("status_code", [500, 503])
async def test_server_errors_are_transient(
    fake: FakeKubernetes, reader: KubernetesWorkloads, status_code: int
) -> None:
    fake.fail_next(status=status_code)
    with pytest.raises(TransientError) as caught:
        await reader.read("prod", "podinfo")
    assert not isinstance(caught.value, RateLimited)
    assert caught.value.status == status_code
    assert f"HTTP {status_code} reading Canary prod/podinfo" in str(caught.value)
    assert (await reader.read("prod", "podinfo")).name == "podinfo"  # it passes


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("text/html", "<html><body><h1>502 Bad Gateway</h1></body></html>"), (None, "")],
    ids=["html", "no-content-type"],
)
async def test_a_proxy_s_error_page_is_transient(
    fake: FakeKubernetes, reader: KubernetesWorkloads, content_type: str | None, body: str
) -> None:
    fake.fail_plain(502, body=body, content_type=content_type)
    with pytest.raises(TransientError) as caught:
        await reader.read("prod", "podinfo")
    assert "HTTP 502 reading Canary prod/podinfo" in str(caught.value)


async def test_too_many_requests(fake: FakeKubernetes, reader: KubernetesWorkloads) -> None:
    fake.fail_next(status=429, retry_after="7")
    with pytest.raises(RateLimited) as caught:
        await reader.read("prod", "podinfo")
    assert caught.value.retry_after == 7.0


async def test_timeout_is_transient(fake: FakeKubernetes, base_url: str) -> None:
    reader = KubernetesWorkloads(KubeConfig.from_dict(kubeconfig(base_url)), timeout=0.05)
    fake.fail_next(status=200, delay=0.3)
    try:
        with pytest.raises(TransientError, match="timed out reading Canary prod/podinfo"):
            await reader.read("prod", "podinfo")
    finally:
        await reader.aclose()


async def test_unreachable_is_transient() -> None:
    config = KubeConfig.from_server(f"http://127.0.0.1:{free_port()}")
    reader = KubernetesWorkloads(config, timeout=2.0)
    try:
        with pytest.raises(TransientError, match="unreachable reading Canary prod/podinfo"):
            await reader.read("prod", "podinfo")
    finally:
        await reader.aclose()


@pytest.mark.parametrize(
    ("kind", "api_version", "expected"),
    [
        ("Service", None, "targets Service podinfo (v1)"),
        ("Deployment", "apps/v1beta1", "targets Deployment podinfo (apps/v1beta1)"),
        ("Rollout", "argoproj.io/v1alpha1", "targets Rollout podinfo (argoproj.io/v1alpha1)"),
    ],
)
async def test_unsupported_target_kind(
    fake: FakeKubernetes,
    reader: KubernetesWorkloads,
    kind: str,
    api_version: str | None,
    expected: str,
) -> None:
    fake.add_canary("prod", "podinfo", kind, target_api_version=api_version)
    with pytest.raises(PermanentError) as caught:
        await reader.read("prod", "podinfo")
    assert str(caught.value) == (
        f"Canary prod/podinfo {expected}; Puerta reads only Deployment, DaemonSet, StatefulSet "
        "(apps/v1)"
    )
    assert len(fake.received) == 1  # the Canary only


async def test_canary_without_target_ref(fake: FakeKubernetes, reader: KubernetesWorkloads) -> None:
    del fake.canaries[("prod", "podinfo")]["spec"]["targetRef"]
    with pytest.raises(PermanentError, match=r"Canary prod/podinfo has no spec\.targetRef name"):
        await reader.read("prod", "podinfo")


async def test_target_ref_without_api_version_means_apps_v1(
    fake: FakeKubernetes, reader: KubernetesWorkloads
) -> None:
    del fake.canaries[("prod", "podinfo")]["spec"]["targetRef"]["apiVersion"]
    assert (await reader.read("prod", "podinfo")).kind == "Deployment"


# ---- cluster configuration -------------------------------------------------------------------


async def test_kubeconfig_file_and_context(
    fake: FakeKubernetes, base_url: str, tmp_path: Path
) -> None:
    path = write_kubeconfig(tmp_path / "config", base_url, context="prod")
    for context in ("prod", None):  # named, and the file's current-context
        reader = KubernetesWorkloads.for_cluster(
            KubeCluster(kubeconfig=path, context=context), timeout=5.0
        )
        try:
            assert (await reader.read("prod", "podinfo")).name == "podinfo"
        finally:
            await reader.aclose()
    assert repr(reader) == f"KubernetesWorkloads({path})"
    assert TOKEN not in repr(reader)


@pytest.mark.parametrize(
    ("cluster", "expected"),
    [
        (KubeCluster(kubeconfig="/nonexistent/kubeconfig"), "/nonexistent/kubeconfig not found"),
        (KubeCluster(kubeconfig="{path}", context="staging"), "Context 'staging' not found"),
        (KubeCluster(in_cluster=True), "not running in a pod"),
    ],
)
async def test_unusable_configuration_fails_the_read_not_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cluster: KubeCluster, expected: str
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    if cluster.kubeconfig == "{path}":
        path = write_kubeconfig(tmp_path / "config", "http://127.0.0.1:9")
        cluster = cluster.model_copy(update={"kubeconfig": path})
    reader = KubernetesWorkloads.for_cluster(cluster, timeout=1.0)  # does not raise
    with pytest.raises(PermanentError) as caught:
        await reader.read("prod", "podinfo")
    assert str(caught.value).startswith("cannot use the Kubernetes configuration")
    assert expected in str(caught.value)


async def test_detected_cluster_outside_a_pod_uses_kubeconfig(
    fake: FakeKubernetes, base_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", write_kubeconfig(tmp_path / "config", base_url))
    reader = KubernetesWorkloads.for_cluster(None, timeout=5.0)
    try:
        assert (await reader.read("prod", "podinfo")).name == "podinfo"
    finally:
        await reader.aclose()


async def test_detected_cluster_in_a_pod_uses_the_service_account(
    fake: FakeKubernetes, base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")  # not used in a pod
    loaded: list[str] = []

    def service_account() -> KubeConfig:  # the pod's token and CA, pointed at the fake
        loaded.append("service account")
        return KubeConfig.from_dict(kubeconfig(base_url))

    monkeypatch.setattr(KubeConfig, "from_service_account", service_account)
    reader = KubernetesWorkloads.for_cluster(None, timeout=5.0)
    try:
        assert (await reader.read("prod", "podinfo")).name == "podinfo"
        await reader.read("prod", "podinfo")
    finally:
        await reader.aclose()
    assert loaded == ["service account"]  # loaded once, on the first read


async def test_a_context_without_a_user_sends_no_credentials(
    fake: FakeKubernetes, base_url: str
) -> None:
    fake.token = None  # like `kubectl proxy`
    reader = KubernetesWorkloads(KubeConfig.from_server(base_url))
    try:
        assert (await reader.read("prod", "podinfo")).name == "podinfo"
    finally:
        await reader.aclose()
    assert "authorization" not in fake.received[0].headers


# ---- one cluster per environment -------------------------------------------------------------


@pytest.fixture
def production() -> FakeKubernetes:
    fake = FakeKubernetes(token="prod-token-1f2e")
    fake.add_canary("prod", "podinfo")
    fake.add_workload("prod", "Deployment", "podinfo", {"podinfo": "acme/podinfo:prod-1234567"})
    return fake


@pytest.fixture
def production_url(production: FakeKubernetes) -> Iterator[str]:
    with serve_in_thread(production.app) as url:
        yield url


async def test_each_environment_reads_its_cluster(
    fake: FakeKubernetes,
    base_url: str,
    production: FakeKubernetes,
    production_url: str,
    tmp_path: Path,
) -> None:
    default = write_kubeconfig(tmp_path / "default", base_url)
    prod = write_kubeconfig(tmp_path / "prod", production_url, token="prod-token-1f2e")
    config = KubernetesConfig.model_validate(
        {
            "default": {"kubeconfig": default},
            "environments": {
                "production": {"kubeconfig": prod, "context": "fake"},
                "production-eu": {"kubeconfig": prod, "context": "fake"},
            },
            "timeout": "5s",
        }
    )
    readers = WorkloadReaders(config)
    try:
        live = await readers("production").read("prod", "podinfo")
        staged = await readers("staging").read("prod", "podinfo")
        unnamed = await readers(None).read("prod", "podinfo")
        assert live.containers[0].image == "acme/podinfo:prod-1234567"
        assert staged.containers[0].image == IMAGE == unnamed.containers[0].image
        assert readers("production") is readers("production-eu")  # one client per cluster
        assert readers("staging") is readers(None)
        assert readers("staging") is not readers("production")
    finally:
        await readers.aclose()
    assert len(production.received) == 2
    assert len(fake.received) == 4


async def test_readers_are_built_on_first_use_and_closed() -> None:
    built: list[KubeCluster | None] = []
    closed: list[KubeCluster | None] = []

    class Recorder:
        def __init__(self, cluster: KubeCluster | None) -> None:
            self.cluster = cluster

        async def read(self, namespace: str, canary: str) -> WorkloadInfo:
            raise AssertionError("not called")

        async def aclose(self) -> None:
            closed.append(self.cluster)

    def build(cluster: KubeCluster | None) -> Recorder:
        built.append(cluster)
        return Recorder(cluster)

    prod = KubeCluster(kubeconfig="/etc/puerta/prod.kubeconfig", context="prod")
    config = KubernetesConfig(environments={"production": prod})
    readers = WorkloadReaders(config, build=build)
    assert built == []
    readers("production")
    readers("staging")
    readers("production")
    assert built == [prod, None]  # None: detected from the process
    await readers.aclose()
    assert closed == [prod, None]
    readers("production")
    assert built == [prod, None, prod]  # rebuilt after closing
    await readers.aclose()
