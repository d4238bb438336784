"""`tfship rollout`: move traffic to the candidate in steps, judge each live, roll back on FAIL."""

from __future__ import annotations

import argparse

from tfship.steps.rollout import DEFAULT_INTERVAL, DEFAULT_STEPS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", required=True,
                        help="serving endpoint that resolves the labels: grpc://host:port or http://host:port")
    parser.add_argument("--name", required=True, help="model name (also the name of the rendered objects)")
    parser.add_argument("--prometheus", required=True, help="Prometheus' URL, e.g. http://127.0.0.1:9090")
    steps = ",".join(map(str, DEFAULT_STEPS))
    parser.add_argument("--steps", default=steps, help=f"candidate traffic %% per step (default {steps})")
    parser.add_argument("--interval", default=DEFAULT_INTERVAL,
                        help=f"longest duration of a step, e.g. 10m (default {DEFAULT_INTERVAL})")
    parser.add_argument("--check-every", default="",
                        help="how often the sequential test looks, e.g. 30s (default: interval / 10)")
    parser.add_argument("--no-sequential", action="store_true",
                        help="judge each step only at its end (no early stop)")
    parser.add_argument("--candidate", default="canary", help="candidate version label or number (default canary)")
    parser.add_argument("--baseline", default="stable", help="baseline version label or number (default stable)")
    parser.add_argument("--out-dir", required=True,
                        help="where the VirtualService, HTTPRoute, InferenceService and rollout.json are written")
    parser.add_argument("--namespace", default="default", help="namespace of the rendered objects (default default)")
    parser.add_argument("--host", default="", help="host clients call (VirtualService hosts; default: the name)")
    parser.add_argument("--baseline-service", default="", help="Service in front of the baseline (default NAME-stable)")
    parser.add_argument("--candidate-service", default="", help="Service in front of the candidate (default NAME-canary)")
    parser.add_argument("--service-port", type=int, default=8501, help="the Services' port (default 8501)")
    parser.add_argument("--gateway", default="tfship-gateway", help="Gateway the HTTPRoute attaches to")
    parser.add_argument("--storage-uri", default="", help="the candidate's model URI, for the InferenceService")
    parser.add_argument("--judge-config", default="", help="YAML file overriding the judge's defaults")
    parser.add_argument("--apply", default="",
                        help="also server-side apply these kinds to the cluster at each step: some of "
                             "virtualservice,httproute,inferenceservice (default: files only)")
    parser.add_argument("--kubeconfig", default="", help="with --apply: the kubeconfig (default: ~/.kube/config)")
    parser.add_argument("--context", default="", help="with --apply: the kubeconfig context (default: current)")
    parser.add_argument("--repo", default="",
                        help="model repository whose label history records each step and the rollback (tfship history)")
    parser.add_argument("--promote", action="store_true",
                        help="PROMOTED: move `stable` to the candidate; ROLLED_BACK: remove the candidate's label "
                             "(needs --repo)")


def main(args: argparse.Namespace) -> int:
    import logging

    from tfship.steps.canary.judge import load_judge_config
    from tfship.text import parse_duration
    from tfship.steps.rollout.apply import parse_kinds
    from tfship.steps.rollout.manifests import SplitTarget
    from tfship.steps.rollout.runner import RolloutConfig, parse_steps, run_rollout, summary

    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    config = RolloutConfig(
        target=args.target, name=args.name, prometheus=args.prometheus, out_dir=args.out_dir,
        split=SplitTarget(
            name=args.name, namespace=args.namespace, host=args.host, baseline_service=args.baseline_service,
            candidate_service=args.candidate_service, port=args.service_port, gateway=args.gateway,
            storage_uri=args.storage_uri,
        ),
        steps=parse_steps(args.steps), interval_s=parse_duration(args.interval, "--interval"),
        check_every_s=parse_duration(args.check_every, "--check-every") if args.check_every else 0.0,
        candidate=args.candidate, baseline=args.baseline,
        judge=load_judge_config(args.judge_config or None), sequential=not args.no_sequential,
        apply=parse_kinds(args.apply), kubeconfig=args.kubeconfig, context=args.context, repo=args.repo,
        promote=args.promote,
    )
    result = run_rollout(config)
    print("\n".join(summary(result)))
    return result.exit_code
