"""The canary's example rows: read them (JSONL or CSV), then fit them to the served signature.

A JSONL line maps each input name to its value for ONE example, e.g. `{"x": [1.5]}` for an input
of shape [-1, 1]; binary values (an image's bytes) as TF Serving's REST API takes them,
`{"image": {"b64": "<base64>"}}`. A CSV row holds one scalar per input (column = input name). A scalar for a
per-example shape [1], or a one-element list for a per-example scalar, is reshaped to fit. Rows are checked against the
signature before anything is sent, so a mismatch is one clear error, not 500 failed requests.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tfship import storage
from tfship.errors import DataError
from tfship.saved_model.signature_inputs import decode_b64, is_b64, json_value, numpy_dtype

Row = dict[str, Any]


def _number_or_text(cell: str) -> Any:
    for parse in (int, float):
        try:
            return parse(cell)
        except ValueError:
            pass
    return cell


def read_examples(path: str) -> list[Row]:
    """The rows of a JSONL (`.jsonl`, `.json`, or content starting with `{`) or CSV file."""
    text = storage.read_text(storage.check_uri(path, "examples"))
    stripped = text.lstrip()
    if not stripped:
        raise DataError(f"Examples file {path} is empty. Expected JSONL (one object per line) or CSV with a header.")
    rows: list[Row] = []
    if path.endswith((".jsonl", ".json")) or stripped.startswith("{"):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as error:
                raise DataError(f"Examples file {path}, line {number}: not JSON ({error}).") from error
            if not isinstance(row, dict) or not row:
                raise DataError(
                    f"Examples file {path}, line {number}: expected a JSON object mapping input names "
                    f'to values, e.g. {{"x": [1.5]}}; got {line.strip()[:80]!r}.'
                )
            rows.append(row)
    else:
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames:
            raise DataError(f"Examples file {path}: no CSV header. Expected input names in the first line.")
        for number, record in enumerate(reader, start=2):
            if None in record or any(v is None for v in record.values()):
                raise DataError(f"Examples file {path}, line {number}: not as many cells as header columns.")
            rows.append({k: _number_or_text(v) for k, v in record.items()})
    if not rows:
        raise DataError(f"Examples file {path} holds no rows.")
    return rows


def fit_examples(rows: Sequence[Row], signature: Any, source: str) -> list[dict[str, np.ndarray]]:
    """Each row as {input: array for one example (no batch dimension)}, checked against `signature`.

    Args:
        rows: from `read_examples`.
        signature: a `tfship.saved_model.loader.SignatureInfo` (inputs with numpy-style dtypes and shapes).
        source: the file name, for messages.
    """

    wanted = set(signature.inputs)
    fitted = []
    for index, row in enumerate(rows, start=1):
        missing, unknown = sorted(wanted - set(row)), sorted(set(row) - wanted)
        if missing or unknown:
            raise DataError(
                f"Examples file {source}, row {index} does not match signature {signature.name!r} "
                f"(inputs {sorted(wanted)}): missing {missing}, unknown {unknown}."
            )
        example = {}
        for name, spec in signature.inputs.items():
            example[name] = _fit_value(row[name], spec, numpy_dtype(spec.dtype), f"{source}, row {index}, input {name!r}")
        fitted.append(example)
    return fitted


def _fit_value(value: Any, spec: Any, dtype: Any, where: str) -> np.ndarray:

    if is_b64(value):
        if spec.dtype != "string":
            raise DataError(f"Examples file {where}: a {{\"b64\": ...}} value is binary data; the input is {spec.dtype}.")
        value = decode_b64(value, f"Examples file {where}")
    try:
        array = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise DataError(f"Examples file {where}: {value!r} is not a {spec.dtype} value ({error}).") from error
    if spec.shape is None:
        return array
    per_example = spec.shape[1:] if spec.shape else ()
    if array.ndim == 0 and per_example == (1,):
        array = array.reshape(1)  # a CSV cell for an input of shape [-1, 1]
    elif array.shape == (1,) and per_example == ():
        array = array.reshape(())  # a one-element JSON list for an input of shape [-1]
    if array.ndim != len(per_example) or any(
        want is not None and want != got for want, got in zip(per_example, array.shape)
    ):
        expected = "[" + ", ".join("-1" if d is None else str(d) for d in per_example) + "]"
        raise DataError(
            f"Examples file {where}: one example has shape {list(array.shape)}, but the signature "
            f"takes {spec.shape_text()} (so {expected} per example). Fix the examples, e.g. "
            + ('{"x": [1.5]}' if per_example == (1,) else "one value per declared dimension") + "."
        )
    return array


def as_json_values(example: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """An example as JSON-ready values (REST's row format); binary values as `{"b64": ...}`."""

    out = {}
    for name, array in example.items():
        if array.dtype.kind in "OS":
            out[name] = np.vectorize(json_value, otypes=[object])(array).tolist()
        else:
            out[name] = array.tolist()
    return out
