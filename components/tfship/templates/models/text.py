"""$name's model: a small 1-D convolutional network over the words of each text feature.

tfship tokenises the text inside the graph (in training and in the exported SavedModel alike):
lower-cased, punctuation dropped, split on whitespace, each word looked up in the vocabulary
learned from the training rows. The model therefore receives token ids, `[batch, sequence_length]`
int64 per text feature: 0 pads, 1 is a word not in the vocabulary, 2.. the vocabulary's words.
tfship hands the function a `ModelContext` (one Keras input per feature, the vocabulary sizes, the
number of outputs) and expects a Keras model from those inputs to logits.
"""

import keras

from tfship.steps.train.media import FIRST_TOKEN_ID
from tfship.steps.train.model_families import ModelContext
from tfship.schema import graph_name


def build_model(ctx: ModelContext) -> keras.Model:
    """Per text feature: word embeddings (`embedding_dim`, default 32) -> conv over 3-word windows
    (`filters`, default 64) -> max over the text (the strongest match of each filter anywhere in
    it); other features as tfship's `ctx.dense` makes them; then dense logits."""
    inputs = ctx.keras_inputs()
    embedding_dim = int(ctx.hparams.get("embedding_dim", 32))
    filters = int(ctx.hparams.get("filters", 64))
    parts = []
    for name in inputs:
        if name not in ctx.schema.text_features:
            parts.append(ctx.dense(inputs, name))
            continue
        layer = graph_name(name)  # a name Keras accepts for layers, whatever the column is called
        # The ids run from 0 to vocabulary size + FIRST_TOKEN_ID - 1 (padding and unknown words first).
        words = keras.layers.Embedding(ctx.vocabulary_sizes[name] + FIRST_TOKEN_ID, embedding_dim,
                                       name=f"{layer}_embedding")(inputs[name])
        windows = keras.layers.Conv1D(filters, 3, padding="same", activation="relu", name=f"{layer}_conv")(words)
        parts.append(keras.layers.GlobalMaxPooling1D(name=f"{layer}_max")(windows))
    features = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="features")(parts)
    return keras.Model(inputs, keras.layers.Dense(ctx.num_outputs, name="logits")(features), name="$package")
