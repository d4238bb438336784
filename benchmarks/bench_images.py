"""The image workload of `benchmarks/train.py`: synthetic 32x32x3 PNGs, a small CNN, an `--input`.

The images are real encoded PNGs in TFRecord files, under a schema feature
`image: {dtype: image, shape: [32, 32, 3]}`, so the benchmark trains on images as a team would
ship them: the `--input` function yields each image's encoded bytes (a `tf.string` scalar, what
tfship's own reader yields), tfship's preprocessor decodes them in its tf.data pipeline to
float32 in [0, 1], and the model gets `[batch, 32, 32, 3]` as `inputs["image"]`. Used as
`--model bench_images:cnn --input bench_images:from_tfrecord` with `benchmarks/` on PYTHONPATH.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

SHAPE = (32, 32, 3)
CLASSES = 8  # divides the 32 rows into equal horizontal bands of 4 rows
IMAGE, LABEL = "image", "label"
FILES = 2  # TFRecord shards; tfship's held-out rule counts rows per file
DATA_GLOB = "images-*.tfrecord"  # the files `write_tfrecords` writes


def images(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 pixels [count, 32, 32, 3]; the class is the brightest of CLASSES horizontal
    bands (learnable), as `c0`..`c7`."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (count, *SHAPE), dtype=np.uint8)
    bands = pixels.reshape(count, CLASSES, -1).mean(axis=2)  # row-major: band k is rows 4k..4k+3
    return pixels, np.array([f"c{k}" for k in bands.argmax(axis=1)])


def write_tfrecords(directory: str, count: int, seed: int = 0) -> str:
    """The images as tf.Examples in FILES TFRecord files (round-robin): `image` (one bytes value,
    the PNG) and `label` (one bytes value, the class name). Returns the data glob."""
    import tensorflow as tf

    pixels, labels = images(count, seed)
    os.makedirs(directory, exist_ok=True)
    writers = [tf.io.TFRecordWriter(os.path.join(directory, f"images-{i:05d}-of-{FILES:05d}.tfrecord"))
               for i in range(FILES)]
    for index, (image, label) in enumerate(zip(pixels, labels)):
        example = tf.train.Example(features=tf.train.Features(feature={
            IMAGE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[tf.io.encode_png(image).numpy()])),
            LABEL: tf.train.Feature(bytes_list=tf.train.BytesList(value=[label.encode()])),
        }))
        writers[index % FILES].write(example.SerializeToString())
    for writer in writers:
        writer.close()
    return os.path.join(directory, DATA_GLOB)


def schema_yaml() -> str:
    return f"task: classification\nlabel: {LABEL}\nfeatures:\n  {IMAGE}: {{dtype: image, shape: {list(SHAPE)}}}\n"


def from_tfrecord(ctx: Any) -> Any:
    """The `--input` function: the TFRecord files streamed in order, tfship's held-out rule per
    file, each example's image as its encoded PNG bytes (tfship decodes them) and its label."""
    import tensorflow as tf

    from tfship.steps.train.data import is_heldout

    spec = {IMAGE: tf.io.FixedLenFeature([], tf.string), LABEL: tf.io.FixedLenFeature([], tf.string)}
    heldout = ctx.split == "heldout"

    def read(path: Any) -> Any:
        # `is_heldout` is plain arithmetic, so it runs on the record index tensor in the graph
        # (no Python in the pipeline: its iterator stays checkpointable).
        records = tf.data.TFRecordDataset(path).enumerate()
        kept = records.filter(lambda index, record: tf.equal(is_heldout(index, ctx.holdout_every), heldout))
        return kept.map(lambda index, record: record)

    rows = tf.data.Dataset.from_tensor_slices(list(ctx.files)).flat_map(read)
    return rows.map(lambda record: tf.io.parse_single_example(record, spec)).map(
        lambda row: ({IMAGE: row[IMAGE]}, row[LABEL]))


def cnn(ctx: Any) -> Any:
    """A small CNN on `inputs["image"]` ([batch, 32, 32, 3] float32 in [0, 1], decoded by tfship):
    two blocks of two 3x3 convolutions (32, then 64 filters; the second strided), about
    20 MFLOP per image forward: compute-bound on a CPU."""
    import keras

    inputs = ctx.keras_inputs()
    x = inputs[IMAGE]
    for filters in (32, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        # Downsampling by a strided convolution, not max pooling: XLA has no deterministic
        # max-pooling gradient, so `--jit` refuses models with one (docs/train.md).
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    # float32 outputs: under --mixed-precision the logits and the loss stay in float32.
    return keras.Model(inputs, keras.layers.Dense(ctx.num_outputs, dtype="float32")(x))
