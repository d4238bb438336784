"""`tfship export`: flags -> ExportConfig -> tfship.steps.export.step.run_export."""

from __future__ import annotations

import argparse

from tfship.steps.export.step import DEFAULT_WARMUP_ROWS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--job-dir", help="job directory of `tfship train` (local or gs://)")
    source.add_argument("--saved-model", metavar="PATH",
                        help="instead, a SavedModel trained elsewhere (local): copied unchanged as the "
                             "version once it loads and warms up the way TF Serving loads it")
    parser.add_argument("--export-dir", required=True, help="where version directories go (local or gs://)")
    parser.add_argument("--version", type=int, default=None,
                        help="version to write (default: the next integer above the existing versions)")
    parser.add_argument("--warmup-rows", type=int, default=DEFAULT_WARMUP_ROWS,
                        help=f"held-out rows turned into warm-up requests; 0 = none (default {DEFAULT_WARMUP_ROWS})")
    parser.add_argument("--allow-model-change", action="store_true",
                        help="run the job's --model even if its source changed since training "
                             "(a job directory is code: export imports and runs its model function)")
    parser.add_argument("--warmup-traffic", default="", metavar="GLOB",
                        help="warm up on users' requests instead: a sample of up to 1000 requests from these "
                             "tfship serve request logs (DIR/<model>-*.tfrecord)")


def main(args: argparse.Namespace) -> int:
    from tfship.steps.export.step import ExportConfig, import_saved_model, run_export

    if args.saved_model:
        imported = import_saved_model(args.saved_model, args.export_dir, args.version)
        print(f"imported {args.saved_model} as version {imported.version} at {imported.path} in "
              f"{imported.duration_s:.1f} s; signatures: {_signatures_text(imported.signatures)}; "
              f"warm-up records: {imported.warmup_records}")
        return 0
    config = ExportConfig(job_dir=args.job_dir, export_dir=args.export_dir, version=args.version,
                          warmup_rows=args.warmup_rows, warmup_traffic=args.warmup_traffic,
                          allow_model_change=args.allow_model_change)
    result = run_export(config)
    print(f"exported version {result.version} to {result.path} in {result.duration_s:.1f} s")
    print(f"  checkpoint step {result.metadata['checkpoint_step']}; signatures: {_signatures_text(result.signatures)}; "
          f"warm-up records: {result.warmup_records}")
    return 0


def _signatures_text(signatures: dict[str, str]) -> str:
    """`serving_default (predict), classification (classify)`: names with their method's last word."""
    return ", ".join(f"{name} ({method.rsplit('/', 1)[-1]})" for name, method in signatures.items())
