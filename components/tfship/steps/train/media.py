"""Images and text as TensorFlow ops: the one definition that training, analysis and serving share.

`decode_images` and `token_ids` run inside the graph (in tf.data for training and in front of
the model in the exported SavedModel), so a served model decodes, resizes and tokenises exactly
as training did. `tokenize` also runs eagerly, in batches, in the streaming analysis pass that
learns the vocabulary; `check_image` validates one training image there, so a file that does
not decode is reported with its file and row before training starts.

Tokens: lower-cased (Unicode-aware), the punctuation Keras' `TextVectorization` strips by default
replaced by spaces, split on whitespace. Token ids: 0 pads, 1 is out of vocabulary, 2.. index the
vocabulary file (most frequent token first). Not `keras.layers.TextVectorization` itself: its
vocabulary becomes constants in the graph, and tfship ships vocabularies as asset files that
the lookup tables read (TF Serving loads them with the model; see `tfship.steps.train.preprocessing`).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from tfship.errors import DataError

PAD_ID = 0
OOV_TOKEN_ID = 1
FIRST_TOKEN_ID = 2
# The characters keras.layers.TextVectorization's default standardisation removes.
_PUNCTUATION = r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']'


def tokenize(texts: tf.Tensor) -> tf.RaggedTensor:
    """Texts [batch] -> their tokens, ragged [batch, None] (see the module docstring)."""
    lowered = tf.strings.lower(texts, encoding="utf-8")
    return tf.strings.split(tf.strings.regex_replace(lowered, _PUNCTUATION, " "))


def token_ids(texts: tf.Tensor, table: tf.lookup.StaticHashTable, sequence_length: int) -> tf.Tensor:
    """Texts [batch] -> int64 token ids [batch, sequence_length], truncated or padded with 0.

    `table` maps a vocabulary token to its line number and anything else to -1.
    """
    tokens = tokenize(texts)
    ids = tf.ragged.map_flat_values(lambda flat: table.lookup(flat) + FIRST_TOKEN_ID, tokens)
    ids = tf.ragged.map_flat_values(lambda flat: tf.where(flat < FIRST_TOKEN_ID, tf.constant(OOV_TOKEN_ID, tf.int64),
                                                          flat), ids)
    return ids.to_tensor(default_value=PAD_ID, shape=[None, sequence_length])


def decode_images(encoded: tf.Tensor, shape: tuple[int, ...]) -> tf.Tensor:
    """Encoded images (PNG, JPEG, GIF, BMP bytes) [batch] -> float32 [batch, h, w, c] in [0, 1].

    Each image is decoded to `c` channels (a grayscale image sent to an RGB model is converted,
    as `tf.io.decode_image` does) and resized to h x w (bilinear). An undecodable image fails the
    batch with TensorFlow's InvalidArgumentError.
    """
    height, width, channels = shape

    def decode_one(data: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_image(data, channels=channels, dtype=tf.float32, expand_animations=False)
        return tf.image.resize(image, (height, width))

    return tf.map_fn(decode_one, encoded, fn_output_signature=tf.TensorSpec((height, width, channels), tf.float32))


def check_image(data: bytes, channels: int, where: str) -> None:
    """Refuse (DataError naming `where`) a training image that does not decode or has other channels.

    Serving converts channels leniently; training data with the wrong number of channels is a
    sign of the wrong files or the wrong schema, so it is refused.
    """
    try:
        image = tf.io.decode_image(data, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as error:
        reason = error.message.splitlines()[0] if error.message else type(error).__name__
        raise DataError(f"{where}: not a decodable image (PNG, JPEG, GIF or BMP): {reason}") from None
    found = int(image.shape[-1])
    if found != channels:
        raise DataError(f"{where}: the image has {found} channel(s); the schema's shape says {channels}.")


def count_tokens(texts: list[str], counter: Any) -> None:
    """Add the tokens of `texts` (one batch of the analysis pass) to `counter` (a Counter of str)."""
    if texts:
        tokens = tokenize(tf.constant(texts, tf.string)).flat_values.numpy()
        counter.update(token.decode("utf-8") for token in tokens)
