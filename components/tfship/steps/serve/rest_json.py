"""TF Serving's REST JSON: requests to tensors and tf.Examples, results back to JSON.

A port of `tensorflow_serving/util/json_tensor.cc`, rule for rule and message for message, so a
client sees the same answers as from TF Serving:
- predict: row format `{"instances": [...]}` (one element per batch item, plain values when the
  signature has one input, objects keyed by input otherwise) or columnar `{"inputs": ...}`;
  `{"b64": "..."}` for bytes; NaN and Infinity allowed. Responses mirror the request's format:
  `{"predictions": [...]}` or `{"outputs": ...}`.
- classify / regress: `{"examples": [{feature: value(s)}], "context": {...}}` become tf.Examples
  (a float is a float_list, an integer an int64_list, a string a bytes_list).
- Floats are written the way TF Serving writes them: the shortest of "%g" and "%.9g" that
  round-trips (0.2, not 0.20000000298023224), whole numbers with ".0".
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

import numpy as np
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import types_pb2

from tfship.steps.serve.status import ServingStatus, invalid_argument
from tfship.steps.serve.tensors import dtype_string, numpy_dtype

ROW = "row"
COLUMNAR = "columnar"
_MAX_DEBUG_CHARS = 256
_MAX_RANK = 64  # numpy's limit on an array's dimensions (TensorFlow allows 254)
_BYTES_SUFFIX = "_bytes"  # a DT_STRING output named *_bytes is written as {"b64": ...}


# ---- reading ---------------------------------------------------------------------------------


def _debug(value: Any) -> str:
    """rapidjson's single-line rendering of a value for error messages, truncated like TF Serving."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=True)
    return text[:_MAX_DEBUG_CHARS]


def _json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def parse_body(body: bytes) -> dict[str, Any]:
    """The request document; it must be a JSON object."""
    if not body:
        raise invalid_argument("JSON Parse error: The document is empty")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise invalid_argument(f"JSON Parse error: {error}") from error
    if not isinstance(doc, dict):
        raise invalid_argument(f"JSON Value: {_debug(doc)} Is not object")
    return doc


def signature_name(doc: dict[str, Any]) -> str:
    """The optional `signature_name` ("" when absent)."""
    name = doc.get("signature_name", "")
    if not isinstance(name, str):
        raise invalid_argument(
            f"JSON Value: {_debug(doc)} not formatted correctly. "
            "'signature_name' key must be a string value."
        )
    return name


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _decode_b64(value: Any) -> bytes:
    if not _is_b64(value):
        raise invalid_argument(f"JSON Value: {_debug(value)} not formatted correctly for base64 data")
    text = value["b64"]
    # absl::Base64Unescape (TF Serving's decoder): padding is optional and '.' pads like '='; padding,
    # when present, must complete the last group of four.
    body = text.rstrip("=.")
    padding = len(text) - len(body)
    if padding and (padding > 2 or len(text) % 4):
        raise invalid_argument("Unable to base64 decode")
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError) as error:
        raise invalid_argument("Unable to base64 decode") from error


def _type_error(value: Any, dtype: int) -> ServingStatus:
    return invalid_argument(
        f"JSON Value: {_debug(value)} Type: {_json_type(value)} "
        f"is not of expected type: {dtype_string(dtype)}"
    )


_INT_RANGES = {
    types_pb2.DT_INT32: (-(2**31), 2**31 - 1),
    types_pb2.DT_INT16: (-(2**31), 2**31 - 1),
    types_pb2.DT_INT8: (-(2**31), 2**31 - 1),
    types_pb2.DT_UINT8: (-(2**31), 2**31 - 1),
    types_pb2.DT_INT64: (-(2**63), 2**63 - 1),
    types_pb2.DT_UINT32: (0, 2**32 - 1),
    types_pb2.DT_UINT64: (0, 2**64 - 1),
}


def _scalar(value: Any, dtype: int) -> Any:
    """AddValueToTensor: one JSON leaf as a value of `dtype`."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if dtype in (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_HALF):
        if not is_number:
            raise _type_error(value, dtype)
        return float(value)
    if dtype in _INT_RANGES:
        low, high = _INT_RANGES[dtype]
        if not (is_number and isinstance(value, int) and low <= value <= high):
            raise _type_error(value, dtype)
        return value
    if dtype == types_pb2.DT_STRING:
        if not isinstance(value, str):
            raise _type_error(value, dtype)
        return value.encode("utf-8")
    if dtype == types_pb2.DT_BOOL:
        if not isinstance(value, bool):
            raise _type_error(value, dtype)
        return value
    raise ServingStatus(
        "UNIMPLEMENTED", f"Conversion of JSON Value: {_debug(value)} to type: {dtype_string(dtype)}"
    )


def _dense_shape(value: Any) -> list[int]:
    """GetDenseTensorShape: the shape implied by the first element at every level."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill(value: Any, level: int, shape: list[int], dtype: int, out: list[Any]) -> None:
    """FillTensorProto: append the leaves of `value`, checking it is dense with `shape`."""
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise invalid_argument(
                f"JSON Value: {_debug(value)} found at incorrect level: {level + 1} in the JSON DOM. "
                f"Expected at level: {rank}"
            )
        if isinstance(value, dict):
            if dtype != types_pb2.DT_STRING:
                raise _type_error(value, dtype)
            out.append(_decode_b64(value))
        else:
            out.append(_scalar(value, dtype))
        return
    if level >= rank:
        raise invalid_argument(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != shape[level]:
        raise invalid_argument(
            f"Encountered list at unexpected size: {len(value)} at level: {level} "
            f"expected size: {shape[level]}"
        )
    for item in value:
        _fill(item, level + 1, shape, dtype, out)


_NARROW_INTS = (types_pb2.DT_INT16, types_pb2.DT_INT8, types_pb2.DT_UINT8)

_FAST_KINDS = {
    types_pb2.DT_FLOAT: "iuf",
    types_pb2.DT_DOUBLE: "iuf",
    types_pb2.DT_HALF: "iuf",
    types_pb2.DT_INT32: "i",
    types_pb2.DT_INT64: "i",
    types_pb2.DT_BOOL: "b",
}


def to_array(value: Any, dtype: int) -> np.ndarray:
    """One JSON value (scalar or nested lists) as a dense array of `dtype`, or TF Serving's error."""
    numpy_type = numpy_dtype(dtype)
    kinds = _FAST_KINDS.get(dtype)
    if kinds and isinstance(value, list):  # fast path: a regular numeric list
        try:
            probe = np.asarray(value)
        except ValueError:
            probe = None
        if probe is not None and probe.dtype.kind in kinds and probe.size:
            if dtype != types_pb2.DT_INT32 or (probe.min() >= -(2**31) and probe.max() < 2**31):
                return probe.astype(numpy_type)
    shape = _dense_shape(value)
    if len(shape) > _MAX_RANK:
        raise invalid_argument(
            f"JSON Value nests lists {len(shape)} levels deep: a tensor has at most {_MAX_RANK} dimensions here"
        )
    leaves: list[Any] = []
    _fill(value, 0, shape, dtype, leaves)
    if numpy_type is object:
        flat = np.empty(len(leaves), dtype=object)
        flat[:] = leaves
    elif dtype in _NARROW_INTS:
        # TF Serving stores these as int32 `int_val`s and TensorFlow narrows them with a C cast
        # (300 -> 44 as uint8); numpy 2 refuses the out-of-range value instead.
        flat = np.asarray(leaves, dtype=np.int64).astype(numpy_type)
    else:
        flat = np.asarray(leaves, dtype=numpy_type)
    return flat.reshape(shape)


def predict_inputs(doc: dict[str, Any], input_dtypes: dict[str, int]) -> tuple[dict[str, np.ndarray], str]:
    """FillPredictRequestFromJson: the input tensors and the format ("row" or "columnar").

    Args:
        doc: the parsed request.
        input_dtypes: the signature's inputs, alias -> DataType enum, in the signature's order.
    """
    if not input_dtypes:
        raise invalid_argument(f"Failed to get input map for signature: {signature_name(doc) or 'DEFAULT'}")
    has_instances, has_inputs = "instances" in doc, "inputs" in doc
    if has_instances and has_inputs:
        raise invalid_argument(
            f"JSON Value: {_debug(doc)} Not formatted correctly expecting only one of 'inputs' or "
            "'instances' keys to exist "
        )
    if has_instances:
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise invalid_argument(f"JSON Value: {_debug(doc)} Expecting 'instances' to be an list/array")
        if not instances:
            raise invalid_argument(f"JSON Value: {_debug(doc)} No values in 'instances' array")
        return _from_instances(instances, input_dtypes), ROW
    if has_inputs:
        return _from_inputs(doc["inputs"], input_dtypes), COLUMNAR
    raise invalid_argument("Missing 'inputs' or 'instances' key")


def _from_instances(instances: list[Any], input_dtypes: dict[str, int]) -> dict[str, np.ndarray]:
    def is_object(value: Any) -> bool:
        return isinstance(value, dict) and not _is_b64(value)

    if not isinstance(instances[0], dict) and len(input_dtypes) > 1:
        raise invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input tensors "
            "required as per tensorinfo_map"
        )
    objects = is_object(instances[0])
    names = sorted(input_dtypes)
    columns: dict[str, list[np.ndarray]] = {}
    for index, element in enumerate(instances):
        if objects:
            if not is_object(element):
                raise invalid_argument(f"Expecting object but got list at item {index} of input list")
            for name, value in element.items():
                try:
                    _add_item(name, value, input_dtypes, columns)
                except ServingStatus as error:
                    raise invalid_argument(
                        f"Failed to process element: {index} key: {name} of 'instances' list. "
                        f"Error: {_status_text(error)}"
                    ) from error
            if sorted(element) != names:
                raise invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. JSON object: "
                    f"{_debug(element)} keys must be equal to: {','.join(names)}"
                )
        else:
            if is_object(element):
                raise invalid_argument(
                    f"Expecting value/list but got object at item {index} of input list"
                )
            name = next(iter(input_dtypes))
            try:
                _add_item(name, element, input_dtypes, columns)
            except ServingStatus as error:
                raise invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. Error: {_status_text(error)}"
                ) from error
    return {name: np.stack(items) for name, items in columns.items()}


def _status_text(error: ServingStatus) -> str:
    """absl's Status::ToString(), which TF Serving embeds in its wrapped messages."""
    return f"{error.code}: {error.message}"


def _add_item(name: str, value: Any, input_dtypes: dict[str, int], columns: dict[str, list[np.ndarray]]) -> None:
    if name not in input_dtypes:
        raise invalid_argument(f"JSON object: does not have named input: {name}")
    array = to_array(value, input_dtypes[name])
    seen = columns.setdefault(name, [])
    if seen:
        first = seen[0]
        if first.size != array.size:
            raise invalid_argument(f"Expecting tensor size: {first.size} but got: {array.size}")
        if first.shape != array.shape:
            raise invalid_argument(
                f"Expecting shape [{','.join(map(str, first.shape))}] but got: "
                f"[{','.join(map(str, array.shape))}]"
            )
    seen.append(array)


def _from_inputs(value: Any, input_dtypes: dict[str, int]) -> dict[str, np.ndarray]:
    if not isinstance(value, dict) or _is_b64(value):
        if len(input_dtypes) > 1:
            raise invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input tensors "
                "required as per tensorinfo_map"
            )
        name, dtype = next(iter(input_dtypes.items()))
        return {name: to_array(value, dtype)}
    tensors = {}
    for name, dtype in input_dtypes.items():
        if name not in value:
            raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        tensors[name] = to_array(value[name], dtype)
    return tensors


def _feature_kind_error(name: str, feature: feature_pb2.Feature) -> ServingStatus:
    kind = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}.get(
        feature.WhichOneof("kind") or "", "UNKNOWN"
    )
    return invalid_argument(f"Unexpected element type in feature: {name} expecting type: {kind}")


def _add_feature_value(value: Any, name: str, feature: feature_pb2.Feature) -> None:
    kind = feature.WhichOneof("kind")

    def require(wanted: str) -> None:
        if kind not in (None, wanted):
            raise _feature_kind_error(name, feature)

    if value is None or isinstance(value, list) or (isinstance(value, dict) and not _is_b64(value)):
        raise invalid_argument(
            f"Feature: {name} has element with unexpected JSON type: {_json_type(value)}"
        )
    if isinstance(value, bool):
        require("int64_list")
        feature.int64_list.value.append(1 if value else 0)
    elif isinstance(value, dict):
        require("bytes_list")
        feature.bytes_list.value.append(_decode_b64(value))
    elif isinstance(value, str):
        require("bytes_list")
        feature.bytes_list.value.append(value.encode("utf-8"))
    elif isinstance(value, float) or not -(2**63) <= value < 2**64:
        # rapidjson (TF Serving's parser) reads an integer literal beyond 64 bits as a double.
        require("float_list")
        feature.float_list.value.append(float(value))
    else:
        require("int64_list")
        if value >= 2**63:
            raise invalid_argument(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
        feature.int64_list.value.append(value)


def _example(value: Any) -> example_pb2.Example:
    """MakeExampleFromJsonObject."""
    if not isinstance(value, dict):
        raise invalid_argument(f"Example must be JSON object but got JSON {_json_type(value)}")
    example = example_pb2.Example()
    for name, content in value.items():
        feature = feature_pb2.Feature()
        for item in content if isinstance(content, list) else [content]:
            _add_feature_value(item, name, feature)
        example.features.feature[name].CopyFrom(feature)
    return example


def examples_input(doc: dict[str, Any]) -> Any:
    """FillClassifyRegressRequestFromJson: the request's `tensorflow.serving.Input` proto."""
    from tensorflow_serving.apis import input_pb2

    request_input = input_pb2.Input()
    has_context = "context" in doc
    if has_context:
        request_input.example_list_with_context.context.CopyFrom(_example(doc["context"]))
    if "examples" not in doc:
        raise invalid_argument(
            f"JSON Value: {_debug(doc)} When method is classify, key 'examples' is expected and was not found"
        )
    examples = doc["examples"]
    if not isinstance(examples, list):
        raise invalid_argument(f"JSON Value: {_debug(doc)} Expecting 'examples' value to be an list/array")
    if not examples:
        raise invalid_argument(f"JSON Value: {_debug(doc)} 'examples' value is an empty array")
    target = (
        request_input.example_list_with_context.examples
        if has_context
        else request_input.example_list.examples
    )
    for value in examples:
        target.add().CopyFrom(_example(value))
    return request_input


# ---- writing ---------------------------------------------------------------------------------


def decimal(value: float, single: bool = True) -> str:
    """WriteDecimal: TF Serving's float text (shortest round-trip, ".0" on whole numbers)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = "%g" % value
    parsed = float(np.float32(text)) if single else float(text)
    if parsed != value:
        text = "%.9g" % value if single else "%.17g" % value
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def _tokens(flat: np.ndarray, as_b64: bool) -> list[str]:
    kind = flat.dtype.kind
    if kind == "f":
        single = flat.dtype != np.float64
        return [decimal(v, single) for v in flat.astype(np.float64).tolist()]
    if kind == "b":
        return ["true" if v else "false" for v in flat.tolist()]
    if kind in "iu":
        return [str(v) for v in flat.tolist()]
    if kind in "OSU":
        out = []
        for v in flat.tolist():
            raw = v.encode("utf-8") if isinstance(v, str) else bytes(v)
            if as_b64:
                out.append('{"b64": ' + json.dumps(base64.b64encode(raw).decode("ascii")) + "}")
            else:
                out.append(json.dumps(raw.decode("utf-8", errors="replace")))
        return out
    raise invalid_argument(f"Failed to write JSON value for tensor type: {flat.dtype}")


def _nested(array: np.ndarray, as_b64: bool) -> str:
    """AddTensorValues: an array as nested JSON lists (a scalar as a bare value)."""
    tokens = _tokens(array.reshape(-1), as_b64)
    shape = array.shape
    if not shape:
        return tokens[0]
    groups = tokens
    for level in range(len(shape) - 1, 0, -1):
        dim = shape[level]
        count = int(np.prod(shape[:level]))
        groups = ["[" + ", ".join(groups[i * dim : (i + 1) * dim]) + "]" for i in range(count)]
    return "[" + ", ".join(groups) + "]"


def _is_bytes_output(name: str, array: np.ndarray) -> bool:
    return array.dtype.kind in "OS" and name.endswith(_BYTES_SUFFIX)


def predict_response(outputs: dict[str, np.ndarray], fmt: str) -> str:
    """MakeJsonFromTensors: `{"predictions": [...]}` (row) or `{"outputs": ...}` (columnar)."""
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    if fmt == COLUMNAR:
        if len(outputs) == 1:
            name, array = next(iter(outputs.items()))
            return '{"outputs": ' + _nested(array, _is_bytes_output(name, array)) + "}"
        body = ", ".join(
            json.dumps(name) + ": " + _nested(array, _is_bytes_output(name, array))
            for name, array in outputs.items()
        )
        return '{"outputs": {' + body + "}}"
    batch = -1
    for name, array in outputs.items():
        if array.ndim == 0:
            raise invalid_argument(f"Tensor name: {name} has no shape information ")
        if batch >= 0 and array.shape[0] != batch:
            raise invalid_argument(
                f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} expecting: {batch}"
            )
        batch = array.shape[0]
    items = []
    # `array[index, ...]` keeps a 0-d array for a [batch] output: plain `array[index]` of a string
    # tensor is a bare `bytes`, not an array.
    for index in range(batch):
        if len(outputs) == 1:
            name, array = next(iter(outputs.items()))
            items.append(_nested(array[index, ...], _is_bytes_output(name, array)))
        else:
            items.append(
                "{"
                + ", ".join(
                    json.dumps(name) + ": " + _nested(array[index, ...], _is_bytes_output(name, array))
                    for name, array in outputs.items()
                )
                + "}"
            )
    return '{"predictions": [' + ", ".join(items) + "]}"


def classify_response(result: Any) -> str:
    """MakeJsonFromClassificationResult: `{"results": [[[label, score], ...], ...]}`."""
    if not result.classifications:
        raise invalid_argument("Cannot convert empty ClassificationResults to JSON")
    rows = []
    for classifications in result.classifications:
        pairs = [
            "[" + json.dumps(c.label.decode("utf-8", errors="replace") if isinstance(c.label, bytes) else c.label)
            + ", " + decimal(c.score) + "]"
            for c in classifications.classes
        ]
        rows.append("[" + ", ".join(pairs) + "]")
    return '{"results": [' + ", ".join(rows) + "]}"


def regress_response(result: Any) -> str:
    """MakeJsonFromRegressionResult: `{"results": [value, ...]}`."""
    if not result.regressions:
        raise invalid_argument("Cannot convert empty RegressionResults to JSON")
    return '{"results": [' + ", ".join(decimal(r.value) for r in result.regressions) + "]}"


def error_body(message: str) -> str:
    """MakeJsonFromStatus: `{"error": message}`."""
    return json.dumps({"error": message})
