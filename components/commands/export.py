"""`tfship export`: flags -> ExportConfig -> tfship.exporting.run_export."""

from __future__ import annotations

import argparse

from tfship.exporting import DEFAULT_WARMUP_ROWS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--job-dir", required=True, help="job directory of `tfship train` (local or gs://)")
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
    from tfship.exporting import ExportConfig, run_export

    config = ExportConfig(job_dir=args.job_dir, export_dir=args.export_dir, version=args.version,
                          warmup_rows=args.warmup_rows, warmup_traffic=args.warmup_traffic,
                          allow_model_change=args.allow_model_change)
    result = run_export(config)
    signatures = ", ".join(f"{name} ({method.rsplit('/', 1)[-1]})" for name, method in result.signatures.items())
    print(f"exported version {result.version} to {result.path} in {result.duration_s:.1f} s")
    print(f"  checkpoint step {result.metadata['checkpoint_step']}; signatures: {signatures}; "
          f"warm-up records: {result.warmup_records}")
    return 0
