"""`tfship train`: flags -> TrainConfig -> tfship.steps.train.step.run_training."""

from __future__ import annotations

import argparse

import yaml

from tfship.steps.train import distribute
from tfship.errors import ConfigError


def _hparam(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, yaml.safe_load(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="CSV/TFRecord file, directory or glob (local or gs://)")
    parser.add_argument("--schema", required=True, help="schema YAML: task, label, features")
    parser.add_argument("--job-dir", required=True, help="checkpoints, logs, metrics; the same dir resumes")
    parser.add_argument("--model", default="mlp", help="mlp, linear, or package.module:function (default mlp)")
    parser.add_argument("--steps", type=int, default=1000, help="total training steps (default 1000)")
    parser.add_argument("--checkpoint-every", type=int, default=100, help="save every K steps (default 100)")
    parser.add_argument("--keep-checkpoints", type=int, default=3, help="checkpoints kept (default 3)")
    parser.add_argument("--batch-size", type=int, default=64, help="global batch size (default 64)")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--holdout-every", type=int, default=5, help="hold out every N-th row (default 5)")
    parser.add_argument("--shuffle-buffer", type=int, default=10_000, help="shuffle buffer rows (default 10000)")
    parser.add_argument("--log-every", type=int, default=50, help="steps between progress lines (default 50)")
    parser.add_argument("--sync-checkpoints", action="store_true",
                        help="block training while each checkpoint is written (default: weights async)")
    parser.add_argument("--input", default="", metavar="MODULE:FUNCTION", dest="input_fn",
                        help="your own input pipeline: a function(ctx) returning a tf.data.Dataset of "
                             "(features, label) examples (see docs/train.md); default: tfship's reader")
    parser.add_argument("--mixed-precision", action="store_true",
                        help="compute in float16 on a GPU (loss scaled) or bfloat16 on a CPU; variables, loss "
                             "and the exported model stay float32")
    parser.add_argument("--jit", action="store_true", help="compile each training step with XLA (jit_compile)")
    parser.add_argument(
        "--hparam", type=_hparam, action="append", default=[], metavar="KEY=VALUE",
        help="model hyper-parameter, YAML value (repeatable), e.g. --hparam hidden_units=[128,64]",
    )
    distribute.add_cluster_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from tfship.steps.train.step import TrainConfig, run_training

    distribute.set_tf_config(args)  # before TensorFlow reads TF_CONFIG
    hparams = dict(args.hparam)
    if len(hparams) != len(args.hparam):
        raise ConfigError("A --hparam key is given twice.")
    config = TrainConfig(
        data=args.data, schema=args.schema, job_dir=args.job_dir, model=args.model, steps=args.steps,
        checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints,
        batch_size=args.batch_size, learning_rate=args.learning_rate, seed=args.seed, hparams=hparams,
        holdout_every=args.holdout_every, shuffle_buffer=args.shuffle_buffer, log_every=args.log_every,
        async_checkpoints=not args.sync_checkpoints, mixed_precision=args.mixed_precision,
        jit_compile=args.jit, input_fn=args.input_fn,
    )
    result = run_training(config)
    print(f"trained {result.step} steps; checkpoint {result.checkpoint}; metrics {config.job_dir}/metrics.json")
    return 0
