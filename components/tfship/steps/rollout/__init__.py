"""`tfship rollout`: move traffic to a candidate version in steps, judging each on live metrics.

Modules: `manifests` (the traffic split as Istio, Gateway API and KServe manifests, validated),
`runner` (the steps, the live judge with sequential early stopping, rollback).

This package module itself is pure Python (no TensorFlow, no Prometheus client): the chain
(`tfship.chain`, parsed by Airflow's scheduler) checks a rollout's steps and takes its defaults here.
"""

from __future__ import annotations

from tfship.errors import ConfigError

# `tfship rollout`'s defaults: the candidate's traffic per step, and the longest a step lasts.
DEFAULT_STEPS = (5, 25, 50, 100)
DEFAULT_INTERVAL = "10m"


def parse_steps(text: str) -> tuple[int, ...]:
    """"5,25,50,100" -> (5, 25, 50, 100): increasing percentages, ending at 100."""
    try:
        steps = tuple(int(part) for part in str(text).split(","))
    except ValueError:
        steps = ()
    if not steps or any(not 0 < s <= 100 for s in steps) or list(steps) != sorted(set(steps)) or steps[-1] != 100:
        raise ConfigError(
            f"Invalid value for argument `--steps`. Received: {text!r}. Expected increasing percentages "
            "ending at 100, e.g. 5,25,50,100."
        )
    return steps
