"""Policy adapters, registered by name."""

from vla_bench.policies import builtin, expert  # noqa: F401  (registration)
from vla_bench.policies import vla_models  # noqa: F401  (registration; torch is imported lazily)
from vla_bench.policies import remote  # noqa: F401  (registration; websockets is imported lazily)
from vla_bench.policies.base import POLICIES, Policy, PolicyContext, PolicyOutput, check_actions, make_policy

__all__ = ["POLICIES", "Policy", "PolicyContext", "PolicyOutput", "check_actions", "make_policy"]
