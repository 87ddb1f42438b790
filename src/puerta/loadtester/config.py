"""The policy's ``loadtester`` section: whether Flagger may make Puerta run commands.

Running commands is off by default. The flagger-loadtester runs whatever text a webhook sends,
so anyone who can edit a Canary (or reach the Service) can run anything in its pod; Puerta
holds the database and the API tokens, so it only runs commands when the policy says so, and
then only the executables it lists.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from puerta.domain.durations import parse_duration


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CommandsConfig(_Strict):
    """Which commands the task endpoint (``POST /``) may run, and for how long."""

    enabled: bool = Field(
        default=False, description="run `type: cmd` and `type: bash` tasks at all"
    )
    allow: list[str] = Field(
        default_factory=list,
        description="executable names every simple command must start with (e.g. hey, curl)",
    )
    timeout: str = Field(
        default="1h",
        description="a command still running after this is killed (the loadtester's -timeout)",
    )

    @field_validator("allow")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name or "/" in name or any(c.isspace() for c in name):
                raise ValueError(
                    f"{name!r}: give an executable's name (found on PATH), not a path or a command"
                )
        return value

    @field_validator("timeout")
    @classmethod
    def _duration(cls, value: str) -> str:
        if parse_duration(value) <= timedelta(0):
            raise ValueError("must be longer than 0s")
        return value

    @model_validator(mode="after")
    def _something_allowed(self) -> CommandsConfig:
        if self.enabled and not self.allow:
            raise ValueError(
                "enabled without an allow list: name the executables that may run, "
                "e.g. allow: [hey, curl]"
            )
        return self

    @property
    def timeout_seconds(self) -> float:
        return parse_duration(self.timeout).total_seconds()


class LoadtesterConfig(_Strict):
    """flagger-loadtester compatibility (``/gate/*``, ``/rollback/*`` and ``POST /``)."""

    commands: CommandsConfig = Field(default_factory=CommandsConfig)
