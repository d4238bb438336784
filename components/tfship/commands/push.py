"""`tfship push`: publish a SavedModel version into a TF Serving model repository.

Thin: flags -> `PushConfig` -> `tfship.steps.push.step.run_push`. No TensorFlow is imported (the model is
checked from its files), so a push container needs only the `gcs` extra and the serving protos;
only `--warmup-traffic` (read the request logs, replay them on the model) needs TensorFlow.
"""

from __future__ import annotations

import argparse

from tfship.commands.repository_flags import add_storage_arguments, configure


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="the SavedModel version directory (local or gs://)")
    parser.add_argument("--repo", required=True, help="the model repository root: a local path or gs://bucket/prefix")
    parser.add_argument("--name", required=True, help="the model name (served as /v1/models/<name>)")
    parser.add_argument("--label", default="canary",
                        help="label to move to the pushed version once loaded (default canary; '' for none)")
    parser.add_argument("--version", type=int, default=None,
                        help="version number (default: the model directory's number, else the next free one)")
    parser.add_argument("--serving-target", default=None,
                        help="TF Serving to wait on before moving the label: host:port (gRPC) or http://host:port")
    parser.add_argument("--wait-timeout", type=float, default=300.0,
                        help="seconds to wait for the serving target (default 300)")
    parser.add_argument("--workers", type=int, default=8, help="files transferred at once (default 8)")
    parser.add_argument("--force", action="store_true",
                        help="write models.config even when it is empty over a repository that holds pushed versions")
    parser.add_argument("--warmup-traffic", default="", metavar="GLOB",
                        help="rebuild the pushed version's assets.extra/tf_serving_warmup_requests from up to 1000 "
                             "sampled requests of tfship serve's request logs (the source directory is not changed)")
    add_storage_arguments(parser)
    parser.add_argument("--verbose", "-v", action="store_true", help="log every transfer step")


def main(args: argparse.Namespace) -> int:
    from tfship.steps.push.step import PushConfig, run_push

    configure(args, args.verbose)
    config = PushConfig(
        model=args.model,
        repo=args.repo,
        name=args.name,
        label=args.label or None,
        version=args.version,
        serving_target=args.serving_target,
        wait_timeout_s=args.wait_timeout,
        workers=args.workers,
        force=args.force,
        warmup_traffic=args.warmup_traffic,
    )
    result = run_push(config)
    state = "already there (no-op)" if not (result.uploaded or result.config_changed) else "pushed"
    print(
        f"{result.name} version {result.version} {state}: {result.version_uri} "
        f"({result.files} files, {result.bytes} bytes, {result.seconds:.2f} s); "
        f"label {result.label or '-'}; {result.config_uri}"
    )
    return 0
