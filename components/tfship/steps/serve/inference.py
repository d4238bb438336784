"""Predict, Classify, Regress and GetModelMetadata on one servable: TF Serving's semantics.

Both transports call these functions (gRPC with the request protos, REST after turning JSON into
the same protos or tensors), so a request gets the same answer and the same error either way.
Each check and message follows TF Serving's own (`predict_util.cc`, `classifier.cc`,
`regressor.cc`, `get_model_metadata_impl.cc`, `util.cc`), because clients and tests match on them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    predict_pb2,
    regression_pb2,
)

from tfship.errors import RequestError
from tfship.steps.serve.metrics import record_request
from tfship.steps.serve.request_log import example_record, predict_record
from tfship.steps.serve.servable import Servable
from tfship.steps.serve.status import ServingStatus, code_name, invalid_argument
from tfship.steps.serve.tensors import dtype_enum, dtype_string, from_numpy, to_numpy
from tfship.tfserving import CLASSIFY_METHOD, PREDICT_METHOD, REGRESS_METHOD
from tfship.tfserving import SERVING_DEFAULT as DEFAULT_SIGNATURE

SIGNATURE_DEF_FIELD = "signature_def"


def _signature_def(servable: Servable, name: str) -> Any:
    return servable.model.meta_graph_def.signature_def.get(name)


def signature_input_dtypes(servable: Servable, signature_name: str) -> dict[str, int]:
    """alias -> DataType of a signature's inputs (REST needs them to read JSON).

    An unknown signature is TF Serving's `GetInfoMap` error.
    """
    name = signature_name or DEFAULT_SIGNATURE
    signature = _signature_def(servable, name)
    if signature is None:
        raise invalid_argument(f'Serving signature name: "{name}" not found in signature def')
    return {alias: signature.inputs[alias].dtype for alias in sorted(signature.inputs)}


def _wait_for_fault(servable: Servable, deadline: float | None) -> None:
    """Test-only injected latency and errors (see `tfship.steps.serve.Fault`)."""
    fault = servable.fault
    if fault is None:
        return
    if fault.latency_s > 0:
        delay = fault.latency_s
        if deadline is not None:
            delay = min(delay, max(0.0, deadline - time.monotonic()))
        time.sleep(delay)
        if deadline is not None and time.monotonic() >= deadline:
            raise ServingStatus("DEADLINE_EXCEEDED", "Deadline Exceeded")
    if servable.draw_error():
        raise ServingStatus(
            "INTERNAL", f"injected fault on {servable.name} version {servable.version} (tfship serve --inject-fault)"
        )


def _run(
    servable: Servable,
    signature: str,
    feeds: dict[str, np.ndarray],
    outputs: list[str] | None,
    deadline: float | None,
) -> dict[str, np.ndarray]:
    """SessionModel.run with its errors turned into canonical statuses."""
    from tensorflow.python.framework.errors_impl import OpError

    _wait_for_fault(servable, deadline)
    try:
        return servable.model.run(signature, feeds, outputs)
    except RequestError as error:
        raise invalid_argument(str(error)) from error
    except OpError as error:
        raise ServingStatus(code_name(error.error_code), error.message) from error
    except (ValueError, TypeError) as error:  # the session's own checks of fed values
        raise invalid_argument(str(error)) from error


def _model_spec(target: Any, name: str, signature: str | None, version: int) -> None:
    """MakeModelSpec: name, the signature ("" -> serving_default) when given, and the version."""
    target.Clear()
    target.name = name
    if signature is not None:
        target.signature_name = signature or DEFAULT_SIGNATURE
    target.version.value = version


# ---- Predict ---------------------------------------------------------------------------------


def run_predict(
    servable: Servable,
    signature_name: str,
    inputs: dict[str, np.ndarray],
    output_filter: Sequence[str] = (),
    deadline: float | None = None,
) -> tuple[str, dict[str, np.ndarray]]:
    """RunPredict on numpy inputs; returns (the signature used, alias -> output array).

    Counted and timed in the server's metrics (`tfship.steps.serve.metrics`), and logged when the
    version's request log samples it, as every Classify and Regress is: both transports come
    through here.
    """
    with record_request(servable.name, servable.version, "Predict"):
        name, outputs = _run_predict(servable, signature_name, inputs, output_filter, deadline)
    logger = servable.request_log
    if logger is not None and logger.sampled():
        logger.write(predict_record(
            servable.name, servable.version, name, logger.settings.sampling_rate, inputs, outputs, tuple(output_filter),
        ))
    return name, outputs


def _log_examples(servable: Servable, kind: str, request: Any, response: Any) -> Any:
    """Log a successful Classify/Regress call when sampled; returns `response`."""
    logger = servable.request_log
    if logger is not None and logger.sampled():
        logger.write(example_record(kind, servable.name, servable.version, logger.settings.sampling_rate, request, response))
    return response


def _run_predict(
    servable: Servable,
    signature_name: str,
    inputs: dict[str, np.ndarray],
    output_filter: Sequence[str],
    deadline: float | None,
) -> tuple[str, dict[str, np.ndarray]]:
    name = signature_name or DEFAULT_SIGNATURE
    signature = _signature_def(servable, name)
    if signature is None:
        raise ServingStatus("FAILED_PRECONDITION", f'Serving signature key "{name}" not found.')
    if signature.method_name not in (PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD):
        raise ServingStatus(
            "INTERNAL",
            "Expected prediction signature method_name to be one of {"
            f"{PREDICT_METHOD}, {CLASSIFY_METHOD}, {REGRESS_METHOD}}}. Was: {signature.method_name}",
        )
    sent, declared = set(inputs), set(signature.inputs)
    if len(sent) > len(declared) or (len(sent) < len(declared) and not signature.defaults):
        raise invalid_argument(
            f"input size does not match signature: {len(sent)}!={len(declared)} "
            f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(declared))}}}). "
            f"Sent extra: {{{','.join(sorted(sent - declared))}}}. "
            f"Missing but required: {{{','.join(sorted(declared - sent))}}}."
        )
    for index, alias in enumerate(sorted(declared)):
        if alias not in inputs:
            raise invalid_argument(f"Missing required input: {alias}")  # defaults are not supported
        expected = signature.inputs[alias].dtype
        provided = dtype_enum(inputs[alias])
        if provided != expected:
            raise invalid_argument(
                f"Expects arg[{index}] to be {dtype_string(expected)} but {dtype_string(provided)} is provided"
            )
    seen: set[str] = set()
    for alias in output_filter:
        if alias not in signature.outputs:
            raise invalid_argument(
                f"output tensor alias not found in signature: {alias} Outputs expected to be in the "
                f"set {{{','.join(sorted(signature.outputs))}}}."
            )
        if alias in seen:
            raise invalid_argument(f"duplicate output tensor alias: {alias}")
        seen.add(alias)
    outputs = list(output_filter) or sorted(signature.outputs)
    return name, _run(servable, name, inputs, outputs, deadline)


def predict(servable: Servable, request: Any, deadline: float | None = None) -> Any:
    """The PredictResponse for a PredictRequest."""
    inputs = {alias: to_numpy(tensor) for alias, tensor in request.inputs.items()}
    name, outputs = run_predict(servable, request.model_spec.signature_name, inputs, request.output_filter, deadline)
    response = predict_pb2.PredictResponse()
    _model_spec(response.model_spec, request.model_spec.name, name, servable.version)
    for alias, array in outputs.items():
        response.outputs[alias].CopyFrom(from_numpy(array))
    return response


# ---- Classify and Regress ----------------------------------------------------------------------


def serialized_examples(request_input: Any) -> np.ndarray:
    """InputToSerializedExampleTensor: the examples as serialized protos (context merged in)."""
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        values = [e.SerializeToString() for e in request_input.example_list.examples]
    elif kind == "example_list_with_context":
        context = request_input.example_list_with_context.context.SerializeToString()
        # Concatenated serialized protos parse as their merge: TF Serving feeds exactly this.
        values = [context + e.SerializeToString() for e in request_input.example_list_with_context.examples]
    else:
        values = []
    if not values:
        raise invalid_argument("Input is empty.")
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _example_signature(servable: Servable, signature_name: str, method: str, what: str) -> Any:
    name = signature_name or DEFAULT_SIGNATURE
    signature = _signature_def(servable, name)
    if signature is None:
        raise invalid_argument(f"No signature was found with the name: {name}")
    if signature.method_name != method:
        raise invalid_argument(
            f"Expected {what} signature method_name to be {method}. Was: {signature.method_name}"
        )
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if "inputs" not in signature.inputs:
        raise invalid_argument(f"No {what} inputs found in SignatureDef: {signature}")
    return signature


def classify(servable: Servable, request: Any, deadline: float | None = None) -> Any:
    """The ClassificationResponse for a ClassificationRequest (counted in the server's metrics)."""
    with record_request(servable.name, servable.version, "Classify"):
        response = _classify(servable, request, deadline)
    return _log_examples(servable, "classify_log", request, response)


def _classify(servable: Servable, request: Any, deadline: float | None) -> Any:
    signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    signature = _example_signature(servable, signature_name, CLASSIFY_METHOD, "classification")
    if len(signature.outputs) not in (1, 2):
        raise invalid_argument(f"Expected one or two output Tensors, found {len(signature.outputs)}")
    wanted = [name for name in ("classes", "scores") if name in signature.outputs]
    if not wanted:
        raise invalid_argument(
            'Expected classification signature outputs to contain at least one of "classes" or '
            f'"scores". Signature was: {signature}'
        )
    examples = serialized_examples(request.input)
    outputs = _run(servable, signature_name, {"inputs": examples}, wanted, deadline)
    count = len(examples)
    classes, scores = outputs.get("classes"), outputs.get("scores")
    for label, tensor, kind in (("classes", classes, "OS"), ("scores", scores, "f")):
        if tensor is None:
            continue
        if tensor.ndim != 2:
            raise invalid_argument(
                f"Expected Tensor shape: [batch_size num_classes] but got [{','.join(map(str, tensor.shape))}]"
            )
        if tensor.dtype.kind not in kind or (label == "scores" and tensor.dtype != np.float32):
            wanted_type = "DT_STRING" if label == "classes" else "DT_FLOAT"
            raise invalid_argument(f"Expected {label} Tensor of {wanted_type}. Got: {tensor.dtype}")
        if tensor.shape[0] != count:
            raise invalid_argument(f"Expected {label} output batch size of {count}. Got: {tensor.shape[0]}")
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise invalid_argument(
            f"Tensors class and score should match in dim_size(1). Got {classes.shape[1]} vs. {scores.shape[1]}"
        )
    num_classes = (classes if classes is not None else scores).shape[1]
    response = classification_pb2.ClassificationResponse()
    _model_spec(response.model_spec, request.model_spec.name, signature_name, servable.version)
    for row in range(count):
        result = response.result.classifications.add()
        for column in range(num_classes):
            item = result.classes.add()
            if classes is not None:
                value = classes[row, column]
                item.label = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
            if scores is not None:
                item.score = float(scores[row, column])
    return response


def regress(servable: Servable, request: Any, deadline: float | None = None) -> Any:
    """The RegressionResponse for a RegressionRequest (counted in the server's metrics)."""
    with record_request(servable.name, servable.version, "Regress"):
        response = _regress(servable, request, deadline)
    return _log_examples(servable, "regress_log", request, response)


def _regress(servable: Servable, request: Any, deadline: float | None) -> Any:
    signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    signature = _example_signature(servable, signature_name, REGRESS_METHOD, "regression")
    if len(signature.outputs) != 1:
        raise invalid_argument("Expected one output Tensor.")
    if "outputs" not in signature.outputs:
        raise invalid_argument(f"No regression outputs found in SignatureDef: {signature}")
    examples = serialized_examples(request.input)
    values = _run(servable, signature_name, {"inputs": examples}, ["outputs"], deadline)["outputs"]
    count = len(examples)
    if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
        raise invalid_argument(
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got "
            f"[{','.join(map(str, values.shape))}]"
        )
    if values.shape[0] != count:
        raise invalid_argument(
            f"Input batch size did not match output batch size: {count} vs. {values.shape[0]}"
        )
    if values.dtype != np.float32:
        raise invalid_argument(f"Expected output Tensor of DT_FLOAT.  Got: {values.dtype}")
    response = regression_pb2.RegressionResponse()
    _model_spec(response.model_spec, request.model_spec.name, signature_name, servable.version)
    for value in values.reshape(-1).tolist():
        response.result.regressions.add().value = value
    return response


# ---- GetModelMetadata --------------------------------------------------------------------------


def check_metadata_request(request: Any) -> None:
    """ValidateGetModelMetadataRequest (before the model is even looked up, as TF Serving does)."""
    if not request.metadata_field:
        raise invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
    for field in request.metadata_field:
        if field != SIGNATURE_DEF_FIELD:
            raise invalid_argument(f"Metadata field {field} is not supported")


def model_metadata(servable: Servable) -> Any:
    """The GetModelMetadataResponse: every SignatureDef of the loaded MetaGraphDef."""
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, signature in servable.model.meta_graph_def.signature_def.items():
        signature_map.signature_def[key].CopyFrom(signature)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
    return response


# ---- warm-up -----------------------------------------------------------------------------------


def replay_warmup(servable: Servable, record: Any) -> None:
    """Run one PredictionLog record against `servable` (its model_spec is not looked up)."""
    kind = record.WhichOneof("log_type")
    if kind == "predict_log":
        predict(servable, record.predict_log.request)
    elif kind == "classify_log":
        classify(servable, record.classify_log.request)
    elif kind == "regress_log":
        regress(servable, record.regress_log.request)
    else:
        raise ServingStatus("UNIMPLEMENTED", f"Unsupported log_type for warmup: {kind}")
