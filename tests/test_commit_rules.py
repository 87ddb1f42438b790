"""The policy's commits rules, pure: image references taken apart, repository URLs reduced to
owner/repo, each way of finding the SHA (image tag, label, annotation), container choice, the
first matching rule deciding, every miss explained; and the ``commits`` section's validation."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from puerta.commits.base import CommitRef, Container, WorkloadInfo
from puerta.commits.config import CommitRule, CommitsConfig, KubeCluster, parse_source
from puerta.commits.rules import (
    ImageRef,
    Unresolved,
    parse_image,
    repository_name,
    resolve_commit,
    rule_resolver,
)

DIGEST = "sha256:" + "0123456789abcdef" * 4
SHA = "3f9a2c1d5e7b90a1c2d3e4f5a6b7c8d9e0f1a2b3"
IMAGE = "ghcr.io/acme/podinfo:6.5.1-abc1234"
REVISION = "org.opencontainers.image.revision"
SOURCE = "org.opencontainers.image.source"


def workload(
    containers: dict[str, str] | None = None,
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    kind: str = "Deployment",
) -> WorkloadInfo:
    images = {"podinfo": IMAGE} if containers is None else containers
    return WorkloadInfo(
        kind=kind,
        name="podinfo",
        namespace="prod",
        containers=tuple(Container(name, image) for name, image in images.items()),
        labels=labels or {},
        annotations=annotations or {},
    )


def rule(**values: Any) -> CommitRule:
    values.setdefault("repository", "acme/{name}")
    return CommitRule.model_validate(values)


def resolve(info: WorkloadInfo, *rules: CommitRule, name: str = "podinfo") -> Any:
    return resolve_commit(info, rules or (rule(),), namespace="prod", name=name)


# ---- image references ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        (
            "ghcr.io/acme/podinfo:1.2-abc1234",
            ImageRef("ghcr.io", "acme/podinfo", "1.2-abc1234", None),
        ),
        ("acme/podinfo:abc1234", ImageRef("docker.io", "acme/podinfo", "abc1234", None)),
        ("nginx", ImageRef("docker.io", "nginx", None, None)),
        ("nginx:1.27", ImageRef("docker.io", "nginx", "1.27", None)),
        ("localhost:5000/x/y:tag", ImageRef("localhost:5000", "x/y", "tag", None)),
        ("localhost:5000/x/y", ImageRef("localhost:5000", "x/y", None, None)),
        ("localhost/x:1", ImageRef("localhost", "x", "1", None)),
        ("x/y@" + DIGEST, ImageRef("docker.io", "x/y", None, DIGEST)),
        ("x/y:tag@" + DIGEST, ImageRef("docker.io", "x/y", "tag", DIGEST)),
        (
            "registry.example.com:8443/team/app/api:v1_2@" + DIGEST,
            ImageRef("registry.example.com:8443", "team/app/api", "v1_2", DIGEST),
        ),
        ("  ghcr.io/acme/podinfo:v1  ", ImageRef("ghcr.io", "acme/podinfo", "v1", None)),
    ],
)
def test_parse_image(reference: str, expected: ImageRef) -> None:
    assert parse_image(reference) == expected


def test_image_name_is_the_last_path_segment() -> None:
    assert parse_image("registry.example.com:8443/team/app/api:v1").name == "api"
    assert parse_image("nginx").name == "nginx"


@pytest.mark.parametrize(
    ("reference", "problem"),
    [
        ("", "not an image reference"),
        ("ghcr.io/acme/pod info:1", "not an image reference"),
        ("x/y:", "malformed tag"),
        ("x/y:-bad", "malformed tag"),
        ("x/y@sha256:zz", "malformed digest"),
        ("x/y@", "malformed digest"),
        ("Acme/Podinfo:1", "malformed repository path"),
        ("x//y:1", "malformed repository path"),
        ("ghcr.io/:1", "malformed repository path"),
    ],
)
def test_parse_image_refuses_malformed_references(reference: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_image(reference)


# ---- repositories ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "acme/podinfo",
        " acme/podinfo ",
        "https://github.com/acme/podinfo",
        "https://github.com/acme/podinfo.git",
        "https://github.com/acme/podinfo/",
        "https://github.com/acme/podinfo/tree/main/charts",
        "http://ghe.example.com/acme/podinfo.git",
        "ssh://git@github.com/acme/podinfo.git",
        "git@github.com:acme/podinfo.git",
        "github.com/acme/podinfo",
    ],
)
def test_repository_name_forms(value: str) -> None:
    assert repository_name(value) == "acme/podinfo"


@pytest.mark.parametrize(
    "value", ["", "podinfo", "https://github.com/acme", "a/b/c", "acme/pod info", "acme/.git"]
)
def test_repository_name_refuses_what_names_no_repository(value: str) -> None:
    assert repository_name(value) is None


# ---- resolving -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("info", "commit_rule", "expected"),
    [
        pytest.param(workload(), rule(), CommitRef("acme/podinfo", "abc1234", IMAGE), id="tag"),
        pytest.param(
            workload({"podinfo": f"ghcr.io/acme/podinfo:{SHA}"}),
            rule(),
            CommitRef("acme/podinfo", SHA, f"ghcr.io/acme/podinfo:{SHA}"),
            id="full-sha-tag",
        ),
        pytest.param(
            workload({"podinfo": f"ghcr.io/acme/podinfo:6.5.1-abc1234@{DIGEST}"}),
            rule(),
            CommitRef("acme/podinfo", "abc1234", f"ghcr.io/acme/podinfo:6.5.1-abc1234@{DIGEST}"),
            id="tag-and-digest",
        ),
        pytest.param(
            workload({"podinfo": "ghcr.io/acme/podinfo:sha-abc1234-build.7"}),
            rule(tag_pattern=r"^sha-(?P<sha>[0-9a-f]+)-build"),
            CommitRef("acme/podinfo", "abc1234", "ghcr.io/acme/podinfo:sha-abc1234-build.7"),
            id="tag-pattern",
        ),
        pytest.param(
            workload(labels={REVISION: SHA}),
            rule(sha_from=f"label:{REVISION}"),
            CommitRef("acme/podinfo", SHA, IMAGE),
            id="label",
        ),
        pytest.param(
            workload({"podinfo": f"ghcr.io/acme/podinfo@{DIGEST}"}, annotations={"git/sha": SHA}),
            rule(sha_from="annotation:git/sha"),
            CommitRef("acme/podinfo", SHA, f"ghcr.io/acme/podinfo@{DIGEST}"),
            id="annotation-digest-only-image",
        ),
        pytest.param(
            workload(labels={SOURCE: "https://github.com/acme/podinfo-src.git"}),
            rule(repository_from=f"label:{SOURCE}"),
            CommitRef("acme/podinfo-src", "abc1234", IMAGE),
            id="repository-from-label-url-wins",
        ),
        pytest.param(
            workload(annotations={"repo": "git@github.com:acme/api.git"}),
            rule(repository=None, repository_from="annotation:repo"),
            CommitRef("acme/api", "abc1234", IMAGE),
            id="repository-from-annotation-scp",
        ),
        pytest.param(
            workload(),
            rule(repository_from=f"label:{SOURCE}"),
            CommitRef("acme/podinfo", "abc1234", IMAGE),
            id="repository-from-absent-falls-back-to-template",
        ),
        pytest.param(
            workload(),
            rule(repository="{image_repo}"),
            CommitRef("acme/podinfo", "abc1234", IMAGE),
            id="template-image-repo",
        ),
        pytest.param(
            workload(),
            rule(repository="{namespace}-team/{image_name}-{container}"),
            CommitRef("prod-team/podinfo-podinfo", "abc1234", IMAGE),
            id="template-namespace-image-name-container",
        ),
        pytest.param(
            workload(),
            rule(repository="https://github.com/acme/{name}.git"),
            CommitRef("acme/podinfo", "abc1234", IMAGE),
            id="template-url",
        ),
    ],
)
def test_resolves(info: WorkloadInfo, commit_rule: CommitRule, expected: CommitRef) -> None:
    assert resolve(info, commit_rule) == expected


@pytest.mark.parametrize(
    ("info", "commit_rule", "reason"),
    [
        pytest.param(
            workload({"podinfo": f"ghcr.io/acme/podinfo@{DIGEST}"}),
            rule(),
            f"image ghcr.io/acme/podinfo@{DIGEST} has no tag to read a commit from",
            id="digest-only",
        ),
        pytest.param(
            workload({"podinfo": "ghcr.io/acme/podinfo:6.5.1"}),
            rule(),
            "tag 6.5.1 does not match tag_pattern (?P<sha>[0-9a-f]{7,40})$",
            id="tag-without-sha",
        ),
        pytest.param(
            workload({"podinfo": "ghcr.io/acme/podinfo"}),
            rule(),
            "image ghcr.io/acme/podinfo has no tag to read a commit from",
            id="no-tag",
        ),
        pytest.param(
            workload(),
            rule(sha_from=f"label:{REVISION}"),
            f"label {REVISION} not set on Deployment prod/podinfo",
            id="label-missing",
        ),
        pytest.param(
            workload(annotations={REVISION: "  "}),
            rule(sha_from=f"annotation:{REVISION}"),
            f"annotation {REVISION} not set on Deployment prod/podinfo",
            id="annotation-blank",
        ),
        pytest.param(
            workload(labels={REVISION: "v1.2.3"}, kind="StatefulSet"),
            rule(sha_from=f"label:{REVISION}"),
            f"label {REVISION} on StatefulSet prod/podinfo is 'v1.2.3', not a commit SHA",
            id="label-not-a-sha",
        ),
        pytest.param(
            workload(),
            rule(repository=None, repository_from=f"label:{SOURCE}"),
            f"label {SOURCE} not set on Deployment prod/podinfo",
            id="repository-label-missing-no-template",
        ),
        pytest.param(
            workload(labels={SOURCE: "podinfo"}),
            rule(repository_from=f"label:{SOURCE}"),
            f"label {SOURCE} on Deployment prod/podinfo is 'podinfo', not a repository "
            "(owner/repo or its URL)",
            id="repository-label-not-a-repository",
        ),
        pytest.param(
            workload({"podinfo": "nginx:abc1234"}),
            rule(repository="{image_repo}"),
            "repository '{image_repo}' gives 'nginx' for Deployment prod/podinfo, not owner/repo",
            id="template-not-owner-repo",
        ),
        pytest.param(
            workload({"podinfo": "Acme/Podinfo:abc1234"}),
            rule(),
            "container podinfo of Deployment prod/podinfo: 'Acme/Podinfo:abc1234' has a "
            "malformed repository path 'Acme/Podinfo'",
            id="malformed-image",
        ),
        pytest.param(
            workload({"app": IMAGE, "istio-proxy": "istio/proxyv2:1.22"}),
            rule(container="web"),
            "container web not found in Deployment prod/podinfo (it has app, istio-proxy)",
            id="container-missing",
        ),
        pytest.param(
            workload({}), rule(), "Deployment prod/podinfo has no containers", id="no-containers"
        ),
    ],
)
def test_unresolved_reasons(info: WorkloadInfo, commit_rule: CommitRule, reason: str) -> None:
    assert resolve(info, commit_rule) == Unresolved(reason)


@pytest.mark.parametrize(
    ("containers", "commit_rule", "chosen"),
    [
        pytest.param(
            {"istio-proxy": "istio/proxyv2:1.22.0", "podinfo": "acme/podinfo:abc1234"},
            rule(),
            "acme/podinfo:abc1234",
            id="named-like-the-canary-over-first",
        ),
        pytest.param(
            {"app": "acme/app:abc1234", "sidecar": "acme/side:def5678"},
            rule(),
            "acme/app:abc1234",
            id="else-the-first",
        ),
        pytest.param(
            {"podinfo": "acme/podinfo:abc1234", "worker": "acme/worker:def5678"},
            rule(container="worker"),
            "acme/worker:def5678",
            id="the-rule-s-container",
        ),
    ],
)
def test_container_choice(containers: dict[str, str], commit_rule: CommitRule, chosen: str) -> None:
    found = resolve(workload(containers), commit_rule)
    assert isinstance(found, CommitRef)
    assert found.image == chosen


def test_no_rule_matches() -> None:
    staging = rule(match={"namespace": "staging"})
    other = rule(match={"name": "api-*"})
    assert resolve(workload(), staging, other) == Unresolved("no commits rule matches prod/podinfo")
    assert resolve(workload(), name="podinfo") == CommitRef("acme/podinfo", "abc1234", IMAGE)
    assert resolve_commit(workload(), [], namespace="prod", name="podinfo") == Unresolved(
        "no commits rule matches prod/podinfo"
    )


def test_the_first_matching_rule_decides() -> None:
    rules = (
        rule(match={"namespace": "staging"}, repository="wrong/{name}"),
        rule(match={"namespace": "pr*", "name": "pod*"}, repository="team-a/{name}"),
        rule(repository="fallback/{name}"),
    )
    first = resolve(workload(), *rules)
    assert isinstance(first, CommitRef)
    assert first.repository == "team-a/podinfo"
    other = resolve_commit(workload(), rules, namespace="prod", name="api")
    assert isinstance(other, CommitRef)
    assert other.repository == "fallback/api"


def test_rule_resolver_answers_a_miss_with_its_reason() -> None:
    resolve_for = rule_resolver([rule()])
    assert resolve_for(workload(), "prod", "podinfo") == CommitRef("acme/podinfo", "abc1234", IMAGE)
    digest_only = workload({"podinfo": f"ghcr.io/acme/podinfo@{DIGEST}"})
    assert resolve_for(digest_only, "prod", "podinfo") == (
        f"image ghcr.io/acme/podinfo@{DIGEST} has no tag to read a commit from"
    )
    assert str(Unresolved("why")) == "why"


# ---- validation of the commits section -------------------------------------------------------


def errors(values: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        CommitsConfig.model_validate(values)
    return [(tuple(e["loc"]), e["msg"]) for e in caught.value.errors()]


def rule_errors(**values: Any) -> list[tuple[tuple[Any, ...], str]]:
    values.setdefault("repository", "acme/{name}")
    return errors({"rules": [values]})


def test_example_section_loads() -> None:
    config = CommitsConfig.model_validate(
        {
            "kubernetes": {
                "default": {"in_cluster": True},
                "environments": {
                    "production": {"kubeconfig": "/etc/puerta/prod.kubeconfig", "context": "prod"}
                },
                "timeout": "5s",
            },
            "github": {"base_url": "https://api.github.com/", "token": {"token_env": "GH"}},
            "rules": [
                {
                    "match": {"namespace": "*", "name": "*"},
                    "container": None,
                    "repository": "acme/{name}",
                    "repository_from": None,
                    "sha_from": "image-tag",
                    "tag_pattern": "(?P<sha>[0-9a-f]{7,40})$",
                }
            ],
        }
    )
    assert config.kubernetes.timeout_seconds == 5.0
    assert config.kubernetes.cluster_for("production") == KubeCluster(
        kubeconfig="/etc/puerta/prod.kubeconfig", context="prod"
    )
    assert config.kubernetes.cluster_for("staging") == KubeCluster(in_cluster=True)
    assert config.kubernetes.cluster_for(None) == KubeCluster(in_cluster=True)
    assert config.github is not None
    assert config.github.base_url == "https://api.github.com"
    assert config.rules[0].sha_source is None
    defaults = CommitsConfig.model_validate({"rules": [{"repository": "acme/{name}"}]})
    assert defaults.kubernetes.cluster_for("production") is None  # detected at run time
    assert defaults.rules[0].tag_pattern == "(?P<sha>[0-9a-f]{7,40})$"


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"tag_pattern": "(?P<sha>[0-9a-f"}, "tag_pattern", "not a valid regular expression"),
        ({"tag_pattern": "([0-9a-f]{7,40})$"}, "tag_pattern", "needs a named group sha"),
        ({"sha_from": "git-sha"}, "sha_from", "write image-tag, label:KEY or annotation:KEY"),
        ({"sha_from": "label:"}, "sha_from", "write image-tag, label:KEY or annotation:KEY"),
        ({"sha_from": "env:GIT_SHA"}, "sha_from", "write image-tag, label:KEY"),
        ({"repository_from": "image-tag"}, "repository_from", "write label:KEY or annotation:KEY"),
        ({"repository_from": "label:a b"}, "repository_from", "write label:KEY or annotation:KEY"),
        ({"repository": "acme/{owner}"}, "repository", "unknown placeholder {owner}; use"),
        ({"repository": "acme/{metadata.repo}"}, "repository", "unknown placeholder"),
        ({"repository": "acme/{name"}, "repository", "unbalanced"),
        ({"repository": " "}, "repository", "empty"),
        ({"match": {"namespaces": "prod"}}, "namespaces", "Extra inputs are not permitted"),
        ({"shas_from": "image-tag"}, "shas_from", "Extra inputs are not permitted"),
    ],
)
def test_rule_validation_names_the_field(values: dict[str, Any], field: str, message: str) -> None:
    found = rule_errors(**values)
    assert len(found) == 1, found
    loc, text = found[0]
    assert loc[:2] == ("rules", 0)
    assert field in loc
    assert message in text


def test_tag_pattern_applies_only_to_image_tags() -> None:
    [(loc, text)] = rule_errors(sha_from=f"label:{REVISION}", tag_pattern="(?P<sha>.+)")
    assert loc == ("rules", 0)
    # the policy loader moves "@tag_pattern@" into the error's location
    assert "@tag_pattern@applies only to sha_from: image-tag" in text
    # the default written out (the documented example, copied) is harmless
    rule(sha_from=f"label:{REVISION}", tag_pattern="(?P<sha>[0-9a-f]{7,40})$")


def test_a_rule_needs_a_repository() -> None:
    [(loc, text)] = errors({"rules": [{"sha_from": "image-tag"}]})
    assert loc == ("rules", 0)
    assert "give repository (a template) or repository_from" in text


@pytest.mark.parametrize(
    ("values", "loc_part", "message"),
    [
        ({"kubernetes": {"timeout": "0s"}}, "timeout", "must be longer than 0s"),
        ({"kubernetes": {"timeout": "soon"}}, "timeout", "invalid duration"),
        (
            {"kubernetes": {"default": {"in_cluster": True, "kubeconfig": "/k"}}},
            "default",
            "in_cluster: true takes no kubeconfig or context",
        ),
        (
            {"kubernetes": {"environments": {"prod": {"cluster": "x"}}}},
            "cluster",
            "Extra inputs are not permitted",
        ),
        ({"github": {"token": {"token": "ghp_inline"}}}, "token", "never written in the policy"),
        (
            {"github": {"base_url": "api.github.com", "token": {"token_env": "GH"}}},
            "base_url",
            "must start with http",
        ),
        ({"github": {"token": {"token_env": "GH"}, "timeout": "0s"}}, "timeout", "longer than"),
    ],
)
def test_section_validation(values: dict[str, Any], loc_part: str, message: str) -> None:
    found = errors(values)
    assert any(loc_part in loc and message in text for loc, text in found), found


def test_parse_source() -> None:
    assert str(parse_source(f"label:{REVISION}")) == f"label {REVISION}"
    assert parse_source("annotation:a/b").kind == "annotation"
    with pytest.raises(ValueError, match="write label:KEY or annotation:KEY"):
        parse_source("tag:x")
