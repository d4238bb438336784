"""What the commands that write a model repository share (push, promote, rollback, history): the
gs:// retry bound flag, and phase lines on stderr from the modules that write the repository."""

from __future__ import annotations

import argparse
import logging
import os
import sys


def add_storage_arguments(parser: argparse.ArgumentParser) -> None:
    """`--gcs-timeout`, shared by the commands that write a repository (push, promote, rollback)."""
    parser.add_argument("--gcs-timeout", type=float, default=None,
                        help="seconds each gs:// operation keeps retrying transient errors before it gives up "
                             "(default: $TFSHIP_GCS_TIMEOUT, else 30)")


def configure(args: argparse.Namespace, verbose: bool = False) -> None:
    """Apply the shared flags: phase lines on stderr, and the gs:// retry bound for this process."""
    from tfship.storage import GCS_TIMEOUT_ENV, gcs_timeout_s

    configure_logging(verbose)
    if args.gcs_timeout is not None:
        os.environ[GCS_TIMEOUT_ENV] = str(args.gcs_timeout)  # read by tfship.storage at every gs:// call
    gcs_timeout_s()  # a bad value is one line now, not after the first gs:// request


def configure_logging(verbose: bool) -> None:
    """Phase lines on stderr for the push modules (URIs and versions only, never credentials)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("tfship: %(message)s"))
    for name in ("tfship.steps.push.step", "tfship.steps.push.version_wait", "tfship.storage"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.DEBUG if verbose else logging.INFO)
        logger.propagate = False
