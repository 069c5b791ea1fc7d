"""The privileged scripted expert: goal parsing, geometry, controller and the registered policy."""

from vla_bench.policies.expert import policy  # noqa: F401  (registration)
