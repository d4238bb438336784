"""Shared body of the steps that are declared in the CLI but not implemented yet."""

from __future__ import annotations

import argparse

from tfship.errors import NotBuiltError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def main(args: argparse.Namespace) -> int:
    raise NotBuiltError(f"`tfship {args.command}` is not built yet in this version of tfship")
