"""Clients for any TF Serving endpoint, over gRPC (tensorflow-serving-api stubs) or REST (JSON).

Only TF Serving's public API is used (GetModelMetadata to resolve a label and read the signature,
Predict to send examples), so the canary runs the same against TF Serving itself as against
`tfship serve`. Every call carries a deadline. A request's latency is measured around the call
only: requests are built before the run and answers parsed after the clock stops.
"""

from __future__ import annotations

import base64
import functools
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from tfship.steps.canary.config import Target, VersionRef
from tfship.steps.canary.metrics import Observation
from tfship.errors import EndpointError

# HTTP status -> the canonical code TF Serving's REST server mapped from (http_server.cc); 502 comes
# from a proxy whose backend is down.
_CODE_OF_HTTP = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL",
                 501: "UNIMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}

# Codes that say the server failed, whatever was sent (over REST: the 5xx answers), as opposed to a
# request the server refused (INVALID_ARGUMENT and the other 4xx): a failed request with one of
# these says nothing about the example.
SERVER_FAILURE_CODES = frozenset({"INTERNAL", "UNKNOWN", "DATA_LOSS", "UNIMPLEMENTED", "UNAVAILABLE",
                                  "DEADLINE_EXCEEDED"})


# Reads the outputs of a 200 answer's JSON document; KeyError/IndexError/TypeError/ValueError = unreadable.
AnswerReader = Callable[[Any], dict[str, np.ndarray]]


def _code_of_http(status: int) -> str:
    """The canonical code of an HTTP error status (an unlisted 5xx is a server failure: UNKNOWN)."""
    return _CODE_OF_HTTP.get(status) or ("UNKNOWN" if status >= 500 else f"HTTP_{status}")


@dataclass(frozen=True)
class ResolvedModel:
    """A version reference resolved by the server: its number and its signatures."""

    ref: VersionRef
    version: int
    signatures: dict[str, Any]  # name -> tfship.saved_model.loader.SignatureInfo


def _signatures(signature_map: Any) -> dict[str, Any]:
    from tensorflow.core.protobuf import meta_graph_pb2

    from tfship.saved_model.loader import signatures_of

    meta_graph = meta_graph_pb2.MetaGraphDef()
    for key, value in signature_map.signature_def.items():
        meta_graph.signature_def[key].CopyFrom(value)
    return signatures_of(meta_graph)


class ServingClient(Protocol):
    def resolve(self, name: str, ref: VersionRef, deadline_s: float, flag: str = "") -> ResolvedModel: ...
    def prepare(self, name: str, ref: VersionRef, signature: str, example: dict[str, np.ndarray],
                output_dtypes: dict[str, str]) -> Any: ...
    def send(self, prepared: Any, deadline_s: float) -> Observation: ...
    def close(self) -> None: ...


def make_client(target: Target) -> ServingClient:
    """The client for `target`'s scheme."""
    return GrpcClient(target) if target.scheme == "grpc" else RestClient(target)


def _unreachable(target: Target, what: str, detail: str) -> EndpointError:
    return EndpointError(
        f"Cannot reach the serving endpoint {target} for {what}: {detail}. Check --target (is the "
        "server running, is it the gRPC port for grpc:// and the REST port for http://?)."
    )


def _unknown(name: str, ref: VersionRef, flag: str, detail: str) -> EndpointError:
    return EndpointError(
        f"{flag} {ref.label or ref.version}: the server does not serve model {name!r} {ref}: {detail}"
    )


class GrpcClient:
    """PredictionService over one channel (thread-safe; calls may run from many threads)."""

    def __init__(self, target: Target) -> None:
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self._grpc = grpc
        self._target = target
        self._channel = grpc.insecure_channel(
            target.address,
            options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)],
        )
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

    def _spec(self, spec: Any, name: str, ref: VersionRef, signature: str = "") -> None:
        spec.name = name
        if ref.label is not None:
            spec.version_label = ref.label
        else:
            spec.version.value = ref.version
        if signature:
            spec.signature_name = signature

    def resolve(self, name: str, ref: VersionRef, deadline_s: float, flag: str = "") -> ResolvedModel:
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec, name, ref)
        try:
            response = self._stub.GetModelMetadata(request, timeout=deadline_s)
        except self._grpc.RpcError as error:
            code = error.code()
            if code in (self._grpc.StatusCode.UNAVAILABLE, self._grpc.StatusCode.DEADLINE_EXCEEDED):
                raise _unreachable(self._target, f"model {name!r} {ref}", f"{code.name}: {error.details()}") from None
            raise _unknown(name, ref, flag, f"{code.name}: {error.details()}") from None
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return ResolvedModel(ref, int(response.model_spec.version.value), _signatures(signature_map))

    def prepare(self, name: str, ref: VersionRef, signature: str, example: dict[str, np.ndarray],
                output_dtypes: dict[str, str]) -> Any:
        from tensorflow_serving.apis import predict_pb2

        from tfship.steps.serve.tensors import from_numpy

        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, name, ref, signature)
        for key, array in example.items():
            request.inputs[key].CopyFrom(from_numpy(np.asarray(array)[None]))
        return request

    def send(self, prepared: Any, deadline_s: float) -> Observation:
        from tfship.steps.serve.tensors import to_numpy

        started = time.perf_counter()
        try:
            response = self._stub.Predict(prepared, timeout=deadline_s)
        except self._grpc.RpcError as error:
            return Observation(False, time.perf_counter() - started, error.code().name, error.details() or "")
        latency = time.perf_counter() - started
        try:
            outputs = {key: to_numpy(tensor)[0] for key, tensor in response.outputs.items()}
        except Exception as error:  # an answer we cannot read is a failed request
            return Observation(False, latency, "DATA_LOSS", f"unreadable answer: {error}")
        return Observation(True, latency, outputs=outputs)

    def close(self) -> None:
        self._channel.close()


class _Connection(http.client.HTTPConnection):
    """HTTPConnection with TCP_NODELAY (small requests must not wait for delayed ACKs)."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class RestClient:
    """TF Serving's REST API with one keep-alive connection per calling thread."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self._local = threading.local()
        self._connections: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = _Connection(self._target.host.strip("[]"), self._target.port, timeout=timeout)
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        return connection

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
        self._local.connection = None

    def _request(self, method: str, path: str, body: bytes | None, deadline_s: float) -> tuple[int, bytes]:
        """(status, body); OSError/HTTPException on transport failure. Retries a stale keep-alive once."""
        for attempt in (0, 1):
            connection = self._connection(deadline_s)
            reused = connection.sock is not None
            try:
                headers = {"Content-Type": "application/json"} if body is not None else {}
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._drop()
                if attempt or not reused:
                    raise
            except (OSError, http.client.HTTPException):
                self._drop()
                raise
        raise AssertionError("unreachable")

    @staticmethod
    def path(name: str, ref: VersionRef) -> str:
        """The REST path of model `name` at `ref` (`/labels/L` or `/versions/N`), before `:verb`."""
        from urllib.parse import quote

        base = f"/v1/models/{quote(name, safe='')}"
        if ref.label is not None:
            return f"{base}/labels/{quote(ref.label, safe='')}"
        return f"{base}/versions/{ref.version}"

    def resolve(self, name: str, ref: VersionRef, deadline_s: float, flag: str = "") -> ResolvedModel:
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        path = self.path(name, ref) + "/metadata"
        try:
            status, body = self._request("GET", path, None, deadline_s)
        except (OSError, http.client.HTTPException) as error:
            raise _unreachable(self._target, f"model {name!r} {ref}", f"{type(error).__name__}: {error}") from None
        try:
            document = json.loads(body)
        except ValueError:
            document = {}
        if status != 200:
            detail = document.get("error", body[:200].decode("utf-8", "replace")) if isinstance(document, dict) else ""
            if status in (502, 503, 504):
                raise _unreachable(self._target, f"model {name!r} {ref}", f"HTTP {status}: {detail}")
            raise _unknown(name, ref, flag, f"HTTP {status}: {detail}")
        try:
            signature_map = json_format.ParseDict(
                document["metadata"]["signature_def"], get_model_metadata_pb2.SignatureDefMap(), ignore_unknown_fields=True
            )
            version = int(document["model_spec"]["version"])
        except (KeyError, TypeError, ValueError, json_format.ParseError) as error:
            raise EndpointError(f"{self._target}{path} answered metadata tfship cannot read: {error}") from None
        return ResolvedModel(ref, version, _signatures(signature_map))

    def prepare(self, name: str, ref: VersionRef, signature: str, example: dict[str, np.ndarray],
                output_dtypes: dict[str, str]) -> Any:
        from tfship.steps.canary.examples import as_json_values

        body = json.dumps({"signature_name": signature, "instances": [as_json_values(example)]}).encode("utf-8")
        return self.path(name, ref) + ":predict", body, functools.partial(_read_predictions, dict(output_dtypes))

    def send(self, prepared: tuple[str, bytes, AnswerReader], deadline_s: float) -> Observation:
        """POST one prepared request: (path, JSON body, the reader of a 200 answer's document)."""
        path, body, read = prepared
        started = time.perf_counter()
        try:
            status, answer = self._request("POST", path, body, deadline_s)
        except (TimeoutError, socket.timeout) as error:
            return Observation(False, time.perf_counter() - started, "DEADLINE_EXCEEDED", str(error) or "timed out")
        except (OSError, http.client.HTTPException) as error:
            return Observation(False, time.perf_counter() - started, "UNAVAILABLE", f"{type(error).__name__}: {error}")
        latency = time.perf_counter() - started
        try:
            document = json.loads(answer)
        except ValueError:
            document = {}
        if status != 200:
            message = document.get("error", "") if isinstance(document, dict) else ""
            return Observation(False, latency, _code_of_http(status), message)
        try:
            outputs = read(document)
        except (KeyError, IndexError, TypeError, ValueError) as error:
            return Observation(False, latency, "DATA_LOSS", f"unreadable answer: {type(error).__name__}: {error}")
        return Observation(True, latency, outputs=outputs)

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()


def _read_predictions(output_dtypes: dict[str, str], document: Any) -> dict[str, np.ndarray]:
    """The outputs of a row-format answer to one example (`{"predictions": [...]}`)."""
    prediction = document["predictions"][0]
    if len(output_dtypes) == 1:
        prediction = {next(iter(output_dtypes)): prediction}
    return {key: json_array(prediction[key], output_dtypes[key]) for key in output_dtypes}


def json_array(value: Any, dtype: str) -> np.ndarray:
    """A REST answer's JSON value as an array of `dtype` (strings: text, or `{"b64": ...}` for bytes)."""
    if dtype == "string":
        def leaf(v: Any) -> Any:
            return base64.b64decode(v["b64"]) if isinstance(v, dict) else str(v).encode("utf-8")

        return np.vectorize(leaf, otypes=[object])(np.asarray(value, dtype=object))
    return np.asarray(value, dtype=np.float64 if dtype.startswith(("float", "double", "half", "bfloat")) else dtype)
