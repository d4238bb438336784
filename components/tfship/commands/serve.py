"""`tfship serve`: serve a model repository over TF Serving's gRPC and REST API until stopped."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from tfship.steps.serve.config import (
    DEFAULT_GRPC_PORT,
    DEFAULT_REST_MAX_BODY_BYTES,
    DEFAULT_REST_PORT,
    DEFAULT_REST_TIMEOUT_S,
)
from tfship.steps.serve.request_log import DEFAULT_RATE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", required=True,
                        help="model repository (local path or gs://) whose models.config names what to serve")
    parser.add_argument("--grpc-port", type=int, default=DEFAULT_GRPC_PORT,
                        help=f"gRPC port; 0 picks a free one (default {DEFAULT_GRPC_PORT})")
    parser.add_argument("--rest-port", type=int, default=DEFAULT_REST_PORT,
                        help=f"REST port; 0 picks a free one, -1 turns REST off (default {DEFAULT_REST_PORT})")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--poll-seconds", type=float, default=1.0,
                        help="re-read models.config every N seconds; 0 reads it once (default 1)")
    parser.add_argument("--no-warmup", action="store_true",
                        help="do not replay assets.extra/tf_serving_warmup_requests before serving a version")
    parser.add_argument("--workers", type=int, default=32,
                        help="threads answering gRPC requests, and as many for REST (default 32)")
    parser.add_argument("--rest-max-body-bytes", type=int, default=DEFAULT_REST_MAX_BODY_BYTES, metavar="BYTES",
                        help="largest REST request body; a larger one answers 413 unread "
                             f"(default {DEFAULT_REST_MAX_BODY_BYTES // 2**20} MiB)")
    parser.add_argument("--rest-timeout", type=int, default=DEFAULT_REST_TIMEOUT_S, metavar="SECONDS",
                        help="close a REST connection idle or stalled mid-request this long "
                             f"(default {DEFAULT_REST_TIMEOUT_S})")
    parser.add_argument("--request-log-dir", metavar="DIR",
                        help="log sampled requests and responses of every model without its own logging_config "
                             "to DIR/<model>-*.tfrecord (PredictionLog TFRecords, TF Serving's request log records)")
    parser.add_argument("--request-log-rate", type=float, default=DEFAULT_RATE, metavar="SHARE",
                        help=f"share of successful requests logged under --request-log-dir (default {DEFAULT_RATE})")
    parser.add_argument("--inject-fault", action="append", default=[], metavar="MODEL/VERSION:latency=S,error_rate=P",
                        help="TESTS ONLY: slow down or fail some inference calls of one version (repeatable)")


def main(args: argparse.Namespace) -> int:
    from tfship.steps.serve.config import Fault, ServeConfig
    from tfship.steps.serve.server import start_server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = ServeConfig(
        repo=args.repo,
        host=args.host,
        grpc_port=args.grpc_port,
        rest_port=args.rest_port,
        poll_seconds=args.poll_seconds,
        warmup=not args.no_warmup,
        workers=args.workers,
        rest_max_body_bytes=args.rest_max_body_bytes,
        rest_timeout_s=args.rest_timeout,
        request_log_dir=args.request_log_dir,
        request_log_rate=args.request_log_rate,
        faults=tuple(Fault.parse(text) for text in args.inject_fault),
    )
    handle = start_server(config)
    # The handlers go in before the "serving" line: a supervisor that stops the server as soon as it
    # reads that line must get a clean shutdown, not a kill.
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(f"tfship serve: serving {config.repo} on gRPC {handle.grpc_address}, REST {handle.rest_url or 'off'}",
          flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        handle.stop(grace=5.0)
    return 0
