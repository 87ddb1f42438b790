"""Read what a rollout ships from the cluster: the Flagger Canary, then the workload its
``spec.targetRef`` names (a Deployment, DaemonSet or StatefulSet), with lightkube's async client.

Flagger's webhook names only the Canary, so this is the one place Puerta learns the image and
the labels a build stamped on the workload. Failures are classified like every other client
(:mod:`puerta.external`): a missing object or a refusal is a :class:`PermanentError` whose
message says what to fix (for a 403, the RBAC verb and resource Puerta's service account
lacks); outages, timeouts and 5xx are :class:`TransientError`; 429 is :class:`RateLimited`.

Clusters come from the policy (``commits.kubernetes``): one by default, or one per Puerta
environment; :class:`WorkloadReaders` builds each reader on first use, so a kubeconfig that is
missing at start-up is reported on the rollout that needs it (and picked up once it appears)
rather than stopping the service. Credentials stay inside lightkube's auth: nothing here logs
or shows a token, and ``repr`` names only the cluster.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx2
import msgspec
import yaml
from lightkube import ApiError, AsyncClient, ConfigError, KubeConfig, SingleConfig
from lightkube.config.models import User
from lightkube.core.resource import NamespacedResource
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.core_v1 import PodTemplateSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import DaemonSet, Deployment, StatefulSet

from puerta.commits.base import Container, WorkloadInfo, WorkloadReader
from puerta.commits.config import KubeCluster, KubernetesConfig
from puerta.external import PermanentError, ProviderError, RateLimited, TransientError

__all__ = [
    "SUPPORTED_KINDS",
    "Canary",
    "KubernetesWorkloads",
    "WorkloadReaders",
    "load_cluster",
]

Canary = create_namespaced_resource("flagger.app", "v1beta1", "Canary", "canaries")

_APPS = "apps/v1"
_DEFAULT_KUBECONFIG = "~/.kube/config"
_UNKNOWN_RESOURCE = "the server could not find the requested resource"
_MESSAGE_LIMIT = 300  # of a non-Status error body quoted in a message

# what reading a kubeconfig or service account, or setting up TLS from it, raises
_CONFIG_ERRORS = (
    ConfigError,
    OSError,  # a missing file, a CA certificate ssl cannot load
    KeyError,  # a context naming an undefined cluster or user, an unset environment variable
    ValueError,
    TypeError,
    yaml.YAMLError,
    msgspec.MsgspecError,
)

_Workload = Deployment | DaemonSet | StatefulSet
_R = TypeVar("_R", bound=NamespacedResource)


@dataclass(frozen=True, slots=True)
class _Kind:
    resource: type[_Workload]
    plural: str


_KINDS: dict[str, _Kind] = {
    "Deployment": _Kind(Deployment, "deployments"),
    "DaemonSet": _Kind(DaemonSet, "daemonsets"),
    "StatefulSet": _Kind(StatefulSet, "statefulsets"),
}
SUPPORTED_KINDS = tuple(_KINDS)


@dataclass(frozen=True, slots=True)
class _Target:
    """One object being read, as messages name it and as RBAC names its resource."""

    kind: str
    namespace: str
    name: str
    resource: str  # canaries.flagger.app, deployments.apps
    role: str = ""  # " (the Canary's targetRef)"

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}{self.role}"


# ---- configuration ---------------------------------------------------------------------------


def _with_user(config: SingleConfig) -> SingleConfig:
    """lightkube 1.0 asserts that a context has a user; one without (``kubectl proxy``, a
    test server) simply sends no credentials."""
    return config if config.user is not None else config._replace(user=User())


def _single(config: KubeConfig | SingleConfig, context: str | None) -> SingleConfig:
    if isinstance(config, SingleConfig):
        return _with_user(config)
    chosen = config.get(context)
    if chosen is None:  # only possible with a default, which is not given
        raise ConfigError("no context selected")
    return _with_user(chosen)


def _default_kubeconfig() -> str:
    """``$KUBECONFIG`` when it names one file (as kubectl reads it), else ``~/.kube/config``."""
    value = os.environ.get("KUBECONFIG", "").strip()
    if not value:
        return _DEFAULT_KUBECONFIG
    paths = [path for path in value.split(os.pathsep) if path]
    if len(paths) != 1:
        raise ConfigError(
            "KUBECONFIG lists several files; name one in commits.kubernetes (kubeconfig)"
        )
    return paths[0]


def load_cluster(cluster: KubeCluster | None) -> SingleConfig:
    """The connection settings for a policy cluster (None: in-cluster when running in a pod,
    else the default kubeconfig). Raises lightkube's ConfigError (or OSError) naming the
    problem."""
    if cluster is None:
        in_pod = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        cluster = KubeCluster(in_cluster=True) if in_pod else KubeCluster()
    if cluster.in_cluster:
        if not os.environ.get("KUBERNETES_SERVICE_HOST"):
            raise ConfigError("not running in a pod (KUBERNETES_SERVICE_HOST is not set)")
        return _single(KubeConfig.from_service_account(), None)
    path = cluster.kubeconfig or _default_kubeconfig()
    return _single(KubeConfig.from_file(path), cluster.context)


# ---- classifying failures --------------------------------------------------------------------


def _quoted_body(response: httpx2.Response) -> str:
    text = " ".join(response.text.split())
    return text[:_MESSAGE_LIMIT] or response.reason_phrase or "no message"


def _retry_after(response: httpx2.Response, status: Any) -> float | None:
    """Seconds to wait: the Retry-After header, else the Status' ``retryAfterSeconds``."""
    header = response.headers.get("retry-after", "").strip()
    if header:
        try:
            return max(float(header), 0.0)
        except ValueError:
            pass
    details = getattr(status, "details", None)
    seconds = getattr(details, "retryAfterSeconds", None)
    return float(seconds) if isinstance(seconds, int) else None


def _status_failure(exc: httpx2.HTTPStatusError, target: _Target) -> ProviderError:
    """An error answer as a Puerta error whose message says what to do about it."""
    response = exc.response
    code = response.status_code
    status = exc.status if isinstance(exc, ApiError) else None
    said = (status.message if status is not None else None) or _quoted_body(response)
    if code == 404:
        hint = (
            " (the cluster does not serve that resource type)" if said == _UNKNOWN_RESOURCE else ""
        )
        return PermanentError(f"{target} not found{hint}", status=404)
    if code == 401:
        return PermanentError(
            f"Kubernetes did not accept Puerta's credentials reading {target} (HTTP 401): "
            "check the kubeconfig or the service account token",
            status=401,
        )
    if code == 403:
        return PermanentError(
            f"Puerta may not read {target}: its Kubernetes identity needs the RBAC verb get on "
            f"{target.resource} in namespace {target.namespace} (Kubernetes said: {said})",
            status=403,
        )
    if code == 429:
        return RateLimited(
            f"Kubernetes API asked Puerta to slow down reading {target}: {said}",
            retry_after=_retry_after(response, status),
        )
    message = f"Kubernetes API answered HTTP {code} reading {target}: {said}"
    if code >= 500 or code == 408:
        return TransientError(message, status=code)
    return PermanentError(message, status=code)


def _failure(exc: Exception, target: _Target) -> ProviderError | None:
    """The Puerta error for what a read raised; None for what is not a call failure (a bug).

    lightkube raises ``ApiError`` for a ``Status`` body, plain ``HTTPStatusError`` for other
    bodies (a proxy's error page), and fails with another exception while raising when an
    error answer has no Content-Type or a body it cannot read as a Status: those are
    classified by the HTTP error they interrupted.
    """
    if isinstance(exc, httpx2.HTTPStatusError):
        return _status_failure(exc, target)
    if isinstance(exc, httpx2.TimeoutException):
        return TransientError(f"Kubernetes API timed out reading {target}")
    if isinstance(exc, httpx2.TransportError):
        return TransientError(
            f"Kubernetes API unreachable reading {target}: {type(exc).__name__}: {exc}"
        )
    if isinstance(exc.__context__, httpx2.HTTPStatusError):
        return _status_failure(exc.__context__, target)
    if isinstance(exc, msgspec.MsgspecError):
        return TransientError(f"Kubernetes API sent an unreadable {target}: {exc}")
    if isinstance(exc, ConfigError | OSError):
        return PermanentError(f"cannot authenticate to Kubernetes reading {target}: {exc}")
    return None


# ---- reading the objects ---------------------------------------------------------------------


def _target_ref(canary: Mapping[str, Any], where: _Target) -> tuple[_Kind, str, str]:
    """(kind, kind name, workload name) of the Canary's ``spec.targetRef``."""
    spec = canary.get("spec")
    ref = spec.get("targetRef") if isinstance(spec, Mapping) else None
    name = ref.get("name") if isinstance(ref, Mapping) else None
    if not isinstance(ref, Mapping) or not isinstance(name, str) or not name:
        raise PermanentError(f"{where} has no spec.targetRef name")
    kind_name = str(ref.get("kind") or "")
    api_version = str(ref.get("apiVersion") or _APPS)
    kind = _KINDS.get(kind_name)
    if kind is None or api_version != _APPS:
        raise PermanentError(
            f"{where} targets {kind_name or 'an unnamed kind'} {name} ({api_version}); Puerta "
            f"reads only {', '.join(SUPPORTED_KINDS)} ({_APPS})"
        )
    return kind, kind_name, name


def _overlay(
    workload: Mapping[str, str] | None, template: Mapping[str, str] | None
) -> dict[str, str]:
    """The workload's own metadata with the pod template's over it (the template wins)."""
    return {**(workload or {}), **(template or {})}


def _labels(meta: ObjectMeta | None) -> dict[str, str] | None:
    return meta.labels if meta is not None else None


def _annotations(meta: ObjectMeta | None) -> dict[str, str] | None:
    return meta.annotations if meta is not None else None


def _workload_info(
    kind: str, namespace: str, name: str, meta: ObjectMeta | None, template: PodTemplateSpec
) -> WorkloadInfo:
    pod_meta = template.metadata
    containers = template.spec.containers if template.spec is not None else []
    return WorkloadInfo(
        kind=kind,
        name=name,
        namespace=namespace,
        containers=tuple(Container(c.name, c.image or "") for c in containers),
        labels=_overlay(_labels(meta), _labels(pod_meta)),
        annotations=_overlay(_annotations(meta), _annotations(pod_meta)),
    )


class KubernetesWorkloads:
    """Implements :class:`~puerta.commits.base.WorkloadReader` for one cluster.

    ``config``: a lightkube ``KubeConfig`` (``context`` picks one of its contexts; default its
    current-context), a ``SingleConfig``, or a function returning one, called on the first
    read (so a missing kubeconfig is a PermanentError of that read, not of start-up). Tests
    pass ``KubeConfig.from_server(url)`` or ``KubeConfig.from_dict(...)``. ``timeout``:
    seconds per request. ``label`` names the cluster in ``repr`` and configuration errors.
    """

    def __init__(
        self,
        config: KubeConfig | SingleConfig | Callable[[], SingleConfig],
        *,
        context: str | None = None,
        timeout: float = 5.0,
        label: str | None = None,
    ) -> None:
        if isinstance(config, KubeConfig | SingleConfig):
            fixed = config
            self._load: Callable[[], SingleConfig] = lambda: _single(fixed, context)
        else:
            self._load = config
        self._timeout = timeout
        self._client: AsyncClient | None = None
        self._label = label or (f"context {context}" if context else "the given configuration")

    @classmethod
    def for_cluster(cls, cluster: KubeCluster | None, *, timeout: float) -> KubernetesWorkloads:
        """A reader for a policy cluster (None: detected from the process, see
        :func:`load_cluster`)."""
        label = cluster.describe() if cluster is not None else "the detected cluster"
        return cls(lambda: load_cluster(cluster), timeout=timeout, label=label)

    def __repr__(self) -> str:  # never show credentials
        return f"KubernetesWorkloads({self._label})"

    async def read(self, namespace: str, canary: str) -> WorkloadInfo:
        """The Canary's target workload: containers, and labels/annotations of the workload
        overlaid by its pod template's."""
        where = _Target("Canary", namespace, canary, "canaries.flagger.app")
        found = await self._get(Canary, where)
        kind, kind_name, name = _target_ref(found, where)
        target = _Target(
            kind_name, namespace, name, f"{kind.plural}.apps", " (the Canary's targetRef)"
        )
        workload = await self._get(kind.resource, target)
        if workload.spec is None:
            raise PermanentError(f"{target} has no spec")
        return _workload_info(kind_name, namespace, name, workload.metadata, workload.spec.template)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _get(self, resource: type[_R], target: _Target) -> _R:
        """One GET, its failures classified (see :func:`_failure`)."""
        client = self._connect()
        try:
            return await client.get(resource, target.name, namespace=target.namespace)
        except Exception as exc:
            failure = _failure(exc, target)
            if failure is None:
                raise
            raise failure from exc

    def _connect(self) -> AsyncClient:
        if self._client is None:
            try:
                config = self._load()
                self._client = AsyncClient(config, timeout=httpx2.Timeout(self._timeout))
            except _CONFIG_ERRORS as exc:
                raise PermanentError(
                    f"cannot use the Kubernetes configuration ({self._label}): {exc}"
                ) from exc
        return self._client


class WorkloadReaders:
    """The reader for each Puerta environment: its own cluster if the policy names one,
    else the default. Readers are built on first use and shared by environments that name
    the same cluster; :meth:`aclose` closes them all.

    Callable as ``readers(environment)``, the shape
    :class:`puerta.service.commit_resolver.CommitResolver` takes. ``build`` makes a reader for
    a cluster (tests pass one that returns readers pointed at fakes).
    """

    def __init__(
        self,
        config: KubernetesConfig,
        *,
        build: Callable[[KubeCluster | None], WorkloadReader] | None = None,
    ) -> None:
        self._config = config
        self._build = build or self._default_build
        self._readers: dict[KubeCluster | None, WorkloadReader] = {}

    def __call__(self, environment: str | None) -> WorkloadReader:
        return self.for_environment(environment)

    def for_environment(self, environment: str | None) -> WorkloadReader:
        cluster = self._config.cluster_for(environment)
        reader = self._readers.get(cluster)
        if reader is None:
            reader = self._readers[cluster] = self._build(cluster)
        return reader

    async def aclose(self) -> None:
        readers, self._readers = list(self._readers.values()), {}
        for reader in readers:
            close = getattr(reader, "aclose", None)
            if close is not None:
                await close()

    def _default_build(self, cluster: KubeCluster | None) -> WorkloadReader:
        return KubernetesWorkloads.for_cluster(cluster, timeout=self._config.timeout_seconds)
