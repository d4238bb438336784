"""`tfship validate`: flags -> ValidateConfig -> tfship.steps.validate.step.run_validation; exit 1 when it fails."""

from __future__ import annotations

import argparse

from tfship.errors import EXIT_FAILED_CHECK, EXIT_OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="SavedModel version directory to check (local or gs://)")
    parser.add_argument("--contract", required=True, help="signature contract YAML")
    parser.add_argument("--baseline", default=None, help="SavedModel version serving now: no breaking change allowed")
    parser.add_argument("--examples", default=None, help="golden rows, CSV or JSONL (default: generated inputs)")
    parser.add_argument("--report", default=None,
                        help="JSON report path (default: <model>.validation.json beside the model)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds allowed to load and run the model in a fresh process (default 600)")


def main(args: argparse.Namespace) -> int:
    from tfship.steps.validate.step import ValidateConfig, run_validation

    config = ValidateConfig(model=args.model, contract=args.contract, baseline=args.baseline,
                            examples=args.examples, report=args.report, timeout_s=args.timeout)
    report = run_validation(config)
    print("\n".join(report.summary_lines()))
    return EXIT_OK if report.passed else EXIT_FAILED_CHECK
