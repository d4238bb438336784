"""`tfship rollback`: move `stable` back to the previous stable version, in one models.config update."""

from __future__ import annotations

import argparse

from tfship.commands.push import add_storage_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", required=True, help="the model repository root: a local path or gs://bucket/prefix")
    parser.add_argument("--name", required=True, help="the model name")
    add_storage_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from tfship.commands.push import configure
    from tfship.pushing import rollback

    configure(args)
    version = rollback(args.repo, args.name)
    print(f"{args.name}: stable rolled back to version {version}")
    return 0
