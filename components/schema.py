"""The schema file: which columns are features, their dtypes, the label and the task.

```yaml
task: classification        # or regression
label: label                # the label column
features:
  f0: float32
  colour: string            # categorical: vocabulary learned from the training data
na_values: ["NA", ""]       # optional: cells read as missing (numeric -> mean, string -> OOV)
```
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

import yaml

from tfship import storage
from tfship.errors import SchemaError
from tfship.text import decode_utf8

TASKS = ("classification", "regression")
NUMERIC_DTYPES = ("float32", "float64", "int32", "int64")
DTYPES = (*NUMERIC_DTYPES, "string")
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
        if label_dtype not in DTYPES or label_dtype.startswith(wrong_kind):
            raise SchemaError(f"Invalid `label_dtype`: {label_dtype!r} for a {self.task} task.")
        object.__setattr__(self, "label_dtype", label_dtype)

    @property
    def feature_names(self) -> list[str]:
        return list(self.features)

    @property
    def numeric_features(self) -> list[str]:
        return [n for n, d in self.features.items() if d != "string"]

    @property
    def categorical_features(self) -> list[str]:
        return [n for n, d in self.features.items() if d == "string"]

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
        na_values = mapping.get("na_values") or ()
        if isinstance(na_values, str) or not all(isinstance(v, str) for v in na_values):
            raise SchemaError(f"{source}: `na_values` must be a list of strings.")
        try:
            return cls(
                task=mapping["task"],
                label=mapping["label"],
                features={str(k): str(v) for k, v in features.items()},
                na_values=tuple(na_values),
                label_dtype=mapping.get("label_dtype", ""),
            )
        except SchemaError as error:
            raise SchemaError(f"{source}: {error}") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "label": self.label,
            "label_dtype": self.label_dtype,
            "features": dict(self.features),
            "na_values": list(self.na_values),
        }


def load_schema(path: str) -> Schema:
    """Read and validate a schema YAML file (local or gs://)."""
    try:
        data = storage.read_bytes(path)
    except Exception as error:  # StorageError, or a gs:// client error
        raise SchemaError(f"Cannot read schema {path}: {error}") from error
    text = decode_utf8(data, f"schema {path}", SchemaError)
    try:
        mapping = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SchemaError(f"Schema {path} is not valid YAML: {str(error).splitlines()[0]}") from error
    return Schema.from_dict(mapping, source=f"schema {path}")
