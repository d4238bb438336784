"""`tfship history`: print a model's label history (every recorded label move), as a table or JSON."""

from __future__ import annotations

import argparse
import json

from tfship.commands.repository_flags import add_storage_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", required=True, help="the model repository root: a local path or gs://bucket/prefix")
    parser.add_argument("--name", required=True, help="the model name")
    parser.add_argument("--json", action="store_true", help="print the entries as one JSON array")
    add_storage_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from tfship import models_config as mc
    from tfship.commands.repository_flags import configure
    from tfship.history import format_table, read_history

    configure(args)
    entries = read_history(args.repo, args.name)
    if args.json:
        print(json.dumps(entries, indent=2, sort_keys=True))
        return 0
    current = mc.version_labels(mc.read_models_config(args.repo), args.name)
    print("\n".join(format_table(entries, dict(sorted(current.items())))))
    return 0
