"""Always-valid sequential tests, so a rollout step may stop as soon as the evidence is clear. Pure.

A fixed-window test checked again and again while traffic accrues ("peeking") inflates its false
positives: at alpha = 0.05, peeking 50 times fails a healthy candidate about a quarter of the time
(the test file measures it). The mixture sequential probability ratio test (mSPRT; Robbins 1970,
as used for A/B tests by Johari, Pekelis and Walsh, "Always valid inference", 2017) does not.

For a difference of means D (candidate - baseline) estimated by d with variance V (V = s_c^2/n_c
+ s_b^2/n_b, shrinking as requests accrue) and a normal mixture N(D0, tau^2) over the alternative,

    Lambda(D0) = sqrt(V / (V + tau^2)) * exp(tau^2 (d - D0)^2 / (2 V (V + tau^2)))

is a non-negative martingale under D = D0 (Gaussian increments), so by Ville's inequality

    P(Lambda(D0) >= 1 / alpha at ANY number of requests) <= alpha.

Guarantee: inverting it gives a confidence sequence, d +- r with
r = sqrt(2 V (V + tau^2) / tau^2 * log(sqrt((V + tau^2) / V) / alpha)), that holds for every
number of requests at once: the chance it EVER excludes the true D is at most alpha, however
often it is looked at and whenever one stops. A step therefore FAILs early only when the whole
sequence lies above the allowed limit (a healthy candidate, D <= limit, does so with probability
<= alpha), and PASSes early only when it lies wholly below (a harmful one does so with probability
<= alpha). Otherwise it CONTINUEs to the end of the step, where the fixed-window judge decides.

Limits: the Gaussian martingale is exact for normal data and asymptotic for error indicators and
latencies (their variance is estimated from the data; error rates are smoothed to (x+1)/(n+2) so
zero errors do not give zero variance). `tau` is the effect size the test is most sensitive to:
the metric's tolerance is a good choice (the default). The price of validity at every peek is
width: at a single look the sequence is wider than a fixed-window interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tfship.steps.canary.stats import Buckets, bucket_middles

PASS, FAIL, CONTINUE = "PASS", "FAIL", "CONTINUE"


def log_mixture_ratio(estimate: float, variance: float, null: float, tau: float) -> float:
    """log Lambda(null) of the module docstring (0 when there is no information yet)."""
    if not variance > 0 or not math.isfinite(variance):
        return 0.0
    tau2 = tau * tau
    return 0.5 * math.log(variance / (variance + tau2)) + tau2 * (estimate - null) ** 2 / (
        2 * variance * (variance + tau2)
    )


def confidence_sequence(estimate: float, variance: float, tau: float, alpha: float) -> tuple[float, float]:
    """The always-valid interval for the difference at this look (see the module docstring)."""
    if not 0 < alpha < 1:
        raise ValueError(f"Invalid alpha {alpha!r}: expected a value in (0, 1).")
    if not variance > 0 or not math.isfinite(variance):
        return -math.inf, math.inf
    tau2 = tau * tau
    radius = math.sqrt(2 * variance * (variance + tau2) / tau2 * math.log(math.sqrt((variance + tau2) / variance) / alpha))
    return estimate - radius, estimate + radius


@dataclass(frozen=True)
class SequentialResult:
    """One look: the estimate, its always-valid interval, and PASS / FAIL / CONTINUE."""

    name: str
    estimate: float
    low: float
    high: float
    upper_limit: float
    decision: str

    @property
    def reason(self) -> str:
        return (f"{self.name} {self.estimate:.4g} in always-valid [{self.low:.4g}, {self.high:.4g}] "
                f"vs limit {self.upper_limit:.4g}: {self.decision}")


def _decide(name: str, estimate: float, variance: float, upper_limit: float, tau: float, alpha: float) -> SequentialResult:
    low, high = confidence_sequence(estimate, variance, tau, alpha)
    decision = FAIL if low > upper_limit else PASS if high <= upper_limit else CONTINUE
    return SequentialResult(name, estimate, low, high, upper_limit, decision)


def error_rate_look(
    baseline_errors: int, baseline_n: int, candidate_errors: int, candidate_n: int,
    upper_limit: float, alpha: float, tau: float | None = None,
) -> SequentialResult:
    """Error-rate difference (candidate - baseline) against `upper_limit`; tau defaults to the limit."""
    if baseline_n <= 0 or candidate_n <= 0:
        return SequentialResult("error_rate", math.nan, -math.inf, math.inf, upper_limit, CONTINUE)
    p_b = (baseline_errors + 1) / (baseline_n + 2)
    p_c = (candidate_errors + 1) / (candidate_n + 2)
    variance = p_b * (1 - p_b) / baseline_n + p_c * (1 - p_c) / candidate_n
    estimate = candidate_errors / candidate_n - baseline_errors / baseline_n
    return _decide("error_rate", estimate, variance, upper_limit, tau or max(upper_limit, 1e-3), alpha)


def _moments(buckets: Buckets) -> tuple[float, float, int]:
    """(mean, variance, n) of latency, each request at its bucket's geometric middle."""
    middles = bucket_middles(buckets)
    n = buckets.n
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(np.dot(buckets.counts, middles) / n)
    variance = float(np.dot(buckets.counts, (middles - mean) ** 2) / max(n - 1, 1))
    return mean, variance, n


def mean_latency_look(
    baseline: Buckets, candidate: Buckets, upper_limit: float, alpha: float, tau: float | None = None
) -> SequentialResult:
    """Mean latency difference (seconds, candidate - baseline) against `upper_limit`."""
    mean_b, var_b, n_b = _moments(baseline)
    mean_c, var_c, n_c = _moments(candidate)
    if n_b < 2 or n_c < 2:
        return SequentialResult("mean_latency", math.nan, -math.inf, math.inf, upper_limit, CONTINUE)
    variance = var_b / n_b + var_c / n_c
    return _decide("mean_latency", mean_c - mean_b, variance, upper_limit, tau or max(upper_limit, 1e-4), alpha)


def combine(looks: list[SequentialResult]) -> str:
    """FAIL if any look FAILs, PASS if all PASS, else CONTINUE."""
    decisions = {look.decision for look in looks}
    if FAIL in decisions:
        return FAIL
    return PASS if decisions == {PASS} else CONTINUE
