"""`run_canary`: resolve both versions, check the examples, send paired requests, judge, act.

Order of a run, each step failing with one clear line before anything is promoted:
1. Read the examples; resolve baseline and candidate through GetModelMetadata (a label the server
   does not know, or an endpoint that does not answer, is an `EndpointError`).
2. Fit the examples to the baseline's signature, or read the logged traffic (`--traffic`: each
   request keeps its API and signature, see `traffic`), and send the first request to the
   baseline (input that does not match the signature is a `DataError`, not 500 failed requests).
   A candidate whose signature lost an input or output the baseline has FAILs without traffic.
3. Send `requests` pairs (`collect`), compute the metrics, judge them (`judge.decide`).
4. With `promote`: PASS moves `stable` to the candidate version; FAIL removes the candidate's
   label (automatic rollback); NODATA and errors change nothing. Then write the reports.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from tfship.steps.canary import metrics as metrics_module
from tfship.steps.canary import traffic
from tfship.steps.canary.client import SERVER_FAILURE_CODES, ResolvedModel, make_client
from tfship.steps.canary.collect import collect
from tfship.steps.canary.config import CanaryConfig
from tfship.steps.canary.examples import Row, fit_examples, read_examples
from tfship.steps.canary.judge import FAIL, PASS, MetricResult, Verdict, decide
from tfship.steps.canary.metrics import Observation
from tfship.steps.canary.report import public, write_reports
from tfship.errors import EXIT_FAILED_CHECK, EXIT_OK, DataError, EndpointError
from tfship.tfserving import SERVING_DEFAULT

log = logging.getLogger("tfship.canary")


@dataclass(frozen=True)
class CanaryResult:
    """The outcome of a canary run.

    Attributes:
        verdict: PASS, FAIL or NODATA.
        score: weighted share of passing metrics (0-100).
        reasons: why, one line each.
        baseline_version, candidate_version: the versions the labels resolved to.
        metrics: every judged metric.
        action: what was done to the repository's labels ("none" without --promote).
        report: the JSON report's content.
        report_paths: format -> path of the written reports (empty without report_dir).
    """

    verdict: str
    score: float
    reasons: tuple[str, ...]
    baseline_version: int
    candidate_version: int
    metrics: tuple[MetricResult, ...]
    action: str
    report: dict[str, Any]
    report_paths: dict[str, str]

    @property
    def exit_code(self) -> int:
        """0 on PASS; 1 (a gate said no) on FAIL and NODATA."""
        return EXIT_OK if self.verdict == PASS else EXIT_FAILED_CHECK


def _incompatibility(baseline: Any, candidate: Any) -> str | None:
    """Why the candidate's signature cannot replace the baseline's, or None."""
    if candidate is None:
        return "the candidate has no such signature"
    problems = []
    for kind in ("inputs", "outputs"):
        base, cand = getattr(baseline, kind), getattr(candidate, kind)
        lost = sorted(set(base) - set(cand))
        if lost:
            problems.append(f"{kind} {lost} missing")
        changed = sorted(n for n in set(base) & set(cand) if base[n].dtype != cand[n].dtype)
        if changed:
            problems.append(f"{kind} {changed} changed dtype")
    if set(candidate.inputs) - set(baseline.inputs):
        problems.append(f"new inputs {sorted(set(candidate.inputs) - set(baseline.inputs))} required")
    return "; ".join(problems) or None


class LabelPolicy(Protocol):
    """What acting on a verdict needs from a canary's config (the offline and the live canary's)."""

    @property
    def repo(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def report_dir(self) -> str: ...
    @property
    def promote(self) -> bool: ...
    @property
    def rollback_on_fail(self) -> bool: ...


def act_on_verdict(config: LabelPolicy, verdict: str, candidate: ResolvedModel) -> str:
    """Move labels per the verdict (`promote`: both ways; `rollback_on_fail`: FAIL only); returns what was done."""
    if not (config.promote or config.rollback_on_fail):
        return "none (no --promote)"
    if verdict == PASS and not config.promote:
        return "none (PASS; --rollback-on-fail leaves the promotion to what follows)"
    from tfship import storage
    from tfship.steps.push.step import promote, remove_label

    # The history entry names the report this verdict rests on (written right after this move).
    report = storage.join(config.report_dir, "report.json") if config.report_dir else None
    if verdict == PASS:
        version = promote(config.repo, config.name, version=candidate.version, verdict=verdict, report=report)
        return f"promoted version {version} to stable"
    if verdict == FAIL:
        if candidate.ref.label is None:
            return f"none (candidate named by version {candidate.version}: no label to remove)"
        remove_label(config.repo, config.name, candidate.ref.label, verdict=verdict, report=report)
        return f"rolled back: removed label {candidate.ref.label!r} (version {candidate.version})"
    return f"none ({verdict}: labels unchanged)"


@dataclass(frozen=True)
class _Requests:
    """The paired requests of a run: per side, the prepared requests; how to send one; the outputs judged."""

    prepared: dict[str, list[Any]]
    send: Callable[[Any, float], Observation]
    output_dtypes: dict[str, str]
    problem: str | None  # the candidate's signature cannot answer them: FAIL without traffic
    source: str  # "examples <file>" or "traffic <glob>", for messages and the report


def _example_requests(config: CanaryConfig, rows: list[Row], client: Any, baseline: ResolvedModel,
                      candidate: ResolvedModel) -> _Requests:
    """The example rows, fitted to the baseline's `config.signature`, as Predict requests."""
    signature = baseline.signatures.get(config.signature)
    if signature is None:
        raise DataError(
            f"--signature {config.signature!r}: the baseline (version {baseline.version}) has no such "
            f"signature. Expected one of {sorted(baseline.signatures)}."
        )
    examples = fit_examples(rows, signature, config.examples)
    output_dtypes = {name: spec.dtype for name, spec in signature.outputs.items()}
    prepared = {
        side: [client.prepare(config.name, model.ref, config.signature, e, output_dtypes) for e in examples]
        for side, model in (("baseline", baseline), ("candidate", candidate))
    }
    problem = _incompatibility(signature, candidate.signatures.get(config.signature))
    if problem is not None:
        problem = f"signature {config.signature!r}: {problem}"
    return _Requests(prepared, client.send, output_dtypes, problem, f"examples {config.examples}")


def _traffic_requests(config: CanaryConfig, sender: traffic.GrpcTraffic | traffic.RestTraffic, baseline: ResolvedModel,
                      candidate: ResolvedModel) -> _Requests:
    """The logged requests of `config.traffic`, each kept on its API and signature."""
    logged = traffic.read_traffic(config.traffic, baseline.signatures)
    output_dtypes = traffic.output_dtypes(logged, baseline.signatures)
    problems = [
        f"signature {name!r}: {problem}"
        for name in sorted({item.signature or SERVING_DEFAULT for item in logged})
        if (problem := _incompatibility(baseline.signatures[name], candidate.signatures.get(name)))
    ]
    # aimed at each side's own signatures (a REST answer is read by them), so prepared only when compatible
    prepared = {} if problems else {
        side: [sender.prepare(item, config.name, model) for item in logged]
        for side, model in (("baseline", baseline), ("candidate", candidate))
    }
    return _Requests(prepared, sender.send, output_dtypes, "; ".join(problems) or None, f"traffic {config.traffic}")


def run_canary(config: CanaryConfig) -> CanaryResult:
    """Run one canary (see the module docstring); raises TfshipError on bad input or a dead endpoint."""
    started = time.monotonic()
    rows = read_examples(config.examples) if config.examples else []  # a bad file fails before any request
    client = make_client(config.target_ref)
    sender = traffic.sender_for(config.target_ref, client) if config.traffic else None
    try:
        baseline = client.resolve(config.name, config.baseline_ref, config.deadline_s, "--baseline")
        candidate = client.resolve(config.name, config.candidate_ref, config.deadline_s, "--candidate")
        if baseline.version == candidate.version:
            raise EndpointError(
                f"--candidate {config.candidate} and --baseline {config.baseline} are both version "
                f"{baseline.version} of {config.name!r}: there is nothing to compare."
            )
        if sender is not None:
            requests = _traffic_requests(config, sender, baseline, candidate)
        else:
            requests = _example_requests(config, rows, client, baseline, candidate)
        prepared, output_dtypes, problem = requests.prepared, requests.output_dtypes, requests.problem
        if problem is None:
            first = requests.send(prepared["baseline"][0], config.deadline_s)
            if not first.ok:
                if first.code in SERVER_FAILURE_CODES:  # the server failed: the example is not to blame
                    raise EndpointError(
                        f"{config.target}: the server failed the first request to the baseline (version "
                        f"{baseline.version}): {first.code}: {first.message}"
                    )
                raise DataError(
                    f"The baseline (version {baseline.version}) rejects the first request of {requests.source}: "
                    f"{first.code}: {first.message}"
                )

            def sender_for(side: str):
                return lambda i: requests.send(prepared[side][i % len(prepared[side])], config.deadline_s)

            if config.warmup_requests:  # not measured: see CanaryConfig.warmup_requests
                collect(sender_for("baseline"), sender_for("candidate"), config.warmup_requests, config.concurrency,
                        abort_after=config.abort_after, seed=config.seed)
            collection = collect(
                sender_for("baseline"), sender_for("candidate"), config.requests, config.concurrency,
                abort_after=config.abort_after, seed=config.seed,
            )
            results, summary = metrics_module.compute(
                collection.baseline, collection.candidate, output_dtypes, config.judge, seed=config.seed
            )
            verdict = decide(results, config.judge, collection.aborted)
            aborted, seconds = collection.aborted, collection.seconds
        else:
            results, summary = [], metrics_module.compute([], [], {}, config.judge)[1]
            verdict = Verdict(FAIL, 0.0, (f"the candidate is incompatible: {problem}",))
            aborted, seconds = None, 0.0
    finally:
        client.close()
        if sender is not None:
            sender.close()

    try:
        action = act_on_verdict(config, verdict.verdict, candidate)
        failure = None
    except Exception as error:  # record it in the report, then let it fail the step
        action, failure = f"failed: {error}", error
    report = _report(config, verdict, results, summary, baseline, candidate, aborted, seconds, action, started,
                     requests.source)
    paths = write_reports(report, config.report_dir) if config.report_dir else {}
    if failure is not None:
        raise failure
    log.info("canary %s (score %.1f): %s", verdict.verdict, verdict.score, "; ".join(verdict.reasons))
    return CanaryResult(
        verdict=verdict.verdict, score=verdict.score, reasons=verdict.reasons,
        baseline_version=baseline.version, candidate_version=candidate.version,
        metrics=tuple(results), action=action, report=public(report), report_paths=paths,
    )


def _report(
    config: CanaryConfig, verdict: Verdict, results: list[MetricResult], summary: dict[str, Any],
    baseline: ResolvedModel, candidate: ResolvedModel, aborted: str | None, seconds: float,
    action: str, started: float, source: str,
) -> dict[str, Any]:
    import dataclasses

    outputs = summary.get("outputs", {})
    return {
        "verdict": verdict.verdict,
        "score": verdict.score,
        "reasons": list(verdict.reasons),
        "model": config.name,
        "target": config.target,
        "signature": config.signature,
        "baseline": {"ref": str(baseline.ref), "version": baseline.version, **summary.get("baseline", {})},
        "candidate": {"ref": str(candidate.ref), "version": candidate.version, **summary.get("candidate", {})},
        "requests": {
            "asked": config.requests,
            "concurrency": config.concurrency,
            "deadline_s": config.deadline_s,
            "pairs_sent": summary.get("pairs_sent", 0),
            "pairs_answered": summary.get("pairs_answered", 0),
            "candidate_only_errors": summary.get("candidate_only_errors", 0),
            "baseline_only_errors": summary.get("baseline_only_errors", 0),
            "seconds": seconds,
        },
        "aborted": aborted,
        "metrics": [dataclasses.asdict(r) for r in results],
        "outputs": {name: {k: v for k, v in info.items() if k != "differences"} for name, info in outputs.items()},
        "judge": {
            "confidence": config.judge.confidence,
            "min_samples": config.judge.min_samples,
            "pass_score": config.judge.pass_score,
            "metrics": {name: dataclasses.asdict(config.judge.metric(name)) for name in sorted(config.judge.metrics)},
        },
        "action": action,
        "examples": config.examples,
        "input": source,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": time.monotonic() - started,
        "_latency": summary.get("latency", {}),
        "_outputs": outputs,
    }


def canary(target: str, name: str, examples: str, **options: Any) -> CanaryResult:
    """Compare a candidate with the baseline of model `name` at `target` (see `CanaryConfig`).

    Example::

        result = tfship.canary("grpc://127.0.0.1:8500", "penguins", "examples.jsonl",
                               candidate="canary", baseline="stable", report_dir="/tmp/canary")
        result.verdict  # "PASS", "FAIL" or "NODATA"
    """
    return run_canary(CanaryConfig(target=target, name=name, examples=examples, **options))


__all__ = ["CanaryResult", "canary", "run_canary"]
