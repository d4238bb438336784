"""`tfship validate-config`: check a tfship.yaml without running anything (exit 0, or 2 naming the key)."""

from __future__ import annotations

import argparse

from tfship.chain.project import FILE_NAME


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=FILE_NAME, help=f"the model's file (default: {FILE_NAME})")


def main(args: argparse.Namespace) -> int:
    from tfship.chain.project import load_project

    project = load_project(args.config)
    config = project.chain
    source = (f"imports the SavedModel {config.saved_model} (no training)" if config.saved_model else
              f"({config.model}), trains on {config.workers} x {config.gpu_count} {config.gpu_type}"
              f"{' spot' if config.spot else ''}")
    print(f"{args.config}: OK: model {config.name!r} {source}, repository {config.repo}, "
          f"DAG/pipeline {project.dag_id}, schedule {project.schedule!r}")
    return 0
