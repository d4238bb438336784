"""The canary's statistics: estimates with confidence intervals and p-values. Pure functions.

Every function returns an `Estimate` (point estimate, two-sided interval at `confidence`, p-value
where a test applies, sample size), and the judge decides from those alone. The choices:
- Rates (errors, class flips): exact Clopper-Pearson intervals, so a handful of events in a small
  sample cannot look like "no problem" (Kayenta's sparse-error hole). Errors on paired requests
  are tested with McNemar's exact test on the discordant pairs.
- Paired score differences: the median difference with its distribution-free (sign-test) interval,
  and the Wilcoxon signed-rank test for a shift.
- Spread: a high quantile of |difference| with its order-statistic interval, and a binomial test of
  "more than (1 - q) of the requests differ by more than the limit", so a candidate that scrambles
  predictions without shifting them fails (the variance blow-up a location test misses).
- Latency: Mann-Whitney U with the Hodges-Lehmann shift and its interval (Kayenta's test), plus a
  bootstrap interval for the difference of p99s (tails).
- Output distributions: population stability index (PSI) with a paired bootstrap interval, and the
  Jensen-Shannon distance for the report.
Bootstraps are seeded: a report is reproducible from its data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _stats

# Pairwise-difference estimators cost O(n*m); above this many values per side they use a seeded
# subsample (the interval is then a little wider than it could be, never narrower).
MAX_PAIRWISE = 2000
BOOTSTRAP_SAMPLES = 400
PSI_BINS = 10
PSI_EPSILON = 1e-4


@dataclass(frozen=True)
class Estimate:
    """A point estimate, its two-sided interval [low, high], a p-value (None: no test), and n."""

    estimate: float
    low: float
    high: float
    p_value: float | None
    n: int


def _alpha(confidence: float) -> float:
    if not 0.5 < confidence < 1:
        raise ValueError(f"Invalid confidence {confidence!r}: expected a value in (0.5, 1).")
    return 1.0 - confidence


def rate(events: int, n: int, confidence: float) -> Estimate:
    """events / n with its exact (Clopper-Pearson) interval; no p-value."""
    if n <= 0:
        return Estimate(math.nan, 0.0, 1.0, None, 0)
    interval = _stats.binomtest(events, n).proportion_ci(confidence_level=confidence, method="exact")
    return Estimate(events / n, float(interval.low), float(interval.high), None, n)


def paired_error_rate(candidate_only: int, baseline_only: int, n: int, confidence: float) -> Estimate:
    """Share of requests that failed on the candidate but not on the baseline.

    The interval is exact for that share; the p-value is McNemar's exact test (one-sided: the
    candidate fails more often than the baseline on the same requests).
    """
    result = rate(candidate_only, n, confidence)
    discordant = candidate_only + baseline_only
    p_value = 1.0 if discordant == 0 else float(
        _stats.binomtest(candidate_only, discordant, 0.5, alternative="greater").pvalue
    )
    return Estimate(result.estimate, result.low, result.high, p_value, n)


def flip_rate(flips: int, n: int, limit: float, confidence: float) -> Estimate:
    """Share of paired requests whose class changed; p-value of "the rate exceeds `limit`"."""
    result = rate(flips, n, confidence)
    if n <= 0:
        return result
    p_value = float(_stats.binomtest(flips, n, min(max(limit, 1e-12), 1.0), alternative="greater").pvalue)
    return Estimate(result.estimate, result.low, result.high, p_value, n)


def _order_statistic_bounds(n: int, q: float, alpha: float) -> tuple[int, int]:
    """0-based indices of the sorted sample bracketing the q-quantile with coverage >= 1 - alpha."""
    low = int(_stats.binom.ppf(alpha / 2, n, q)) - 1
    high = int(_stats.binom.ppf(1 - alpha / 2, n, q))
    return max(low, 0), min(high, n - 1)


def paired_shift(differences: np.ndarray, confidence: float) -> Estimate:
    """Median of paired differences, its sign-test interval, Wilcoxon signed-rank p (two-sided)."""
    d = np.sort(np.asarray(differences, dtype=np.float64))
    n = d.size
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, None, 0)
    low, high = _order_statistic_bounds(n, 0.5, _alpha(confidence))
    nonzero = d[d != 0]
    if nonzero.size == 0:
        p_value = 1.0
    else:
        p_value = float(_stats.wilcoxon(d, zero_method="pratt").pvalue) if n > 1 else 1.0
    return Estimate(float(np.median(d)), float(d[low]), float(d[high]), p_value, n)


def quantile_exceedance(values: np.ndarray, q: float, limit: float, confidence: float) -> Estimate:
    """The q-quantile of `values` with its order-statistic interval.

    p-value: binomial test that more than (1 - q) of the values exceed `limit`, i.e. that the true
    q-quantile is above the limit.
    """
    v = np.sort(np.asarray(values, dtype=np.float64))
    n = v.size
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, None, 0)
    low, high = _order_statistic_bounds(n, q, _alpha(confidence))
    exceed = int(np.count_nonzero(v > limit))
    p_value = float(_stats.binomtest(exceed, n, 1 - q, alternative="greater").pvalue)
    return Estimate(float(np.quantile(v, q)), float(v[low]), float(v[high]), p_value, n)


def _subsample(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return x if x.size <= MAX_PAIRWISE else rng.choice(x, MAX_PAIRWISE, replace=False)


def _floats(baseline: np.ndarray, candidate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(baseline, dtype=np.float64), np.asarray(candidate, dtype=np.float64)


def _no_data(n: int) -> Estimate:
    """An estimate over too few values: no value, no interval, no p-value."""
    return Estimate(math.nan, math.nan, math.nan, None, n)


def location_shift(baseline: np.ndarray, candidate: np.ndarray, confidence: float, seed: int = 0) -> Estimate:
    """Hodges-Lehmann shift (candidate - baseline), its Mann-Whitney interval, one-sided U p-value.

    The p-value tests "the candidate is larger" (slower, for latency).
    """
    x, y = _floats(baseline, candidate)
    if x.size == 0 or y.size == 0:
        return _no_data(min(x.size, y.size))
    p_value = float(_stats.mannwhitneyu(y, x, alternative="greater").pvalue)
    rng = np.random.default_rng(seed)
    xs, ys = _subsample(x, rng), _subsample(y, rng)
    diffs = np.sort((ys[:, None] - xs[None, :]).ravel())
    m, k = xs.size, ys.size
    z = _stats.norm.ppf(1 - _alpha(confidence) / 2)
    c = int(math.floor(m * k / 2 - z * math.sqrt(m * k * (m + k + 1) / 12)))
    c = min(max(c, 0), diffs.size - 1)
    return Estimate(float(np.median(diffs)), float(diffs[c]), float(diffs[diffs.size - 1 - c]), p_value, min(x.size, y.size))


def percentile(values: np.ndarray, q: float) -> float:
    """The q-th percentile (0-100); NaN for no values."""
    v = np.asarray(values, dtype=np.float64)
    return float(np.percentile(v, q)) if v.size else math.nan


def percentile_difference(baseline: np.ndarray, candidate: np.ndarray, q: float, confidence: float, seed: int = 0) -> Estimate:
    """candidate's q-th percentile minus baseline's, with a seeded bootstrap interval; no p-value."""
    x, y = _floats(baseline, candidate)
    n = min(x.size, y.size)
    if n == 0:
        return _no_data(0)
    rng = np.random.default_rng(seed)
    xb = np.percentile(rng.choice(x, (BOOTSTRAP_SAMPLES, x.size)), q, axis=1)
    yb = np.percentile(rng.choice(y, (BOOTSTRAP_SAMPLES, y.size)), q, axis=1)
    alpha = _alpha(confidence)
    low, high = np.quantile(yb - xb, [alpha / 2, 1 - alpha / 2])
    return Estimate(percentile(y, q) - percentile(x, q), float(low), float(high), None, n)


def _histograms(baseline: np.ndarray, candidate: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Proportions of both samples over bins cut at the baseline's quantiles (categories when few)."""
    values = np.unique(np.concatenate([baseline, candidate]))
    if values.size <= bins:
        b = np.searchsorted(values, baseline)
        c = np.searchsorted(values, candidate)
        size = values.size
    else:
        edges = np.unique(np.quantile(baseline, np.linspace(0, 1, bins + 1))[1:-1])
        b = np.searchsorted(edges, baseline, side="right")
        c = np.searchsorted(edges, candidate, side="right")
        size = edges.size + 1
    pb = np.bincount(b, minlength=size).astype(np.float64)
    pc = np.bincount(c, minlength=size).astype(np.float64)
    return pb / pb.sum(), pc / pc.sum()


def psi(baseline: np.ndarray, candidate: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index of candidate vs baseline (0 = same distribution)."""
    pb, pc = _histograms(np.asarray(baseline, np.float64), np.asarray(candidate, np.float64), bins)
    pb, pc = pb + PSI_EPSILON, pc + PSI_EPSILON
    pb, pc = pb / pb.sum(), pc / pc.sum()
    return float(np.sum((pc - pb) * np.log(pc / pb)))


def js_distance(baseline: np.ndarray, candidate: np.ndarray, bins: int = PSI_BINS) -> float:
    """Jensen-Shannon distance (base 2: 0 = same, 1 = disjoint) over the same bins as `psi`."""
    from scipy.spatial.distance import jensenshannon

    pb, pc = _histograms(np.asarray(baseline, np.float64), np.asarray(candidate, np.float64), bins)
    return float(jensenshannon(pb, pc, base=2))


def psi_estimate(baseline: np.ndarray, candidate: np.ndarray, confidence: float, seed: int = 0) -> Estimate:
    """PSI with a paired bootstrap interval (the pairs are resampled together); no p-value."""
    x, y = _floats(baseline, candidate)
    n = min(x.size, y.size)
    if n == 0:
        return _no_data(0)
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(BOOTSTRAP_SAMPLES // 2):
        index = rng.integers(0, n, n)
        samples.append(psi(x[index], y[index]))
    alpha = _alpha(confidence)
    low, high = np.quantile(samples, [alpha / 2, 1 - alpha / 2])
    value = psi(x, y)
    return Estimate(value, float(min(low, value)), float(max(high, value)), None, n)
