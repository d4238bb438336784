"""`tfship inspect <model>`: a SavedModel's signatures, like `saved_model_cli show --all`."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="SavedModel version directory, or a model base path (latest version)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print a JSON description instead")
    output.add_argument("--contract", action="store_true",
                        help="print the contract YAML the model satisfies (a start for `tfship validate`)")


def main(args: argparse.Namespace) -> int:
    import json

    from tfship.saved_model import inspect

    if args.json:
        print(json.dumps(inspect.as_dict(args.model), indent=2))
    elif args.contract:
        print(inspect.contract_yaml(args.model), end="")
    else:
        print(inspect.describe(args.model))
    return 0
