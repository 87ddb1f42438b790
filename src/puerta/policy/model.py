"""The policy file's schema (pydantic v2) and its compiled, ready-to-evaluate form.

One YAML file describes everything a platform team decides: which environments exist, which
canaries belong to each (globs on namespace and name, and webhook metadata), and for each hook
type the ordered list of gates. Secrets never live in this file: tokens are referenced by the
environment variable or file that holds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Annotated, Any, Literal, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from puerta.ci.config import CiConfig
from puerta.ci.targets import e2e_target_problems
from puerta.commits.config import CommitsConfig
from puerta.domain.durations import parse_duration
from puerta.domain.gates import Gate, GateOptions, gate_types
from puerta.domain.gates.e2e import E2EOptions, E2EResultOptions
from puerta.domain.hooks import FlaggerPayload, HookType
from puerta.domain.train import TrainConfig
from puerta.loadtester.config import LoadtesterConfig
from puerta.notify.config import NotificationsConfig
from puerta.policy.audit import AuditConfig
from puerta.policy.errors import located
from puerta.policy.promote import PromoteConfig
from puerta.policy.secret_ref import SecretRef


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _gate_union() -> Any:
    """The discriminated union of every registered gate type's options."""
    members = tuple(gate_types().values())
    if len(members) == 1:
        return members[0]
    return Annotated[Union[members], Field(discriminator="type")]  # noqa: UP007


GateConfig = _gate_union()


def check_timezone(value: str | None) -> str | None:
    """Validate an IANA time zone name (used by environments and window gates)."""
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


class MatchRule(_Strict):
    """Every field given must match (AND); an environment matches if any of its rules does (OR)."""

    namespace: str | None = Field(default=None, description="glob on the canary's namespace")
    name: str | None = Field(default=None, description="glob on the canary's name")
    metadata: dict[str, str] = Field(
        default_factory=dict, description="webhook metadata key -> glob on its value"
    )

    @model_validator(mode="after")
    def _not_empty(self) -> MatchRule:
        if self.namespace is None and self.name is None and not self.metadata:
            raise ValueError("a match rule needs at least one of namespace, name, metadata")
        return self

    def matches(self, payload: FlaggerPayload) -> bool:
        if self.namespace is not None and not fnmatchcase(payload.namespace, self.namespace):
            return False
        if self.name is not None and not fnmatchcase(payload.name, self.name):
            return False
        for key, pattern in self.metadata.items():
            value = payload.metadata.get(key)
            if value is None or not fnmatchcase(value, pattern):
                return False
        return True


class TrainSpec(_Strict):
    """How canaries waiting to start in an environment leave: in order, this many at once."""

    max_concurrent: int | None = Field(
        default=None, ge=1, description="rollouts under way at once; unset: no limit"
    )
    stagger: str = Field(default="0s", description="at least this long between two departures")
    release_timeout: str = Field(
        default="2h", description="a released rollout that never reports back stops counting"
    )
    stale_after: str = Field(
        default="15m", description="a queued canary that stopped calling loses its place"
    )

    @field_validator("stagger", "release_timeout", "stale_after")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    def config(self) -> TrainConfig:
        return TrainConfig(
            max_concurrent=self.max_concurrent,
            stagger=parse_duration(self.stagger),
            release_timeout=parse_duration(self.release_timeout),
            stale_after=parse_duration(self.stale_after),
        )


class EnvironmentPolicy(_Strict):
    """One environment (e.g. staging, production) and its gates per hook type."""

    match: list[MatchRule] = Field(min_length=1)
    timezone: str | None = Field(default=None, description="IANA zone for this environment")
    train: TrainSpec | None = Field(
        default=None, description="release train for canaries waiting on confirm-rollout"
    )
    gates: dict[HookType, list[GateConfig]] = Field(default_factory=dict)  # type: ignore[valid-type]
    promote: PromoteConfig | None = Field(
        default=None, description="when a rollout succeeded here, move its commit on"
    )

    _tz = field_validator("timezone")(check_timezone)

    @model_validator(mode="before")
    @classmethod
    def _inherit_timezone(cls, data: Any) -> Any:
        """Gates with a ``timezone`` field default to the environment's."""
        if not isinstance(data, dict) or not isinstance(data.get("timezone"), str):
            return data
        gates = data.get("gates")
        if not isinstance(gates, dict):
            return data
        types = gate_types()
        patched: dict[Any, Any] = {}
        for hook, entries in gates.items():
            if not isinstance(entries, list):
                patched[hook] = entries
                continue
            patched[hook] = [
                {**entry, "timezone": data["timezone"]}
                if isinstance(entry, dict)
                and entry.get("type") in types
                and "timezone" in types[entry["type"]].model_fields
                and entry.get("timezone") is None
                else entry
                for entry in entries
            ]
        return {**data, "gates": patched}

    @field_validator("gates", mode="before")
    @classmethod
    def _known_hooks(cls, value: Any) -> Any:
        if isinstance(value, dict):
            valid = {h.value for h in HookType}
            for key in value:
                if key not in valid:
                    raise ValueError(
                        located(str(key), f"unknown hook type; valid: {', '.join(sorted(valid))}")
                    )
        return value

    @model_validator(mode="after")
    def _gates_fit_hooks(self) -> EnvironmentPolicy:
        for hook, gates in self.gates.items():
            for index, gate in enumerate(gates):
                options: GateOptions = gate
                if hook not in options.allowed_hooks:
                    allowed = ", ".join(sorted(h.value for h in options.allowed_hooks))
                    raise ValueError(
                        located(
                            f"gates.{hook.value}[{index}].type",
                            f"a {getattr(options, 'type', '?')} gate cannot be used on "
                            f"{hook.value} (allowed: {allowed})",
                        )
                    )
        return self


class TokenConfig(SecretRef):
    """A bearer token for the admin API, with its role."""

    name: str = Field(min_length=1, description="who this token is; recorded as the actor")
    role: Literal["viewer", "approver", "admin"]


class AuthConfig(_Strict):
    tokens: list[TokenConfig] = Field(default_factory=list)
    public_read: bool = Field(
        default=True,
        description="canary status may be read without a token (the audit never can)",
    )

    @model_validator(mode="after")
    def _unique_names(self) -> AuthConfig:
        seen: set[str] = set()
        for token in self.tokens:
            if token.name in seen:
                raise ValueError(f"token name {token.name!r} is used twice")
            seen.add(token.name)
        return self


class HookAccess(_Strict):
    """Who may call the Flagger hook endpoints (Flagger cannot send headers)."""

    token: SecretRef | None = Field(
        default=None, description="require ?token=... in the URL or metadata.token"
    )
    namespaces: list[str] = Field(
        default_factory=lambda: ["*"], description="globs of namespaces allowed to call"
    )


class DatabaseConfig(_Strict):
    url: str | None = None


class Policy(_Strict):
    """The whole policy file."""

    version: Literal[1] = 1
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    unmatched: Literal["pass", "refuse"] = Field(
        default="pass",
        description="answer for canaries that match no environment (gating hooks only)",
    )
    auth: AuthConfig = Field(default_factory=AuthConfig)
    hooks: HookAccess = Field(default_factory=HookAccess)
    loadtester: LoadtesterConfig = Field(default_factory=LoadtesterConfig)
    ci: CiConfig = Field(default_factory=CiConfig)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    commits: CommitsConfig = Field(default_factory=CommitsConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    environments: dict[str, EnvironmentPolicy] = Field(default_factory=dict)

    @field_validator("environments")
    @classmethod
    def _env_names(cls, value: dict[str, EnvironmentPolicy]) -> dict[str, EnvironmentPolicy]:
        for name in value:
            if not name or not name.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"environment name {name!r}: use letters, digits, - and _")
        return value

    @model_validator(mode="after")
    def _e2e_gates(self) -> Policy:
        """E2E gates name a configured provider and give what its type needs; e2e-result
        gates name an e2e gate of their environment."""
        for env_name, env in self.environments.items():
            runs: dict[str, str] = {}
            for hook, gates in env.gates.items():
                for index, options in enumerate(gates):
                    gate: GateOptions = options
                    path = f"environments.{env_name}.gates.{hook.value}[{index}]"
                    if isinstance(gate, E2EOptions):
                        key = gate.name or "e2e"
                        if key in runs:
                            raise ValueError(
                                located(
                                    f"{path}.name",
                                    f"another e2e gate ({runs[key]}) is named {key!r}; "
                                    "give each e2e gate of an environment its own name",
                                )
                            )
                        runs[key] = f"{hook.value}[{index}]"
                        self._check_e2e(gate, path)
            for hook, gates in env.gates.items():
                for index, options in enumerate(gates):
                    result: GateOptions = options
                    if isinstance(result, E2EResultOptions) and result.run not in runs:
                        known = ", ".join(sorted(runs)) or "none"
                        raise ValueError(
                            located(
                                f"environments.{env_name}.gates.{hook.value}[{index}].run",
                                f"no e2e gate named {result.run!r} in {env_name} (e2e gates: "
                                f"{known})",
                            )
                        )
        return self

    @model_validator(mode="after")
    def _promotions(self) -> Policy:
        for name, env in self.environments.items():
            promote = env.promote
            if promote is None:
                continue
            path = f"environments.{name}.promote"
            if promote.to not in self.environments:
                known = ", ".join(sorted(self.environments))
                raise ValueError(
                    located(f"{path}.to", f"no environment {promote.to!r} (environments: {known})")
                )
            if promote.to == name:
                raise ValueError(located(f"{path}.to", "an environment cannot promote to itself"))
            if promote.action != "webhook" and self.commits.github is None:
                raise ValueError(
                    located(
                        f"{path}.{promote.action}",
                        "needs commits.github (the token that creates releases and dispatches)",
                    )
                )
            if not self.commits.rules:
                raise ValueError(
                    located(path, "needs commits.rules: a promotion ships the rollout's commit")
                )
        return self

    def _check_e2e(self, gate: E2EOptions, path: str) -> None:
        provider = self.ci.providers.get(gate.provider)
        if provider is None:
            known = ", ".join(sorted(self.ci.providers)) or "none; add one under ci.providers"
            raise ValueError(
                located(f"{path}.provider", f"unknown CI provider {gate.provider!r} ({known})")
            )
        for problem_path, problem in e2e_target_problems(gate, provider.type):
            raise ValueError(located(f"{path}.{problem_path}", problem))

    def compile(self) -> CompiledPolicy:
        return CompiledPolicy.from_policy(self)


@dataclass(frozen=True)
class CompiledGate:
    """A gate ready to evaluate, with the label that names it in reasons and the audit."""

    label: str  # e.g. "confirm-rollout[0] manual"
    gate: Gate


@dataclass(frozen=True)
class CompiledEnvironment:
    name: str
    spec: EnvironmentPolicy
    gates: dict[HookType, tuple[CompiledGate, ...]] = field(default_factory=dict)
    train: TrainConfig | None = None  # set when confirm-rollout callers queue

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.spec.timezone or "UTC")

    def reads_ci_runs(self, hook: HookType) -> bool:
        """Whether a gate of ``hook`` looks at E2E runs (only then are they loaded)."""
        return any(g.gate.kind in ("e2e", "e2e-result") for g in self.gates.get(hook, ()))


class CompiledPolicy:
    """A validated policy with gates built and environment matching cached."""

    def __init__(self, policy: Policy, environments: list[CompiledEnvironment]) -> None:
        self.policy = policy
        self.environments = environments
        self._by_name = {env.name: env for env in environments}
        keys: set[str] = set()
        for env in environments:
            for rule in env.spec.match:
                keys.update(rule.metadata)
        self._metadata_keys = tuple(sorted(keys))
        self._match_cached = lru_cache(maxsize=65536)(self._match_uncached)

    @classmethod
    def from_policy(cls, policy: Policy) -> CompiledPolicy:
        environments = []
        for name, spec in policy.environments.items():
            gates: dict[HookType, tuple[CompiledGate, ...]] = {}
            for hook, options_list in spec.gates.items():
                built = []
                for index, options in enumerate(options_list):
                    opts: GateOptions = options
                    label = f"{hook.value}[{index}] {opts.name or getattr(opts, 'type', '?')}"
                    built.append(CompiledGate(label, opts.build()))
                gates[hook] = tuple(built)
            train = spec.train.config() if spec.train is not None else None
            windowed = any(g.gate.kind == "window" for g in gates.get(HookType.CONFIRM_ROLLOUT, ()))
            if train is None and windowed:
                train = TrainConfig()  # a window alone still queues arrivals in order
            environments.append(CompiledEnvironment(name, spec, gates, train))
        return cls(policy, environments)

    def environment(self, name: str) -> CompiledEnvironment | None:
        return self._by_name.get(name)

    def match(self, payload: FlaggerPayload) -> CompiledEnvironment | None:
        """The first environment (in file order) with a rule matching the canary."""
        key = tuple(payload.metadata.get(k) for k in self._metadata_keys)
        name = self._match_cached(payload.namespace, payload.name, key)
        return self._by_name[name] if name is not None else None

    def _match_uncached(self, namespace: str, name: str, key: tuple[str | None, ...]) -> str | None:
        metadata = {k: v for k, v in zip(self._metadata_keys, key, strict=True) if v is not None}
        probe = FlaggerPayload(name=name, namespace=namespace, metadata=metadata)
        for env in self.environments:
            if any(rule.matches(probe) for rule in env.spec.match):
                return env.name
        return None

    def explain_match(self, payload: FlaggerPayload) -> list[str]:
        """Why each environment did or did not match, for ``explain``."""
        lines = []
        for env in self.environments:
            hits = [i for i, rule in enumerate(env.spec.match) if rule.matches(payload)]
            if hits:
                lines.append(f"{env.name}: matched by match[{hits[0]}]")
            else:
                lines.append(f"{env.name}: no match rule matched")
        return lines
