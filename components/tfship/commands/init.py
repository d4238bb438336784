"""`tfship init DIR`: write a team's project (model, schema, contract, tfship.yaml, DAG, pipeline,
Dockerfile, tests, README, Makefile) that passes its own `make test` and runs `make run` at once."""

from __future__ import annotations

import argparse

TEMPLATE_CHOICES = ("tabular", "image", "text")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", help="the project's folder (new or empty)")
    parser.add_argument("--template", default="tabular", choices=TEMPLATE_CHOICES,
                        help="tabular: Palmer penguins and an MLP (default); image: 8x8 digits and a CNN; "
                             "text: jokes by language and a 1-D CNN over word embeddings")
    parser.add_argument("--force", action="store_true",
                        help="write into a non-empty folder, overwriting files of the same names")


def main(args: argparse.Namespace) -> int:
    from tfship.scaffold import init_project, package_name

    written = init_project(args.directory, args.template, force=args.force)
    print(f"tfship init: wrote {len(written)} files of the {args.template} project "
          f"{package_name(args.directory)!r} into {args.directory}")
    print(f"next: cd {args.directory} && make test && make run   (then docs/adopt.md: DAG, pipeline, GPU pool)")
    return 0
