"""TensorProto <-> numpy, the way TensorFlow's `Tensor::FromProto` / `AsProtoField` do it.

TF Serving reads request tensors with `Tensor::FromProto` (either `tensor_content` or the typed
`*_val` field; fewer values than elements repeat the last one, none at all means zeros) and writes
responses with `AsProtoField` (the typed `*_val` field). This module does the same in numpy, so a
request costs no TensorFlow call; `tf.make_tensor_proto` / `tf.make_ndarray` produce and read the
same protos. Used by the server and by the canary's gRPC client.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

from tfship.steps.serve.status import ServingStatus

TensorProto = tensor_pb2.TensorProto

# DataType enum -> (numpy dtype, TensorProto field holding the values when not in tensor_content)
_TYPES: dict[int, tuple[Any, str]] = {
    types_pb2.DT_FLOAT: (np.float32, "float_val"),
    types_pb2.DT_DOUBLE: (np.float64, "double_val"),
    types_pb2.DT_INT32: (np.int32, "int_val"),
    types_pb2.DT_UINT8: (np.uint8, "int_val"),
    types_pb2.DT_INT16: (np.int16, "int_val"),
    types_pb2.DT_INT8: (np.int8, "int_val"),
    types_pb2.DT_UINT16: (np.uint16, "int_val"),
    types_pb2.DT_STRING: (object, "string_val"),
    types_pb2.DT_INT64: (np.int64, "int64_val"),
    types_pb2.DT_BOOL: (np.bool_, "bool_val"),
    types_pb2.DT_HALF: (np.float16, "half_val"),
    types_pb2.DT_UINT32: (np.uint32, "uint32_val"),
    types_pb2.DT_UINT64: (np.uint64, "uint64_val"),
    types_pb2.DT_COMPLEX64: (np.complex64, "scomplex_val"),
    types_pb2.DT_COMPLEX128: (np.complex128, "dcomplex_val"),
}
_ENUM_OF_NUMPY: dict[Any, int] = {
    np.dtype(numpy_type): enum for enum, (numpy_type, _) in _TYPES.items() if numpy_type is not object
}

# numpy-style names (what tfship.saved_model.loader.TensorSpecInfo.dtype holds) -> DataType enum
DTYPE_ENUMS: dict[str, int] = {
    "float32": types_pb2.DT_FLOAT,
    "float64": types_pb2.DT_DOUBLE,
    "int32": types_pb2.DT_INT32,
    "uint8": types_pb2.DT_UINT8,
    "int16": types_pb2.DT_INT16,
    "int8": types_pb2.DT_INT8,
    "uint16": types_pb2.DT_UINT16,
    "string": types_pb2.DT_STRING,
    "int64": types_pb2.DT_INT64,
    "bool": types_pb2.DT_BOOL,
    "float16": types_pb2.DT_HALF,
    "uint32": types_pb2.DT_UINT32,
    "uint64": types_pb2.DT_UINT64,
    "complex64": types_pb2.DT_COMPLEX64,
    "complex128": types_pb2.DT_COMPLEX128,
}


def dtype_string(enum: int) -> str:
    """TensorFlow's `DataTypeString`: "float" for DT_FLOAT, "int32" for DT_INT32 ..."""
    try:
        return types_pb2.DataType.Name(enum)[3:].lower()
    except ValueError:
        return f"unknown dtype {enum}"


def numpy_dtype(enum: int) -> Any:
    """The numpy dtype tfship uses for a DataType (object for strings); ServingStatus if none."""
    if enum not in _TYPES:
        raise ServingStatus("UNIMPLEMENTED", f"Tensors of type {dtype_string(enum)} are not supported.")
    return _TYPES[enum][0]


def dtype_enum(array: np.ndarray) -> int:
    """The DataType of a numpy array: bytes/str/object arrays are DT_STRING."""
    if array.dtype.kind in "OSU":
        return types_pb2.DT_STRING
    enum = _ENUM_OF_NUMPY.get(array.dtype)
    if enum is None:
        raise ServingStatus("UNIMPLEMENTED", f"numpy dtype {array.dtype} has no TensorFlow type.")
    return enum


def to_numpy(proto: TensorProto) -> np.ndarray:
    """A request tensor as numpy, with `Tensor::FromProto`'s rules; ServingStatus if malformed."""
    numpy_type, field = _TYPES.get(proto.dtype, (None, ""))
    if numpy_type is None:
        raise ServingStatus(
            "INVALID_ARGUMENT", f"tensor parsing error: unsupported dtype {dtype_string(proto.dtype)}"
        )
    if proto.tensor_shape.unknown_rank or any(d.size < 0 for d in proto.tensor_shape.dim):
        raise ServingStatus("INVALID_ARGUMENT", "tensor parsing error: the shape has unknown dimensions")
    shape = tuple(int(d.size) for d in proto.tensor_shape.dim)
    count = int(np.prod(shape, dtype=np.int64))
    if proto.tensor_content and numpy_type is not object:
        flat = np.frombuffer(proto.tensor_content, dtype=numpy_type)
        if flat.size != count:
            raise ServingStatus(
                "INVALID_ARGUMENT",
                f"tensor parsing error: tensor_content holds {flat.size} values for shape {list(shape)}",
            )
        return flat.reshape(shape)
    values = getattr(proto, field)
    if numpy_type is object:
        flat = np.empty(len(values), dtype=object)
        flat[:] = list(values)
    elif field == "half_val":
        flat = np.asarray(values, dtype=np.uint16).view(np.float16)
    elif field in ("scomplex_val", "dcomplex_val"):
        pairs = np.asarray(values, dtype=np.float64).reshape(-1, 2)
        flat = (pairs[:, 0] + 1j * pairs[:, 1]).astype(numpy_type)
    else:
        flat = np.asarray(values, dtype=numpy_type)
    if flat.size == count:
        return flat.reshape(shape)
    if flat.size > count:
        raise ServingStatus(
            "INVALID_ARGUMENT",
            f"tensor parsing error: {flat.size} values for shape {list(shape)} ({count} elements)",
        )
    if flat.size == 0:  # no values: zeros, as TensorFlow does
        filler = b"" if numpy_type is object else 0
        return np.full(shape, filler, dtype=numpy_type)
    padded = np.empty(count, dtype=flat.dtype)  # fewer values: the last one repeats
    padded[: flat.size] = flat
    padded[flat.size :] = flat[-1]
    return padded.reshape(shape)


def _shape_proto(shape: tuple[int, ...]) -> tensor_shape_pb2.TensorShapeProto:
    return tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(s)) for s in shape]
    )


def from_numpy(array: Any, dtype: int | None = None) -> TensorProto:
    """A TensorProto with the values in the typed field (TensorFlow's `AsProtoField`).

    Args:
        array: anything `np.asarray` takes; str values are encoded as UTF-8.
        dtype: the DataType to write (default: the array's own).
    """
    array = np.asarray(array)
    enum = dtype_enum(array) if dtype is None else dtype
    numpy_type, field = _TYPES.get(enum, (None, ""))
    if numpy_type is None:
        raise ServingStatus("UNIMPLEMENTED", f"Tensors of type {dtype_string(enum)} are not supported.")
    proto = TensorProto(dtype=enum, tensor_shape=_shape_proto(array.shape))
    flat = array.reshape(-1)
    if numpy_type is object:
        proto.string_val.extend(v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in flat)
    elif field == "half_val":
        proto.half_val.extend(flat.astype(np.float16).view(np.uint16).tolist())
    elif field in ("scomplex_val", "dcomplex_val"):
        pairs = np.stack([flat.real, flat.imag], axis=-1).reshape(-1)
        getattr(proto, field).extend(pairs.tolist())
    else:
        getattr(proto, field).extend(flat.astype(numpy_type, copy=False).tolist())
    return proto
