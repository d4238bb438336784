"""Preprocessing inside the graph: raw feature values in, model inputs out.

The same `Preprocessor` feeds the model in training (inside tf.data) and sits in front of it in
the exported SavedModel, so a client sends raw values and training/serving skew is impossible.
Vocabularies are text files read through `TextFileInitializer`, so `tf.saved_model.save` ships
them as assets; normalisation statistics are constants in the graph.

Numeric features: (x - mean) / stddev, missing (NaN) -> 0, the training mean. Categorical
features: id of the value in the vocabulary, 1..V; 0 is the out-of-vocabulary id. Images:
decoded and resized to the schema's shape, float32 in [0, 1]. Text: `sequence_length` token ids
(`tfship.steps.train.media.token_ids`; the vocabulary file is an asset like a categorical one). Vectors:
float32 values as they are.
"""

from __future__ import annotations

import os

import tensorflow as tf

from tfship.steps.train.data import FeatureStats
from tfship.steps.train.job import LABEL_VOCABULARY, vocabulary_file_name
from tfship.steps.train.media import decode_images, token_ids
from tfship.schema import Schema


def write_vocabularies(stats: FeatureStats, directory: str) -> dict[str, str]:
    """Write one vocabulary file per categorical feature (and `_label` for the classes); name -> path."""
    os.makedirs(directory, exist_ok=True)
    paths: dict[str, str] = {}
    vocabularies = dict(stats.vocabularies)
    if stats.classes is not None:
        vocabularies[LABEL_VOCABULARY] = stats.classes
    for name, values in vocabularies.items():
        path = os.path.join(directory, vocabulary_file_name(name))
        with open(path, "w", encoding="utf-8") as handle:
            handle.writelines(f"{value}\n" for value in values)
        paths[name] = path
    return paths


def _table(path: str) -> tf.lookup.StaticHashTable:
    initializer = tf.lookup.TextFileInitializer(
        path,
        key_dtype=tf.string,
        key_index=tf.lookup.TextFileIndex.WHOLE_LINE,
        value_dtype=tf.int64,
        value_index=tf.lookup.TextFileIndex.LINE_NUMBER,
    )
    return tf.lookup.StaticHashTable(initializer, default_value=-1)


class Preprocessor(tf.Module):
    """Maps raw features ({name: [batch] or [batch, n]} tensors) to model inputs.

    Model inputs: [batch, 1] for numeric and categorical features, [batch, h, w, c] float32 for
    an image, [batch, sequence_length] int64 for text, [batch, n] float32 for a vector.
    """

    def __init__(self, schema: Schema, stats: FeatureStats, vocabulary_files: dict[str, str]) -> None:
        super().__init__(name="tfship_preprocessor")
        self.schema = schema
        self.means = {n: float(stats.means[n]) for n in schema.numeric_features}
        self.stddevs = {n: float(stats.stddevs[n]) for n in schema.numeric_features}
        looked_up = [*schema.categorical_features, *schema.text_features]
        self.vocabulary_sizes = {n: len(stats.vocabularies[n]) for n in looked_up}
        self.tables = {n: _table(vocabulary_files[n]) for n in looked_up}
        self.classes = list(stats.classes) if stats.classes is not None else None
        self.label_table = _table(vocabulary_files[LABEL_VOCABULARY]) if self.classes is not None else None

    def __call__(self, raw: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        inputs: dict[str, tf.Tensor] = {}
        for name in self.schema.numeric_features:
            value = tf.cast(raw[name], tf.float32)
            scaled = (value - self.means[name]) / self.stddevs[name]
            inputs[name] = tf.expand_dims(tf.where(tf.math.is_nan(scaled), 0.0, scaled), -1)
        for name in self.schema.categorical_features:
            ids = self.tables[name].lookup(tf.convert_to_tensor(raw[name], tf.string)) + 1
            inputs[name] = tf.expand_dims(ids, -1)
        for name in self.schema.image_features:
            inputs[name] = decode_images(tf.convert_to_tensor(raw[name], tf.string), self.schema.shape_of(name))
        for name in self.schema.text_features:
            length = self.schema.options[name]["sequence_length"]
            inputs[name] = token_ids(tf.convert_to_tensor(raw[name], tf.string), self.tables[name], length)
        for name in self.schema.vector_features:
            inputs[name] = tf.cast(raw[name], tf.float32)
        return inputs

    def encode_label(self, label: tf.Tensor) -> tf.Tensor:
        """Class name -> class id (classification) or the float target (regression)."""
        if self.label_table is None:
            return tf.cast(label, tf.float32)
        return self.label_table.lookup(label)

    @property
    def num_outputs(self) -> int:
        return len(self.classes) if self.classes is not None else 1
