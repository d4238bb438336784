"""Rows of raw values -> the arrays and tf.Examples a signature takes.

Export turns held-out rows into warm-up requests and validate turns golden rows (CSV cells are
strings, JSONL values are numbers, strings or one-element lists) into feeds; both go through here
so a row means the same thing everywhere. Missing values follow the preprocessor's convention:
None or "" is NaN for floats and "" for strings; a missing integer is an error. Binary values
(an image's encoded bytes) are written in JSON as TF Serving's REST API takes them,
`{"b64": "<base64>"}`, and read back to bytes here.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from tfship.errors import DataError

Row = dict[str, Any]

_INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
_FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def numpy_dtype(dtype: str) -> Any:
    """numpy dtype for a tfship dtype name; strings are object arrays of bytes (as TF returns)."""
    if dtype == "string":
        return object
    if dtype == "bfloat16":
        return np.float32
    return np.dtype(dtype)


def scalars(value: Any) -> list[Any]:
    """A cell as a flat list: JSONL may hold `[v]` or nested lists, CSV holds one string."""
    if isinstance(value, (list, tuple)):
        return [x for item in value for x in scalars(item)]
    if isinstance(value, np.ndarray):
        return list(value.reshape(-1))
    return [value]


B64_KEY = "b64"


def is_b64(value: Any) -> bool:
    """`{"b64": "<base64>"}`: TF Serving's JSON form of binary data (one key, a string)."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(B64_KEY), str)


def decode_b64(value: Any, where: str) -> bytes:
    """The bytes of a `{"b64": ...}` value; DataError naming `where` if it is not valid base64."""
    try:
        return base64.b64decode(value[B64_KEY], validate=True)
    except (binascii.Error, ValueError):
        raise DataError(f"{where}: {str(value)[:60]!r} is not valid base64.") from None


def json_value(value: Any) -> Any:
    """A raw value as JSON: bytes that are not UTF-8 text (an image) as `{"b64": ...}`, others as they are."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {B64_KEY: base64.b64encode(value).decode("ascii")}
    return value


def convert(value: Any, dtype: str, where: str) -> Any:
    """One scalar converted to `dtype`; DataError naming `where` when it cannot be."""
    if is_b64(value):
        if dtype != "string":
            raise DataError(f"{where}: a {{\"b64\": ...}} value is binary data; the input is {dtype}.")
        return decode_b64(value, where)
    try:
        if dtype == "string":
            if value is None:
                return b""
            return value if isinstance(value, bytes) else str(value).encode("utf-8")
        if dtype == "bool":
            if isinstance(value, str):
                if value.strip().lower() not in ("true", "false", "1", "0"):
                    raise ValueError(value)
                return value.strip().lower() in ("true", "1")
            return bool(value)
        if value is None or (isinstance(value, str) and not value.strip()):
            if dtype in _FLOAT_DTYPES:
                return math.nan
            raise ValueError("missing")
        if dtype in _INT_DTYPES:
            number = float(value)
            if not number.is_integer():
                raise ValueError(value)
            return int(number)
        return float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: cannot read {value!r} as {dtype}.") from None


def column(rows: Sequence[Row], name: str, dtype: str, rank: int | None = None,
           source: str = "rows") -> np.ndarray:
    """The values of `name` in every row as one array with the batch first.

    With `rank`, a trailing size-1 dimension is added or dropped to reach it: a `[v]` JSONL cell
    feeds a [-1] input and a scalar CSV cell feeds a [-1, 1] input.
    """
    values = []
    for index, row in enumerate(rows):
        if name not in row:
            raise DataError(f"{source}: row {index} has no value for {name!r}.")
        cells = scalars(row[name])
        values.append([convert(v, dtype, f"{source}: row {index}, {name!r}") for v in cells])
    widths = {len(v) for v in values}
    if len(widths) > 1:
        raise DataError(f"{source}: {name!r} has a different number of values in different rows.")
    array = np.array(values, dtype=numpy_dtype(dtype))
    if array.ndim == 2 and array.shape[1] == 1 and (rank is None or rank == 1):
        array = array.reshape(-1)
    if rank is not None and rank > array.ndim:
        array = array.reshape(array.shape + (1,) * (rank - array.ndim))
    return array


def example(row: Row, features: dict[str, str], source: str = "rows", index: int = 0) -> Any:
    """One tf.train.Example holding `features` (name -> dtype) of `row`."""
    from tensorflow.core.example import example_pb2

    proto = example_pb2.Example()
    for name, dtype in features.items():
        if name not in row:
            raise DataError(f"{source}: row {index} has no value for {name!r}.")
        where = f"{source}: row {index}, {name!r}"
        cells = [convert(v, dtype, where) for v in scalars(row[name])]
        feature = proto.features.feature[name]
        if dtype == "string":
            feature.bytes_list.value.extend(cells)
        elif dtype in _INT_DTYPES or dtype == "bool":
            feature.int64_list.value.extend(int(c) for c in cells)
        else:
            feature.float_list.value.extend(cells)
    return proto


def examples(rows: Sequence[Row], features: dict[str, str], source: str = "rows") -> list[Any]:
    """tf.train.Example protos for `rows`."""
    return [example(row, features, source, i) for i, row in enumerate(rows)]


def serialized_examples(rows: Sequence[Row], features: dict[str, str], source: str = "rows") -> np.ndarray:
    """`rows` as a [batch] object array of serialized tf.Examples (a classify/regress input)."""
    return np.array([e.SerializeToString() for e in examples(rows, features, source)], dtype=object)
