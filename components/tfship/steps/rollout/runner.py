"""`run_rollout`: traffic to the candidate in steps (5 -> 25 -> 50 -> 100 %), each judged live.

At each step the traffic split is written (`manifests.write`), then the step's traffic is watched:
every `check_every_s` the sequential test (`tfship.steps.canary.sequential`: error rate and mean
latency, always-valid at every look) may end the step early, FAIL on clear harm or PASS on clear
safety (with at least `min_samples` requests per version). A step that reaches `interval_s`
undecided is judged by the live judge on the whole step (`tfship.steps.canary.live`: the same rules
as `tfship canary --prometheus`). PASS moves to the next step; FAIL or NODATA rolls back: the
split is written again with 0 % to the candidate, and the reason is recorded.

`rollout.json` in the output directory records every step (share, times, decision, who decided,
reasons, requests per version); it is replaced atomically after each step, so a reader always
sees a complete record. The manifests are applied to a cluster by the deployment tool
(`kubectl apply --server-side -f DIR`, Argo CD, Flux), or by tfship itself with `apply` (server-side
apply through the Kubernetes API, `rollout.apply`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from tfship.steps.canary import sequential
from tfship.steps.canary.config import Target, VersionRef
from tfship.steps.canary.judge import FAIL, NODATA, PASS, JudgeConfig, decide
from tfship.steps.canary.live import (
    PrometheusClient,
    VersionTraffic,
    fetch_traffic,
    judge_traffic,
    resolve_versions,
    version_refs,
)
from tfship.steps.canary.stats import bucket_quantiles
from tfship.errors import EXIT_FAILED_CHECK, EXIT_OK, ConfigError
from tfship.steps.rollout import DEFAULT_STEPS, manifests, parse_steps
from tfship.steps.rollout.apply import ClusterApplier

log = logging.getLogger("tfship.steps.rollout")
PROMOTED, ROLLED_BACK = "PROMOTED", "ROLLED_BACK"


@dataclass(frozen=True)
class RolloutConfig:
    """A progressive rollout.

    Attributes:
        target: the serving endpoint (resolves the labels to versions).
        name: the model name.
        prometheus: Prometheus' URL.
        out_dir: where the manifests and rollout.json are written.
        steps: candidate traffic percentages, increasing, ending at 100.
        interval_s: the longest a step lasts.
        check_every_s: how often the sequential test looks (0: interval / 10, at least 1 s).
        candidate, baseline: version labels or numbers.
        split: where the traffic is split (names of the objects and Services).
        judge: the judge's settings (tolerances, confidence, min_samples).
        sequential: let the sequential test end a step early.
        apply: the kinds also server-side applied to the cluster at each step (`rollout.apply`).
        kubeconfig, context: the cluster to apply to ("" = the default kubeconfig and context).
        repo: the model repository whose label history records every step and the rollback
            ("" = not recorded); see docs/push.md, "Label history".
        promote: move the labels with the outcome, as `tfship canary --promote` does: PROMOTED moves
            `stable` to the candidate, ROLLED_BACK removes the candidate's label (needs `repo`). The
            chain's rollout step runs with it, so a rolled-back version stops being `canary`.
    """

    target: str
    name: str
    prometheus: str
    out_dir: str
    split: manifests.SplitTarget
    steps: tuple[int, ...] = DEFAULT_STEPS
    interval_s: float = 600.0
    check_every_s: float = 0.0
    candidate: str = "canary"
    baseline: str = "stable"
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    sequential: bool = True
    apply: tuple[str, ...] = ()
    kubeconfig: str = ""
    context: str = ""
    repo: str = ""
    promote: bool = False

    def __post_init__(self) -> None:
        Target.parse(self.target)
        PrometheusClient(self.prometheus)
        parse_steps(",".join(str(s) for s in self.steps))
        version_refs(self.baseline, self.candidate)
        if self.repo:
            from tfship import storage

            storage.check_uri(self.repo, "--repo")
        if self.promote and not self.repo:
            raise ConfigError("--promote needs --repo: the model repository whose models.config the labels live in.")
        if not self.out_dir:
            raise ConfigError("Invalid value for argument `--out-dir`: it is empty. Expected a directory for the manifests.")
        if not 0 < self.interval_s <= 7 * 86400:
            raise ConfigError(f"Invalid value for argument `--interval`. Received: {self.interval_s!r} s. Expected 0-7 days.")
        if not 0 <= self.check_every_s <= self.interval_s:
            raise ConfigError(
                f"Invalid value for argument `--check-every`. Received: {self.check_every_s!r} s. "
                f"Expected 0 (interval / 10) up to the interval ({self.interval_s:g} s)."
            )

    @property
    def look_every_s(self) -> float:
        return self.check_every_s or max(1.0, self.interval_s / 10)


@dataclass(frozen=True)
class StepRecord:
    """One step: its share, when it ran, what decided it and why."""

    percent: int
    started: float
    ended: float
    verdict: str
    decided_by: str  # "sequential" (early) or "window" (the live judge at the end of the step)
    reasons: tuple[str, ...]
    baseline_requests: int
    candidate_requests: int


@dataclass(frozen=True)
class RolloutResult:
    """PROMOTED (every step passed, 100 % on the candidate) or ROLLED_BACK (0 %, with the reason)."""

    outcome: str
    baseline_version: int
    candidate_version: int
    steps: tuple[StepRecord, ...]
    reason: str
    manifests: dict[str, str]

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.outcome == PROMOTED else EXIT_FAILED_CHECK


def _sequential_look(config: RolloutConfig, baseline: VersionTraffic, candidate: VersionTraffic) -> tuple[str, tuple[str, ...]]:
    alpha = 1 - config.judge.confidence
    median = bucket_quantiles(baseline.latency, 0.5)
    latency_limit = config.judge.metric("latency").limit(median if math.isfinite(median) else 0.0)
    looks = [
        sequential.error_rate_look(baseline.errors, baseline.requests, candidate.errors, candidate.requests,
                                   config.judge.metric("error_rate").limit(0.0), alpha),
        sequential.mean_latency_look(baseline.latency, candidate.latency, latency_limit, alpha),
    ]
    decision = sequential.combine(looks)
    if decision == PASS and min(baseline.requests, candidate.requests) < config.judge.min_samples:
        decision = sequential.CONTINUE  # clear, but on too few requests to act on
    return decision, tuple(look.reason for look in looks)


def judge_step(
    config: RolloutConfig, client: PrometheusClient, versions: tuple[int, int], started: float,
    clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
) -> tuple[str, str, tuple[str, ...], VersionTraffic, VersionTraffic]:
    """(verdict, decided_by, reasons, baseline traffic, candidate traffic) of the step begun at `started`."""
    deadline = started + config.interval_s

    def traffic(at: float) -> tuple[VersionTraffic, VersionTraffic]:
        return (fetch_traffic(client, config.name, versions[0], at - started, at),
                fetch_traffic(client, config.name, versions[1], at - started, at))

    while (now := clock()) < deadline:
        sleep(min(config.look_every_s, deadline - now))
        if config.sequential and clock() < deadline:
            at = clock()
            baseline, candidate = traffic(at)
            decision, reasons = _sequential_look(config, baseline, candidate)
            log.info("step %s: sequential look at %.0f s: %s", config.name, at - started, decision)
            if decision in (PASS, FAIL):
                return decision, "sequential", reasons, baseline, candidate
    baseline, candidate = traffic(clock())
    verdict = decide(judge_traffic(baseline, candidate, config.judge), config.judge)
    return verdict.verdict, "window", verdict.reasons, baseline, candidate


def _record(config: RolloutConfig, status: str, versions: tuple[int, int], steps: list[StepRecord], reason: str) -> None:
    from tfship import storage

    document = {"model": config.name, "status": status, "baseline_version": versions[0],
                "candidate_version": versions[1], "steps_planned": list(config.steps), "reason": reason,
                "steps": [asdict(step) for step in steps]}
    storage.write_text(storage.join(config.out_dir, "rollout.json"), json.dumps(document, indent=2) + "\n")


def _log_history(config: RolloutConfig, action: str, versions: tuple[int, int], percent: int,
                 verdict: str | None, reason: str) -> None:
    """Record a traffic move in the model's label history (with `repo`), before it is published."""
    if not config.repo:
        return
    from tfship import history, storage

    history.record(config.repo, config.name, action, verdict=verdict, reason=reason,
                   report=storage.join(config.out_dir, "rollout.json"),
                   traffic={"baseline_version": versions[0], "candidate_version": versions[1], "percent": percent})


def _move_labels(config: RolloutConfig, outcome: str, candidate: VersionRef, version: int, verdict: str) -> None:
    """With `promote`: PROMOTED -> `stable` on the candidate; ROLLED_BACK -> the candidate's label removed.

    Done after the split is published and rollout.json written, so the history entry names a
    complete record. A candidate named by its number has no label to remove.
    """
    if not config.promote:
        return
    from tfship import storage
    from tfship.steps.push.step import promote, remove_label

    report = storage.join(config.out_dir, "rollout.json")
    if outcome == PROMOTED:
        promote(config.repo, config.name, version=version, verdict=verdict, report=report)
    elif candidate.label is not None:
        remove_label(config.repo, config.name, candidate.label, verdict=verdict, report=report)


def _publish(config: RolloutConfig, percent: int, applier: ClusterApplier | None) -> dict[str, str]:
    """Write (and with an applier, apply) the split sending `percent` to the candidate."""
    rendered = manifests.render(config.split, percent)
    paths = manifests.write(rendered, config.out_dir)
    if applier is not None:
        applier.apply(rendered)
    return paths


def run_rollout(
    config: RolloutConfig, clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep
) -> RolloutResult:
    """Run every step (see the module docstring); raises TfshipError on bad input or a dead endpoint."""
    baseline, candidate = resolve_versions(config.target, config.name, config.baseline, config.candidate)
    versions = (baseline.version, candidate.version)
    client = PrometheusClient(config.prometheus)
    applier = ClusterApplier(config.apply, config.kubeconfig or None, config.context or None) if config.apply else None
    steps: list[StepRecord] = []
    for percent in config.steps:
        _log_history(config, "rollout-step", versions, percent, steps[-1].verdict if steps else None,
                     f"step {percent}%" + (f" after step {steps[-1].percent}% passed" if steps else ""))
        paths = _publish(config, percent, applier)
        started = clock()
        _record(config, f"step {percent}%", versions, steps, "")
        verdict, decided_by, reasons, base, cand = judge_step(config, client, versions, started, clock, sleep)
        steps.append(StepRecord(percent, started, clock(), verdict, decided_by, reasons, base.requests, cand.requests))
        log.info("rollout %s: step %d%%: %s (%s)", config.name, percent, verdict, decided_by)
        if verdict in (FAIL, NODATA):
            reason = f"step {percent}% {verdict} ({decided_by}): " + "; ".join(reasons)
            _log_history(config, "rollout-rollback", versions, 0, verdict, reason)
            paths = _publish(config, 0, applier)
            _record(config, ROLLED_BACK, versions, steps, reason)
            _move_labels(config, ROLLED_BACK, candidate.ref, versions[1], verdict)
            return RolloutResult(ROLLED_BACK, *versions, tuple(steps), reason, paths)
    reason = f"every step passed; 100% on version {versions[1]}"
    _record(config, PROMOTED, versions, steps, reason)
    _move_labels(config, PROMOTED, candidate.ref, versions[1], PASS)
    return RolloutResult(PROMOTED, *versions, tuple(steps), reason, paths)


def summary(result: RolloutResult) -> list[str]:
    """Lines for the CLI: the outcome, then one line per step."""
    lines = [f"rollout {result.outcome}: version {result.candidate_version} vs {result.baseline_version}: {result.reason}"]
    for step in result.steps:
        lines.append(f"  {step.percent:>3}% {step.verdict:<6} by {step.decided_by} after {step.ended - step.started:.1f} s "
                     f"({step.candidate_requests} candidate / {step.baseline_requests} baseline requests)")
    return lines

