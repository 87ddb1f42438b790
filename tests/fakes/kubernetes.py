"""A fake Kubernetes API server for exactly what Puerta reads: Flagger Canaries
(``flagger.app/v1beta1``) and their target workloads (Deployments, DaemonSets and StatefulSets in
``apps/v1``), answered with the objects and ``Status`` error bodies a real API server sends.

lightkube calls nothing first (no discovery, no ``/version``): a ``get`` is one request to the
object's path. Any other path answers 404 ``the server could not find the requested resource``,
which is also what a cluster without Flagger's CRD answers for canaries.

The bearer token is checked (401 ``Unauthorized`` without it), :meth:`FakeKubernetes.forbid`
makes RBAC refuse a resource with the real 403 message, and FakeBase's fault injection applies
to every route; :meth:`FakeKubernetes.fail_plain` answers like a proxy in front of the API
server would (HTML or no body, not a ``Status``). State is guarded by the FakeBase lock: tests
add objects from their thread while uvicorn serves in another.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fakes.base import FakeBase

TOKEN = "k8s-fake-sa-token-4b1d9e"
SERVICE_ACCOUNT = "system:serviceaccount:puerta:puerta"
WORKLOAD_PLURALS = {
    "Deployment": "deployments",
    "DaemonSet": "daemonsets",
    "StatefulSet": "statefulsets",
}
CANARY_GROUP = "flagger.app"
CANARY_VERSION = "v1beta1"
UNKNOWN_RESOURCE = "the server could not find the requested resource"
# what the API server reports for a rolled-out workload (required fields included: lightkube
# decodes workloads into typed models that insist on them)
_STATUSES: dict[str, dict[str, int]] = {
    "Deployment": {
        "observedGeneration": 1,
        "replicas": 2,
        "updatedReplicas": 2,
        "readyReplicas": 2,
        "availableReplicas": 2,
    },
    "StatefulSet": {
        "observedGeneration": 1,
        "replicas": 2,
        "currentReplicas": 2,
        "updatedReplicas": 2,
        "readyReplicas": 2,
        "availableReplicas": 2,
    },
    "DaemonSet": {
        "observedGeneration": 1,
        "currentNumberScheduled": 3,
        "desiredNumberScheduled": 3,
        "numberMisscheduled": 0,
        "numberReady": 3,
        "updatedNumberScheduled": 3,
        "numberAvailable": 3,
    },
}
_GROUPS = {"canaries": CANARY_GROUP, **dict.fromkeys(WORKLOAD_PLURALS.values(), "apps")}


def status_body(
    code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A ``Status`` error body as the API server sends it (also for ``fail_next(body=...)``)."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = dict(details)
    return body


def status(
    code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
) -> JSONResponse:
    """A ``Status`` error answer."""
    return JSONResponse(status_body(code, reason, message, details), status_code=code)


def _qualified(plural: str) -> str:
    """``deployments.apps``: how the API server names a resource in its messages."""
    return f"{plural}.{_GROUPS[plural]}"


@dataclass
class _Plain:
    """An armed non-Status answer (a proxy's HTML error page, an empty body)."""

    status: int
    body: bytes
    content_type: str | None
    remaining: int


@dataclass
class FakeKubernetes(FakeBase):
    """See the module docstring. ``token``: the bearer token required (None: none is)."""

    token: str | None = TOKEN
    user: str = SERVICE_ACCOUNT  # who RBAC messages say was refused
    canaries: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    workloads: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    forbidden: set[str] = field(default_factory=set)  # plurals refused with 403
    _plain: list[_Plain] = field(default_factory=list)
    _uids: itertools.count[int] = field(default_factory=lambda: itertools.count(1), repr=False)
    app: Starlette = field(init=False)

    def __post_init__(self) -> None:
        self.app = Starlette(routes=self._routes())

    # ---- set-up helpers for tests ------------------------------------------------------

    def add_canary(
        self,
        namespace: str,
        name: str,
        target_kind: str = "Deployment",
        target_name: str | None = None,
        *,
        target_api_version: str | None = None,
    ) -> dict[str, Any]:
        """A Canary whose ``spec.targetRef`` names ``target_kind``/``target_name`` (default:
        the Canary's name); ``target_api_version`` defaults to ``apps/v1`` for workloads,
        ``v1`` for anything else."""
        api_version = target_api_version or ("apps/v1" if target_kind in WORKLOAD_PLURALS else "v1")
        canary = {
            "apiVersion": f"{CANARY_GROUP}/{CANARY_VERSION}",
            "kind": "Canary",
            "metadata": self._metadata(namespace, name, {}, {}),
            "spec": {
                "provider": "kubernetes",
                "targetRef": {
                    "apiVersion": api_version,
                    "kind": target_kind,
                    "name": target_name or name,
                },
                "service": {"port": 9898},
                "analysis": {"interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 10},
            },
            "status": {"phase": "Progressing", "canaryWeight": 10},
        }
        with self._lock:
            self.canaries[(namespace, name)] = canary
        return canary

    def add_workload(
        self,
        namespace: str,
        kind: str,
        name: str,
        containers: Mapping[str, str] | None = None,
        *,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        template_labels: Mapping[str, str] | None = None,
        template_annotations: Mapping[str, str] | None = None,
        init_containers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """A Deployment, DaemonSet or StatefulSet; ``containers`` maps name -> image. The pod
        template always carries ``app: NAME`` (the selector's label), as real ones do."""
        plural = WORKLOAD_PLURALS[kind]
        pod_labels = {"app": name, **(template_labels or {})}
        images = (
            containers
            if containers is not None
            else {"podinfo": "ghcr.io/acme/podinfo:6.5.1-abc1234"}
        )
        pod_spec: dict[str, Any] = {"containers": [_container(n, i) for n, i in images.items()]}
        if init_containers:
            pod_spec["initContainers"] = [_container(n, i) for n, i in init_containers.items()]
        template: dict[str, Any] = {"metadata": {"labels": pod_labels}, "spec": pod_spec}
        if template_annotations:
            template["metadata"]["annotations"] = dict(template_annotations)
        spec: dict[str, Any] = {"selector": {"matchLabels": {"app": name}}, "template": template}
        if kind != "DaemonSet":
            spec["replicas"] = 2
        if kind == "StatefulSet":
            spec["serviceName"] = name
        workload = {
            "apiVersion": "apps/v1",
            "kind": kind,
            "metadata": self._metadata(namespace, name, labels or {}, annotations or {}),
            "spec": spec,
            "status": _STATUSES[kind],
        }
        with self._lock:
            self.workloads[(namespace, plural, name)] = workload
        return workload

    def forbid(self, resource: str) -> None:
        """RBAC refuses ``resource`` (a plural, ``canaries`` or ``deployments.apps``)."""
        with self._lock:
            self.forbidden.add(resource.split(".", 1)[0])

    def fail_plain(
        self,
        status_code: int = 502,
        *,
        body: str = "<html><body><h1>502 Bad Gateway</h1></body></html>",
        content_type: str | None = "text/html",
        count: int = 1,
    ) -> None:
        """The next ``count`` requests get a non-Status answer, as from a proxy or load
        balancer in front of the API server (``content_type`` None: no such header)."""
        with self._lock:
            self._plain.append(_Plain(status_code, body.encode(), content_type, count))

    # ---- routes ------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        canaries = (
            f"/apis/{CANARY_GROUP}/{CANARY_VERSION}/namespaces/{{namespace}}/canaries/{{name}}"
        )
        workloads = "/apis/apps/v1/namespaces/{namespace}/{plural}/{name}"
        return [
            Route(canaries, self._guard(self._canary), methods=["GET"]),
            Route(workloads, self._guard(self._workload), methods=["GET"]),
            Route("/{rest:path}", self._guard(self._unknown)),
        ]

    def _guard(
        self, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """Log, then injected faults, then the token, then the route."""

        async def endpoint(request: Request) -> Response:
            await self.record(request)
            plain = self._take_plain()
            if plain is not None:
                return plain
            fault = self.injected()
            if fault is not None:
                return await self.fault_response(fault)
            if not self._authorized(request):
                return status(401, "Unauthorized", "Unauthorized")
            return await handler(request)

        return endpoint

    async def _canary(self, request: Request) -> Response:
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        return self._answer("canaries", namespace, name, self.canaries.get((namespace, name)))

    async def _workload(self, request: Request) -> Response:
        params = request.path_params
        plural = params["plural"]
        if plural not in _GROUPS or plural == "canaries":
            return status(404, "NotFound", UNKNOWN_RESOURCE, {})
        found = self.workloads.get((params["namespace"], plural, params["name"]))
        return self._answer(plural, params["namespace"], params["name"], found)

    async def _unknown(self, request: Request) -> Response:
        return status(404, "NotFound", UNKNOWN_RESOURCE, {})

    def _answer(
        self, plural: str, namespace: str, name: str, found: dict[str, Any] | None
    ) -> Response:
        group = _GROUPS[plural]
        details = {"name": name, "group": group, "kind": plural}
        if plural in self.forbidden:
            message = (
                f'{_qualified(plural)} "{name}" is forbidden: User "{self.user}" cannot get '
                f'resource "{plural}" in API group "{group}" in the namespace "{namespace}"'
            )
            return status(403, "Forbidden", message, details)
        if found is None:
            return status(404, "NotFound", f'{_qualified(plural)} "{name}" not found', details)
        return JSONResponse(found)

    # ---- plumbing ----------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        expected = None if self.token is None else f"Bearer {self.token}"
        return expected is None or request.headers.get("authorization") == expected

    def _take_plain(self) -> Response | None:
        with self._lock:
            if not self._plain:
                return None
            plain = self._plain[0]
            plain.remaining -= 1
            if plain.remaining <= 0:
                self._plain.pop(0)
        response = Response(plain.body, status_code=plain.status)
        if plain.content_type is None:
            del response.headers["content-type"]
        else:
            response.headers["content-type"] = plain.content_type
        return response

    def _metadata(
        self,
        namespace: str,
        name: str,
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
    ) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "name": name,
            "namespace": namespace,
            "uid": f"00000000-0000-4000-8000-{next(self._uids):012d}",
            "resourceVersion": "4242",
            "generation": 1,
            "creationTimestamp": "2026-03-02T09:00:00Z",
        }
        if labels:
            meta["labels"] = dict(labels)
        if annotations:
            meta["annotations"] = dict(annotations)
        return meta


def _container(name: str, image: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": 9898, "protocol": "TCP"}],
    }


def kubeconfig(server: str, *, token: str | None = TOKEN, context: str = "fake") -> dict[str, Any]:
    """A kubeconfig for the fake, as kubectl writes it; a second context points at a dead
    server."""
    user: dict[str, Any] = {"token": token} if token is not None else {}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "fake", "cluster": {"server": server}},
            {"name": "dead", "cluster": {"server": "http://127.0.0.1:9"}},
        ],
        "users": [{"name": "puerta", "user": user}],
        "contexts": [
            {"name": context, "context": {"cluster": "fake", "user": "puerta"}},
            {"name": "dead", "context": {"cluster": "dead", "user": "puerta"}},
        ],
        "current-context": context,
    }


def write_kubeconfig(path: Path, server: str, **options: Any) -> str:
    path.write_text(yaml.safe_dump(kubeconfig(server, **options)))
    return str(path)
