"""The policy interface lives in the engine (:mod:`octosim.engine.policy`); this name is kept
for policies written against it."""

from octosim.engine.policy import Policy, PolicyParams, user_error_for_policy

__all__ = ["Policy", "PolicyParams", "user_error_for_policy"]
