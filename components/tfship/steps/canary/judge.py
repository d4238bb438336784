"""The canary judge: each metric PASS / HIGH / LOW / NODATA, then a weighted verdict. Pure.

In the spirit of Kayenta's judge (per-metric classification, weights, critical metrics, NODATA
when data are missing), with its known holes closed:
- A metric PASSes only when its whole confidence interval lies inside the allowed band, so a small
  or noisy sample cannot pass by being inconclusive (Kayenta passes an interval that merely
  overlaps a tolerance relative to the estimate). It is HIGH / LOW when the estimate is outside
  the band and the evidence is significant (the interval is outside, or the test's p < alpha).
  Anything in between is NODATA: "not enough evidence either way; send more requests".
- Below `min_samples` every metric is NODATA, whatever its numbers.
- Spread and tails are metrics of their own (|difference| quantile, PSI, p99), because a location
  test misses a candidate whose variance blew up.

Verdict, in order: the run was aborted -> NODATA; a critical metric HIGH/LOW -> FAIL; the score
could not reach `pass_score` even if every NODATA metric passed -> FAIL; a critical metric NODATA,
or NODATA on at least half of the metrics -> NODATA; otherwise the score (weighted share of PASS
among the metrics with data, 0-100) >= `pass_score` -> PASS, else FAIL.

The defaults are documented in docs/serve-canary.md; a YAML file overrides any of them
(`load_judge_config`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tfship.errors import ConfigError
from tfship import storage
from tfship.text import parse_yaml

PASS, HIGH, LOW, NODATA, FAIL = "PASS", "HIGH", "LOW", "NODATA", "FAIL"


@dataclass(frozen=True)
class MetricConfig:
    """How one metric is judged.

    Attributes:
        enabled: judge it (False: reported only).
        critical: a HIGH/LOW fails the canary, a NODATA makes it NODATA.
        weight: its weight in the score.
        abs_tolerance: the allowed absolute difference (for rates and PSI: the allowed value).
        rel_tolerance: added to `abs_tolerance` times the baseline's scale (median |score| for
            scores, median latency for latency, baseline p99 for p99).
        quantile: for `score_abs_diff`, the quantile of |difference| judged.
    """

    enabled: bool = True
    critical: bool = False
    weight: float = 1.0
    abs_tolerance: float = 0.0
    rel_tolerance: float = 0.0
    quantile: float = 0.95

    def __post_init__(self) -> None:
        if not (self.weight >= 0 and math.isfinite(self.weight)):
            raise ConfigError(f"Invalid metric weight {self.weight!r}: expected a finite number >= 0.")
        if not (self.abs_tolerance >= 0 and self.rel_tolerance >= 0):
            raise ConfigError(
                f"Invalid tolerances abs={self.abs_tolerance!r}, rel={self.rel_tolerance!r}: expected >= 0."
            )
        if not 0 < self.quantile < 1:
            raise ConfigError(f"Invalid quantile {self.quantile!r}: expected a value in (0, 1).")

    def limit(self, scale: float) -> float:
        """The allowed deviation for a baseline of magnitude `scale`."""
        return self.abs_tolerance + self.rel_tolerance * (abs(scale) if math.isfinite(scale) else 0.0)


# The metrics the canary computes, and their defaults (docs/serve-canary.md explains each).
DEFAULT_METRICS: dict[str, MetricConfig] = {
    # requests that fail on the candidate but not the baseline: at most 2 %
    "error_rate": MetricConfig(critical=True, abs_tolerance=0.02),
    # class changes between baseline and candidate on the same request: at most 2 %
    "flip_rate": MetricConfig(critical=True, abs_tolerance=0.02),
    # median per-request score shift: within 1e-4 + 1 % of the median |score|
    "score_shift": MetricConfig(critical=True, abs_tolerance=1e-4, rel_tolerance=0.01),
    # 95th percentile of per-request |score difference|: within 1e-4 + 5 % of the median |score|
    "score_abs_diff": MetricConfig(abs_tolerance=1e-4, rel_tolerance=0.05, quantile=0.95),
    # population stability index of the outputs: at most 0.1 ("no significant change")
    "psi": MetricConfig(abs_tolerance=0.1),
    # Hodges-Lehmann latency shift: at most 2 ms + 25 % of the baseline's median
    "latency": MetricConfig(abs_tolerance=0.002, rel_tolerance=0.25),
    # p99 latency difference: at most 10 ms + 50 % of the baseline's p99
    "latency_p99": MetricConfig(abs_tolerance=0.010, rel_tolerance=0.5),
    # live judge only (`tfship canary --prometheus`): growth of log(p90 / p10) of latency (1 ms floor) at most
    # 0.5, i.e. the candidate's p90/p10 ratio at most e**0.5 = 1.65 times the baseline's
    "latency_spread": MetricConfig(abs_tolerance=0.5),
}


@dataclass(frozen=True)
class JudgeConfig:
    """The judge's settings. Defaults: docs/serve-canary.md.

    Attributes:
        confidence: two-sided confidence of every interval (alpha = 1 - confidence for tests).
        min_samples: below this many paired requests a metric is NODATA.
        pass_score: the score (0-100) needed to PASS.
        metrics: per-metric settings, keyed by the names in DEFAULT_METRICS.
    """

    confidence: float = 0.95
    min_samples: int = 100
    pass_score: float = 95.0
    metrics: Mapping[str, MetricConfig] = field(default_factory=lambda: dict(DEFAULT_METRICS))

    def __post_init__(self) -> None:
        if not 0.5 < self.confidence < 1:
            raise ConfigError(
                f"Invalid value for `confidence`. Received: {self.confidence!r}. Expected a value in (0.5, 1), e.g. 0.95."
            )
        if not isinstance(self.min_samples, int) or self.min_samples < 10:
            raise ConfigError(
                f"Invalid value for `min_samples`. Received: {self.min_samples!r}. Expected an integer >= 10: "
                "fewer paired requests cannot support a verdict."
            )
        if not 0 <= self.pass_score <= 100:
            raise ConfigError(f"Invalid value for `pass_score`. Received: {self.pass_score!r}. Expected 0-100.")
        unknown = sorted(set(self.metrics) - set(DEFAULT_METRICS))
        if unknown:
            raise ConfigError(
                f"Unknown canary metric(s) {unknown}. Expected some of {sorted(DEFAULT_METRICS)}."
            )

    def metric(self, name: str) -> MetricConfig:
        return self.metrics.get(name, DEFAULT_METRICS[name])


def judge_config_from_dict(data: Mapping[str, Any] | None) -> JudgeConfig:
    """A JudgeConfig from a YAML-style mapping; fields not given keep their defaults."""
    data = dict(data or {})
    top_fields = {"confidence", "min_samples", "pass_score", "metrics"}
    unknown = sorted(set(data) - top_fields)
    if unknown:
        raise ConfigError(f"Unknown judge setting(s) {unknown}. Expected some of {sorted(top_fields)}.")
    metrics = dict(DEFAULT_METRICS)
    metric_fields = {f.name for f in dataclasses.fields(MetricConfig)}
    for name, override in dict(data.pop("metrics", None) or {}).items():
        if name not in DEFAULT_METRICS:
            raise ConfigError(f"Unknown canary metric {name!r}. Expected one of {sorted(DEFAULT_METRICS)}.")
        if not isinstance(override, Mapping):
            raise ConfigError(f"metrics.{name} must be a mapping of settings, got {override!r}.")
        bad = sorted(set(override) - metric_fields)
        if bad:
            raise ConfigError(f"Unknown setting(s) {bad} for metric {name!r}. Expected some of {sorted(metric_fields)}.")
        metrics[name] = dataclasses.replace(DEFAULT_METRICS[name], **override)
    return JudgeConfig(metrics=metrics, **data)


def load_judge_config(path: str | None) -> JudgeConfig:
    """The judge settings of a YAML file (None: the defaults). See docs/serve-canary.md."""
    if not path:
        return JudgeConfig()

    data = parse_yaml(storage.read_text(path), f"judge config {path}", ConfigError)
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(f"Invalid judge config {path}: expected a mapping at the top level.")
    try:
        return judge_config_from_dict(data)
    except TypeError as error:
        raise ConfigError(f"Invalid judge config {path}: {error}") from error


@dataclass(frozen=True)
class MetricResult:
    """One judged metric.

    Attributes:
        name: e.g. "score_shift[y]".
        kind: the DEFAULT_METRICS key it is judged with.
        classification: PASS, HIGH, LOW or NODATA.
        estimate, low, high: the point estimate and its interval.
        lower_limit, upper_limit: the allowed band.
        p_value: the test's p-value (None: no test).
        n: the sample size.
        reason: one line saying why.
        critical, weight: from its MetricConfig.
    """

    name: str
    kind: str
    classification: str
    estimate: float
    low: float
    high: float
    lower_limit: float
    upper_limit: float
    p_value: float | None
    n: int
    reason: str
    critical: bool
    weight: float


def classify(
    estimate: float,
    low: float,
    high: float,
    lower_limit: float,
    upper_limit: float,
    p_value: float | None,
    n: int,
    *,
    alpha: float,
    min_samples: int,
) -> tuple[str, str]:
    """(classification, reason) of one metric. See the module docstring for the rules."""
    if n < min_samples:
        return NODATA, f"{n} samples < min_samples {min_samples}"
    if any(math.isnan(v) for v in (estimate, low, high)):
        return NODATA, "no estimate"
    interval = f"{estimate:.4g} in [{low:.4g}, {high:.4g}]"
    band = f"[{lower_limit:.4g}, {upper_limit:.4g}]"
    significant = p_value is not None and p_value < alpha
    if lower_limit <= low and high <= upper_limit:
        return PASS, f"{interval} within {band}"
    if estimate > upper_limit and (low > upper_limit or significant):
        return HIGH, f"{interval} above {upper_limit:.4g}" + (f" (p={p_value:.2g})" if p_value is not None else "")
    if estimate < lower_limit and (high < lower_limit or significant):
        return LOW, f"{interval} below {lower_limit:.4g}" + (f" (p={p_value:.2g})" if p_value is not None else "")
    return NODATA, f"inconclusive: {interval} straddles {band}; send more requests"


@dataclass(frozen=True)
class Verdict:
    """The canary's decision: PASS, FAIL or NODATA, the score (0-100) and the reasons."""

    verdict: str
    score: float
    reasons: tuple[str, ...]


def decide(results: Sequence[MetricResult], config: JudgeConfig, aborted: str | None = None) -> Verdict:
    """The verdict from judged metrics (rules in the module docstring)."""
    judged = [r for r in results if config.metric(r.kind).enabled]
    with_data = [r for r in judged if r.classification != NODATA]
    total = sum(r.weight for r in with_data)
    score = 100.0 * sum(r.weight for r in with_data if r.classification == PASS) / total if total else 0.0
    if aborted:
        return Verdict(NODATA, score, (f"run aborted: {aborted}",))
    if not judged:
        return Verdict(NODATA, score, ("no metric could be computed",))
    failed = [r for r in judged if r.critical and r.classification in (HIGH, LOW)]
    if failed:
        return Verdict(FAIL, score, tuple(f"critical {r.name} {r.classification}: {r.reason}" for r in failed))
    outside = tuple(f"{r.name} {r.classification}: {r.reason}" for r in with_data if r.classification != PASS)
    possible = sum(r.weight for r in judged if r.classification in (PASS, NODATA))
    judged_weight = sum(r.weight for r in judged)
    best = 100.0 * possible / judged_weight if judged_weight else 0.0
    if best < config.pass_score:  # even if every NODATA metric passed, the score could not pass
        return Verdict(FAIL, score, (f"score at most {best:.1f} < {config.pass_score:g}",) + outside)
    missing = [r for r in judged if r.critical and r.classification == NODATA]
    if missing:
        return Verdict(NODATA, score, tuple(f"critical {r.name} NODATA: {r.reason}" for r in missing))
    nodata = [r for r in judged if r.classification == NODATA]
    if 2 * len(nodata) >= len(judged):
        return Verdict(NODATA, score, (f"NODATA on {len(nodata)} of {len(judged)} metrics",))
    if score >= config.pass_score:
        return Verdict(PASS, score, (f"score {score:.1f} >= {config.pass_score:g}",) + outside)
    return Verdict(FAIL, score, (f"score {score:.1f} < {config.pass_score:g}",) + outside)
