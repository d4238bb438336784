"""From paired observations to judged metrics and the report's numbers. Pure.

Request i went to the baseline and to the candidate with the same inputs, so everything about
predictions is computed on pairs (both sides answered); error rates on all pairs sent; latency on
each side's successful requests.

Outputs are told apart by dtype: a float output is a score (shift, spread and PSI are judged on
it; with a last dimension > 1 its argmax is also a class, judged by the flip rate), a string or
integer output is a class (flip rate).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfship.steps.canary import stats
from tfship.steps.canary.judge import JudgeConfig, MetricResult, classify

SCORE, CLASS = "score", "class"


@dataclass(frozen=True)
class Observation:
    """One request to one version: whether it succeeded, how long it took, what it answered.

    Attributes:
        ok: the request succeeded.
        latency_s: wall time of the request, as the client saw it.
        code: the canonical error code ("" when ok), e.g. "UNAVAILABLE".
        message: the server's error message ("" when ok).
        outputs: output name -> the answer for the one example sent (no batch dimension).
    """

    ok: bool
    latency_s: float
    code: str = ""
    message: str = ""
    outputs: Mapping[str, np.ndarray] | None = None


def output_kind(dtype: str) -> str:
    """SCORE for float outputs, CLASS for strings and integers."""
    return SCORE if dtype.startswith(("float", "half", "bfloat", "double")) else CLASS


def _pairs(baseline: Sequence[Observation], candidate: Sequence[Observation], name: str) -> tuple[list[Any], list[Any]]:
    base, cand = [], []
    for b, c in zip(baseline, candidate):
        if b.ok and c.ok and b.outputs is not None and c.outputs is not None and name in b.outputs and name in c.outputs:
            base.append(np.asarray(b.outputs[name]))
            cand.append(np.asarray(c.outputs[name]))
    return base, cand


def judge_metric(name: str, kind: str, estimate: stats.Estimate, lower: float, upper: float,
                 config: JudgeConfig) -> MetricResult:
    """One metric's result: its estimate classified against the [lower, upper] band, with the
    metric kind's weight and criticality (shared by the offline and the live judge)."""
    settings = config.metric(kind)
    classification, reason = classify(
        estimate.estimate, estimate.low, estimate.high, lower, upper, estimate.p_value, estimate.n,
        alpha=1 - config.confidence, min_samples=config.min_samples,
    )
    return MetricResult(
        name=name, kind=kind, classification=classification, estimate=estimate.estimate,
        low=estimate.low, high=estimate.high, lower_limit=lower, upper_limit=upper,
        p_value=estimate.p_value, n=estimate.n, reason=reason,
        critical=settings.critical, weight=settings.weight,
    )


def _side_summary(observations: Sequence[Observation]) -> dict[str, Any]:
    latencies = np.array([o.latency_s for o in observations if o.ok], dtype=np.float64)
    errors = Counter(o.code for o in observations if not o.ok)
    sent = len(observations)
    return {
        "requests": sent,
        "errors": sum(errors.values()),
        "error_rate": (sum(errors.values()) / sent) if sent else math.nan,
        "errors_by_code": dict(sorted(errors.items())),
        "latency_ms": {
            "p50": 1000 * stats.percentile(latencies, 50),
            "p95": 1000 * stats.percentile(latencies, 95),
            "p99": 1000 * stats.percentile(latencies, 99),
            "mean": 1000 * float(latencies.mean()) if latencies.size else math.nan,
        },
    }


def _as_matrix(arrays: list[np.ndarray]) -> np.ndarray | None:
    """[n, elements] when every answer has the same shape, else None."""
    if not arrays:
        return None
    try:
        return np.stack([a.reshape(-1) for a in arrays])
    except ValueError:
        return None


def _classes(arrays: list[np.ndarray], kind: str) -> list[Any]:
    if kind == CLASS:
        return [tuple(a.reshape(-1).tolist()) for a in arrays]
    return [tuple(np.argmax(a, axis=-1).reshape(-1).tolist()) if a.ndim and a.shape[-1] > 1 else None for a in arrays]


def compute(
    baseline: Sequence[Observation],
    candidate: Sequence[Observation],
    output_dtypes: Mapping[str, str],
    config: JudgeConfig,
    seed: int = 0,
) -> tuple[list[MetricResult], dict[str, Any]]:
    """The judged metrics and the report's summary numbers.

    Args:
        baseline, candidate: observation i of each is the same request (equal lengths).
        output_dtypes: output name -> numpy-style dtype, from the signature.
        config: the judge's settings (tolerances, confidence, min_samples).
        seed: seeds the bootstraps.
    """
    if len(baseline) != len(candidate):
        raise ValueError(f"Unpaired observations: {len(baseline)} baseline vs {len(candidate)} candidate.")
    results: list[MetricResult] = []
    n_sent = len(baseline)
    candidate_only = sum(1 for b, c in zip(baseline, candidate) if b.ok and not c.ok)
    baseline_only = sum(1 for b, c in zip(baseline, candidate) if c.ok and not b.ok)
    error_limit = config.metric("error_rate").limit(0.0)
    results.append(judge_metric(
        "error_rate", "error_rate",
        stats.paired_error_rate(candidate_only, baseline_only, n_sent, config.confidence), 0.0, error_limit, config,
    ))
    summary: dict[str, Any] = {
        "pairs_sent": n_sent,
        "pairs_answered": sum(1 for b, c in zip(baseline, candidate) if b.ok and c.ok),
        "candidate_only_errors": candidate_only,
        "baseline_only_errors": baseline_only,
        "baseline": _side_summary(baseline),
        "candidate": _side_summary(candidate),
        "outputs": {},
    }
    for name, dtype in sorted(output_dtypes.items()):
        kind = output_kind(dtype)
        base, cand = _pairs(baseline, candidate, name)
        info: dict[str, Any] = {"kind": kind, "dtype": dtype, "pairs": len(base)}
        base_classes, cand_classes = _classes(base, kind), _classes(cand, kind)
        if kind == CLASS or any(c is not None for c in base_classes):
            flips = sum(1 for b, c in zip(base_classes, cand_classes) if b != c)
            limit = config.metric("flip_rate").limit(0.0)
            results.append(judge_metric(
                f"flip_rate[{name}]", "flip_rate",
                stats.flip_rate(flips, len(base), limit, config.confidence), 0.0, limit, config,
            ))
            info["agreement_rate"] = 1 - flips / len(base) if base else math.nan
        if kind == SCORE:
            b, c = _as_matrix(base), _as_matrix(cand)
            if b is not None and c is not None and b.shape == c.shape:
                _score_metrics(name, b.astype(np.float64), c.astype(np.float64), config, seed, results, info)
            else:
                info["note"] = "answers of varying shape: score metrics skipped"
        summary["outputs"][name] = info
    latency_results, latency_info = _latency_metrics(baseline, candidate, config, seed)
    results.extend(latency_results)
    summary["latency"] = latency_info
    return results, summary


def _score_metrics(
    name: str, b: np.ndarray, c: np.ndarray, config: JudgeConfig, seed: int,
    results: list[MetricResult], info: dict[str, Any],
) -> None:
    diff = c - b
    shift = diff.mean(axis=1)
    spread = np.abs(diff).max(axis=1)
    scale = float(np.median(np.abs(b))) if b.size else 0.0
    relative = np.abs(diff) / np.maximum(np.abs(b), 1e-12)

    shift_limit = config.metric("score_shift").limit(scale)
    results.append(judge_metric(
        f"score_shift[{name}]", "score_shift", stats.paired_shift(shift, config.confidence),
        -shift_limit, shift_limit, config,
    ))
    spread_settings = config.metric("score_abs_diff")
    spread_limit = spread_settings.limit(scale)
    results.append(judge_metric(
        f"score_abs_diff[{name}]", "score_abs_diff",
        stats.quantile_exceedance(spread, spread_settings.quantile, spread_limit, config.confidence),
        0.0, spread_limit, config,
    ))
    psi_limit = config.metric("psi").limit(0.0)
    results.append(judge_metric(
        f"psi[{name}]", "psi", stats.psi_estimate(b.ravel(), c.ravel(), config.confidence, seed),
        0.0, psi_limit, config,
    ))
    info.update({
        "baseline_median_abs": scale,
        "abs_diff": {
            "mean": float(np.abs(diff).mean()), "p50": float(np.median(spread)),
            "p95": float(np.quantile(spread, 0.95)), "max": float(spread.max()),
        },
        "rel_diff": {
            "mean": float(relative.mean()), "p50": float(np.median(relative)),
            "p95": float(np.quantile(relative, 0.95)), "max": float(relative.max()),
        },
        "mean_shift": float(shift.mean()),
        "psi": stats.psi(b.ravel(), c.ravel()),
        "js_distance": stats.js_distance(b.ravel(), c.ravel()),
        "differences": shift.tolist(),  # for the report's plot
    })


def _latency_metrics(
    baseline: Sequence[Observation], candidate: Sequence[Observation], config: JudgeConfig, seed: int
) -> tuple[list[MetricResult], dict[str, Any]]:
    x = np.array([o.latency_s for o in baseline if o.ok], dtype=np.float64)
    y = np.array([o.latency_s for o in candidate if o.ok], dtype=np.float64)
    median = stats.percentile(x, 50)
    p99 = stats.percentile(x, 99)
    shift_limit = config.metric("latency").limit(median if math.isfinite(median) else 0.0)
    p99_limit = config.metric("latency_p99").limit(p99 if math.isfinite(p99) else 0.0)
    results = [
        judge_metric("latency", "latency", stats.location_shift(x, y, config.confidence, seed), -math.inf, shift_limit, config),
        judge_metric("latency_p99", "latency_p99", stats.percentile_difference(x, y, 99, config.confidence, seed),
                -math.inf, p99_limit, config),
    ]
    return results, {"baseline_s": x.tolist(), "candidate_s": y.tolist()}
