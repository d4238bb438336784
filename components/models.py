"""The model body: a built-in family, or the user's own `module:function`.

A model maps the preprocessor's output (one `[batch, 1]` input per schema feature: float32 for
numeric features, int64 ids for categorical ones, 0 = out of vocabulary) to logits
`[batch, n_classes]` for classification or `[batch, 1]` for regression. A user function receives
a `ModelContext` and returns such a Keras model::

    def my_model(ctx: tfship.models.ModelContext) -> keras.Model:
        inputs = ctx.keras_inputs()
        x = keras.layers.Concatenate()([ctx.dense(inputs, name) for name in inputs])
        return keras.Model(inputs, keras.layers.Dense(ctx.num_outputs)(x))
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import keras

from tfship.errors import ModelError
from tfship.schema import Schema, graph_name
from tfship.user_code import import_function

BUILTIN_MODELS = ("mlp", "linear")


@dataclass(frozen=True)
class ModelContext:
    """What a model function needs: the schema, hyper-parameters and vocabulary sizes."""

    schema: Schema
    vocabulary_sizes: dict[str, int]
    num_outputs: int
    hparams: dict[str, Any] = field(default_factory=dict)

    def keras_inputs(self) -> dict[str, keras.KerasTensor]:
        """One Keras input per feature, keyed by feature name and typed as the preprocessor emits them.

        Keras matches a dict of inputs by key; the layer itself is named with the feature's
        `graph_name`, since Keras refuses names such as `bill length` or `île`.
        """
        return {
            name: keras.Input(shape=(1,), name=graph_name(name), dtype="int64" if dtype == "string" else "float32")
            for name, dtype in self.schema.features.items()
        }

    def dense(self, inputs: dict[str, keras.KerasTensor], name: str) -> keras.KerasTensor:
        """A feature as dense floats: numeric as is, categorical through an embedding."""
        if name not in self.vocabulary_sizes:
            return inputs[name]
        size = self.vocabulary_sizes[name] + 1  # + the out-of-vocabulary id 0
        dim = int(self.hparams.get("embedding_dim", min(8, size)))
        embedded = keras.layers.Embedding(size, dim, name=f"{graph_name(name)}_embedding")(inputs[name])
        return keras.layers.Flatten(name=f"{graph_name(name)}_flat")(embedded)


def mlp(ctx: ModelContext) -> keras.Model:
    """Dense ReLU layers (`hidden_units`, default [64, 32]) with optional `dropout`."""
    inputs = ctx.keras_inputs()
    x = keras.layers.Concatenate(name="features")([ctx.dense(inputs, n) for n in inputs])
    for index, units in enumerate(ctx.hparams.get("hidden_units", [64, 32])):
        x = keras.layers.Dense(int(units), activation="relu", name=f"hidden_{index}")(x)
        if ctx.hparams.get("dropout"):
            x = keras.layers.Dropout(float(ctx.hparams["dropout"]), name=f"dropout_{index}")(x)
    # float32 logits under a mixed precision policy too (Keras' guide: the output layer in float32).
    logits = keras.layers.Dense(ctx.num_outputs, name="logits", dtype="float32")(x)
    return keras.Model(inputs, logits, name="mlp")


def linear(ctx: ModelContext) -> keras.Model:
    """A linear model over the (embedded) features."""
    return mlp(ModelContext(ctx.schema, ctx.vocabulary_sizes, ctx.num_outputs, {**ctx.hparams, "hidden_units": []}))


def resolve_model_fn(spec: str) -> Any:
    """`mlp` / `linear`, or `package.module:function`; fails with one line naming the problem."""
    if spec in BUILTIN_MODELS:
        return globals()[spec]
    if ":" not in spec:
        raise ModelError(
            f"Invalid --model {spec!r}: expected one of {', '.join(BUILTIN_MODELS)} "
            "or 'package.module:function'."
        )
    return import_function(spec, "--model", ModelError)


def model_source_digest(spec: str) -> str:
    """What identifies the code behind `--model`, found WITHOUT importing (running) its module.

    A built-in family is tfship's own code (`builtin:mlp`); a `module:function` is the sha256 of
    the module's source file. Recorded at train start; export compares it before importing the
    module, because a job directory names code that export runs (only the parent packages of
    the module are imported to locate it).
    """
    if spec in BUILTIN_MODELS:
        return f"builtin:{spec}"
    module_name = spec.partition(":")[0]
    try:
        found = importlib.util.find_spec(module_name) if module_name else None
    except (ImportError, ValueError) as error:
        raise ModelError(f"Cannot find the module of --model {spec!r}: {type(error).__name__}: {error}") from error
    if found is None or not found.origin or not os.path.isfile(found.origin):
        raise ModelError(f"Cannot find the source file of --model {spec!r} (module {module_name!r}).")
    with open(found.origin, "rb") as handle:
        return "sha256:" + hashlib.sha256(handle.read()).hexdigest()


def build_model(spec: str, ctx: ModelContext) -> keras.Model:
    """Build the model body and check that it fits the preprocessor's output."""
    function = resolve_model_fn(spec)
    try:
        with warnings.catch_warnings():
            # `keras_inputs` keys inputs by feature name and names the layers with graph names on
            # purpose (Keras matches dict inputs by key); Keras warns when the two differ.
            warnings.filterwarnings("ignore", message="When providing `inputs` as a dict", category=UserWarning)
            model = function(ctx)
    except Exception as error:  # Keras refusing a hyper-parameter (units=-1, dropout=2), a bad value type
        detail = str(error).splitlines()[0] if str(error) else ""
        raise ModelError(
            f"--model {spec!r} cannot be built with hyper-parameters {ctx.hparams}: {type(error).__name__}: {detail}"
        ) from error
    if not isinstance(model, keras.Model):
        raise ModelError(f"--model {spec!r} returned {type(model).__name__}; expected a keras.Model.")
    expected = set(ctx.schema.features)
    names = set(model.input_names if hasattr(model, "input_names") else [])
    if names and names != expected:
        raise ModelError(
            f"--model {spec!r}: the model's inputs {sorted(names)} differ from the schema's features "
            f"{sorted(expected)}."
        )
    return model
