"""From a workload's image and metadata to the repository and commit it was built from, by the
policy's ``commits.rules``. Pure: no I/O, so every way a rule can miss is a table-driven test.

A miss is not an error: a rollout still goes ahead without knowing its commit, so each miss is
an :class:`Unresolved` whose ``reason`` tells people what to change (the rule, the image tag,
or the label their build forgot to set).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from puerta.commits.base import CommitRef, Container, WorkloadInfo
from puerta.commits.config import CommitRule, MetadataSource
from puerta.domain import templates

__all__ = [
    "ImageRef",
    "Unresolved",
    "parse_image",
    "repository_name",
    "resolve_commit",
    "rule_resolver",
]

# the grammar of github.com/distribution/reference, slightly relaxed where it cannot matter
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:[._-]+[a-z0-9]+)*")
_TAG = re.compile(r"\w[\w.-]{0,127}")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_DOCKER_HUB = "docker.io"
_SHA = re.compile(r"[0-9a-fA-F]{7,64}")  # SHA-1 or SHA-256 repositories, short or full
_REPO_PART = re.compile(r"[A-Za-z0-9_.-]+")
_SCP_LIKE = re.compile(r"[\w.-]+@[\w.-]+:(?P<path>[^/].*)")  # git@github.com:acme/podinfo.git


@dataclass(frozen=True, slots=True)
class Unresolved:
    """Why no commit could be found for a workload, in words for the people who own it."""

    reason: str

    def __str__(self) -> str:
        return self.reason


# ---- image references ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A container image reference taken apart.

    ``registry`` is ``docker.io`` when the reference names none; ``repository`` is the path
    as written, without the registry (``acme/podinfo``; ``nginx`` stays ``nginx``).
    """

    registry: str
    repository: str
    tag: str | None
    digest: str | None  # e.g. sha256:...

    @property
    def name(self) -> str:
        """The last path segment (``podinfo`` of ``ghcr.io/acme/podinfo``)."""
        return self.repository.rsplit("/", 1)[-1]


def parse_image(reference: str) -> ImageRef:
    """Take an image reference apart; ValueError says what is malformed.

    The tag is after the last ``:`` only when no ``/`` follows it, so the port of
    ``localhost:5000/x/y`` is not mistaken for a tag; the first path component is a registry
    only when it looks like a host (has a ``.`` or a ``:``, or is ``localhost``), as Docker
    decides it.
    """
    text = reference.strip()
    if not text or any(c.isspace() for c in text):
        raise ValueError(f"{reference!r} is not an image reference")
    name, at, digest = text.partition("@")
    if at and not _DIGEST.fullmatch(digest):
        raise ValueError(f"{reference!r} has a malformed digest {digest!r}")
    name, tag = _split_tag(name, reference)
    registry, path = _split_registry(name)
    if not all(_PATH_COMPONENT.fullmatch(part) for part in path.split("/")):
        raise ValueError(f"{reference!r} has a malformed repository path {path!r}")
    return ImageRef(registry=registry, repository=path, tag=tag, digest=digest if at else None)


def _split_tag(name: str, reference: str) -> tuple[str, str | None]:
    colon = name.rfind(":")
    if colon <= name.rfind("/"):
        return name, None
    tag = name[colon + 1 :]
    if not _TAG.fullmatch(tag):
        raise ValueError(f"{reference!r} has a malformed tag {tag!r}")
    return name[:colon], tag


def _split_registry(name: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return _DOCKER_HUB, name


# ---- repositories ----------------------------------------------------------------------------


def repository_name(value: str) -> str | None:
    """``owner/repo`` from what a label or template says, or None when it names none.

    Accepts ``acme/podinfo``, ``https://github.com/acme/podinfo(.git)`` (also Enterprise
    hosts and deeper links such as ``/tree/main``), ``github.com/acme/podinfo`` and
    ``git@github.com:acme/podinfo.git``: OCI's ``org.opencontainers.image.source`` is usually
    the repository's web URL, sometimes its clone URL.
    """
    text = value.strip()
    scp = _SCP_LIKE.fullmatch(text)
    if scp is not None:
        parts = _segments(scp.group("path"))
    elif "://" in text:
        parts = _segments(urlsplit(text).path)
    else:
        parts = _segments(text)
        if len(parts) > 2 and "." in parts[0]:  # a host without a scheme
            parts = parts[1:]
        elif len(parts) != 2:
            return None
    if len(parts) < 2:
        return None
    owner, repo = parts[0], parts[1].removesuffix(".git")
    if not (_REPO_PART.fullmatch(owner) and _REPO_PART.fullmatch(repo)):
        return None
    return f"{owner}/{repo}"


def _segments(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


# ---- rules -----------------------------------------------------------------------------------


def resolve_commit(
    info: WorkloadInfo, rules: Sequence[CommitRule], *, namespace: str, name: str
) -> CommitRef | Unresolved:
    """The repository and commit of the Canary ``namespace/name``'s workload, by the first
    rule whose match fits; :class:`Unresolved` with the reason when it cannot tell."""
    rule = next((r for r in rules if r.match.matches(namespace, name)), None)
    if rule is None:
        return Unresolved(f"no commits rule matches {namespace}/{name}")
    container = _pick_container(info, rule, name)
    if isinstance(container, Unresolved):
        return container
    try:
        image = parse_image(container.image)
    except ValueError as exc:
        return Unresolved(f"container {container.name} of {_where(info)}: {exc}")
    repository = _repository(info, rule, image, container, namespace=namespace, name=name)
    if isinstance(repository, Unresolved):
        return repository
    sha = _sha(info, rule, image, container.image)
    if isinstance(sha, Unresolved):
        return sha
    return CommitRef(repository=repository, sha=sha, image=container.image)


def rule_resolver(
    rules: Sequence[CommitRule],
) -> Callable[[WorkloadInfo, str, str], CommitRef | str]:
    """``resolve_commit`` bound to the policy's rules, answering a miss with its reason as a
    string: the shape :class:`puerta.service.commit_resolver.CommitResolver` takes."""
    frozen = tuple(rules)

    def resolve(info: WorkloadInfo, namespace: str, name: str) -> CommitRef | str:
        found = resolve_commit(info, frozen, namespace=namespace, name=name)
        return found.reason if isinstance(found, Unresolved) else found

    return resolve


def _where(info: WorkloadInfo) -> str:
    return f"{info.kind} {info.namespace}/{info.name}"


def _pick_container(info: WorkloadInfo, rule: CommitRule, name: str) -> Container | Unresolved:
    """The rule's container; else the one named like the canary (the app's own container,
    not a sidecar), else the first."""
    if not info.containers:
        return Unresolved(f"{_where(info)} has no containers")
    wanted = rule.container
    for container in info.containers:
        if container.name == (wanted or name):
            return container
    if wanted is None:
        return info.containers[0]
    names = ", ".join(c.name for c in info.containers)
    return Unresolved(f"container {wanted} not found in {_where(info)} (it has {names})")


def _metadata(info: WorkloadInfo, source: MetadataSource) -> str | None:
    values: Mapping[str, str] = info.labels if source.kind == "label" else info.annotations
    value = values.get(source.key, "").strip()
    return value or None


def _not_set(info: WorkloadInfo, source: MetadataSource) -> Unresolved:
    return Unresolved(f"{source} not set on {_where(info)}")


def _repository(
    info: WorkloadInfo,
    rule: CommitRule,
    image: ImageRef,
    container: Container,
    *,
    namespace: str,
    name: str,
) -> str | Unresolved:
    """``repository_from`` when the workload has it, else the ``repository`` template."""
    source = rule.repository_source
    if source is not None:
        value = _metadata(info, source)
        if value is not None:
            found = repository_name(value)
            if found is None:
                return Unresolved(
                    f"{source} on {_where(info)} is {value!r}, not a repository "
                    "(owner/repo or its URL)"
                )
            return found
    if rule.repository is None:  # the config then has repository_from
        return _not_set(info, source) if source is not None else Unresolved("no repository")
    values = {
        "name": name,
        "namespace": namespace,
        "container": container.name,
        "image_repo": image.repository,
        "image_name": image.name,
    }
    rendered = templates.render(rule.repository, values, {})
    found = repository_name(rendered)
    if found is None:
        return Unresolved(
            f"repository {rule.repository!r} gives {rendered!r} for {_where(info)}, not owner/repo"
        )
    return found


def _sha(info: WorkloadInfo, rule: CommitRule, image: ImageRef, reference: str) -> str | Unresolved:
    """The commit from the image tag (by ``tag_pattern``) or from a label/annotation."""
    source = rule.sha_source
    if source is None:
        return _sha_from_tag(rule, image, reference)
    value = _metadata(info, source)
    if value is None:
        return _not_set(info, source)
    if not _SHA.fullmatch(value):
        return Unresolved(f"{source} on {_where(info)} is {value!r}, not a commit SHA")
    return value


def _sha_from_tag(rule: CommitRule, image: ImageRef, reference: str) -> str | Unresolved:
    if image.tag is None:
        return Unresolved(f"image {reference} has no tag to read a commit from")
    match = rule.compiled_pattern.search(image.tag)
    sha = match.group("sha") if match is not None else None
    if not sha:
        return Unresolved(f"tag {image.tag} does not match tag_pattern {rule.tag_pattern}")
    return sha
