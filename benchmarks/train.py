"""Train-step benchmarks (issues 2 and 11). Prints tables; every ratio is measured side by side here.

Part `checkpoints` (issue 2), on synthetic tabular rows:
1. Checkpoint overhead: steps/s with a checkpoint every K steps vs none, ~10.5M-parameter MLP.
2. SIGTERM -> durable checkpoint, same model: seconds from the signal to the `preempted` event
   (the checkpoint is on disk then) and to process exit.
3. Framework overhead: `tfship train` steps/s vs a bare `model.fit` on the same model, data, batch.
4. Peak RSS of `tfship train` on N rows vs 10N rows (streaming input: should stay flat).

Part `images` (issue 11), a compute-bound small CNN on synthetic 32x32x3 images: encoded PNGs in
TFRecord files under a `dtype: image` schema feature (`benchmarks/bench_images.py`: its `--input`
function streams the encoded bytes, which tfship's preprocessor decodes in its tf.data pipeline):
5. `tfship train --input` images/s vs a bare `model.fit` on the same model and the same tf.data
   batches (tfship's pipeline, built by tfship's own code), target >= 0.95.
6. Input-bound check: `model.fit` steps/s on that pipeline vs on the same batches cached in memory
   (near 1.0: the model, not the input, sets the pace).
7. `tfship train --mixed-precision` (bfloat16 on a CPU) and `--jit` (XLA) steps/s vs float32.

    .venv/bin/python benchmarks/train.py [--quick] [--part all|checkpoints|images]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

BIG = {"hidden_units": [2048, 2048, 2048, 1024]}  # ~10.5M parameters with the demo features
SCHEMA = """task: classification
label: label
features: {a: float32, b: float32, c: float32, d: float32, colour: string}
"""


def synthetic_csv(path: str, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["a", "b", "c", "d", "colour", "label"])
        for _ in range(rows):
            a, b = rng.gauss(0, 1), rng.gauss(0, 1)
            writer.writerow([a, b, rng.random(), rng.random(), rng.choice("rgbcmyk"), "x" if a + b > 0 else "y"])


def train_cmd(data: str, schema: str, job: str, **flags: object) -> list[str]:
    args = [sys.executable, "-m", "tfship.cli", "train", "--data", data, "--schema", schema, "--job-dir", job]
    for key, value in flags.items():
        if key == "hparams":
            args += [f"--hparam=hidden_units={json.dumps(value['hidden_units'])}"]
        elif value == "":
            args += [f"--{key.replace('_', '-')}"]
        else:
            args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def events(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def rate_after_warmup(evts: list[dict], from_step: int = 0) -> float:
    """Steps/s between the first progress line at or after `from_step` and the last (the first
    step's tracing excluded)."""
    progress = [e for e in evts if e["event"] == "progress" and e["step"] >= from_step]
    first, last = progress[0], progress[-1]
    return (last["step"] - first["step"]) / (last["elapsed"] - first["elapsed"])


def checkpoint_overhead(data: str, schema: str, steps: int, intervals: tuple[int, ...]) -> dict[str, tuple[float, float]]:
    """steps/s and seconds training is blocked per save: no checkpoints; async and sync weights
    at each interval."""
    runs: dict[str, dict[str, object]] = {"none": {"checkpoint_every": steps * 10}}
    for every in intervals:
        runs[f"async/{every}"] = {"checkpoint_every": every}
        runs[f"sync/{every}"] = {"checkpoint_every": every, "sync_checkpoints": ""}
    results = {}
    for label, flags in runs.items():
        with tempfile.TemporaryDirectory() as job:
            done = subprocess.run(
                train_cmd(data, schema, job, steps=steps, batch_size=256, log_every=5, hparams=BIG, **flags),
                capture_output=True, text=True, check=True,
            )
            evts = events(done.stderr)
            saves = [e["blocked_seconds"] for e in evts if e["event"] == "save" and e["step"] < steps]
            results[label] = (rate_after_warmup(evts), sum(saves) / len(saves) if saves else 0.0)
    return results


def sigterm_to_durable(data: str, schema: str) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as job:
        process = subprocess.Popen(
            train_cmd(data, schema, job, steps=100000, checkpoint_every=100000, batch_size=256, log_every=1, hparams=BIG),
            stderr=subprocess.PIPE, text=True,
        )
        for line in process.stderr:
            if line.startswith("{") and json.loads(line).get("step", 0) >= 3:
                break
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        durable = None
        for line in process.stderr:
            if '"event": "preempted"' in line:
                durable = time.monotonic() - sent
        process.wait()
        exited = time.monotonic() - sent
        size = sum(os.path.getsize(os.path.join(job, "checkpoints", f)) for f in os.listdir(os.path.join(job, "checkpoints")))
        return durable, exited, size / 1e6


def framework_overhead(data: str, schema: str, steps: int) -> tuple[float, float]:
    """tfship train vs model.fit, same model (the demo MLP), data pipeline and batch size."""
    with tempfile.TemporaryDirectory() as job:
        done = subprocess.run(train_cmd(data, schema, job, steps=steps, batch_size=64, log_every=10, checkpoint_every=steps),
                              capture_output=True, text=True, check=True)
        tfship_rate = rate_after_warmup(events(done.stderr))
    bare = subprocess.run([sys.executable, "-c", BARE_FIT, data, schema, str(steps)], capture_output=True, text=True, check=True)
    return tfship_rate, float(bare.stdout.strip().splitlines()[-1])


BARE_FIT = r"""
import sys, time, keras, tensorflow as tf
from tfship.steps.train.data import analyze, make_dataset, resolve_files
from tfship.steps.train.model_families import ModelContext, build_model
from tfship.steps.train.preprocessing import Preprocessor, write_vocabularies
from tfship.schema import load_schema
import tempfile
data, schema_path, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
schema = load_schema(schema_path); files = resolve_files(data); stats = analyze(files, schema, 5)
pre = Preprocessor(schema, stats, write_vocabularies(stats, tempfile.mkdtemp()))
ds = make_dataset(files, schema, 64, 5, "train", 0).map(lambda f, y: (pre(f), pre.encode_label(y)))
model = build_model("mlp", ModelContext(schema, pre.vocabulary_sizes, pre.num_outputs, {}))
model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
class Clock(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 9: self.t0 = time.monotonic()
        if batch == steps - 1: self.t1 = time.monotonic()
clock = Clock()
model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[clock])
print((steps - 10) / (clock.t1 - clock.t0))
"""


def peak_rss(data: str, schema: str, steps: int) -> float:
    """Max RSS (MB) of one `tfship train` process, measured by a wrapper that waits for it."""
    with tempfile.TemporaryDirectory() as job:
        wrapper = (
            "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True);"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
        )
        out = subprocess.run([sys.executable, "-c", wrapper, *train_cmd(data, schema, job, steps=steps, checkpoint_every=steps)],
                             capture_output=True, text=True, check=True)
        return int(out.stdout.strip()) / 1024


IMAGE_BATCH = 64
IMAGE_WARMUP = 10  # steps before the clock starts, in every image run
BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
IMAGE_FLAGS = {"model": "bench_images:cnn", "input": "bench_images:from_tfrecord"}

IMAGE_FIT = r"""
import json, sys, tempfile, time
import keras, tensorflow as tf
from tfship.steps.train import step as train_step
from tfship.steps.train.data import analyze, resolve_files
from tfship.steps.train.distribute import cluster_role
from tfship.steps.train.model_families import ModelContext, build_model
from tfship.steps.train.preprocessing import Preprocessor, write_vocabularies
from tfship.schema import load_schema
data, schema_path, model_fn, input_fn = sys.argv[1:5]
steps, warmup, batch = map(int, sys.argv[5:8])
tf.config.experimental.enable_op_determinism()  # as tfship train runs
config = train_step.TrainConfig(data, schema_path, tempfile.mkdtemp(), model=model_fn, input_fn=input_fn,
                              batch_size=batch, shuffle_buffer=1000)
schema = load_schema(schema_path); files = resolve_files(data); stats = analyze(files, schema, config.holdout_every)
pre = Preprocessor(schema, stats, write_vocabularies(stats, tempfile.mkdtemp()))
# tfship's own batches: the --input examples shuffled, batched and preprocessed (PNGs decoded)
pipeline = train_step._training_input(config, files, schema, pre, cluster_role())
cached = pipeline.take(warmup).cache().repeat()

class Clock(keras.callbacks.Callback):
    # As tfship's rate is read from its progress lines: from the end of step `warmup` to the last
    # step, on one iterator (a second fit() would start a cold pipeline).
    def on_train_batch_end(self, batch, logs=None):
        if batch == warmup - 1: self.began = time.perf_counter()
        if batch == warmup + steps - 1: self.ended = time.perf_counter()

def rate(ds):
    keras.utils.set_random_seed(0)
    model = build_model(config.model, ModelContext(schema, pre.vocabulary_sizes, pre.num_outputs, {}))
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    clock = Clock()
    model.fit(ds, steps_per_epoch=warmup + steps, epochs=1, verbose=0, callbacks=[clock])
    return steps / (clock.ended - clock.began)

print(json.dumps({"pipeline": rate(pipeline), "cached": rate(cached)}))
"""


def image_runs(rows: int, steps: int, batch: int = IMAGE_BATCH) -> dict[str, float]:
    """Steps/s of the image CNN: `tfship train` in float32, mixed precision and XLA, and a bare
    `model.fit` on tfship's pipeline and on the same batches cached."""
    import bench_images

    work = tempfile.mkdtemp(prefix="tfship-bench-images-")
    data, schema = bench_images.write_tfrecords(work, rows), os.path.join(work, "images.yaml")
    with open(schema, "w") as handle:
        handle.write(bench_images.schema_yaml())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [BENCH_DIR, os.environ.get("PYTHONPATH")]))}
    rates: dict[str, float] = {}
    for label, switch in (("float32", None), ("mixed", "mixed_precision"), ("xla", "jit")):
        with tempfile.TemporaryDirectory() as job:
            flags = {**IMAGE_FLAGS, **({switch: ""} if switch else {})}
            done = subprocess.run(
                train_cmd(data, schema, job, steps=steps, batch_size=batch, log_every=5, checkpoint_every=steps,
                          shuffle_buffer=1000, **flags),
                capture_output=True, text=True, check=True, env=env)
            rates[label] = rate_after_warmup(events(done.stderr), from_step=IMAGE_WARMUP)
    fit = subprocess.run([sys.executable, "-c", IMAGE_FIT, data, schema, IMAGE_FLAGS["model"], IMAGE_FLAGS["input"],
                          str(steps - IMAGE_WARMUP), str(IMAGE_WARMUP), str(batch)],
                         capture_output=True, text=True, check=True, env=env)
    measured = json.loads(fit.stdout.strip().splitlines()[-1])
    rates["fit"], rates["fit_cached"] = measured["pipeline"], measured["cached"]
    return rates


def print_image_table(rates: dict[str, float], rows: int, batch: int = IMAGE_BATCH, device: str = "") -> None:
    device = device or f"{os.cpu_count()} CPUs"
    print(f"\nImage training ({device}; small CNN, {rows} synthetic 32x32x3 images, batch {batch})\n")
    print("| measure | value | target |")
    print("|---|---|---|")
    print(f"| `tfship train --input` vs bare `model.fit`, same model and tf.data batches: images/s | "
          f"{rates['float32'] * batch:.0f} vs {rates['fit'] * batch:.0f} = "
          f"{rates['float32'] / rates['fit']:.2f}x | >= 0.95x |")
    print(f"| input-bound check: `model.fit` steps/s on tfship's pipeline vs the same batches cached in memory | "
          f"{rates['fit']:.2f} vs {rates['fit_cached']:.2f} = {rates['fit'] / rates['fit_cached']:.2f}x | ~1.0 |")
    half = "mixed_float16" if "GPU" in device else "mixed_bfloat16"
    for label, name in (("mixed", f"--mixed-precision ({half})"), ("xla", "--jit (XLA)")):
        print(f"| `tfship train {name}` vs float32: steps/s | {rates[label]:.2f} vs {rates['float32']:.2f} = "
              f"{rates[label] / rates['float32']:.2f}x | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and rows (a smoke run)")
    parser.add_argument("--part", choices=("all", "checkpoints", "images"), default="all")
    args = parser.parse_args()
    if args.part != "checkpoints":
        rows = 256 if args.quick else 640
        print_image_table(image_runs(rows, 30 if args.quick else 80), rows)
    if args.part == "images":
        return
    steps = 48 if args.quick else 240
    rows = 5_000 if args.quick else 20_000
    work = tempfile.mkdtemp(prefix="tfship-bench-")
    schema = os.path.join(work, "schema.yaml")
    with open(schema, "w") as handle:
        handle.write(SCHEMA)
    small, large = os.path.join(work, "small.csv"), os.path.join(work, "large.csv")
    synthetic_csv(small, rows)
    synthetic_csv(large, rows * 10, seed=1)

    intervals = (steps // 6, steps // 2)
    overhead = checkpoint_overhead(small, schema, steps, intervals)
    none_rate = overhead["none"][0]
    durable, exited, size_mb = sigterm_to_durable(small, schema)
    tfship_rate, fit_rate = framework_overhead(small, schema, 300 if not args.quick else 100)
    rss_small, rss_large = peak_rss(small, schema, 200), peak_rss(large, schema, 200)

    print(f"\ntfship train benchmarks ({os.cpu_count()} CPUs, synthetic rows, batch 256 for the 10.5M model)\n")
    print("| measure | value | target |")
    print("|---|---|---|")
    print(f"| steps/s, no checkpoints (10.5M params) | {none_rate:.2f} | |")
    for every in intervals:
        for kind in ("async", "sync"):
            rate, blocked = overhead[f"{kind}/{every}"]
            print(f"| checkpoint every {every} steps (~{every / none_rate:.0f} s), {kind} weights: steps/s, overhead "
                  f"| {rate:.2f}, {100 * (1 - rate / none_rate):.1f} % (blocked {blocked:.3f} s per save) | < 5 % |")
    print(f"| SIGTERM -> durable checkpoint ({size_mb:.0f} MB) | {durable:.2f} s (exit after {exited:.2f} s) | < 5 s |")
    print(f"| tfship train steps/s vs model.fit (demo-size MLP) | {tfship_rate:.1f} vs {fit_rate:.1f} = {tfship_rate / fit_rate:.2f}x | >= 0.95x |")
    print(f"| peak RSS {rows} rows vs {rows * 10} rows | {rss_small:.0f} MB vs {rss_large:.0f} MB = {100 * (rss_large / rss_small - 1):+.1f} % | within 10 % |")


if __name__ == "__main__":
    main()
