"""`tfship promote`: move `stable` to the canary version (or --version), in one models.config update."""

from __future__ import annotations

import argparse

from tfship.commands.repository_flags import add_storage_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", required=True, help="the model repository root: a local path or gs://bucket/prefix")
    parser.add_argument("--name", required=True, help="the model name")
    add_storage_arguments(parser)
    parser.add_argument("--version", type=int, default=None, help="version to promote (default: the canary)")


def main(args: argparse.Namespace) -> int:
    from tfship.commands.repository_flags import configure
    from tfship.steps.push.step import promote

    configure(args)
    version = promote(args.repo, args.name, args.version)
    print(f"{args.name}: stable -> version {version}")
    return 0
