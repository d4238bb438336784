"""The serving signatures tfship exports: raw features in, named predictions out.

`ServingModule` puts the job's preprocessor (vocabulary tables, normalisation constants) in front
of the Keras model inside one graph, so a client sends raw feature values and training/serving
skew cannot happen. It exports two signatures:

- `serving_default` (method predict): one input per schema feature, named like the feature, with
  the schema's dtype and shape [-1] (one value per example); an image is its encoded bytes and
  text its string (DT_STRING [-1]: TF Serving's REST API decodes `{"b64": "..."}` into any
  DT_STRING input, whatever its name; gRPC clients send the raw bytes), a vector [-1, n]. Outputs:
  classification: `class_ids` int64 [-1], `classes` string [-1], `probabilities` float32 [-1, n];
  regression: `predictions` float32 [-1].
- `classify` (method classify) or `regress` (method regress): one input `inputs`, serialized
  tf.Example protos, string [-1], as TF Serving's Classify/Regress APIs send them. Every schema
  feature must be present in each example. Outputs: classify: `classes` string [-1, n] and
  `scores` float32 [-1, n] (the probabilities); regress: `outputs` float32 [-1].

Why not `tf.saved_model.save(model)`: a Keras 3 model saved that way loads in TF2 but not in the
session-based loader TF Serving uses (its variables are not found). The module therefore tracks
`[v.value for v in model.variables]` (the backing tf.Variables) and reaches the Keras model only
through the traced functions' closures.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
from tfship.saved_model.loader import CLASSIFY_METHOD, REGRESS_METHOD
from tfship.schema import graph_name
from tfship.tfserving import SERVING_DEFAULT

EXAMPLE_INPUT = "inputs"  # TF Serving's Classify/Regress feed the signature input with this key
CLASSIFY_SIGNATURE = "classify"
REGRESS_SIGNATURE = "regress"

# tf.Example holds float32, int64 or bytes; other schema dtypes are parsed as these and cast.
_EXAMPLE_DTYPES = {"float32": tf.float32, "float64": tf.float32, "int32": tf.int64, "int64": tf.int64,
                   "string": tf.string}


def example_signature_name(task: str) -> str:
    """`classify` for classification, `regress` for regression."""
    return CLASSIFY_SIGNATURE if task == "classification" else REGRESS_SIGNATURE


def example_method(task: str) -> str:
    """The SignatureDef method_name TF Serving's Classify or Regress API requires."""
    return CLASSIFY_METHOD if task == "classification" else REGRESS_METHOD


class ServingModule(tf.Module):
    """Preprocessor + Keras model, with the serving signatures as traced tf.functions.

    Args:
        preprocessor: a tf.Module; `preprocessor(raw)` maps {feature: [batch] tensor} to the
            model's input dict. Tracked, so its lookup tables' vocabulary files become assets.
        model: the Keras 3 model; outputs logits [batch, n_classes] or [batch, 1].
        features: feature name -> the dtype clients send ("float32", "float64", "int32", "int64",
            "string"; `Schema.raw_dtypes`: images and text are "string").
        task: "classification" or "regression".
        class_names: the label vocabulary (index = class id); required for classification.
        shapes: feature name -> per-example shape for vector features (e.g. (16,)); others take
            one value per example.
    """

    def __init__(
        self,
        preprocessor: tf.Module,
        model: Any,
        features: dict[str, str],
        task: str,
        class_names: list[str] | None,
        shapes: dict[str, tuple[int, ...]] | None = None,
    ) -> None:
        super().__init__(name="tfship_serving")
        if task == "classification" and not class_names:
            raise ValueError("A classification export needs the class names (the label vocabulary).")
        self.preprocessor = preprocessor
        # The backing tf.Variables: what makes the SavedModel loadable by TF Serving.
        self.model_variables = [v.value for v in model.variables]
        self.task = task
        self._features = dict(features)
        names = tf.constant([str(c) for c in class_names or []], dtype=tf.string)

        def logits(raw: dict[str, tf.Tensor]) -> tf.Tensor:
            return tf.cast(model(preprocessor(raw), training=False), tf.float32)

        def predict_outputs(raw: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            out = logits(raw)
            if task == "regression":
                return {"predictions": tf.reshape(out, [-1])}
            probabilities = tf.nn.softmax(out, axis=-1)
            class_ids = tf.argmax(out, axis=-1, output_type=tf.int64)
            return {
                "class_ids": class_ids,
                "classes": tf.gather(names, class_ids),
                "probabilities": probabilities,
            }

        # Placeholders take the graph name (TensorFlow renames `île`); export restores the feature
        # names as the signature's input keys (`tfship.steps.export.step.set_signature_names`).
        shapes = shapes or {}
        raw_spec = {name: tf.TensorSpec([None, *shapes.get(name, ())], tf.as_dtype(dtype), name=graph_name(name))
                    for name, dtype in features.items()}
        parse_spec = {name: tf.io.FixedLenFeature(list(shapes.get(name, ())), _EXAMPLE_DTYPES[dtype])
                      for name, dtype in features.items()}

        @tf.function(input_signature=[raw_spec])
        def serve_raw(raw: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            return predict_outputs(raw)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLE_INPUT)])
        def serve_examples(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
            parsed = tf.io.parse_example(serialized, parse_spec)
            raw = {name: tf.cast(parsed[name], tf.as_dtype(features[name])) for name in features}
            out = predict_outputs(raw)
            if task == "regression":
                return {"outputs": out["predictions"]}
            batch = tf.shape(serialized)[0]
            n = len(class_names)
            classes = tf.ensure_shape(tf.tile(names[tf.newaxis, :], [batch, 1]), [None, n])
            return {"classes": classes, "scores": out["probabilities"]}

        self.serve_raw = serve_raw
        self.serve_examples = serve_examples

    def signatures(self) -> dict[str, Any]:
        """The concrete functions to pass to `tf.saved_model.save(..., signatures=...)`."""
        return {
            SERVING_DEFAULT: self.serve_raw.get_concrete_function(),
            example_signature_name(self.task): self.serve_examples.get_concrete_function(),
        }

    def method_names(self) -> dict[str, str]:
        """Signature -> method_name to set after saving (tf.saved_model.save writes predict)."""
        return {example_signature_name(self.task): example_method(self.task)}
