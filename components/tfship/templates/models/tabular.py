"""$name's model: what `tfship train --model $package.model:build_model` builds.

tfship hands the function a `ModelContext`: one Keras input per schema feature (numeric features as
normalized floats, categorical ones as vocabulary ids), the vocabulary sizes and the number of
outputs. It returns a Keras model from those inputs to logits (one per class; one value for
regression). tfship adds the preprocessing, the loss, checkpoints, export and serving signatures.
"""

import keras

from tfship.steps.train.model_families import ModelContext


def build_model(ctx: ModelContext) -> keras.Model:
    """Two dense layers over the numeric features and an embedding per categorical one."""
    inputs = ctx.keras_inputs()
    features = keras.layers.Concatenate(name="features")([ctx.dense(inputs, name) for name in inputs])
    hidden = keras.layers.Dense(int(ctx.hparams.get("units", 32)), activation="relu", name="hidden")(features)
    hidden = keras.layers.Dense(16, activation="relu", name="hidden_2")(hidden)
    return keras.Model(inputs, keras.layers.Dense(ctx.num_outputs, name="logits")(hidden), name="$package")
