"""The policy's ``commits`` section: where Puerta reads what a rollout ships, and how an image
maps to a repository and commit.

Flagger's webhook names only the Canary, so Puerta reads the Canary's target workload from the
cluster (``kubernetes``: one cluster by default, or one per Puerta environment), then the first
of ``rules`` whose ``match`` fits the canary says which container to look at, which repository
it was built from and where its commit SHA is written (the image tag, a label or an
annotation). ``github`` is where commits are looked up; its token is referenced, never written
in the file.

Everything a rule can get wrong (a regex without a ``sha`` group, a misspelled placeholder, a
``sha_from`` that is neither ``image-tag`` nor ``label:KEY``/``annotation:KEY``) is refused
when the policy loads, with the field named, rather than surfacing on the first rollout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from fnmatch import fnmatchcase
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from puerta.domain import templates
from puerta.domain.durations import parse_duration
from puerta.policy.errors import located
from puerta.policy.secret_ref import SecretRef

__all__ = [
    "DEFAULT_TAG_PATTERN",
    "IMAGE_TAG",
    "TEMPLATE_FIELDS",
    "CommitRule",
    "CommitsConfig",
    "GitHubCommitsConfig",
    "KubeCluster",
    "KubernetesConfig",
    "MetadataSource",
    "RuleMatch",
    "parse_source",
]

IMAGE_TAG = "image-tag"
DEFAULT_TAG_PATTERN = r"(?P<sha>[0-9a-f]{7,40})$"
#: placeholders a rule's ``repository`` template may use
TEMPLATE_FIELDS = frozenset({"name", "namespace", "container", "image_repo", "image_name"})
_SOURCE_KINDS = ("label", "annotation")
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- where a value is read from the workload -------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetadataSource:
    """A label or annotation of the workload (or its pod template) that holds a value."""

    kind: Literal["label", "annotation"]
    key: str

    def __str__(self) -> str:
        return f"{self.kind} {self.key}"


def parse_source(text: str) -> MetadataSource:
    """``label:KEY`` or ``annotation:KEY`` as a :class:`MetadataSource`; ValueError otherwise.

    Keys such as ``org.opencontainers.image.source`` contain dots and slashes but never
    whitespace, so a key with spaces is a typo worth refusing early.
    """
    kind, colon, key = text.partition(":")
    key = key.strip()
    if not colon or kind not in _SOURCE_KINDS or not key or any(c.isspace() for c in key):
        raise ValueError(f"{text!r}: write label:KEY or annotation:KEY")
    return MetadataSource("label" if kind == "label" else "annotation", key)


def _duration(value: str) -> str:
    """A positive duration (a zero timeout would fail every call)."""
    if parse_duration(value) <= timedelta(0):
        raise ValueError("must be longer than 0s")
    return value


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value.rstrip("/")


# ---- kubernetes ------------------------------------------------------------------------------


class KubeCluster(_Strict):
    """How to reach one cluster: in-cluster (the pod's service account) or a kubeconfig file.

    ``{}`` means the default kubeconfig file (``$KUBECONFIG`` when it names one file, else
    ``~/.kube/config``, as kubectl picks it) and its current context.
    """

    in_cluster: bool = Field(
        default=False,
        description="use the service account of the pod Puerta runs in",
    )
    kubeconfig: str | None = Field(
        default=None,
        description="path of a kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)",
    )
    context: str | None = Field(
        default=None, description="context of the kubeconfig (default: its current-context)"
    )

    @model_validator(mode="after")
    def _one_way(self) -> KubeCluster:
        if self.in_cluster and (self.kubeconfig is not None or self.context is not None):
            raise ValueError("in_cluster: true takes no kubeconfig or context; give one or other")
        return self

    def describe(self) -> str:
        """How messages name the cluster (never anything secret: paths and names only)."""
        if self.in_cluster:
            return "in-cluster service account"
        where = self.kubeconfig or "the default kubeconfig"
        return f"{where} (context {self.context})" if self.context else where


class KubernetesConfig(_Strict):
    """The cluster(s) where Canaries and their workloads are read."""

    default: KubeCluster | None = Field(
        default=None,
        description=(
            "the cluster for every environment not listed under environments; unset: "
            "in-cluster when running in a pod (KUBERNETES_SERVICE_HOST set), else "
            "$KUBECONFIG or ~/.kube/config"
        ),
    )
    environments: dict[str, KubeCluster] = Field(
        default_factory=dict,
        description="a cluster per Puerta environment (e.g. production's own cluster)",
    )
    timeout: str = Field(default="5s", description="per request to the Kubernetes API")

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: str) -> str:
        return _duration(value)

    @property
    def timeout_seconds(self) -> float:
        return parse_duration(self.timeout).total_seconds()

    def cluster_for(self, environment: str | None) -> KubeCluster | None:
        """The environment's own cluster, else the default (None: detect from the process)."""
        if environment is not None and environment in self.environments:
            return self.environments[environment]
        return self.default


# ---- github ----------------------------------------------------------------------------------


class GitHubCommitsConfig(_Strict):
    """Where commits (and their authors) are looked up."""

    base_url: str = Field(
        default="https://api.github.com",
        description="API base URL; GitHub Enterprise Server: https://HOST/api/v3",
    )
    token: SecretRef = Field(description="token with read access to the repositories' contents")
    timeout: str = Field(default="10s", description="per request to GitHub")

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: str) -> str:
        return _duration(value)

    @property
    def timeout_seconds(self) -> float:
        return parse_duration(self.timeout).total_seconds()


# ---- rules -----------------------------------------------------------------------------------


class RuleMatch(_Strict):
    """Which canaries a rule is for: globs on the Canary's namespace and name."""

    namespace: str | None = Field(default=None, description="glob; unset: any namespace")
    name: str | None = Field(default=None, description="glob on the Canary's name; unset: any")

    def matches(self, namespace: str, name: str) -> bool:
        if self.namespace is not None and not fnmatchcase(namespace, self.namespace):
            return False
        return self.name is None or fnmatchcase(name, self.name)


class CommitRule(_Strict):
    """How one group of canaries maps its image to a repository and a commit SHA."""

    match: RuleMatch = Field(default_factory=RuleMatch, description="which canaries")
    container: str | None = Field(
        default=None,
        description="the container whose image is read; unset: the one named like the "
        "canary, else the first",
    )
    repository: str | None = Field(
        default=None,
        description="owner/repo template: {name} {namespace} {container} {image_repo} {image_name}",
    )
    repository_from: str | None = Field(
        default=None,
        description="label:KEY or annotation:KEY holding owner/repo or the repository's URL; "
        "wins over repository when the workload has it",
    )
    sha_from: str = Field(default=IMAGE_TAG, description="image-tag, label:KEY or annotation:KEY")
    tag_pattern: str = Field(
        default=DEFAULT_TAG_PATTERN,
        description="regex searched in the image tag; its named group sha is the commit "
        "(sha_from: image-tag only)",
    )

    @field_validator("repository")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise ValueError("empty; write e.g. acme/{name}")
        unknown = [f for f in templates.fields(value) if f not in TEMPLATE_FIELDS]
        if unknown:
            names = ", ".join(f"{{{f}}}" for f in sorted(TEMPLATE_FIELDS))
            raise ValueError(f"unknown placeholder {{{unknown[0]}}}; use {names}")
        if any(brace in _PLACEHOLDER.sub("", value) for brace in "{}"):
            raise ValueError("unbalanced { or }; placeholders look like {name}")
        return value

    @field_validator("repository_from")
    @classmethod
    def _repository_from(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_source(value)
            except ValueError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("sha_from")
    @classmethod
    def _sha_from(cls, value: str) -> str:
        if value == IMAGE_TAG:
            return value
        try:
            parse_source(value)
        except ValueError:
            raise ValueError(f"{value!r}: write image-tag, label:KEY or annotation:KEY") from None
        return value

    @field_validator("tag_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        if "sha" not in compiled.groupindex:
            raise ValueError("needs a named group sha, e.g. (?P<sha>[0-9a-f]{7,40})$")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> CommitRule:
        if self.repository is None and self.repository_from is None:
            raise ValueError("give repository (a template) or repository_from (or both)")
        if self.sha_from != IMAGE_TAG and self.tag_pattern != DEFAULT_TAG_PATTERN:
            raise ValueError(
                located("tag_pattern", "applies only to sha_from: image-tag; remove it")
            )
        return self

    @property
    def sha_source(self) -> MetadataSource | None:
        """Where the SHA is read from; None: the image tag."""
        return None if self.sha_from == IMAGE_TAG else parse_source(self.sha_from)

    @property
    def repository_source(self) -> MetadataSource | None:
        return None if self.repository_from is None else parse_source(self.repository_from)

    @property
    def compiled_pattern(self) -> re.Pattern[str]:
        return re.compile(self.tag_pattern)  # re caches compiled patterns


class CommitsConfig(_Strict):
    """The whole ``commits`` section."""

    kubernetes: KubernetesConfig = Field(
        default_factory=KubernetesConfig, description="where Canaries and workloads are read"
    )
    github: GitHubCommitsConfig | None = Field(
        default=None, description="where commits and their authors are looked up"
    )
    rules: list[CommitRule] = Field(
        default_factory=list,
        description="image -> repository and commit; the first rule whose match fits decides",
    )
