"""The canary's judge, statistics, examples and configuration: pure functions, no server.

Includes the cases that trip Kayenta's judge (tiny samples, sparse errors, a variance blow-up that a
location test misses): here they must not PASS.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tfship.steps.canary import stats
from tfship.steps.canary.collect import collect
from tfship.steps.canary.config import CanaryConfig, Target, VersionRef
from tfship.steps.canary.examples import fit_examples, read_examples
from tfship.steps.canary.judge import (
    FAIL, HIGH, NODATA, PASS, JudgeConfig, MetricResult, classify, decide, judge_config_from_dict, load_judge_config,
)
from tfship.steps.canary.metrics import Observation, compute
from tfship.steps.canary.report import html_report, markdown
from tfship.errors import ConfigError, DataError
from tfship.saved_model.loader import SignatureInfo, TensorSpecInfo

pytestmark = pytest.mark.timeout(60)
JUDGE = JudgeConfig()
OUTPUTS = {"y": "float32"}


def observations(values: np.ndarray, latency_s: np.ndarray, failed: set[int] = frozenset()) -> list[Observation]:
    return [
        Observation(False, float(t), "INTERNAL", "boom") if i in failed
        else Observation(True, float(t), outputs={"y": np.array([v], np.float32)})
        for i, (v, t) in enumerate(zip(values, latency_s))
    ]


def run_judge(base: list[Observation], cand: list[Observation], config: JudgeConfig = JUDGE):
    results, summary = compute(base, cand, OUTPUTS, config)
    return {r.name: r for r in results}, decide(results, config), summary


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_identical_outputs_and_latency_pass(rng: np.random.Generator) -> None:
    y = rng.uniform(2, 7, 400)
    latency = rng.gamma(4, 0.00025, 400)
    metrics, verdict, _ = run_judge(observations(y, latency), observations(y, latency * rng.uniform(0.95, 1.05, 400)))
    assert verdict.verdict == PASS and verdict.score == 100
    assert {m.classification for m in metrics.values()} == {PASS}


def test_a_shifted_candidate_fails_on_a_critical_metric(rng: np.random.Generator) -> None:
    y = rng.uniform(2, 7, 300)
    latency = rng.gamma(4, 0.00025, 300)
    metrics, verdict, _ = run_judge(observations(y, latency), observations(y + 1.0, latency))
    assert verdict.verdict == FAIL
    assert metrics["score_shift[y]"].classification == HIGH
    assert metrics["score_shift[y]"].p_value < 1e-10
    assert verdict.reasons[0].startswith("critical score_shift[y] HIGH")


def test_tiny_samples_are_nodata_not_pass(rng: np.random.Generator) -> None:
    """Kayenta's hole: with a tolerance relative to the estimate, 5 samples pass. Here: NODATA."""
    y = rng.uniform(2, 7, 5)
    latency = np.full(5, 0.001)
    metrics, verdict, _ = run_judge(observations(y, latency), observations(y, latency))
    assert verdict.verdict == NODATA
    assert all(m.classification == NODATA and "< min_samples 100" in m.reason for m in metrics.values())


def test_sparse_candidate_errors_do_not_pass(rng: np.random.Generator) -> None:
    """3 failures in 120 (none on the baseline) is not evidence of safety: NODATA; 20 in 200 is HIGH."""
    y = rng.uniform(2, 7, 200)
    latency = np.full(200, 0.001)
    metrics, verdict, _ = run_judge(observations(y[:120], latency[:120]), observations(y[:120], latency[:120], {3, 50, 90}))
    assert metrics["error_rate"].classification == NODATA
    assert "inconclusive" in metrics["error_rate"].reason
    assert verdict.verdict == NODATA
    metrics, verdict, _ = run_judge(observations(y, latency), observations(y, latency, set(range(0, 200, 10))))
    assert metrics["error_rate"].classification == HIGH
    assert verdict.verdict == FAIL


def test_a_variance_blow_up_without_a_shift_fails(rng: np.random.Generator) -> None:
    """Kayenta's hole: a location test misses a candidate that scrambles scores symmetrically."""
    y = rng.uniform(2, 7, 400)
    noisy = y + rng.choice([-1.5, 1.5], 400)
    latency = np.full(400, 0.001)
    metrics, verdict, _ = run_judge(observations(y, latency), observations(noisy, latency))
    assert metrics["score_shift[y]"].classification != HIGH  # the median shift is about zero
    assert metrics["score_abs_diff[y]"].classification == HIGH
    assert metrics["psi[y]"].classification == HIGH
    assert verdict.verdict == FAIL


def test_a_slow_candidate_fails_on_latency_only(rng: np.random.Generator) -> None:
    y = rng.uniform(2, 7, 300)
    latency = rng.gamma(4, 0.00025, 300)
    metrics, verdict, _ = run_judge(observations(y, latency), observations(y, latency + 0.03))
    assert metrics["latency"].classification == HIGH
    assert metrics["latency"].estimate == pytest.approx(0.03, abs=0.002)
    assert {n for n, m in metrics.items() if m.classification != PASS} == {"latency", "latency_p99"}
    assert verdict.verdict == FAIL


def test_class_flips_are_judged_for_class_outputs() -> None:
    base = [Observation(True, 0.001, outputs={"c": np.array([b"a"], object)}) for _ in range(300)]
    cand = [Observation(True, 0.001, outputs={"c": np.array([b"b" if i % 10 == 0 else b"a"], object)}) for i in range(300)]
    results, summary = compute(base, cand, {"c": "string"}, JUDGE)
    flips = {r.name: r for r in results}["flip_rate[c]"]
    assert flips.classification == HIGH and flips.estimate == pytest.approx(0.1)
    assert summary["outputs"]["c"]["agreement_rate"] == pytest.approx(0.9)


@pytest.mark.parametrize("n, low, high, p, expected", [
    (50, -0.1, 0.1, None, NODATA),       # below min_samples
    (200, -0.1, 0.1, None, PASS),        # interval inside the band
    (200, 2.0, 3.0, None, HIGH),         # interval above the band
    (200, 0.5, 3.0, 0.001, HIGH),        # estimate above, significant
    (200, -0.5, 3.0, 0.3, NODATA),       # straddles, not significant: inconclusive
])
def test_classification_rules(n: int, low: float, high: float, p: float | None, expected: str) -> None:
    estimate = (low + high) / 2
    got, _ = classify(estimate, low, high, -1.0, 1.0, p, n, alpha=0.05, min_samples=100)
    assert got == expected


def _metric(name: str, classification: str, critical: bool = False, weight: float = 1.0) -> MetricResult:
    return MetricResult(name, "psi", classification, 0.0, 0.0, 0.0, 0.0, 1.0, None, 200, "", critical, weight)


def test_verdict_rules() -> None:
    passing = [_metric(f"m{i}", PASS) for i in range(9)]
    assert decide(passing + [_metric("x", HIGH)], JUDGE).verdict == FAIL  # 90 < 95
    assert decide(passing + [_metric("x", HIGH)], JudgeConfig(pass_score=90)).verdict == PASS
    assert decide(passing + [_metric("x", HIGH, critical=True)], JudgeConfig(pass_score=0)).verdict == FAIL
    assert decide(passing + [_metric("x", NODATA, critical=True)], JUDGE).verdict == NODATA
    assert decide([_metric("a", PASS), _metric("b", NODATA)], JUDGE).verdict == NODATA  # half NODATA
    aborted = decide(passing, JUDGE, aborted="the endpoint stopped answering")
    assert aborted.verdict == NODATA and aborted.reasons == ("run aborted: the endpoint stopped answering",)


# ---- statistics ---------------------------------------------------------------------------------


def test_exact_rate_interval_and_mcnemar() -> None:
    zero = stats.rate(0, 300, 0.95)
    assert zero.low == 0 and zero.high == pytest.approx(1 - 0.025 ** (1 / 300))
    assert stats.paired_error_rate(10, 0, 200, 0.95).p_value == pytest.approx(0.5 ** 10)
    assert stats.paired_error_rate(0, 0, 200, 0.95).p_value == 1.0


def test_location_shift_finds_a_latency_shift(rng: np.random.Generator) -> None:
    base = rng.gamma(4, 0.00025, 500)
    shifted = stats.location_shift(base, rng.gamma(4, 0.00025, 500) + 0.01, 0.95)
    assert shifted.low < 0.01 < shifted.high and shifted.p_value < 1e-10
    same = stats.location_shift(base, rng.gamma(4, 0.00025, 500), 0.95)
    assert same.low < 0 < same.high


def test_psi_and_js_distance() -> None:
    x = np.linspace(0, 1, 1000)
    assert stats.psi(x, x) == 0 and stats.js_distance(x, x) == 0
    assert stats.psi(x, x + 0.5) > 1 and 0.5 < stats.js_distance(x, x + 0.5) <= 1


# ---- configuration ------------------------------------------------------------------------------


def test_yaml_overrides_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "judge.yaml"
    path.write_text("confidence: 0.99\nmin_samples: 50\nmetrics:\n  latency: {rel_tolerance: 1.0, critical: true}\n")
    config = load_judge_config(str(path))
    assert (config.confidence, config.min_samples) == (0.99, 50)
    assert config.metric("latency").rel_tolerance == 1.0 and config.metric("latency").critical
    assert config.metric("latency").abs_tolerance == JUDGE.metric("latency").abs_tolerance
    assert config.metric("error_rate") == JUDGE.metric("error_rate")


def test_a_judge_config_that_is_not_yaml_is_one_line_with_its_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "judge.yaml"
    path.write_text("confidence: 0.99\nmetrics: {latency: [unclosed\n")
    with pytest.raises(ConfigError) as raised:
        load_judge_config(str(path))
    assert str(raised.value).startswith(f"judge config {path} is not valid YAML (line 3, column 1): ")
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("data, message", [
    ({"metrics": {"accuracy": {}}}, r"Unknown canary metric 'accuracy'"),
    ({"metrics": {"latency": {"tolerance": 1}}}, r"Unknown setting\(s\) \['tolerance'\] for metric 'latency'"),
    ({"confidence": 1.5}, r"Invalid value for `confidence`. Received: 1.5"),
    ({"min_samples": 3}, r"Expected an integer >= 10"),
    ({"threshold": 1}, r"Unknown judge setting\(s\) \['threshold'\]"),
])
def test_bad_judge_settings_are_rejected(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        judge_config_from_dict(data)


@pytest.mark.parametrize("kwargs, message", [
    ({"target": "localhost:8500"}, r"Expected grpc://host:port or http://host:port"),
    ({"candidate": "stable"}, r"both name label 'stable'"),
    ({"candidate": "can-ary"}, r"Invalid value for argument `--candidate`"),
    ({"promote": True}, r"--promote needs --repo"),
    ({"requests": 0}, r"Invalid value for argument `--requests`. Received: 0"),
])
def test_bad_canary_flags_are_rejected(kwargs: dict, message: str) -> None:
    arguments = {"target": "grpc://127.0.0.1:8500", "name": "m", "examples": "x.jsonl", **kwargs}
    with pytest.raises(ConfigError, match=message):
        CanaryConfig(**arguments)


def test_targets_and_version_refs_parse() -> None:
    assert Target.parse("grpc://127.0.0.1:8500") == Target("grpc", "127.0.0.1", 8500)
    assert str(Target.parse("http://serving:8501/")) == "http://serving:8501"
    assert VersionRef.parse("124", "--candidate") == VersionRef(version=124)
    assert VersionRef.parse("canary", "--candidate") == VersionRef(label="canary")


# ---- examples -----------------------------------------------------------------------------------

SIGNATURE = SignatureInfo(
    "serving_default", "tensorflow/serving/predict",
    inputs={"x": TensorSpecInfo("x", "float32", (None, 1), "x:0")},
    outputs={"y": TensorSpecInfo("y", "float32", (None, 1), "y:0")},
)


def test_jsonl_and_csv_examples_fit_the_signature(tmp_path: Path) -> None:
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text('{"x": [1.5]}\n\n{"x": [2]}\n')
    csv_file = tmp_path / "rows.csv"
    csv_file.write_text("x\n1.5\n2\n")
    for path in (jsonl, csv_file):
        fitted = fit_examples(read_examples(str(path)), SIGNATURE, str(path))
        assert [e["x"].tolist() for e in fitted] == [[1.5], [2.0]]
        assert fitted[0]["x"].dtype == np.float32
    scalar_input = SignatureInfo("s", "m", {"x": TensorSpecInfo("x", "float32", (None,), "x:0")}, {})
    assert [e["x"].shape for e in fit_examples(read_examples(str(jsonl)), scalar_input, "rows")] == [(), ()]


@pytest.mark.parametrize("text, message", [
    ('{"z": [1.0]}\n', r"row 1 does not match signature 'serving_default' \(inputs \['x'\]\): missing \['x'\], unknown \['z'\]"),
    ('{"x": [1.0, 2.0]}\n', r"one example has shape \[2\], but the signature takes \[-1, 1\]"),
    ('{"x": ["a"]}\n', r"'a'\] is not a float32 value"),
    ("[1, 2]\n", r"line 1: expected a JSON object"),
    ("", r"is empty"),
])
def test_examples_that_do_not_match_are_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        fit_examples(read_examples(str(path)), SIGNATURE, str(path))


# ---- collection ---------------------------------------------------------------------------------


def test_collection_pairs_requests_and_stops_when_the_endpoint_is_gone() -> None:
    alive = Observation(True, 0.001, outputs={"y": np.array([1.0])})
    dead = Observation(False, 0.001, "UNAVAILABLE", "Connection refused")
    gone_after = 50

    def send(index: int) -> Observation:
        return alive if index < gone_after else dead

    complete = collect(send, send, requests=100, concurrency=4, abort_after=10)
    assert complete.aborted is None or complete.aborted.startswith("the endpoint stopped answering")
    gone = collect(send, send, requests=100_000, concurrency=4, abort_after=10)
    assert gone.aborted.startswith("the endpoint stopped answering: ") and "UNAVAILABLE: Connection refused" in gone.aborted
    assert len(gone.baseline) == len(gone.candidate) < 1000  # stopped early, pairs only


def test_reports_render_their_plots(rng: np.random.Generator) -> None:
    y = rng.uniform(2, 7, 200)
    latency = rng.gamma(4, 0.00025, 200)
    results, summary = compute(observations(y, latency), observations(y + 1, latency), OUTPUTS, JUDGE)
    report = {
        "verdict": FAIL, "score": 50.0, "reasons": ["critical score_shift[y] HIGH"], "model": "m",
        "target": "grpc://h:1", "action": "none", "judge": {"pass_score": 95},
        "baseline": {"ref": "label 'stable'", "version": 1, **summary["baseline"]},
        "candidate": {"ref": "label 'canary'", "version": 2, **summary["candidate"]},
        "requests": {"asked": 200, "pairs_answered": 200, "seconds": 1.0},
        "metrics": [r.__dict__ for r in results], "_latency": summary["latency"], "_outputs": summary["outputs"],
    }
    text = markdown(report)
    assert text.startswith("# Canary FAIL: m label 'canary' vs label 'stable'")
    assert "| score_shift[y] | HIGH |" in text and "## Latency" in text and "#" in text.split("## Latency")[1]
    page = html_report(report)
    assert page.count("<svg") == 2 and "latency per request" in page
    assert not math.isnan(summary["outputs"]["y"]["psi"])
