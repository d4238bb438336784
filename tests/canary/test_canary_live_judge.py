"""The live judge's statistics and the sequential test, on simulated traffic (pure, seeded, fast).

The end-to-end test against a real Prometheus is tests/canary/test_canary_live.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tfship.steps.canary import sequential, stats
from tfship.steps.canary.judge import FAIL, HIGH, PASS, JudgeConfig, MetricConfig, decide
from tfship.steps.canary.live import VersionTraffic, judge_traffic
from tfship.text import parse_duration
from tfship.errors import ConfigError
from tfship.steps.serve.metrics import LATENCY_BUCKETS_S

BOUNDS = np.array(LATENCY_BUCKETS_S)


def buckets_of(latencies: np.ndarray) -> stats.Buckets:
    """What tfship serve's histogram would hold for these latencies (le is inclusive)."""
    counts = np.bincount(np.searchsorted(BOUNDS, latencies, side="left"), minlength=BOUNDS.size + 1)
    return stats.Buckets(BOUNDS, counts.astype(np.float64))


def traffic(version: int, latencies: np.ndarray, errors: int = 0) -> VersionTraffic:
    return VersionTraffic(version, latencies.size, {"INTERNAL": errors} if errors else {}, buckets_of(latencies))


def lognormal(rng: np.random.Generator, median_s: float, sigma: float, n: int) -> np.ndarray:
    return rng.lognormal(math.log(median_s), sigma, n)


# ---- buckets ----------------------------------------------------------------------------------


def test_buckets_from_prometheus_cumulative_counts_round_trip() -> None:
    rng = np.random.default_rng(1)
    latencies = lognormal(rng, 0.004, 0.3, 3000)
    direct = buckets_of(latencies)
    cumulative = np.cumsum(direct.counts)
    shuffled = rng.permutation(BOUNDS.size + 1)  # Prometheus answers series in no particular order
    upper = np.append(BOUNDS, math.inf)
    rebuilt = stats.Buckets.from_cumulative(list(upper[shuffled]), list(cumulative[shuffled] + 0.3))
    np.testing.assert_array_equal(rebuilt.bounds, BOUNDS)
    np.testing.assert_array_equal(rebuilt.counts, direct.counts)


@pytest.mark.parametrize("q", [0.1, 0.5, 0.9, 0.99])
def test_bucket_quantiles_are_within_a_bucket_of_the_true_quantile(q: float) -> None:
    latencies = lognormal(np.random.default_rng(2), 0.004, 0.5, 5000)
    estimate = stats.bucket_quantiles(buckets_of(latencies), q)
    assert estimate == pytest.approx(np.quantile(latencies, q), rel=0.25)


def test_no_traffic_has_no_quantile() -> None:
    assert math.isnan(stats.bucket_quantiles(stats.Buckets(BOUNDS, np.zeros(BOUNDS.size + 1)), 0.5))


# ---- the live metrics, judged -----------------------------------------------------------------


def test_a_healthy_candidate_passes_every_live_metric() -> None:
    rng = np.random.default_rng(3)
    base = traffic(1, lognormal(rng, 0.005, 0.3, 2000), errors=4)
    cand = traffic(2, lognormal(rng, 0.005, 0.3, 2000), errors=5)
    results = judge_traffic(base, cand, JudgeConfig())
    assert {r.name: r.classification for r in results} == {
        "error_rate": PASS, "latency": PASS, "latency_p99": PASS, "latency_spread": PASS}
    assert decide(results, JudgeConfig()).verdict == PASS


def test_a_variance_blow_up_with_the_same_median_fails_on_spread() -> None:
    """Kayenta's hole: a location test passes a candidate whose latency scatters around the same median."""
    rng = np.random.default_rng(4)
    base = traffic(1, lognormal(rng, 0.005, 0.2, 2000))
    cand = traffic(2, lognormal(rng, 0.005, 0.9, 2000))
    results = {r.name: r for r in judge_traffic(base, cand, JudgeConfig())}
    assert results["latency"].classification == PASS  # the location test alone would pass it
    assert results["latency_spread"].classification == HIGH
    assert decide(list(results.values()), JudgeConfig()).verdict == FAIL


@pytest.mark.parametrize("floor, expected", [(stats.SPREAD_FLOOR_S, PASS), (1e-12, HIGH)])
def test_sub_millisecond_scatter_is_not_a_blow_up(monkeypatch: pytest.MonkeyPatch, floor: float,
                                                   expected: str) -> None:
    """An identical candidate on a loaded machine: p90 0.44 -> 0.65 ms doubles p90/p10 but no user
    sees it. The 1 ms floor passes it; without the floor (the CI failure) it was HIGH."""
    monkeypatch.setattr(stats, "SPREAD_FLOOR_S", floor)
    rng = np.random.default_rng(6)
    base = traffic(1, lognormal(rng, 0.0003, 0.3, 2000))
    cand = traffic(2, lognormal(rng, 0.0003, 0.6, 2000))
    results = {r.name: r.classification for r in judge_traffic(base, cand, JudgeConfig())}
    assert results["latency_spread"] == expected


def test_a_constant_added_delay_fails_on_location_not_on_spread() -> None:
    rng = np.random.default_rng(5)
    base = traffic(1, lognormal(rng, 0.004, 0.2, 2000))
    cand = traffic(2, lognormal(rng, 0.004, 0.2, 2000) + 0.03)
    results = {r.name: r.classification for r in judge_traffic(base, cand, JudgeConfig())}
    assert results["latency"] == HIGH and results["latency_spread"] == PASS


def test_zero_heavy_errors_are_judged_on_exact_odds() -> None:
    """0 errors on the baseline, a few on the candidate: with no tolerance, Fisher's exact test
    flags 6 in 400 (p = 0.015); 1 in 400 is not evidence (p = 0.5)."""
    strict = JudgeConfig(metrics={"error_rate": MetricConfig(critical=True, abs_tolerance=0.0)})
    latencies = np.full(400, 0.005)
    for errors, expected in ((6, HIGH), (1, "NODATA")):
        result = judge_traffic(traffic(1, latencies), traffic(2, latencies, errors=errors), strict)[0]
        assert (result.name, result.classification) == ("error_rate", expected), result.reason
    estimate = stats.two_proportion_difference(0, 400, 6, 400, 0.95)
    assert estimate.p_value == pytest.approx(0.0152, abs=0.001)
    assert estimate.low < 0.015 < estimate.high  # Newcombe's interval, sound at zero events


def test_too_little_traffic_is_nodata() -> None:
    rng = np.random.default_rng(6)
    results = judge_traffic(traffic(1, lognormal(rng, 0.005, 0.3, 50)), traffic(2, lognormal(rng, 0.005, 0.3, 50)),
                            JudgeConfig())
    assert {r.classification for r in results} == {"NODATA"}
    assert decide(results, JudgeConfig()).verdict == "NODATA"


@pytest.mark.parametrize("text, seconds", [("10m", 600), ("90s", 90), ("1.5h", 5400), ("500ms", 0.5)])
def test_window_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, "--window") == seconds


@pytest.mark.parametrize("text", ["10", "0m", "ten minutes", "-5m"])
def test_a_bad_window_is_named(text: str) -> None:
    with pytest.raises(ConfigError, match=r"`--window`\. Received: .* Expected a duration"):
        parse_duration(text, "--window")


# ---- sequential analysis ----------------------------------------------------------------------

REPETITIONS, PEEKS, STEP = 2000, 50, 100  # 2000 simulated rollouts, a look every 100 requests


def _peeked_error_counts(rng: np.random.Generator, p_base: float, p_cand: float) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative errors of each arm at each look: [REPETITIONS, PEEKS]."""
    base = rng.binomial(STEP, p_base, (REPETITIONS, PEEKS)).cumsum(axis=1)
    cand = rng.binomial(STEP, p_cand, (REPETITIONS, PEEKS)).cumsum(axis=1)
    return base, cand


def _first_fail(base: np.ndarray, cand: np.ndarray, limit: float, alpha: float) -> np.ndarray:
    """Index of the first look that FAILs, PEEKS when none does."""
    first = np.full(REPETITIONS, PEEKS)
    for rep in range(REPETITIONS):
        for look in range(PEEKS):
            n = STEP * (look + 1)
            if sequential.error_rate_look(int(base[rep, look]), n, int(cand[rep, look]), n, limit, alpha).decision == "FAIL":
                first[rep] = look
                break
    return first


def test_msprt_keeps_false_failures_below_alpha_over_fifty_peeks() -> None:
    """Null: both versions fail 5 % of requests, the limit is 0 (no extra errors allowed). Looking 50
    times, the mSPRT fails a healthy candidate at most alpha of the time; a fixed z-test looked at
    as often fails it far more often (so this simulation can tell the two apart)."""
    alpha = 0.05
    base, cand = _peeked_error_counts(np.random.default_rng(7), 0.05, 0.05)
    false_failures = float(np.mean(_first_fail(base, cand, 0.0, alpha) < PEEKS))
    n = STEP * np.arange(1, PEEKS + 1)
    p_b, p_c = base / n, cand / n
    pooled = (base + cand) / (2 * n)
    z = (p_c - p_b) / np.sqrt(np.maximum(2 * pooled * (1 - pooled) / n, 1e-12))
    naive = float(np.mean((z > 1.6449).any(axis=1)))  # one-sided at alpha, at every look
    assert false_failures <= alpha, false_failures
    assert naive > 2 * alpha, naive


def test_msprt_stops_early_on_a_clear_fault() -> None:
    base, cand = _peeked_error_counts(np.random.default_rng(8), 0.01, 0.08)
    first = _first_fail(base, cand, 0.02, 0.05)
    assert np.mean(first < PEEKS) > 0.95
    assert np.median(first) < PEEKS / 4  # most rollouts stop in the first quarter of the step


def test_msprt_passes_early_when_the_candidate_is_clearly_within_the_limit() -> None:
    look = sequential.error_rate_look(50, 5000, 48, 5000, upper_limit=0.02, alpha=0.05)
    assert look.decision == "PASS" and look.high <= 0.02
    assert sequential.error_rate_look(5, 100, 5, 100, upper_limit=0.02, alpha=0.05).decision == "CONTINUE"


def test_mean_latency_look_fails_a_slow_candidate() -> None:
    rng = np.random.default_rng(9)
    base = buckets_of(lognormal(rng, 0.005, 0.3, 500))
    slow = buckets_of(lognormal(rng, 0.005, 0.3, 500) + 0.03)
    assert sequential.mean_latency_look(base, slow, upper_limit=0.005, alpha=0.05).decision == "FAIL"
    assert sequential.mean_latency_look(base, base, upper_limit=0.005, alpha=0.05).decision == "PASS"
    assert sequential.combine([sequential.mean_latency_look(base, slow, 0.005, 0.05),
                               sequential.error_rate_look(0, 500, 0, 500, 0.02, 0.05)]) == "FAIL"


def test_the_confidence_sequence_is_wider_than_a_fixed_interval_at_one_look() -> None:
    low, high = sequential.confidence_sequence(0.0, 1e-4, tau=0.02, alpha=0.05)
    assert high - low > 2 * 1.96 * 0.01
    with pytest.raises(ValueError, match="Invalid alpha"):
        sequential.confidence_sequence(0.0, 1e-4, tau=0.02, alpha=1.5)


def test_without_prometheus_the_canary_still_needs_examples(capsys: pytest.CaptureFixture) -> None:
    """--examples became optional in argparse (--prometheus does not use it); the offline canary
    still refuses to run without examples or logged traffic, with one line and exit 2, before
    touching the endpoint."""
    from tfship.cli import main as cli_main

    assert cli_main(["canary", "--target", "grpc://127.0.0.1:1", "--name", "m"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Pass exactly one of --examples" in err and "--traffic" in err


def test_a_bad_prometheus_url_is_named(capsys: pytest.CaptureFixture) -> None:
    from tfship.cli import main as cli_main

    assert cli_main(["canary", "--target", "grpc://127.0.0.1:1", "--name", "m", "--prometheus", "prometheus:9090"]) == 2
    assert "Invalid value for argument `--prometheus`. Received: 'prometheus:9090'" in capsys.readouterr().err
