"""The policy file: environments, how canaries are matched to them, and their gates."""

from puerta.policy.loader import load_policy, parse_policy
from puerta.policy.model import CompiledPolicy, EnvironmentPolicy, Policy

__all__ = ["CompiledPolicy", "EnvironmentPolicy", "Policy", "load_policy", "parse_policy"]
