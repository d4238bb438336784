"""Tests of $name's model function: how to test your own model before tfship trains it.

They build the model as `tfship train` does (`tfship.models.build_model`, with the schema and a
vocabulary size for every categorical feature), check what it returns, and check that it can learn
(a few steps on a fixed batch lower the loss). Fast: no tfship run, no files written.
"""

import csv
from pathlib import Path

import keras
import numpy as np

from tfship.models import ModelContext, build_model
from tfship.project import load_project
from tfship.schema import load_schema

ROOT = Path(__file__).resolve().parents[1]
CONFIG = load_project(str(ROOT / "tfship.yaml")).chain
SCHEMA = load_schema(CONFIG.schema)


def context() -> ModelContext:
    """What train hands the model function: the schema, vocabulary sizes (from the data) and outputs."""
    with open(CONFIG.data, newline="") as handle:
        rows = list(csv.DictReader(handle))
    vocabularies = {name: len({row[name] for row in rows}) for name in SCHEMA.categorical_features}
    classes = len({row[SCHEMA.label] for row in rows}) if SCHEMA.task == "classification" else 1
    return ModelContext(SCHEMA, vocabularies, classes)


def batch(ctx: ModelContext, size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs as the preprocessor emits them: [size, 1] floats, or ids (0 = out of vocabulary)."""
    rng = np.random.default_rng(seed)
    return {name: (rng.integers(0, ctx.vocabulary_sizes[name] + 1, (size, 1)) if dtype == "string"
                   else rng.normal(size=(size, 1)).astype("float32"))
            for name, dtype in SCHEMA.features.items()}


def test_the_model_gives_one_logit_per_class():
    ctx = context()
    model = build_model(CONFIG.model, ctx)  # the function tfship.yaml names
    assert model(batch(ctx, 5)).shape == (5, ctx.num_outputs)


def test_the_model_learns_a_fixed_batch():
    ctx = context()
    keras.utils.set_random_seed(0)
    model = build_model(CONFIG.model, ctx)
    inputs = batch(ctx, 64)
    labels = np.random.default_rng(1).integers(0, ctx.num_outputs, 64)
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = model.evaluate(inputs, labels, verbose=0)
    model.fit(inputs, labels, epochs=30, batch_size=64, verbose=0)
    assert model.evaluate(inputs, labels, verbose=0) < 0.8 * before

