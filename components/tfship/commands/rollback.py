"""`tfship rollback`: move `stable` back to the previous stable version, or restore the labels of a
history entry (`--to N`), in one recorded models.config update."""

from __future__ import annotations

import argparse

from tfship.commands.repository_flags import add_storage_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", required=True, help="the model repository root: a local path or gs://bucket/prefix")
    parser.add_argument("--name", required=True, help="the model name")
    parser.add_argument("--to", default=None, metavar="ENTRY",
                        help="restore the labels as they were right after this `tfship history` entry")
    add_storage_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from tfship.commands.repository_flags import configure
    from tfship.steps.push.step import rollback, rollback_to

    configure(args)
    if args.to is not None:
        labels = rollback_to(args.repo, args.name, args.to)
        print(f"{args.name}: labels restored to entry {args.to}: "
              + (" ".join(f"{label}:{version}" for label, version in sorted(labels.items())) or "(none)"))
        return 0
    version = rollback(args.repo, args.name)
    print(f"{args.name}: stable rolled back to version {version}")
    return 0
