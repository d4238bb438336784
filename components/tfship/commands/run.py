"""`tfship run`: the whole chain on this machine, defined by `tfship.chain`.

With no flags it trains on the embedded demo data (Palmer penguins; `--demo image` for
scikit-learn's digits as PNG images, `--demo text` for pyjokes' jokes by language) under
`--run-dir`: `<run-dir>/data/` (the demo data and schema), `<run-dir>/repo/` (the TF Serving repository, shared
by runs), `<run-dir>/runs/<run-id>/` (job, export, reports). The first run promotes its version
after validation; each later run canaries its version against `stable` on a local server.

`--plan-only` decides a run (version, folders, every step's arguments) and prints it as JSON
without running anything: the Airflow DAG's `kubernetes` mode runs it as its first pod.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from tfship import chain, storage
from tfship.steps import rollout
from tfship.errors import EXIT_FAILED_CHECK, ConfigError

_DEFAULTS = chain.ChainConfig(data="-", schema="-", runs_root="-", repo="-")
_DEMO_NAMES = {"tabular": "penguins", "image": "digits", "text": "jokes"}


# The flags that set the chain; with --config or --chain-json the file or the JSON sets it instead.
_CHAIN_FLAGS = ("run_dir", "data", "schema", "saved_model", "repo", "name", "model", "steps",
                "checkpoint_every", "batch_size", "seed", "mixed_precision", "jit", "input_fn", "contract",
                "examples", "requests", "concurrency", "rollout_steps", "rollout_interval",
                "rollout_check_every", "rollout_apply", "prometheus")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="", metavar="TFSHIP_YAML",
                        help="run the chain a tfship.yaml describes (tfship init writes one); takes none "
                             "of the chain's flags below")
    parser.add_argument("--chain-json", default="", metavar="JSON",
                        help="the chain's config as JSON (ChainConfig's fields), as the orchestrators' "
                             "plan task passes it")
    parser.add_argument("--run-dir", default=None,
                        help="folder of this chain's data, repository and runs (default: runs/demo)")
    parser.add_argument("--demo", choices=("tabular", "image", "text"), default="tabular",
                        help="which embedded demo to run when no --data is given: tabular (Palmer penguins, "
                             "the default), image (8x8 digits as PNG) or text (jokes by language)")
    parser.add_argument("--data", help="training data, local or gs:// (default: the demo data)")
    parser.add_argument("--schema", help="schema YAML, local or gs:// (required with --data)")
    parser.add_argument("--saved-model", default=None, metavar="PATH",
                        help="a SavedModel trained elsewhere (local version directory): skip train and "
                             "export, take it through validate, push, canary and promote")
    parser.add_argument("--repo", help="TF Serving model repository, local or gs:// (default: <run-dir>/repo)")
    parser.add_argument("--name", help="model name in the repository (default: penguins; digits with --demo "
                        "image, jokes with --demo text)")
    parser.add_argument("--model", help=f"model family or module:function (default: {_DEFAULTS.model})")
    parser.add_argument("--steps", type=int, help=f"(default: {_DEFAULTS.steps})")
    parser.add_argument("--checkpoint-every", type=int, help=f"(default: {_DEFAULTS.checkpoint_every})")
    parser.add_argument("--batch-size", type=int, help=f"(default: {_DEFAULTS.batch_size})")
    parser.add_argument("--seed", type=int, help=f"(default: {_DEFAULTS.seed})")
    parser.add_argument("--mixed-precision", action="store_true", default=None,
                        help="train with tfship train --mixed-precision")
    parser.add_argument("--jit", action="store_true", default=None, help="train with tfship train --jit (XLA)")
    parser.add_argument("--input", metavar="MODULE:FUNCTION", dest="input_fn",
                        help="train with tfship train --input (a team's own input pipeline)")
    parser.add_argument("--contract", help="signature contract YAML (default: from the schema)")
    parser.add_argument("--examples", help="canary rows, JSONL or CSV (default: from the data)")
    parser.add_argument("--requests", type=int, help=f"canary requests (default: {_DEFAULTS.canary_requests})")
    parser.add_argument("--concurrency", type=int,
                        help=f"canary concurrency (default: {_DEFAULTS.canary_concurrency})")
    parser.add_argument("--target", default="",
                        help="serving endpoint for the canary, grpc://host:port "
                             "(default: a local `tfship serve` on free loopback ports)")
    parser.add_argument("--rollout-steps",
                        help="after a canary PASS, roll out on live traffic in these steps (tfship rollout --steps, "
                             "e.g. 5,25,50,100; needs --target and --prometheus); default: promote at once")
    parser.add_argument("--rollout-interval",
                        help=f"longest duration of a rollout step (default {_DEFAULTS.rollout_interval})")
    parser.add_argument("--rollout-check-every",
                        help="how often the rollout's sequential test looks (default: interval / 10)")
    parser.add_argument("--rollout-apply",
                        help="kinds the rollout server-side applies at each step (tfship rollout --apply)")
    parser.add_argument("--prometheus",
                        help="Prometheus' URL, scraping --target (for the rollout)")
    parser.add_argument("--run-id", default="", help="resume or name a run (default: the UTC start time)")
    parser.add_argument("--plan-only", action="store_true",
                        help="print the run's plan and every step's arguments as JSON; run nothing")
    parser.add_argument("--plan-out", default="", help="with --plan-only: also write the JSON here")
    parser.add_argument("--summary-out", default="", help="write the run's summary JSON here")


def config_from_args(args: argparse.Namespace) -> chain.ChainConfig:
    """The chain's config: from --config's tfship.yaml, from --chain-json, or from the flags (the
    demo data is written when no --data is given)."""
    if args.config or args.chain_json:
        source = "--config" if args.config else "--chain-json"
        if args.config and args.chain_json:
            raise ConfigError("Invalid flags: --config and --chain-json both set the chain; give one.")
        given = [f"--{name.replace('_', '-')}" for name in _CHAIN_FLAGS if getattr(args, name) is not None]
        if given:
            raise ConfigError(f"Invalid flags: {', '.join(given)} with {source}: the chain's settings come "
                              f"from {source} alone (edit the file instead).")
        if args.config:
            from tfship.chain.project import load_project

            return load_project(args.config).chain
        try:
            mapping = json.loads(args.chain_json)
        except json.JSONDecodeError as error:
            raise ConfigError(f"Invalid --chain-json: not JSON ({error}).") from None
        return chain.ChainConfig.from_mapping(mapping)
    defaults = {"run_dir": "runs/demo", "model": _DEFAULTS.model,
                "steps": _DEFAULTS.steps, "checkpoint_every": _DEFAULTS.checkpoint_every,
                "batch_size": _DEFAULTS.batch_size, "seed": _DEFAULTS.seed,
                "mixed_precision": _DEFAULTS.mixed_precision, "jit": _DEFAULTS.jit_compile,
                "input_fn": _DEFAULTS.input_fn, "contract": "", "rollout_steps": "",
                "rollout_interval": _DEFAULTS.rollout_interval,
                "rollout_check_every": _DEFAULTS.rollout_check_every,
                "rollout_apply": _DEFAULTS.rollout_apply, "prometheus": _DEFAULTS.prometheus,
                "examples": "", "requests": _DEFAULTS.canary_requests,
                "concurrency": _DEFAULTS.canary_concurrency, "saved_model": ""}
    args = argparse.Namespace(**{**vars(args), **{key: value for key, value in defaults.items()
                                                  if getattr(args, key) is None}})
    if args.saved_model and (args.data or args.schema):
        raise ConfigError("Invalid flags: --saved-model takes no --data or --schema (nothing is trained).")
    if args.data and not args.schema:
        raise ConfigError("Invalid flags: --data needs --schema (the columns' dtypes and the label).")
    if args.demo != "tabular" and (args.data or args.saved_model):
        raise ConfigError(f"Invalid flags: --demo {args.demo} runs the embedded demo data; it takes no --data "
                          "or --saved-model.")
    contract = args.contract
    if args.saved_model:
        data = schema = ""  # nothing is trained: the contract and examples come from its signatures
    elif args.data:
        data, schema = args.data, args.schema
    elif args.demo == "tabular":
        from tfship.demo import write_demo

        data, schema = write_demo(storage.join(args.run_dir, "data"))
        contract = contract or storage.join(args.run_dir, "data", "contract.yaml")
    else:
        from tfship.demo import write_demo_kind

        # The contract then comes from the schema (`local_runner.contract_from_schema`).
        data, schema = write_demo_kind(args.demo, storage.join(args.run_dir, "data"))
    return chain.ChainConfig(
        data=str(data),
        schema=str(schema),
        runs_root=storage.join(args.run_dir, "runs"),
        repo=args.repo or storage.join(args.run_dir, "repo"),
        name=args.name or _DEMO_NAMES[args.demo],
        model=args.model,
        steps=args.steps,
        checkpoint_every=args.checkpoint_every,
        batch_size=args.batch_size,
        seed=args.seed,
        mixed_precision=args.mixed_precision,
        jit_compile=args.jit,
        input_fn=args.input_fn,
        contract=contract,
        examples=args.examples,
        canary_requests=args.requests,
        canary_concurrency=args.concurrency,
        rollout_steps=rollout.parse_steps(args.rollout_steps) if args.rollout_steps else (),
        rollout_interval=args.rollout_interval,
        rollout_check_every=args.rollout_check_every,
        rollout_apply=args.rollout_apply,
        prometheus=args.prometheus,
        saved_model=args.saved_model,
    )


def main(args: argparse.Namespace) -> int:
    from tfship import local_runner

    config = config_from_args(args)
    run_id = chain.safe_run_id(args.run_id) if args.run_id else local_runner.new_run_id()
    if args.plan_only:
        plan = local_runner.plan(config, run_id)
        text = json.dumps(chain.plan_document(config, plan, args.target))
        if args.plan_out:
            os.makedirs(os.path.dirname(os.path.abspath(args.plan_out)), exist_ok=True)
            with open(args.plan_out, "w") as handle:
                handle.write(text)
        print(text)
        return 0
    summary = local_runner.run_chain(config, run_id, serving_target=args.target)
    print(local_runner.format_summary(summary), flush=True)
    if args.summary_out:
        storage.write_text(args.summary_out, json.dumps(summary.to_dict(), indent=2))
    storage.write_text(storage.join(summary.plan.run_dir, "summary.json"),
                       json.dumps(summary.to_dict(), indent=2))
    if summary.decision is not None and not summary.decision.promote:
        print(f"tfship run: {summary.decision.reason}", file=sys.stderr)
        return EXIT_FAILED_CHECK
    return 0
