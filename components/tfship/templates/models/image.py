"""$name's model: a small convolutional network over each image feature.

tfship decodes the images inside the graph (in training and in the exported SavedModel alike, so
the served model takes the encoded PNG/JPEG bytes): the model receives each image feature as
`[batch, height, width, channels]` float32 in [0, 1], the shape the schema declares. tfship hands
the function a `ModelContext` (one Keras input per feature, the number of outputs) and expects a
Keras model from those inputs to logits.
"""

import keras

from tfship.steps.train.model_families import ModelContext
from tfship.schema import graph_name


def build_model(ctx: ModelContext) -> keras.Model:
    """Per image feature: conv 3x3 (`filters`, default 16) -> max-pool -> conv 3x3 (twice the
    filters) -> flatten (which keeps where each stroke is: about 95 % held-out accuracy on the
    digits in 300 steps, against 65 % when averaging over the image; for large images, downsample
    more before flattening); other features as tfship's `ctx.dense` makes them; then dense logits.
    (Max pooling has no deterministic XLA gradient: `--jit` needs strided convolutions instead,
    docs/train.md.)"""
    inputs = ctx.keras_inputs()
    filters = int(ctx.hparams.get("filters", 16))
    parts = []
    for name in inputs:
        if name not in ctx.schema.image_features:
            parts.append(ctx.dense(inputs, name))
            continue
        layer = graph_name(name)  # a name Keras accepts for layers, whatever the column is called
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"{layer}_conv_1")(inputs[name])
        x = keras.layers.MaxPooling2D(name=f"{layer}_pool")(x)
        x = keras.layers.Conv2D(2 * filters, 3, padding="same", activation="relu", name=f"{layer}_conv_2")(x)
        parts.append(keras.layers.Flatten(name=f"{layer}_flat")(x))
    features = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="features")(parts)
    return keras.Model(inputs, keras.layers.Dense(ctx.num_outputs, name="logits")(features), name="$package")
