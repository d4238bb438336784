"""The model body: a built-in family, or the user's own `module:function`.

A model maps the preprocessor's output (one input per schema feature: `[batch, 1]` float32 for
numeric features and int64 ids for categorical ones, 0 = out of vocabulary; `[batch, h, w, c]`
float32 in [0, 1] for an image; `[batch, sequence_length]` int64 token ids for text, 0 = padding,
1 = out of vocabulary; `[batch, n]` float32 for a vector) to logits `[batch, n_classes]` for
classification or `[batch, 1]` for regression. The built-in families turn each feature into
dense floats by its kind (`ModelContext.dense`: an embedding for categories, a small CNN for an
image, an embedding averaged over the tokens for text), so `mlp` over an image feature is a
small CNN and over a text feature an embedding-and-pooling model. A user function receives a
`ModelContext` and returns such a Keras model::

    def my_model(ctx: tfship.steps.train.model_families.ModelContext) -> keras.Model:
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
from tfship.steps.train.user_code import import_function

BUILTIN_MODELS = ("mlp", "linear")


@dataclass(frozen=True)
class ModelContext:
    """What a model function needs: the schema, hyper-parameters and vocabulary sizes."""

    schema: Schema
    vocabulary_sizes: dict[str, int]
    num_outputs: int
    hparams: dict[str, Any] = field(default_factory=dict)

    def keras_inputs(self) -> dict[str, keras.KerasTensor]:
        """One Keras input per feature, keyed by feature name, typed and shaped as the preprocessor
        emits them (images as float tensors, text as token ids; see the module docstring).

        Keras matches a dict of inputs by key; the layer itself is named with the feature's
        `graph_name`, since Keras refuses names such as `bill length` or `île`.
        """
        schema = self.schema
        inputs = {}
        for name, dtype in schema.features.items():
            if name in schema.image_features or name in schema.vector_features:
                shape, input_dtype = schema.shape_of(name), "float32"
            elif name in schema.text_features:
                shape, input_dtype = (schema.options[name]["sequence_length"],), "int64"
            else:
                shape, input_dtype = (1,), "int64" if dtype == "string" else "float32"
            inputs[name] = keras.Input(shape=shape, name=graph_name(name), dtype=input_dtype)
        return inputs

    def dense(self, inputs: dict[str, keras.KerasTensor], name: str) -> keras.KerasTensor:
        """A feature as dense floats [batch, k], by its kind.

        Numeric and vector features as they are; a category through an embedding (`embedding_dim`,
        default min(8, vocabulary + 1)); text through an embedding (`text_embedding_dim`, default
        16) averaged over its tokens, padding masked; an image through a small CNN
        (`conv_filters`, default [16, 32]: 3x3 ReLU convolutions, each followed by 2x2 max
        pooling, then flattened: where a stroke is matters, so no global pooling).
        """
        layer = graph_name(name)
        if name in self.schema.image_features:
            x = inputs[name]
            filters = [int(f) for f in self.hparams.get("conv_filters", [16, 32])]
            for index, count in enumerate(filters):
                x = keras.layers.Conv2D(count, 3, padding="same", activation="relu", name=f"{layer}_conv_{index}")(x)
                x = keras.layers.MaxPooling2D(2, padding="same", name=f"{layer}_pool_{index}")(x)
            return keras.layers.Flatten(name=f"{layer}_features")(x)
        if name in self.schema.text_features:
            size = self.vocabulary_sizes[name] + 2  # + padding 0 and out-of-vocabulary 1
            dim = int(self.hparams.get("text_embedding_dim", 16))
            embedded = keras.layers.Embedding(size, dim, mask_zero=True, name=f"{layer}_embedding")(inputs[name])
            return keras.layers.GlobalAveragePooling1D(name=f"{layer}_mean")(embedded)
        if name not in self.schema.categorical_features:
            return inputs[name]
        size = self.vocabulary_sizes[name] + 1  # + the out-of-vocabulary id 0
        dim = int(self.hparams.get("embedding_dim", min(8, size)))
        embedded = keras.layers.Embedding(size, dim, name=f"{layer}_embedding")(inputs[name])
        return keras.layers.Flatten(name=f"{layer}_flat")(embedded)


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
