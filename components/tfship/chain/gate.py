"""The gate before promotion: promote on a canary (and rollout) PASS, or on a first version."""

from __future__ import annotations

from dataclasses import dataclass

from tfship.chain.plan import RunPlan
from tfship.errors import ConfigError

PASS = "PASS"
FAIL = "FAIL"

@dataclass(frozen=True)
class Decision:
    """Whether to promote the run's version to `stable`, and why (shown in summaries)."""

    promote: bool
    reason: str


def promotion_decision(plan: RunPlan, verdict: str | None, rollout: str | None = None) -> Decision:
    """The PASS gate: promote on a canary PASS, or on the first version (nothing to compare).

    `verdict` is the canary's verdict (`PASS`, `FAIL`, or None when the canary did not run);
    `rollout` the rollout's (None when the chain has no rollout step): with one, both must PASS.
    """
    if plan.first_version:
        return Decision(
            True,
            f"first version: no stable model yet, promoting version {plan.version} after validation",
        )
    if verdict == PASS and rollout not in (None, PASS):
        return Decision(False, f"canary PASS, rollout {rollout}: version {plan.stable} stays stable")
    if verdict == PASS:
        passed = "canary PASS" if rollout is None else "canary and rollout PASS"
        return Decision(True, f"{passed}: promoting version {plan.version} over {plan.stable}")
    if verdict is None:
        return Decision(False, "the canary did not run: nothing is promoted")
    return Decision(False, f"canary {verdict}: version {plan.stable} stays stable")


def verdict_from_exit_code(exit_code: int) -> str:
    """The canary's verdict from its exit code (0 PASS, 1 FAIL); other codes are errors."""
    if exit_code == 0:
        return PASS
    if exit_code == 1:
        return FAIL
    raise ConfigError(
        f"The canary exited with {exit_code}: an error, not a verdict (0 = PASS, 1 = FAIL). "
        "See its log line above."
    )
