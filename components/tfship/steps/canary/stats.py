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


# ---- live metrics: two independent samples, latency as histogram buckets ----------------------
# Live traffic is not paired (each request went to one version), and latency arrives as
# Prometheus histogram buckets, not values. What the live judge adds:
# - Error rates: the difference of two proportions with Newcombe's hybrid score interval (built
#   from Wilson intervals, sound at 0 events) and Fisher's exact test, so a handful of errors on
#   a candidate whose baseline has none is judged on exact odds (Kayenta's zero-heavy hole).
# - Latency location: difference of medians read from the buckets, with a multinomial bootstrap
#   interval and Mann-Whitney U on bucket ranks (ties are handled by the test).
# - Latency shape: the change of log(p90 / p10) (each with a 1 ms floor, SPREAD_FLOOR_S), the spread
#   on a multiplicative scale (a constant
#   added delay narrows it, a variance blow-up widens it), with a bootstrap interval and the
#   Brown-Forsythe test of equal spread on log latency, so a candidate whose median is fine but
#   whose latency scatters fails.


@dataclass(frozen=True)
class Buckets:
    """A histogram: `bounds` are the finite upper bounds (ascending, > 0), `counts` the events per
    bucket, one more than `bounds` (the last is the +Inf bucket)."""

    bounds: np.ndarray
    counts: np.ndarray

    def __post_init__(self) -> None:
        if self.counts.shape != (self.bounds.size + 1,):
            raise ValueError(f"Buckets: {self.counts.size} counts for {self.bounds.size} finite bounds; expected one more.")

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    @classmethod
    def from_cumulative(cls, upper_bounds: list[float], cumulative: list[float]) -> Buckets:
        """From Prometheus' `le` buckets (cumulative counts, the last one +Inf), sorted by bound.

        Counts are rounded to whole requests, and a count below the one before (which increase()
        can produce) is clamped.
        """
        order = np.argsort(upper_bounds)
        bounds = np.asarray(upper_bounds, dtype=np.float64)[order]
        running = np.maximum.accumulate(np.round(np.asarray(cumulative, dtype=np.float64)[order]))
        counts = np.diff(running, prepend=0.0)
        if bounds.size and math.isinf(bounds[-1]):
            bounds = bounds[:-1]
        else:
            counts = np.append(counts, 0.0)
        return cls(bounds, counts)


def bucket_quantiles(buckets: Buckets, q: float, counts: np.ndarray | None = None) -> np.ndarray | float:
    """The q-quantile (0-1) of each row of `counts` (default: the buckets' own counts).

    Interpolated inside a bucket on a log scale (exponential buckets hold latencies spread evenly
    in log), linearly in the first bucket (which starts at 0); the +Inf bucket answers the last
    finite bound, as Prometheus' histogram_quantile does. NaN for no events.
    """
    single = counts is None
    rows = np.atleast_2d(buckets.counts if single else counts).astype(np.float64)
    totals = rows.sum(axis=1)
    cumulative = np.cumsum(rows, axis=1)
    rank = q * totals
    index = np.minimum((cumulative < rank[:, None]).sum(axis=1), rows.shape[1] - 1)
    below = np.where(index > 0, np.take_along_axis(cumulative, np.maximum(index - 1, 0)[:, None], 1)[:, 0], 0.0)
    inside = np.take_along_axis(rows, index[:, None], 1)[:, 0]
    fraction = np.clip(np.where(inside > 0, (rank - below) / np.where(inside > 0, inside, 1), 0.0), 0.0, 1.0)
    bounds = buckets.bounds
    upper = bounds[np.minimum(index, bounds.size - 1)]
    lower = np.where(index > 0, bounds[np.maximum(np.minimum(index, bounds.size) - 1, 0)], 0.0)
    value = np.where(
        lower > 0,
        np.exp(np.log(np.where(lower > 0, lower, 1.0)) + fraction * (np.log(upper) - np.log(np.where(lower > 0, lower, 1.0)))),
        fraction * upper,
    )
    value = np.where(index >= bounds.size, bounds[-1], value)
    value = np.where(totals > 0, value, np.nan)
    return float(value[0]) if single else value


def _resample(buckets: Buckets, rng: np.random.Generator) -> np.ndarray:
    """BOOTSTRAP_SAMPLES multinomial resamples of the bucket counts (rows)."""
    n = buckets.n
    return rng.multinomial(n, buckets.counts / n, size=BOOTSTRAP_SAMPLES)


def _bootstrap_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = _alpha(confidence)
    finite = values[np.isfinite(values)]
    if not finite.size:
        return math.nan, math.nan
    low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


# Added to both quantiles of the spread: below about a millisecond, latencies differ by scheduling
# noise that no user sees, yet on a multiplicative scale 0.2 ms -> 0.4 ms looks like a blow-up (an
# identical candidate failed so on a loaded machine). With the floor, the spread is multiplicative
# above a millisecond and effectively absolute below it.
SPREAD_FLOOR_S = 0.001


def _log_spread(buckets: Buckets, counts: np.ndarray | None = None) -> np.ndarray | float:
    """log((p90 + floor) / (p10 + floor)): the spread of latency on a multiplicative scale."""
    p90 = bucket_quantiles(buckets, 0.9, counts)
    p10 = bucket_quantiles(buckets, 0.1, counts)
    return np.log(p90 + SPREAD_FLOOR_S) - np.log(p10 + SPREAD_FLOOR_S)


def bucket_middles(buckets: Buckets) -> np.ndarray:
    """A representative value per bucket: its geometric middle (the first bucket's is taken from
    half its bound, the +Inf bucket's from twice the last bound)."""
    bounds = buckets.bounds
    return np.sqrt(np.concatenate([[bounds[0] / 2], bounds]) * np.concatenate([bounds, [bounds[-1] * 2]]))


def _bucket_values(buckets: Buckets, rng: np.random.Generator) -> np.ndarray:
    """One value per event (its bucket's middle), at most MAX_PAIRWISE * 10 (seeded subsample)."""
    values = np.repeat(bucket_middles(buckets), buckets.counts.astype(np.int64))
    return values if values.size <= 10 * MAX_PAIRWISE else rng.choice(values, 10 * MAX_PAIRWISE, replace=False)


def two_proportion_difference(
    baseline_events: int, baseline_n: int, candidate_events: int, candidate_n: int, confidence: float
) -> Estimate:
    """candidate rate - baseline rate, Newcombe's hybrid score interval, Fisher's exact p (one-sided:
    the candidate's rate is higher). n is the smaller sample."""
    n = min(baseline_n, candidate_n)
    if n <= 0:
        return _no_data(0)
    p_b, p_c = baseline_events / baseline_n, candidate_events / candidate_n
    ci_b = _stats.binomtest(baseline_events, baseline_n).proportion_ci(confidence_level=confidence, method="wilson")
    ci_c = _stats.binomtest(candidate_events, candidate_n).proportion_ci(confidence_level=confidence, method="wilson")
    difference = p_c - p_b
    low = difference - math.sqrt((p_c - ci_c.low) ** 2 + (ci_b.high - p_b) ** 2)
    high = difference + math.sqrt((ci_c.high - p_c) ** 2 + (p_b - ci_b.low) ** 2)
    table = [[candidate_events, candidate_n - candidate_events], [baseline_events, baseline_n - baseline_events]]
    p_value = float(_stats.fisher_exact(table, alternative="greater").pvalue)
    return Estimate(difference, float(low), float(high), p_value, n)


def bucketed_quantile_difference(
    baseline: Buckets, candidate: Buckets, q: float, confidence: float, seed: int = 0
) -> Estimate:
    """candidate's q-quantile minus baseline's (from buckets), multinomial bootstrap interval.

    The p-value (median only, q = 0.5) is Mann-Whitney U's on bucket ranks, one-sided "the
    candidate is slower"; other quantiles have none.
    """
    n = min(baseline.n, candidate.n)
    if n == 0:
        return _no_data(0)
    rng = np.random.default_rng(seed)
    boot = bucket_quantiles(candidate, q, _resample(candidate, rng)) - bucket_quantiles(baseline, q, _resample(baseline, rng))
    low, high = _bootstrap_interval(boot, confidence)
    p_value = None
    if q == 0.5:
        ranks = np.arange(baseline.counts.size)
        x = np.repeat(ranks, baseline.counts.astype(np.int64))
        y = np.repeat(ranks, candidate.counts.astype(np.int64))
        p_value = float(_stats.mannwhitneyu(y, x, alternative="greater").pvalue)
    estimate = bucket_quantiles(candidate, q) - bucket_quantiles(baseline, q)
    return Estimate(estimate, min(low, estimate), max(high, estimate), p_value, n)


def bucketed_spread_change(baseline: Buckets, candidate: Buckets, confidence: float, seed: int = 0) -> Estimate:
    """Change of `_log_spread` from baseline to candidate, bootstrap interval, Brown-Forsythe p.

    The test (Levene's with the median as centre) compares the spread of log latency; its p-value
    is two-sided, and the judge only reads it when the estimate is above the band.
    """
    n = min(baseline.n, candidate.n)
    if n == 0:
        return _no_data(0)
    rng = np.random.default_rng(seed)
    boot = _log_spread(candidate, _resample(candidate, rng)) - _log_spread(baseline, _resample(baseline, rng))
    low, high = _bootstrap_interval(boot, confidence)
    x, y = np.log(_bucket_values(baseline, rng)), np.log(_bucket_values(candidate, rng))
    constant = np.ptp(x) == 0 and np.ptp(y) == 0  # the test is undefined; there is no spread to differ
    p_value = 1.0 if constant else float(_stats.levene(y, x, center="median").pvalue)
    estimate = float(_log_spread(candidate) - _log_spread(baseline))
    return Estimate(estimate, min(low, estimate), max(high, estimate), p_value, n)
