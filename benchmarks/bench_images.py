"""The image workload of `benchmarks/train.py`: synthetic 32x32x3 images, a small CNN, an `--input`.

Until the schema has an image dtype, an image is one float32 feature per pixel (`p0`..`p3071`);
the model concatenates them back into an image. Used as `--model bench_images:cnn --input
bench_images:from_csv` with `benchmarks/` on PYTHONPATH.
"""

from __future__ import annotations

import csv
from typing import Any

import numpy as np

SHAPE = (32, 32, 3)
CLASSES = 8  # divides the 3072 pixels into equal bands
PIXELS = [f"p{i}" for i in range(int(np.prod(SHAPE)))]


def images(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random pixels; the class is the brightest of CLASSES horizontal bands (learnable)."""
    rng = np.random.default_rng(seed)
    pixels = rng.random((count, len(PIXELS)), dtype=np.float32)
    bands = pixels.reshape(count, CLASSES, -1).mean(axis=2)
    return pixels, np.array([f"c{k}" for k in bands.argmax(axis=1)])


def write_csv(path: str, count: int) -> None:
    """The images as CSV rows (what tfship's analysis pass reads), and the label."""
    pixels, labels = images(count)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*PIXELS, "label"])
        writer.writerows([*(f"{v:.6g}" for v in row), label] for row, label in zip(pixels, labels))


def schema_yaml() -> str:
    features = ", ".join(f"{name}: float32" for name in PIXELS)
    return f"task: classification\nlabel: label\nfeatures: {{{features}}}\n"


def from_csv(ctx: Any) -> Any:
    """The `--input` function: the CSV's images read with numpy into memory, tfship's held-out rows."""
    import tensorflow as tf

    from tfship.data import is_heldout

    rows = [row for path in ctx.files for row in np.loadtxt(path, delimiter=",", skiprows=1, dtype=str, ndmin=2)]
    keep = [is_heldout(i, ctx.holdout_every) == (ctx.split == "heldout") for i in range(len(rows))]
    table = np.array(rows)[keep]
    pixels = table[:, :-1].astype(np.float32)
    features = {name: pixels[:, i] for i, name in enumerate(PIXELS)}
    return tf.data.Dataset.from_tensor_slices((features, table[:, -1]))


def cnn(ctx: Any) -> Any:
    """A small CNN: two blocks of two 3x3 convolutions (32, then 64 filters; the second strided),
    about 20 MFLOP per image forward: compute-bound on a CPU."""
    import keras

    inputs = ctx.keras_inputs()
    x = keras.layers.Concatenate()([inputs[name] for name in PIXELS])
    x = keras.layers.Reshape(SHAPE)(x)
    for filters in (32, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        # Downsampling by a strided convolution, not max pooling: XLA has no deterministic
        # max-pooling gradient, so `--jit` refuses models with one (docs/train.md).
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(ctx.num_outputs, dtype="float32")(x))
