"""The live judge: candidate vs baseline from the metrics Prometheus scraped off the servers.

`tfship canary --prometheus URL --window 10m` asks Prometheus' HTTP API (instant queries) for
what `tfship serve` exported (`tfship.steps.serve.metrics`) over the last `window`, per version:

    requests by status   sum by (status) (tfship_serving_request_count_total{model_name, version})
    latency buckets      sum by (le) (tfship_serving_request_latency_seconds_bucket{...})

Each is read at the end of the window and at its start, and the difference taken (a series absent
at the start counts from 0, so the first error of a version is not lost as `increase()` would lose
it; a counter that went down was reset by a restart and counts from 0 again).

Live traffic is not paired, so the metrics are two-sample ones (`stats`): the error-rate
difference with Fisher's exact test, the median latency shift with Mann-Whitney U on the buckets,
the p99 difference, and the change of latency spread (a shape test). They are judged with the same
classification, weights, critical metrics and NODATA rules as the offline canary
(`judge.classify`, `judge.decide`), with the same settings (`--judge-config`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from tfship.steps.canary import stats
from tfship.steps.canary.config import Target, VersionRef
from tfship.steps.canary.judge import JudgeConfig, MetricResult, Verdict, decide
from tfship.steps.canary.metrics import judge_metric
from tfship.errors import ConfigError, EndpointError

REQUEST_COUNT = "tfship_serving_request_count_total"
LATENCY_BUCKET = "tfship_serving_request_latency_seconds_bucket"
class PrometheusClient:
    """Instant queries against Prometheus' HTTP API (`GET /api/v1/query`)."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(
                f"Invalid value for argument `--prometheus`. Received: {url!r}. Expected the server's URL, "
                "e.g. http://127.0.0.1:9090."
            )
        self.url = url.rstrip("/")
        self._timeout_s = timeout_s

    def query(self, promql: str, at: float) -> list[tuple[dict[str, str], float]]:
        """(labels, value) of each series of an instant vector evaluated at unix time `at`."""
        address = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql, "time": f"{at:.3f}"})
        try:
            with urllib.request.urlopen(address, timeout=self._timeout_s) as response:
                document = json.loads(response.read())
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", errors="replace")[:300]
            raise EndpointError(f"--prometheus {self.url}: query {promql!r} failed: HTTP {error.code}: {detail}") from error
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise EndpointError(f"--prometheus {self.url}: cannot query Prometheus: {error}") from error
        if document.get("status") != "success" or document.get("data", {}).get("resultType") != "vector":
            raise EndpointError(f"--prometheus {self.url}: unexpected answer to {promql!r}: {str(document)[:300]}")
        return [(item["metric"], float(item["value"][1])) for item in document["data"]["result"]]


@dataclass(frozen=True)
class VersionTraffic:
    """What one version served during the window.

    Attributes:
        version: the model version.
        requests: requests answered (any status).
        errors_by_status: canonical status -> count, for every status but OK.
        latency: server-side latency of those requests, as histogram buckets.
    """

    version: int
    requests: int
    errors_by_status: dict[str, int]
    latency: stats.Buckets

    @property
    def errors(self) -> int:
        return sum(self.errors_by_status.values())


def _selector(name: str, version: int) -> str:
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'{{model_name="{escaped}",version="{version}"}}'


def _window_delta(
    client: PrometheusClient, promql: str, key: str, at: float, window_s: float
) -> dict[str, float]:
    """label `key` -> the counter's growth over [at - window_s, at] (see the module docstring)."""
    end = {labels.get(key, ""): value for labels, value in client.query(promql, at)}
    start = {labels.get(key, ""): value for labels, value in client.query(promql, at - window_s)}
    return {k: (v - start.get(k, 0.0)) if v >= start.get(k, 0.0) else v for k, v in end.items()}


def fetch_traffic(client: PrometheusClient, name: str, version: int, window_s: float, at: float) -> VersionTraffic:
    """One version's requests, errors and latency buckets over the window ending at `at`."""
    selector = _selector(name, version)
    by_status = _window_delta(client, f"sum by (status) ({REQUEST_COUNT}{selector})", "status", at, window_s)
    by_bound = _window_delta(client, f"sum by (le) ({LATENCY_BUCKET}{selector})", "le", at, window_s)
    counts = {status: int(round(value)) for status, value in by_status.items()}
    if by_bound:
        bounds = list(by_bound)
        latency = stats.Buckets.from_cumulative([float(b) for b in bounds], [by_bound[b] for b in bounds])
    else:
        from tfship.steps.serve.metrics import LATENCY_BUCKETS_S

        latency = stats.Buckets.from_cumulative(list(LATENCY_BUCKETS_S) + [math.inf], [0.0] * (len(LATENCY_BUCKETS_S) + 1))
    return VersionTraffic(
        version=version,
        requests=sum(counts.values()),
        errors_by_status={s: c for s, c in sorted(counts.items()) if s != "OK" and c > 0},
        latency=latency,
    )


def judge_traffic(
    baseline: VersionTraffic, candidate: VersionTraffic, config: JudgeConfig, seed: int = 0
) -> list[MetricResult]:
    """The live metrics, judged (pure). Bands: docs/serve-canary.md, "Live canary"."""
    confidence = config.confidence
    error_limit = config.metric("error_rate").limit(0.0)
    base_median = stats.bucket_quantiles(baseline.latency, 0.5)
    base_p99 = stats.bucket_quantiles(baseline.latency, 0.99)
    shift_limit = config.metric("latency").limit(base_median if math.isfinite(base_median) else 0.0)
    p99_limit = config.metric("latency_p99").limit(base_p99 if math.isfinite(base_p99) else 0.0)
    spread_limit = config.metric("latency_spread").limit(0.0)
    b, c = baseline.latency, candidate.latency
    return [
        judge_metric("error_rate", "error_rate", stats.two_proportion_difference(
            baseline.errors, baseline.requests, candidate.errors, candidate.requests, confidence),
            -math.inf, error_limit, config),
        judge_metric("latency", "latency", stats.bucketed_quantile_difference(b, c, 0.5, confidence, seed),
               -math.inf, shift_limit, config),
        judge_metric("latency_p99", "latency_p99", stats.bucketed_quantile_difference(b, c, 0.99, confidence, seed),
               -math.inf, p99_limit, config),
        judge_metric("latency_spread", "latency_spread", stats.bucketed_spread_change(b, c, confidence, seed),
               -math.inf, spread_limit, config),
    ]


@dataclass(frozen=True)
class LiveCanaryConfig:
    """A live canary: judge two versions on the traffic they served.

    Attributes:
        target: the serving endpoint (resolves labels to versions; any TF Serving).
        name: the model name.
        prometheus: Prometheus' URL (it scrapes the servers' /monitoring/prometheus/metrics).
        window_s: how far back from `at` the traffic is judged.
        candidate, baseline: version labels or numbers.
        at: unix time the window ends (None: now).
        promote, repo, rollback_on_fail: as for the offline canary (PASS promotes, FAIL removes the
            candidate label; `rollback_on_fail` alone only removes it).
        report_dir: where report.json goes ("" = none).
        judge: the judge's settings.
        seed: seeds the bootstraps.
    """

    target: str
    name: str
    prometheus: str
    window_s: float = 600.0
    candidate: str = "canary"
    baseline: str = "stable"
    at: float | None = None
    promote: bool = False
    repo: str = ""
    rollback_on_fail: bool = False
    report_dir: str = ""
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        from tfship.models_config import check_model_name

        Target.parse(self.target)
        check_model_name(self.name)
        PrometheusClient(self.prometheus)
        version_refs(self.baseline, self.candidate)
        if not 0 < self.window_s <= 30 * 86400:
            raise ConfigError(f"Invalid value for argument `--window`. Received: {self.window_s!r} s. Expected 0-30 days.")
        if (self.promote or self.rollback_on_fail) and not self.repo:
            flag = "--promote" if self.promote else "--rollback-on-fail"
            raise ConfigError(f"{flag} needs --repo: the model repository whose models.config the labels live in.")


@dataclass(frozen=True)
class LiveCanaryResult:
    """The live verdict, the traffic it rests on and what was done (see CanaryResult)."""

    verdict: Verdict
    baseline: VersionTraffic
    candidate: VersionTraffic
    metrics: tuple[MetricResult, ...]
    action: str
    report: dict[str, Any]

    @property
    def exit_code(self) -> int:
        from tfship.errors import EXIT_FAILED_CHECK, EXIT_OK

        return EXIT_OK if self.verdict.verdict == "PASS" else EXIT_FAILED_CHECK


def version_refs(baseline: str, candidate: str) -> tuple[VersionRef, VersionRef]:
    """The parsed --baseline and --candidate; ConfigError when either is invalid or both are the same."""
    baseline_ref, candidate_ref = VersionRef.parse(baseline, "--baseline"), VersionRef.parse(candidate, "--candidate")
    if baseline_ref == candidate_ref:
        raise ConfigError(f"--candidate and --baseline both name {candidate_ref}: a canary needs two versions to compare.")
    return baseline_ref, candidate_ref


def resolve_versions(target: str, name: str, baseline_text: str, candidate_text: str) -> tuple[Any, Any]:
    """(baseline, candidate) ResolvedModels, through the serving endpoint."""
    from tfship.steps.canary.client import make_client

    baseline, candidate = version_refs(baseline_text, candidate_text)
    client = make_client(Target.parse(target))
    try:
        resolved_baseline = client.resolve(name, baseline, 10.0, "--baseline")
        resolved_candidate = client.resolve(name, candidate, 10.0, "--candidate")
    finally:
        client.close()
    if resolved_baseline.version == resolved_candidate.version:
        raise EndpointError(
            f"--candidate ({candidate}) and --baseline ({baseline}) are both version "
            f"{resolved_baseline.version} of {name!r}: there is nothing to compare."
        )
    return resolved_baseline, resolved_candidate


def _side(traffic: VersionTraffic) -> dict[str, Any]:
    return {
        "version": traffic.version, "requests": traffic.requests, "errors_by_status": traffic.errors_by_status,
        "latency_ms": {f"p{q}": 1000 * stats.bucket_quantiles(traffic.latency, q / 100) for q in (10, 50, 90, 99)},
    }


def run_live_canary(config: LiveCanaryConfig) -> LiveCanaryResult:
    """Resolve both versions, read their traffic from Prometheus, judge, act, write report.json."""
    from tfship import storage
    from tfship.steps.canary.report import public
    from tfship.steps.canary.runner import act_on_verdict

    baseline_model, candidate_model = resolve_versions(config.target, config.name, config.baseline, config.candidate)
    at = time.time() if config.at is None else config.at
    client = PrometheusClient(config.prometheus)
    baseline = fetch_traffic(client, config.name, baseline_model.version, config.window_s, at)
    candidate = fetch_traffic(client, config.name, candidate_model.version, config.window_s, at)
    results = judge_traffic(baseline, candidate, config.judge, config.seed)
    verdict = decide(results, config.judge)
    action = act_on_verdict(config, verdict.verdict, candidate_model)
    report = {
        "mode": "live", "model": config.name, "prometheus": config.prometheus, "window_s": config.window_s, "at": at,
        "verdict": verdict.verdict, "score": verdict.score, "reasons": list(verdict.reasons), "action": action,
        "baseline": {"ref": str(baseline_model.ref), **_side(baseline)},
        "candidate": {"ref": str(candidate_model.ref), **_side(candidate)},
        "metrics": [dataclasses.asdict(m) for m in results],
    }
    if config.report_dir:
        storage.write_text(storage.join(config.report_dir, "report.json"),
                           json.dumps(public(report), indent=2, sort_keys=True) + "\n")
    return LiveCanaryResult(verdict, baseline, candidate, tuple(results), action, report)
