"""Read Flagger Canary manifests into what the simulation needs, with errors that name the field.

Only what decides *when Flagger calls which webhook* is read: the analysis interval, threshold,
traffic steps or iterations, and the webhooks. Everything else of a Canary (service, metrics
queries, alerts, ...) is accepted and ignored, the way Kubernetes would accept it; webhooks are
read strictly, because a typo there (``metdata``) silently changes what Puerta is asked.

A webhook is *Puerta's* when its URL path is ``/hooks/<type>`` (any host, any query string):
its Flagger ``type`` decides when Flagger calls it, the path decides which Puerta endpoint
answers. Every other webhook (flagger-loadtester, Slack relays) is *external*: the simulation
cannot call it and assumes it passes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from puerta.domain.hooks import HOOK_NAMES, HookType
from puerta.errors import PuertaError
from puerta.yaml_locations import line_of, render_path

API_GROUP = "flagger.app/"
API_VERSION = "flagger.app/v1beta1"
DEFAULT_INTERVAL = timedelta(minutes=1)
MIN_INTERVAL = timedelta(seconds=10)  # Flagger runs a canary's job at most every 10 s
TOTAL_WEIGHT = 100

_PUERTA_PATH = re.compile(r"^/hooks/([^/]+)/?$")
_CRD_INTERVAL = re.compile(r"^[0-9]+(m|s)")  # the CRD's pattern (a prefix match, as in Go)
_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class ManifestError(PuertaError):
    """The manifest cannot be simulated; ``problems`` holds one line per error, with its place."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def parse_go_duration(text: str) -> timedelta:
    """A Go ``time.ParseDuration`` string as Flagger reads ``interval`` (``1m``, ``30s``,
    ``1m30s``); ValueError for anything else."""
    position = 0
    seconds = 0.0
    for match in _GO_PART.finditer(text):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _GO_UNITS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise ValueError(f"invalid duration {text!r}; write e.g. 30s, 1m or 1m30s")
    return timedelta(seconds=seconds)


# ---- the schema (the part of Flagger's CRD the simulation reads) ---------------------------


class _Lenient(BaseModel):
    """Kubernetes objects carry many fields the simulation does not need: accept them."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True, populate_by_name=True)


class WebhookSpec(BaseModel):
    """``spec.analysis.webhooks[]``: every field Flagger knows, nothing else."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    name: str = Field(min_length=1)
    type: HookType = HookType.ROLLOUT
    url: str = Field(min_length=1)
    timeout: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    mute_alert: bool = Field(default=False, alias="muteAlert")
    retries: int | None = None
    disable_tls: bool = Field(default=False, alias="disableTLS")

    @field_validator("type", mode="before")
    @classmethod
    def _hook_type(cls, value: Any) -> Any:
        if value is None or value == "":
            return HookType.ROLLOUT  # Flagger: an empty type is a rollout hook
        if isinstance(value, str):
            try:
                return HookType(value)
            except ValueError:
                raise ValueError(f"unknown webhook type {value!r} (valid: {HOOK_NAMES})") from None
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: str | None) -> str | None:
        if value is not None and not _CRD_INTERVAL.match(value):
            raise ValueError(f"invalid timeout {value!r}; write e.g. 10s or 1m")
        return value


class MetricSpec(_Lenient):
    name: str = ""


class AnalysisSpec(_Lenient):
    """``spec.analysis``: timing, failure threshold, traffic steps, webhooks."""

    interval: str = "1m"
    threshold: int = Field(default=1, ge=0)
    max_weight: int = Field(default=0, ge=0, le=TOTAL_WEIGHT, alias="maxWeight")
    step_weight: int = Field(default=0, ge=0, le=TOTAL_WEIGHT, alias="stepWeight")
    step_weights: list[int] = Field(default_factory=list, alias="stepWeights")
    step_weight_promotion: int = Field(
        default=0, ge=0, le=TOTAL_WEIGHT, alias="stepWeightPromotion"
    )
    iterations: int = Field(default=0, ge=0)
    match: list[Any] = Field(default_factory=list)
    metrics: list[MetricSpec] = Field(default_factory=list)
    webhooks: list[WebhookSpec] = Field(default_factory=list)

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        if not _CRD_INTERVAL.match(value):
            raise ValueError(f"invalid interval {value!r}; write e.g. 30s or 1m")
        parse_go_duration(value)
        return value

    @field_validator("step_weights")
    @classmethod
    def _increasing(cls, value: list[int]) -> list[int]:
        previous = 0
        for weight in value:
            if not previous < weight <= TOTAL_WEIGHT:
                raise ValueError("weights must increase, each between 1 and 100")
            previous = weight
        return value


class TargetRef(_Lenient):
    kind: str = "Deployment"
    name: str = Field(min_length=1)


class CanarySpecFields(_Lenient):
    target_ref: TargetRef | None = Field(default=None, alias="targetRef")
    provider: str = ""
    skip_analysis: bool = Field(default=False, alias="skipAnalysis")
    suspend: bool = False
    analysis: AnalysisSpec | None = None
    canary_analysis: AnalysisSpec | None = Field(default=None, alias="canaryAnalysis")

    @model_validator(mode="after")
    def _has_analysis(self) -> CanarySpecFields:
        if self.analysis is None and self.canary_analysis is None:
            raise ValueError("analysis: required (Flagger needs it to run a canary)")
        return self


class ObjectMeta(_Lenient):
    name: str
    namespace: str = "default"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
            raise ValueError(f"{value!r} is not a valid Kubernetes object name")
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if len(value) > 63 or not _DNS_LABEL.match(value):
            raise ValueError(f"{value!r} is not a valid Kubernetes namespace")
        return value


class CanaryDocument(_Lenient):
    api_version: str = Field(alias="apiVersion")
    kind: str
    metadata: ObjectMeta
    spec: CanarySpecFields


# ---- what the simulation works with --------------------------------------------------------


@dataclass(frozen=True)
class Webhook:
    """One webhook: when Flagger calls it (``type``) and, if it is Puerta's, which endpoint
    answers (``endpoint``, the last segment of ``/hooks/<endpoint>``)."""

    name: str
    type: HookType
    url: str
    metadata: dict[str, str]
    endpoint: str | None

    @property
    def is_puerta(self) -> bool:
        return self.endpoint is not None


@dataclass(frozen=True)
class Canary:
    """A Canary as the simulated Flagger needs it, defaults applied the way Flagger applies
    them (threshold 0 -> 1, no maxWeight -> 100, interval at least 10 s)."""

    name: str
    namespace: str
    target: str
    interval: timedelta
    threshold: int
    max_weight: int
    step_weight: int
    step_weights: tuple[int, ...]
    step_weight_promotion: int
    iterations: int
    ab_testing: bool
    skip_analysis: bool
    metrics: tuple[str, ...]
    webhooks: tuple[Webhook, ...]
    source: str  # file:line of the document, for messages
    notes: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """``namespace/name``, as Puerta and its CLI name a canary."""
        return f"{self.namespace}/{self.name}"

    @property
    def dotted(self) -> str:
        """``name.namespace``, as Flagger names a canary in its events."""
        return f"{self.name}.{self.namespace}"

    def hooks(self, hook: HookType) -> tuple[Webhook, ...]:
        """The webhooks Flagger calls as ``hook``, in spec order."""
        return tuple(w for w in self.webhooks if w.type is hook)

    @property
    def puerta_hooks(self) -> tuple[Webhook, ...]:
        return tuple(w for w in self.webhooks if w.is_puerta)


@dataclass
class Manifest:
    """Every Canary of a file, in document order, and what was skipped."""

    canaries: list[Canary] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def puerta_endpoint(url: str) -> str | None:
    """``confirm-rollout`` for ``http://puerta.x/hooks/confirm-rollout?token=...``, else None."""
    match = _PUERTA_PATH.match(urlsplit(url).path)
    return match.group(1) if match else None


def load_manifest(path: Path) -> Manifest:
    """Read every Canary of a YAML file; :class:`ManifestError` lists every problem found."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError([f"{path}: cannot read manifest: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise ManifestError([f"{path}: not a text file ({exc.reason})"]) from exc
    return parse_manifest(text, source=str(path))


def parse_manifest(text: str, source: str = "<manifest>") -> Manifest:
    """Validate manifest text (``source`` names it in messages)."""
    try:
        documents = list(yaml.safe_load_all(text))
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError([f"{where}: invalid YAML: {problem}"]) from exc

    manifest = Manifest()
    problems: list[str] = []
    seen: dict[str, str] = {}
    for number, (data, node) in enumerate(zip(documents, nodes, strict=True), start=1):
        if data is None:
            continue
        line = node.start_mark.line + 1 if node is not None else 1
        where = f"{source}:{line}"
        if not isinstance(data, dict):
            problems.append(f"{where}: document {number} is not a Kubernetes object (a mapping)")
            continue
        kind, api_version = data.get("kind"), data.get("apiVersion")
        if kind != "Canary" or not str(api_version or "").startswith(API_GROUP):
            manifest.notes.append(
                f"{where}: skipped {kind or 'an object without kind'} "
                f"({api_version or 'no apiVersion'}): not a Flagger Canary"
            )
            continue
        try:
            document = CanaryDocument.model_validate(data)
        except ValidationError as exc:
            problems.extend(_format_errors(exc, node, source))
            continue
        canary = _canary(document, where)
        if canary is None:
            manifest.notes.append(
                f"{where}: skipped {document.metadata.namespace}/"
                f"{document.metadata.name}: suspended (Flagger does not run it)"
            )
            continue
        if canary.key in seen:
            problems.append(
                f"{where}: canary {canary.key} is defined twice (also {seen[canary.key]})"
            )
            continue
        seen[canary.key] = where
        manifest.canaries.append(canary)
    if problems:
        raise ManifestError(problems)
    if not manifest.canaries:
        wanted = f"kind: Canary, apiVersion: {API_VERSION}"
        raise ManifestError(
            [f"{source}: no Flagger Canary ({wanted}) to simulate", *manifest.notes]
        )
    return manifest


def _canary(document: CanaryDocument, where: str) -> Canary | None:
    """Apply Flagger's defaults; None for a suspended canary (Flagger skips it)."""
    spec = document.spec
    if spec.suspend:
        return None
    analysis = spec.analysis or spec.canary_analysis
    assert analysis is not None  # checked by CanarySpecFields
    notes: list[str] = []
    if document.api_version != API_VERSION:
        notes.append(f"apiVersion {document.api_version}: read as {API_VERSION}")
    interval = parse_go_duration(analysis.interval)
    if interval < MIN_INTERVAL:
        notes.append(f"interval {analysis.interval} is below Flagger's minimum: runs every 10s")
        interval = MIN_INTERVAL
    iterations = analysis.iterations
    if spec.provider == "kubernetes" and iterations < 1:
        notes.append("provider kubernetes cannot shift traffic: Flagger runs 10 iterations")
        iterations = 10
    if analysis.step_weights:
        max_weight = min(TOTAL_WEIGHT, analysis.step_weights[-1])
    else:
        max_weight = analysis.max_weight or TOTAL_WEIGHT
    name, namespace = document.metadata.name, document.metadata.namespace
    webhooks = tuple(
        Webhook(w.name, w.type, w.url, dict(w.metadata), puerta_endpoint(w.url))
        for w in analysis.webhooks
    )
    return Canary(
        name=name,
        namespace=namespace,
        target=spec.target_ref.name if spec.target_ref is not None else name,
        interval=interval,
        threshold=analysis.threshold or 1,
        max_weight=max_weight,
        step_weight=analysis.step_weight,
        step_weights=tuple(analysis.step_weights),
        step_weight_promotion=analysis.step_weight_promotion,
        iterations=iterations,
        ab_testing=bool(analysis.match) and iterations > 0,
        skip_analysis=spec.skip_analysis,
        metrics=tuple(m.name for m in analysis.metrics if m.name),
        webhooks=webhooks,
        source=where,
        notes=tuple(notes),
    )


# ---- error messages ------------------------------------------------------------------------


def _format_errors(exc: ValidationError, root: yaml.Node | None, source: str) -> list[str]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = list(error["loc"])
        path = render_path(loc) or "(document)"
        line = line_of(root, loc)
        where = f"{source}:{line}" if line else source
        problems.append(f"{where}: {path}: {_message(error)}")
    return problems


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown field (Flagger would drop it)"
    if kind == "missing":
        return "required"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message
