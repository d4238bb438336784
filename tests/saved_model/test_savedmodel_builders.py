"""Tiny real models for the export, validate and savedmodel tests (no tests in this module).

Each builder writes a real SavedModel with real TensorFlow; they are small enough to save in well
under a second. `tiny_job` is a real `tfship.steps.train.job.TrainedJob` over the real preprocessor and model
family, with held-out rows given in memory instead of read from a data file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FEATURES = {"a": "float32", "b": "int64", "c": "string"}
CLASSES = ["k0", "k1", "k2"]
VOCABULARY = ["x", "y", "z"]
HELDOUT = [
    {"a": 0.5, "b": 1, "c": "x"},
    {"a": -1.25, "b": 4, "c": "q"},  # "q" is out of vocabulary
    {"a": 3.0, "b": 0, "c": "z"},
]


def raw_batch(n: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    """n raw rows in the dtypes of FEATURES, including an out-of-vocabulary string."""
    rng = np.random.default_rng(seed)
    return {
        "a": rng.normal(size=n).astype(np.float32),
        "b": rng.integers(0, 6, size=n).astype(np.int64),
        "c": np.array([[b"x", b"y", b"z", b"q"][i % 4] for i in range(n)], dtype=object),
    }


def tiny_job(directory: str, task: str = "classification", heldout: list | None = None) -> Any:
    """A TrainedJob with a freshly initialised mlp (weights random but fixed by the seed)."""
    import keras
    from tfship.steps.train.data import FeatureStats
    from tfship.steps.train.job import TrainedJob
    from tfship.steps.train.model_families import ModelContext, mlp
    from tfship.steps.train.preprocessing import Preprocessor, write_vocabularies
    from tfship.schema import Schema

    keras.utils.set_random_seed(0)
    label = "species" if task == "classification" else "mass"
    schema = Schema.from_dict({"task": task, "label": label, "features": dict(FEATURES)})
    classes = list(CLASSES) if task == "classification" else None
    stats = FeatureStats(
        means={"a": 1.0, "b": 2.0}, stddevs={"a": 2.0, "b": 1.5}, vocabularies={"c": list(VOCABULARY)},
        classes=classes,
    )
    preprocessor = Preprocessor(schema, stats, write_vocabularies(stats, os.path.join(directory, "vocabularies")))
    model = mlp(ModelContext(schema, preprocessor.vocabulary_sizes, preprocessor.num_outputs, {"hidden_units": [8]}))
    rows = HELDOUT if heldout is None else heldout

    @dataclass
    class InMemoryJob(TrainedJob):
        rows: list = field(default_factory=list)

        def heldout_rows(self, n: int) -> list[dict[str, Any]]:
            return [dict(r) for r in self.rows[:n]]

    return InMemoryJob(
        job_dir=directory, schema=schema, preprocessor=preprocessor, model=model, class_names=classes,
        step=42, metrics={"heldout_accuracy": 0.5}, fingerprints={"data": "d1", "code": "c1"}, data="",
        rows=rows,
    )


def keras_reference(job: Any, raw: dict[str, np.ndarray]) -> np.ndarray:
    """The Keras model's own output on raw features (through the same preprocessor), in TF2."""
    import tensorflow as tf

    tensors = {k: tf.constant(v) for k, v in raw.items()}
    return job.model(job.preprocessor(tensors), training=False).numpy()


def keras_sequential(seed: int = 0) -> Any:
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((2,), name="x"), keras.layers.Dense(3, name="dense")], name="seq")


def keras_export(path: str, seed: int = 0) -> Any:
    """A Keras 3 model written with `model.export()` (servable); returns the model."""
    model = keras_sequential(seed)
    model.export(path, format="tf_saved_model", verbose=False)
    return model


def naive_keras_module(path: str) -> None:
    """A tf.Module wrapping a Keras 3 model, saved naively: loads in TF2, not in TF Serving."""
    import tensorflow as tf

    model = keras_sequential()
    module = tf.Module()
    module.model = model
    module.serve = tf.function(
        lambda x: {"y": module.model(x)}, input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")]
    )
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})


def plain_module(path: str, outputs: str = "good") -> None:
    """A plain tf.Module with one tf.Variable: y = w * x, and "probabilities" over 2 classes.

    outputs="bad" returns NaN in `y` and probabilities that sum to 1.4, for the output checks.
    """
    import tensorflow as tf

    module = tf.Module()
    module.w = tf.Variable(2.0)

    def serve(x):
        y = module.w * x
        logits = tf.stack([x, -x], axis=-1)
        if outputs == "bad":
            return {"y": tf.math.log(-tf.abs(x) - 1.0), "probabilities": tf.fill(tf.shape(logits), 0.7)}
        return {"y": y, "probabilities": tf.nn.softmax(logits)}

    module.serve = tf.function(serve, input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
