"""Logged production requests as canary input: read them, split them, replay them to both versions.

Two record formats are read:
- `PredictionLog` TFRecords, as `tfship serve` (and TF Serving's request logger) writes them:
  predict, classify and regress records, each replayed through the same API and signature.
- JSON lines as KServe's payload logger writes them: one structured CloudEvent per line
  (`{"specversion": "1.0", "type": "org.kubeflow.serving.inference.request", "data": {...}}`,
  or `data_base64`), whose data is a TF Serving REST predict body (`instances` or `inputs`, and an
  optional `signature_name`: KServe's v1 protocol is TF Serving's). Response events
  (`...inference.response`) are skipped. A bare REST predict body per line is read the same way.
  KServe's logger does not record the verb, so a body with `examples` (classify or regress) is
  refused rather than guessed.

A file ending in `.jsonl` or `.json` is JSON lines; anything else is a TFRecord file. A record that
cannot be read stops the run with ONE line naming the file and the record number (1-based).

Each logged request is split into single-example requests (predict: along the batch dimension;
classify/regress: one tf.Example each, its context kept), so the judge's pairs are examples, as
with example rows. Answers are keyed `<signature>/<output>`, so traffic mixing signatures and
APIs is judged output by output. Over gRPC (`GrpcTraffic`) the logged request protos are sent as
they were logged, only their ModelSpec pointed at the baseline or the candidate. Over REST
(`RestTraffic`) each goes to the same API's REST verb: predict as a columnar `:predict` body
(`"inputs"`: every tensor keeps its logged shape and dtype, whatever the inputs' shapes; a row body
would need them to share a batch dimension), classify and regress as `:classify` / `:regress`
bodies (`"examples"`, and `"context"` when logged with one); bytes travel as `{"b64": ...}`, so
binary strings survive. REST has no output filter: a predict request's filter picks the outputs
read from the full answer.
"""

from __future__ import annotations

import base64
import functools
import glob
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from tfship.steps.canary.client import AnswerReader, ResolvedModel, RestClient, json_array
from tfship.steps.canary.config import Target
from tfship.steps.canary.metrics import Observation
from tfship.errors import DataError
from tfship.tfserving import SERVING_DEFAULT

PREDICT, CLASSIFY, REGRESS = "predict", "classify", "regress"
_LOG_TYPES = {"predict_log": PREDICT, "classify_log": CLASSIFY, "regress_log": REGRESS}
_REQUEST_EVENT = "org.kubeflow.serving.inference.request"
_RESPONSE_EVENT = "org.kubeflow.serving.inference.response"
_JSON_SUFFIXES = (".jsonl", ".json")
# The fixed outputs of TF Serving's Classify and Regress answers, and their dtypes.
# Class labels are left out: they are the same list for every example; the scores' argmax is the class.
EXAMPLE_OUTPUTS = {CLASSIFY: {"scores": "float32"}, REGRESS: {"outputs": "float32"}}


@dataclass(frozen=True)
class LoggedRequest:
    """One example of logged traffic, ready to send to any version.

    Attributes:
        api: "predict", "classify" or "regress".
        signature: the signature it was sent to ("" = serving_default).
        request: the request proto (Predict-, Classification- or RegressionRequest) for one example.
        source: `file, record N` (for messages).
    """

    api: str
    signature: str
    request: Any
    source: str


def traffic_files(pattern: str) -> list[str]:
    """The files `pattern` matches, sorted; a pattern matching nothing is a DataError."""
    files = sorted(path for path in glob.glob(pattern) if os.path.isfile(path))
    if not files:
        raise DataError(
            f"--traffic {pattern}: no file matches. Expected PredictionLog TFRecords (tfship serve "
            "--request-log-dir writes DIR/<model>-*.tfrecord) or KServe logger JSON lines (*.jsonl)."
        )
    return files


def _split_predict(request: Any, source: str) -> Iterator[Any]:
    from tensorflow_serving.apis import predict_pb2

    from tfship.steps.serve.tensors import from_numpy, to_numpy

    try:
        inputs = {alias: to_numpy(tensor) for alias, tensor in request.inputs.items()}
    except Exception as error:  # a tensor proto that does not decode
        raise DataError(f"{source}: an input tensor cannot be read ({error}).") from None
    if not inputs:
        raise DataError(f"{source}: a predict request with no inputs.")
    sizes = {alias: (array.shape[0] if array.ndim else None) for alias, array in inputs.items()}
    if None in sizes.values() or len(set(sizes.values())) != 1:
        raise DataError(f"{source}: inputs do not share one batch dimension ({sizes}); cannot split into examples.")
    for row in range(next(iter(sizes.values()))):
        single = predict_pb2.PredictRequest()
        single.model_spec.signature_name = request.model_spec.signature_name
        single.output_filter.extend(request.output_filter)
        for alias, array in inputs.items():
            single.inputs[alias].CopyFrom(from_numpy(array[row : row + 1]))
        yield single


def _split_examples(request: Any, source: str) -> Iterator[Any]:
    kind = request.input.WhichOneof("kind")
    if kind == "example_list":
        examples, context = list(request.input.example_list.examples), None
    elif kind == "example_list_with_context":
        examples, context = list(request.input.example_list_with_context.examples), request.input.example_list_with_context.context
    else:
        examples, context = [], None
    if not examples:
        raise DataError(f"{source}: a request with no examples.")
    for example in examples:
        single = type(request)()
        single.model_spec.signature_name = request.model_spec.signature_name
        if context is None:
            single.input.example_list.examples.add().CopyFrom(example)
        else:
            single.input.example_list_with_context.context.CopyFrom(context)
            single.input.example_list_with_context.examples.add().CopyFrom(example)
        yield single


def _from_prediction_logs(path: str) -> Iterator[LoggedRequest]:
    from tfship.steps.serve.request_log import read_records

    for source, record in read_records(path):
        kind = record.WhichOneof("log_type")
        if kind not in _LOG_TYPES:
            raise DataError(
                f"{source}: log_type {kind!r} cannot be replayed. Expected predict_log, classify_log or regress_log."
            )
        request = getattr(record, kind).request
        api = _LOG_TYPES[kind]
        split = _split_predict(request, source) if api == PREDICT else _split_examples(request, source)
        for single in split:
            yield LoggedRequest(api, request.model_spec.signature_name, single, source)


def _event_body(line: str, source: str) -> dict[str, Any] | None:
    """The REST body of one JSON line (None for a response event)."""
    try:
        document = json.loads(line)
    except ValueError as error:
        raise DataError(f"{source}: not JSON ({error}).") from None
    if not isinstance(document, dict):
        raise DataError(f"{source}: expected a JSON object (a CloudEvent or a REST predict body).")
    if "specversion" in document:
        if document.get("type") == _RESPONSE_EVENT:
            return None
        if document.get("type") != _REQUEST_EVENT:
            raise DataError(f"{source}: CloudEvent type {document.get('type')!r}. Expected {_REQUEST_EVENT!r}.")
        if "data_base64" in document:
            try:
                document = json.loads(base64.b64decode(document["data_base64"]))
            except ValueError as error:
                raise DataError(f"{source}: data_base64 is not base64 of a JSON body ({error}).") from None
        else:
            document = document.get("data")
        if not isinstance(document, dict):
            raise DataError(f"{source}: the event's data is not a JSON object (a REST predict body).")
    if "examples" in document:
        raise DataError(
            f"{source}: a classify/regress body (\"examples\"); KServe's logger does not record which API it "
            "went to. Replay such traffic from tfship serve's PredictionLog files."
        )
    if "instances" not in document and "inputs" not in document:
        raise DataError(f"{source}: no \"instances\" or \"inputs\": not a TF Serving / KServe v1 predict body.")
    return document


def _from_json_lines(path: str, input_dtypes: dict[str, dict[str, int]]) -> Iterator[LoggedRequest]:
    from tensorflow_serving.apis import predict_pb2

    from tfship.steps.serve import rest_json
    from tfship.steps.serve.status import ServingStatus
    from tfship.steps.serve.tensors import from_numpy

    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            source = f"{path}, record {number}"
            body = _event_body(line, source)
            if body is None:
                continue
            signature = body.get("signature_name") or SERVING_DEFAULT
            if signature not in input_dtypes:
                raise DataError(f"{source}: signature {signature!r} is not served. Expected one of {sorted(input_dtypes)}.")
            try:
                inputs, _ = rest_json.predict_inputs(body, input_dtypes[signature])
            except ServingStatus as error:
                raise DataError(f"{source}: {error.message}") from None
            request = predict_pb2.PredictRequest()
            request.model_spec.signature_name = signature
            for alias, array in inputs.items():
                request.inputs[alias].CopyFrom(from_numpy(array))
            for single in _split_predict(request, source):
                yield LoggedRequest(PREDICT, signature, single, source)


def read_traffic(pattern: str, signatures: dict[str, Any]) -> list[LoggedRequest]:
    """Every logged request under `pattern`, split into single examples: newest file first.

    Files named by `tfship serve` sort by time, so reversing the sorted names puts the newest
    traffic first: a canary sending fewer requests than were logged replays the newest ones.

    Args:
        pattern: a glob of TFRecord and/or `.jsonl` files.
        signatures: the baseline's signatures (name -> SignatureInfo): JSON bodies are read with
            their input dtypes, as the server would read them.
    """
    import tensorflow as tf

    input_dtypes = {
        name: {alias: tf.as_dtype(spec.dtype).as_datatype_enum for alias, spec in info.inputs.items()}
        for name, info in signatures.items()
    }
    requests: list[LoggedRequest] = []
    for path in reversed(traffic_files(pattern)):
        reader = _from_json_lines(path, input_dtypes) if path.endswith(_JSON_SUFFIXES) else _from_prediction_logs(path)
        requests.extend(reader)
    if not requests:
        raise DataError(f"--traffic {pattern}: the files hold no request to replay.")
    return requests


def output_dtypes(requests: list[LoggedRequest], signatures: dict[str, Any]) -> dict[str, str]:
    """`<signature>/<output>` -> dtype of every answer the traffic asks for (the judge's outputs)."""
    dtypes: dict[str, str] = {}
    for item in requests:
        signature = item.signature or SERVING_DEFAULT
        if item.api == PREDICT:
            info = signatures.get(signature)
            if info is None:
                raise DataError(f"{item.source}: signature {signature!r} is not served. Expected one of {sorted(signatures)}.")
            wanted = list(item.request.output_filter) or list(info.outputs)
            dtypes.update({f"{signature}/{name}": info.outputs[name].dtype for name in wanted if name in info.outputs})
        else:
            dtypes.update({f"{signature}/{name}": dtype for name, dtype in EXAMPLE_OUTPUTS[item.api].items()})
    return dtypes


def _aimed(item: LoggedRequest, name: str, ref: Any) -> Any:
    """A copy of the request whose ModelSpec names model `name` at `ref`."""
    request = type(item.request)()
    request.CopyFrom(item.request)
    spec = request.model_spec
    spec.name = name
    if ref.label is not None:
        spec.version_label = ref.label
    else:
        spec.version.value = ref.version
    return request


class GrpcTraffic:
    """Sends logged requests over gRPC through the API each was logged with.

    Thread-safe (one channel, many calling threads), like the canary's clients.
    """

    def __init__(self, address: str) -> None:
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self._grpc = grpc
        self._channel = grpc.insecure_channel(
            address, options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
        )
        stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._calls = {PREDICT: stub.Predict, CLASSIFY: stub.Classify, REGRESS: stub.Regress}

    def prepare(self, item: LoggedRequest, name: str, model: ResolvedModel) -> tuple[str, Any]:
        """(api, the request aimed at model `name` at `model.ref`)."""
        return item.api, _aimed(item, name, model.ref)

    def send(self, prepared: tuple[str, Any], deadline_s: float) -> Observation:
        from tfship.steps.serve.tensors import to_numpy

        api, request = prepared
        signature = request.model_spec.signature_name or SERVING_DEFAULT
        started = time.perf_counter()
        try:
            response = self._calls[api](request, timeout=deadline_s)
        except self._grpc.RpcError as error:
            return Observation(False, time.perf_counter() - started, error.code().name, error.details() or "")
        latency = time.perf_counter() - started
        try:
            if api == PREDICT:
                outputs = {f"{signature}/{key}": to_numpy(tensor)[0] for key, tensor in response.outputs.items()}
            elif api == CLASSIFY:
                classes = response.result.classifications[0].classes
                outputs = {f"{signature}/scores": np.array([c.score for c in classes], np.float32)}
            else:
                outputs = {f"{signature}/outputs": np.float32(response.result.regressions[0].value)}
        except Exception as error:  # an answer we cannot read is a failed request
            return Observation(False, latency, "DATA_LOSS", f"unreadable answer: {error}")
        return Observation(True, latency, outputs=outputs)

    def close(self) -> None:
        self._channel.close()


def _b64(value: Any) -> dict[str, str]:
    raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
    return {"b64": base64.b64encode(raw).decode("ascii")}


def _json_tensor(array: np.ndarray) -> Any:
    """A tensor as REST JSON: nested lists (a scalar bare), bytes as `{"b64": ...}`."""
    if array.dtype.kind in "OSU":
        return np.vectorize(_b64, otypes=[object])(array).tolist()
    return array.tolist()


def _json_example(example: Any) -> dict[str, list[Any]]:
    """A tf.Example as a REST example object: feature -> its values (float, int or {"b64": ...})."""
    values: dict[str, list[Any]] = {}
    for feature_name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        if kind == "bytes_list":
            values[feature_name] = [_b64(v) for v in feature.bytes_list.value]
        elif kind == "float_list":  # json writes a float with a point or exponent: read back as float
            values[feature_name] = [float(v) for v in feature.float_list.value]
        else:
            values[feature_name] = [int(v) for v in feature.int64_list.value] if kind else []
    return values


class RestTraffic:
    """Sends logged requests over TF Serving's REST API, each to its API's verb (see module docstring).

    Shares the canary's `RestClient` (its keep-alive connections, error mapping and deadlines).
    """

    def __init__(self, client: RestClient) -> None:
        self._client = client

    def prepare(self, item: LoggedRequest, name: str, model: ResolvedModel) -> tuple[str, bytes, AnswerReader]:
        """(path, JSON body, reader of the answer) for `item` sent to model `name` at `model.ref`.

        `model.signatures` give the signature's outputs: a columnar answer names its outputs
        only when there are several.
        """
        signature = item.signature or SERVING_DEFAULT
        body: dict[str, Any] = {"signature_name": signature}
        if item.api == PREDICT:
            from tfship.steps.serve.tensors import to_numpy

            body["inputs"] = {alias: _json_tensor(to_numpy(tensor)) for alias, tensor in item.request.inputs.items()}
            dtypes = {output: spec.dtype for output, spec in model.signatures[signature].outputs.items()}
            wanted = list(item.request.output_filter) or list(dtypes)
            read = functools.partial(_read_columnar, signature, dtypes, wanted)
        else:
            kind = item.request.input.WhichOneof("kind")
            examples = getattr(item.request.input, kind)
            if kind == "example_list_with_context":
                body["context"] = _json_example(examples.context)
            body["examples"] = [_json_example(example) for example in examples.examples]
            read = functools.partial(_read_classify if item.api == CLASSIFY else _read_regress, signature)
        path = f"{self._client.path(name, model.ref)}:{item.api}"
        return path, json.dumps(body).encode("utf-8"), read

    def send(self, prepared: tuple[str, bytes, AnswerReader], deadline_s: float) -> Observation:
        return self._client.send(prepared, deadline_s)

    def close(self) -> None:
        """Closes the shared client's connections (closing twice is harmless)."""
        self._client.close()


def _read_columnar(signature: str, dtypes: dict[str, str], wanted: list[str], document: Any) -> dict[str, np.ndarray]:
    """The wanted outputs of `{"outputs": ...}` (a bare value when the signature has one output)."""
    outputs = document["outputs"]
    if len(dtypes) == 1:
        outputs = {next(iter(dtypes)): outputs}
    return {f"{signature}/{output}": json_array(outputs[output], dtypes[output])[0] for output in wanted}


def _read_classify(signature: str, document: Any) -> dict[str, np.ndarray]:
    """The class scores of `{"results": [[[label, score], ...]]}`, as a Classify answer's over gRPC."""
    return {f"{signature}/scores": np.array([float(score) for _, score in document["results"][0]], np.float32)}


def _read_regress(signature: str, document: Any) -> dict[str, np.ndarray]:
    """The value of `{"results": [value]}`, as a Regress answer's over gRPC."""
    return {f"{signature}/outputs": np.float32(document["results"][0])}


def sender_for(target: Target, client: Any) -> GrpcTraffic | RestTraffic:
    """The traffic sender for `target`'s scheme (REST reuses the canary's `client`)."""
    return GrpcTraffic(target.address) if target.scheme == "grpc" else RestTraffic(client)
