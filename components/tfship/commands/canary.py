"""`tfship canary`: compare a candidate with the baseline through TF Serving's API; exit 0 on PASS."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tfship.tfserving import SERVING_DEFAULT

if TYPE_CHECKING:
    from tfship.steps.canary.judge import MetricResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", required=True,
                        help="serving endpoint: grpc://host:port or http://host:port (any TF Serving)")
    parser.add_argument("--name", required=True, help="model name")
    parser.add_argument("--candidate", default="canary", help="candidate version label or number (default canary)")
    parser.add_argument("--baseline", default="stable", help="baseline version label or number (default stable)")
    parser.add_argument("--examples", default="",
                        help='rows to send: JSONL (one object per line, e.g. {"x": [1.5]}) or CSV with a header '
                             "(the offline canary needs this or --traffic)")
    parser.add_argument("--traffic", default="", metavar="GLOB",
                        help="replay logged requests instead of --examples: PredictionLog TFRecords "
                             "(tfship serve --request-log-dir) or KServe logger JSON lines (*.jsonl), over gRPC or REST")
    parser.add_argument("--requests", type=int, default=500, help="paired requests to send (default 500)")
    parser.add_argument("--concurrency", type=int, default=8, help="pairs in flight at once (default 8)")
    parser.add_argument("--deadline", type=float, default=10.0, help="deadline of every request, seconds (default 10)")
    parser.add_argument("--signature", default=SERVING_DEFAULT, help=f"signature to call (default {SERVING_DEFAULT})")
    parser.add_argument("--promote", action="store_true",
                        help="PASS: move `stable` to the candidate; FAIL: remove the candidate's label (needs --repo)")
    parser.add_argument("--rollback-on-fail", action="store_true",
                        help="FAIL: remove the candidate's label; PASS: change nothing (a rollout promotes later; "
                             "needs --repo)")
    parser.add_argument("--repo", default="", help="model repository holding models.config (for --promote)")
    parser.add_argument("--report-dir", default="", help="write report.json, report.md and report.html here")
    parser.add_argument("--judge-config", default="", help="YAML file overriding the judge's defaults")
    parser.add_argument("--seed", type=int, default=0, help="seed of the request order and bootstraps (default 0)")
    parser.add_argument("--prometheus", default="",
                        help="judge live traffic instead: Prometheus' URL (it scrapes the servers' metrics); "
                             "--examples, --requests and --concurrency are then not used")
    parser.add_argument("--window", default="10m", help="with --prometheus: the traffic judged, e.g. 10m (default 10m)")


def main(args: argparse.Namespace) -> int:
    import logging

    from tfship.steps.canary.config import CanaryConfig
    from tfship.steps.canary.judge import load_judge_config
    from tfship.steps.canary.runner import run_canary

    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    if args.prometheus:
        return _live(args)
    config = CanaryConfig(
        target=args.target, name=args.name, examples=args.examples, traffic=args.traffic, candidate=args.candidate,
        baseline=args.baseline, requests=args.requests, concurrency=args.concurrency,
        deadline_s=args.deadline, signature=args.signature, promote=args.promote, repo=args.repo,
        rollback_on_fail=args.rollback_on_fail,
        report_dir=args.report_dir, judge=load_judge_config(args.judge_config or None), seed=args.seed,
    )
    result = run_canary(config)
    print(f"canary {result.verdict} (score {result.score:.1f}): {config.name} "
          f"{config.candidate_ref} = version {result.candidate_version} vs "
          f"{config.baseline_ref} = version {result.baseline_version}")
    _print_judgement(result.reasons, result.metrics, result.action)
    if result.report_paths:
        print(f"  report: {result.report_paths['markdown']}")
    return result.exit_code


def _live(args: argparse.Namespace) -> int:
    """`--prometheus`: the live judge over the last `--window` of traffic."""
    from tfship.steps.canary.judge import load_judge_config
    from tfship.steps.canary.live import LiveCanaryConfig, run_live_canary
    from tfship.text import parse_duration

    config = LiveCanaryConfig(
        target=args.target, name=args.name, prometheus=args.prometheus,
        window_s=parse_duration(args.window, "--window"), candidate=args.candidate, baseline=args.baseline,
        promote=args.promote, repo=args.repo, rollback_on_fail=args.rollback_on_fail, report_dir=args.report_dir,
        judge=load_judge_config(args.judge_config or None), seed=args.seed,
    )
    result = run_live_canary(config)
    verdict = result.verdict
    print(f"canary {verdict.verdict} (score {verdict.score:.1f}, live, last {args.window}): {config.name} "
          f"{result.report['candidate']['ref']} = version {result.candidate.version} ({result.candidate.requests} "
          f"requests) vs {result.report['baseline']['ref']} = version {result.baseline.version} "
          f"({result.baseline.requests} requests)")
    _print_judgement(verdict.reasons, result.metrics, result.action)
    return result.exit_code


def _print_judgement(reasons: Sequence[str], metrics: Sequence[MetricResult], action: str) -> None:
    for reason in reasons:
        print(f"  {reason}")
    for metric in metrics:
        print(f"  {metric.classification:<6} {metric.name}: {metric.reason}")
    print(f"  action: {action}")
