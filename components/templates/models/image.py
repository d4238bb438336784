"""$name's model: a small convolutional network over 8x8 grey-scale images.

The images are stored as one float column per pixel (`p00` ... `p77`, row by row), so tfship's data,
schema, serving signatures and canary treat them like any table; the model puts the pixels back into
an 8x8x1 image and convolves. tfship hands the function a `ModelContext` (one Keras input per
feature, the number of outputs) and expects a Keras model from those inputs to logits.
"""

import keras

from tfship.models import ModelContext

SIDE = 8


def build_model(ctx: ModelContext) -> keras.Model:
    """Conv 3x3 (16) -> max-pool -> conv 3x3 (32) -> dense logits, over the pixels in row order."""
    inputs = ctx.keras_inputs()
    pixels = keras.layers.Concatenate(name="pixels")([inputs[name] for name in ctx.schema.features])
    image = keras.layers.Reshape((SIDE, SIDE, 1), name="image")(pixels)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv_1")(image)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv_2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="average")(x)
    return keras.Model(inputs, keras.layers.Dense(ctx.num_outputs, name="logits")(x), name="$package")
