"""GPU readiness: precision and XLA, checkpoint blocking, and MirroredStrategy, in one short run.

    .venv/bin/python benchmarks/gpu.py [--quick] [--timeout 480]

Every row is measured side by side in this one run, each configuration in its own process (a mixed
precision policy and XLA are process-wide), on whatever devices TensorFlow sees: the GPUs of a GPU
machine, or the CPU (then mixed precision is bfloat16, the CPU's half type, and MirroredStrategy has
one device).

1. Steps/s on a compute-bound model (a wide MLP on synthetic in-memory data, so the input pipeline
   is not measured): float32, mixed precision (`mixed_float16` on GPU, `mixed_bfloat16` on CPU),
   and XLA (`jit_compile=True`), each after a warm-up.
2. Checkpoint blocking: how long `tfship`'s CheckpointStore.save() blocks the training loop for a
   ~100M-parameter model (model + Adam slots, ~1.2 GB), with asynchronous and with synchronous
   weight writes, and how long until the checkpoint is durable.
3. MirroredStrategy over every visible GPU vs one device: steps/s at the same per-replica batch.
4. The image comparisons of `benchmarks/train.py --part images` on the GPU: `tfship train --input`
   images/s vs a bare `model.fit` on the same model and tf.data batches, the input-bound check
   (pipeline vs the same batches cached), and `--mixed-precision` (`mixed_float16`, loss scaled)
   and `--jit` vs float32, all through `tfship train`. On a machine without a GPU these rows are
   skipped (that is what `benchmarks/train.py` measures on CPUs).

Each configuration has a share of `--timeout`; one that runs out is reported as such, and the
others still print.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from tfship import native_log

# Compute-bound MLP widths: ~58M multiply-adds per example on a GPU; a smaller smoke model on a CPU.
WIDE = {"gpu": [4096] * 4, "cpu": [1024] * 4}
BIG = [8192, 8192, 4096]  # ~100M parameters with a 2048-wide input
FEATURES = 2048
CLASSES = 10


def _device_kind() -> tuple[str, int]:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return ("gpu", len(gpus)) if gpus else ("cpu", 1)


def _mlp(hidden: list[int]):
    import keras

    inputs = keras.Input((FEATURES,))
    x = inputs
    for width in hidden:
        x = keras.layers.Dense(width, activation="relu")(x)
    # The last layer in float32, as Keras' mixed precision guide asks, so the loss is stable.
    outputs = keras.layers.Dense(CLASSES, dtype="float32")(x)
    return keras.Model(inputs, outputs)


def _dataset(batch: int):
    import tensorflow as tf

    features = tf.random.stateless_normal((batch * 8, FEATURES), seed=(1, 2))
    labels = tf.random.stateless_uniform((batch * 8,), seed=(3, 4), maxval=CLASSES, dtype=tf.int32)
    return tf.data.Dataset.from_tensor_slices((features, labels)).batch(batch).cache().repeat()


def measure_precision(config: dict) -> dict:
    """Steps/s of one precision/XLA setting, after a warm-up epoch."""
    import keras

    kind, _ = _device_kind()
    if config["precision"] == "mixed":
        keras.mixed_precision.set_global_policy("mixed_float16" if kind == "gpu" else "mixed_bfloat16")
    model = _mlp(WIDE[kind])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=config["precision"] == "xla", steps_per_execution=10)
    data = _dataset(config["batch"])
    model.fit(data, steps_per_epoch=config["warmup"], epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=config["steps"], epochs=1, verbose=0)
    elapsed = time.perf_counter() - start
    return {"steps_per_s": config["steps"] / elapsed,
            "policy": keras.mixed_precision.global_policy().name}


def measure_checkpoint(config: dict) -> dict:
    """Blocking and durable time of CheckpointStore.save() for a ~100M-parameter model."""
    import keras
    import tensorflow as tf

    from tfship.steps.train.checkpointing import CheckpointStore, variables_of

    model = _mlp(BIG)
    optimizer = keras.optimizers.Adam()
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(_dataset(32), steps_per_epoch=1, epochs=1, verbose=0)  # creates the Adam slots
    step = tf.Variable(0, dtype=tf.int64)
    weights = tf.train.Checkpoint(step=step, model=variables_of(model), optimizer=variables_of(optimizer))
    parameters = sum(int(tf.size(v)) for v in model.weights)
    blocked, durable = [], []
    with tempfile.TemporaryDirectory() as directory:
        store = CheckpointStore(weights, directory, async_write=config["async"])
        for number in range(1, config["saves"] + 1):
            start = time.perf_counter()
            store.save(number)
            blocked.append(time.perf_counter() - start)
            store.sync()
            durable.append(time.perf_counter() - start)
        latest = os.path.basename(store.latest)
        size = sum(os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory)
                   if f.startswith(latest + "."))
    # The first save traces the write functions; the rest are what a training loop pays.
    steady = slice(1, None) if len(blocked) > 1 else slice(None)
    return {"parameters": parameters, "size_mb": size / 1e6,
            "blocked_s": min(blocked[steady]), "durable_s": min(durable[steady])}


def measure_mirrored(config: dict) -> dict:
    """Steps/s with MirroredStrategy over every visible GPU vs the default (one device) strategy."""
    import keras
    import tensorflow as tf

    kind, count = _device_kind()
    strategy = tf.distribute.MirroredStrategy() if config["mirrored"] else tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    with strategy.scope():
        model = _mlp(WIDE[kind])
        model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      steps_per_execution=10)
    data = _dataset(config["batch"] * replicas)
    model.fit(data, steps_per_epoch=config["warmup"], epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=config["steps"], epochs=1, verbose=0)
    elapsed = time.perf_counter() - start
    return {"steps_per_s": config["steps"] / elapsed, "replicas": replicas, "device": f"{count} {kind}"}


def measure_images(config: dict) -> dict:
    """`benchmarks/train.py`'s image comparisons (their own `tfship train` processes), steps/s."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import train as train_benchmarks

    return train_benchmarks.image_runs(config["rows"], config["steps"], config["batch"])


MEASURES = {"precision": measure_precision, "checkpoint": measure_checkpoint, "mirrored": measure_mirrored,
            "images": measure_images}


def _run(measure: str, config: dict, timeout_s: float) -> dict:
    """One configuration in a fresh process; its result, or the reason it has none."""
    argv = [sys.executable, __file__, "--measure", measure, "--config", json.dumps(config)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout_s:.0f} s"}
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["exit %d" % done.returncode])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps and saves (a smoke run)")
    parser.add_argument("--timeout", type=float, default=480.0, help="seconds for the whole run")
    parser.add_argument("--measure", choices=sorted(MEASURES), help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(MEASURES[args.measure](json.loads(args.config))))
        return 0

    native_log.filter_stderr()  # this process imports TensorFlow only to see the devices
    kind, count = _device_kind()
    batch = 256 if kind == "gpu" else 64
    steps, warmup, saves = (20, 10, 2) if args.quick else ((400, 50, 4) if kind == "gpu" else (60, 20, 3))
    runs = [("precision", {"precision": p, "batch": batch, "steps": steps, "warmup": warmup})
            for p in ("float32", "mixed", "xla")]
    runs += [("checkpoint", {"async": a, "saves": saves}) for a in (True, False)]
    runs += [("mirrored", {"mirrored": m, "batch": batch, "steps": steps, "warmup": warmup})
             for m in (False, True)]
    # The image rows need a GPU: on CPUs they are benchmarks/train.py's (CPU-only guard).
    image_config = {"rows": 256 if args.quick else 1024, "steps": 30 if args.quick else 100, "batch": 256}
    if kind == "gpu":
        runs.append(("images", image_config))
    share = args.timeout / len(runs)
    results = [(measure, config, _run(measure, config, share)) for measure, config in runs]

    print(f"\nGPU readiness on {count} {kind} device(s), {os.cpu_count()} CPUs; "
          f"MLP {'x'.join(map(str, WIDE[kind]))} on {FEATURES} features\n")
    print("| measure | setting | result |")
    print("|---|---|---|")
    base = results[0][2].get("steps_per_s")
    for measure, config, result in results:
        if measure == "images":
            continue  # its own table, below
        if "error" in result:
            shown = f"no result: {result['error']}"
        elif measure == "precision":
            ratio = f" ({result['steps_per_s'] / base:.2f}x float32)" if base else ""
            shown = f"{result['steps_per_s']:.1f} steps/s{ratio}, policy {result['policy']}"
        elif measure == "checkpoint":
            shown = (f"save blocks {result['blocked_s']:.3f} s, durable after {result['durable_s']:.2f} s "
                     f"({result['parameters'] / 1e6:.0f}M parameters, {result['size_mb']:.0f} MB)")
        else:
            shown = f"{result['steps_per_s']:.1f} steps/s on {result['replicas']} replica(s)"
        setting = {"precision": lambda c: c["precision"] + (" (jit_compile)" if c["precision"] == "xla" else ""),
                   "checkpoint": lambda c: "async weights" if c["async"] else "sync weights",
                   "mirrored": lambda c: "MirroredStrategy" if c["mirrored"] else "one device"}[measure](config)
        label = {"precision": f"train steps/s, batch {batch}", "checkpoint": "checkpoint of a 100M model",
                 "mirrored": f"data parallel, {batch}/replica"}[measure]
        print(f"| {label} | {setting} | {shown} |")
    images = next((result for measure, _, result in results if measure == "images"), None)
    if images is None:
        print("\nNo GPU visible: the image rows (tfship train vs model.fit, input-bound check, mixed precision "
              "and XLA through tfship train) are skipped; on CPUs run benchmarks/train.py --part images.")
    elif "error" in images:
        print(f"\nImage rows: no result: {images['error']}")
    else:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import train as train_benchmarks

        train_benchmarks.print_image_table(images, image_config["rows"], image_config["batch"], f"{count} GPU(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
