"""The schema file: which columns are features, their dtypes, the label and the task.

```yaml
task: classification        # or regression
label: label                # the label column
features:
  f0: float32
  colour: string            # categorical: vocabulary learned from the training data
  digit: {dtype: image, shape: [28, 28, 1]}     # encoded PNG/JPEG/GIF/BMP bytes, decoded in the graph
  review: {dtype: text, max_tokens: 20000, sequence_length: 128}   # free text, tokenised in the graph
  embedding: {dtype: float32, shape: [16]}      # a fixed-length vector (TFRecord only)
na_values: ["NA", ""]       # optional: cells read as missing (numeric -> mean, string -> OOV)
```
An image is a bytes feature in TFRecord, or in CSV a path to the file relative to the CSV; it is
resized to `shape` (height, width) and must have `shape[2]` channels. A text feature's vocabulary
(`max_tokens` most frequent words) is learned from the training rows; each text becomes
`sequence_length` token ids. Clients send images as encoded bytes and text as strings.
CSV header names are the feature names; TFRecord files hold tf.Example with those keys. Any
name is allowed (`bill length`, `île`): clients see it unchanged in the serving signatures and the
contract; Keras layers, graph nodes and vocabulary files use its `graph_name`.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any


from tfship import storage
from tfship.errors import SchemaError
from tfship.text import decode_utf8, parse_yaml

TASKS = ("classification", "regression")
NUMERIC_DTYPES = ("float32", "float64", "int32", "int64")
IMAGE = "image"
TEXT = "text"
DTYPES = (*NUMERIC_DTYPES, "string", IMAGE, TEXT)
# The options a feature given as a mapping may carry, per dtype (`dtype` itself aside).
_FEATURE_OPTIONS = {IMAGE: ("shape",), TEXT: ("max_tokens", "sequence_length"), "float32": ("shape",)}
DEFAULT_MAX_TOKENS = 20_000
DEFAULT_SEQUENCE_LENGTH = 128
_KNOWN_KEYS = {"task", "label", "features", "na_values", "label_dtype"}
# A name Keras accepts as a layer/scope name, TensorFlow as a node name and tf.function as a
# parameter name, and any file system as a file name.
_GRAPH_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def graph_name(name: str) -> str:
    """`name` itself when Keras and TensorFlow accept it, else an ASCII stand-in that is stable
    and unique: `île` -> `ile_5f1c5d3a` (the letters kept, a hash of the original appended).

    Keras refuses layer names such as `île_embedding` or `bill length_embedding` (not valid
    scope names), and TensorFlow renames such placeholders; this is the one place that decides
    the internal name, so training, export and the job directory agree.
    """
    if _GRAPH_NAME.fullmatch(name):
        return name
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    stem = re.sub(r"[^A-Za-z0-9_]+", "_", ascii_name).strip("_")
    if not stem[:1].isalpha():
        stem = f"f_{stem}".rstrip("_")
    return f"{stem}_{hashlib.sha256(name.encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class Schema:
    """A validated schema. Build it with `load_schema(path)` or `Schema.from_dict(mapping)`."""

    task: str
    label: str
    features: dict[str, str]
    na_values: tuple[str, ...] = ()
    label_dtype: str = field(default="")
    # Per-feature settings of image, text and vector features: {"shape": [h, w, c]} for an image,
    # {"shape": [n]} for a float32 vector, {"max_tokens": .., "sequence_length": ..} for text.
    options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise SchemaError(f"Invalid `task`: {self.task!r}. Expected one of {', '.join(TASKS)}.")
        if not isinstance(self.label, str) or not self.label:
            raise SchemaError(f"Invalid `label`: {self.label!r}. Expected the label column's name.")
        if not isinstance(self.features, dict) or not self.features:
            raise SchemaError("Invalid `features`: expected a mapping of feature name to dtype.")
        for name, dtype in self.features.items():
            if dtype not in DTYPES:
                raise SchemaError(
                    f"Invalid dtype for feature {name!r}: {dtype!r}. Expected one of {', '.join(DTYPES)}."
                )
        object.__setattr__(self, "options", {name: _checked_options(name, self.features.get(name), value)
                                             for name, value in self.options.items()})
        for name, dtype in self.features.items():
            if dtype == IMAGE and name not in self.options:
                raise SchemaError(f"Image feature {name!r} needs a shape: {{dtype: image, shape: [height, width, "
                                  "channels]}.")
            if dtype == TEXT and name not in self.options:
                self.options[name] = _checked_options(name, TEXT, {})
        if self.label in self.features:
            raise SchemaError(f"The label {self.label!r} is also listed under `features`.")
        internal: dict[str, str] = {}
        for name in self.features:
            clash = internal.setdefault(graph_name(name), name)
            if clash != name:
                raise SchemaError(f"Features {clash!r} and {name!r} both map to the internal name {graph_name(name)!r}; "
                                  "rename one of them.")
        default_label = "string" if self.task == "classification" else "float32"
        label_dtype = self.label_dtype or default_label
        wrong_kind = "string" if self.task == "regression" else "float"
        if label_dtype not in (*NUMERIC_DTYPES, "string") or label_dtype.startswith(wrong_kind):
            raise SchemaError(f"Invalid `label_dtype`: {label_dtype!r} for a {self.task} task.")
        object.__setattr__(self, "label_dtype", label_dtype)

    @property
    def numeric_features(self) -> list[str]:
        """Features holding one number per example (normalised with the training mean and deviation)."""
        return [n for n, d in self.features.items() if d in NUMERIC_DTYPES and n not in self.options]

    @property
    def categorical_features(self) -> list[str]:
        return [n for n, d in self.features.items() if d == "string"]

    @property
    def image_features(self) -> list[str]:
        return [n for n, d in self.features.items() if d == IMAGE]

    @property
    def text_features(self) -> list[str]:
        return [n for n, d in self.features.items() if d == TEXT]

    @property
    def vector_features(self) -> list[str]:
        """float32 features with a `shape`: a fixed number of values per example, fed as they are."""
        return [n for n, d in self.features.items() if d in NUMERIC_DTYPES and n in self.options]

    def shape_of(self, name: str) -> tuple[int, ...]:
        """The per-example shape the model sees: (h, w, c) for an image, (n,) for a vector, () else."""
        return tuple(self.options.get(name, {}).get("shape", ()))

    def raw_dtype(self, column: str) -> str:
        """The dtype of a column's raw values (and of a feature's serving input): images as encoded
        bytes and text as strings ("string")."""
        dtype = self.dtype_of(column)
        return "string" if dtype in (IMAGE, TEXT) else dtype

    @property
    def raw_dtypes(self) -> dict[str, str]:
        """Feature name -> the dtype of its serving input (`raw_dtype`)."""
        return {name: self.raw_dtype(name) for name in self.features}

    def raw_shape(self, name: str) -> tuple[int, ...]:
        """The per-example shape of a serving input: (n,) for a vector, () else (an image is one string)."""
        return self.shape_of(name) if name in self.vector_features else ()

    @property
    def columns(self) -> list[str]:
        """Every column the data must have: the features, then the label."""
        return [*self.features, self.label]

    def dtype_of(self, column: str) -> str:
        return self.label_dtype if column == self.label else self.features[column]

    @classmethod
    def from_dict(cls, mapping: Any, source: str = "schema") -> Schema:
        if not isinstance(mapping, dict):
            raise SchemaError(f"{source}: expected a YAML mapping with task, label and features.")
        unknown = set(mapping) - _KNOWN_KEYS
        if unknown:
            raise SchemaError(f"{source}: unknown key(s) {sorted(unknown)}; expected {sorted(_KNOWN_KEYS)}.")
        missing = [k for k in ("task", "label", "features") if k not in mapping]
        if missing:
            raise SchemaError(f"{source}: missing key(s) {missing}.")
        features = mapping["features"]
        if not isinstance(features, dict):
            raise SchemaError(f"{source}: `features` must map feature names to dtypes.")
        dtypes: dict[str, str] = {}
        options: dict[str, dict[str, Any]] = {}
        for key, value in features.items():
            if isinstance(value, dict):
                if "dtype" not in value:
                    raise SchemaError(f"{source}: feature {str(key)!r}: a mapping needs a `dtype` key, "
                                      "e.g. {dtype: image, shape: [28, 28, 1]}.")
                dtypes[str(key)] = str(value["dtype"])
                options[str(key)] = {k: v for k, v in value.items() if k != "dtype"}
            else:
                dtypes[str(key)] = str(value)
        na_values = mapping.get("na_values") or ()
        if isinstance(na_values, str) or not all(isinstance(v, str) for v in na_values):
            raise SchemaError(f"{source}: `na_values` must be a list of strings.")
        try:
            return cls(
                task=mapping["task"],
                label=mapping["label"],
                features=dtypes,
                na_values=tuple(na_values),
                label_dtype=mapping.get("label_dtype", ""),
                options=options,
            )
        except SchemaError as error:
            raise SchemaError(f"{source}: {error}") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "label": self.label,
            "label_dtype": self.label_dtype,
            "features": {name: {"dtype": dtype, **self.options[name]} if name in self.options else dtype
                         for name, dtype in self.features.items()},
            "na_values": list(self.na_values),
        }


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _checked_options(name: str, dtype: str | None, options: Any) -> dict[str, Any]:
    """The settings of an image, text or vector feature, checked; SchemaError naming the feature and key."""
    allowed = _FEATURE_OPTIONS.get(dtype or "")
    if allowed is None or not isinstance(options, dict):
        raise SchemaError(f"Feature {name!r} of dtype {dtype!r} takes no settings; only "
                          f"{', '.join(_FEATURE_OPTIONS)} features are written as a mapping.")
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise SchemaError(f"Feature {name!r}: unknown key(s) {unknown} for dtype {dtype}; expected {list(allowed)}.")
    if dtype == TEXT:
        checked = {"max_tokens": options.get("max_tokens", DEFAULT_MAX_TOKENS),
                   "sequence_length": options.get("sequence_length", DEFAULT_SEQUENCE_LENGTH)}
        for key, value in checked.items():
            if not _positive_int(value):
                raise SchemaError(f"Feature {name!r}: invalid `{key}`: {value!r}. Expected an integer >= 1.")
        return checked
    shape = options.get("shape")
    rank = 3 if dtype == IMAGE else 1
    example = "[height, width, channels], e.g. [28, 28, 1]" if dtype == IMAGE else "[n], e.g. [16]"
    if not isinstance(shape, list) or len(shape) != rank or not all(_positive_int(d) for d in shape):
        raise SchemaError(f"Feature {name!r}: invalid `shape`: {shape!r}. Expected {example}.")
    if dtype == IMAGE and shape[2] not in (1, 3, 4):
        raise SchemaError(f"Feature {name!r}: invalid `shape`: {shape!r}. The channels (last) must be 1 "
                          "(grayscale), 3 (RGB) or 4 (RGBA).")
    return {"shape": list(shape)}


def load_schema(path: str) -> Schema:
    """Read and validate a schema YAML file (local or gs://)."""
    try:
        data = storage.read_bytes(path)
    except Exception as error:  # StorageError, or a gs:// client error
        raise SchemaError(f"Cannot read schema {path}: {error}") from error
    text = decode_utf8(data, f"schema {path}", SchemaError)
    mapping = parse_yaml(text, f"schema {path}", SchemaError)
    return Schema.from_dict(mapping, source=f"schema {path}")
