"""Tests of $name's model function: how to test your own model before tfship trains it.

They build the model as `tfship train` does (`tfship.steps.train.model_families.build_model`, with the schema and the
vocabulary sizes and classes that tfship's own analysis pass learns from the data), check what it
returns, and check that it can learn (a few steps on a fixed batch lower the loss). Fast: no
tfship run, no files written.
"""

from pathlib import Path

import keras
import numpy as np

from tfship.steps.train.data import analyze, resolve_files
from tfship.steps.train.media import FIRST_TOKEN_ID
from tfship.steps.train.model_families import ModelContext, build_model
from tfship.chain.project import load_project
from tfship.schema import load_schema
from tfship.steps.train.step import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
CONFIG = load_project(str(ROOT / "tfship.yaml")).chain
SCHEMA = load_schema(CONFIG.schema)


def context() -> ModelContext:
    """What train hands the model function: the schema, vocabulary sizes and number of outputs,
    from the same pass over the training rows that `tfship train` makes."""
    stats = analyze(resolve_files(CONFIG.data), SCHEMA, TrainConfig.holdout_every)
    vocabularies = {name: len(stats.vocabularies[name]) for name in stats.vocabularies}
    return ModelContext(SCHEMA, vocabularies, len(stats.classes) if stats.classes else 1)


def batch(ctx: ModelContext, size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs as the preprocessor emits them: an image as [size, height, width, channels]
    floats in [0, 1], text as [size, sequence_length] token ids (0 pads, 1 = unknown word), a
    category as [size, 1] ids (0 = out of vocabulary), a vector as [size, n] and a number as
    [size, 1] normalised floats."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for name in SCHEMA.features:
        if name in SCHEMA.image_features:
            inputs[name] = rng.random((size, *SCHEMA.shape_of(name)), dtype=np.float32)
        elif name in SCHEMA.text_features:
            shape = (size, SCHEMA.options[name]["sequence_length"])
            inputs[name] = rng.integers(0, ctx.vocabulary_sizes[name] + FIRST_TOKEN_ID, shape)
        elif name in SCHEMA.categorical_features:
            inputs[name] = rng.integers(0, ctx.vocabulary_sizes[name] + 1, (size, 1))
        elif name in SCHEMA.vector_features:
            inputs[name] = rng.normal(size=(size, *SCHEMA.shape_of(name))).astype("float32")
        else:
            inputs[name] = rng.normal(size=(size, 1)).astype("float32")
    return inputs


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
    model.fit(inputs, labels, epochs=60, batch_size=64, verbose=0)
    assert model.evaluate(inputs, labels, verbose=0) < 0.8 * before

