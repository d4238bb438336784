"""TF Serving's REST API on the standard library's ThreadingHTTPServer.

Routes, as TF Serving documents them (paths matched with its own regular expressions):
    GET  /v1/models/NAME[/versions/N | /labels/L]            model status
    GET  /v1/models/NAME[/versions/N | /labels/L]/metadata   signatures
    POST /v1/models/NAME[/versions/N | /labels/L]:predict|:classify|:regress
A failure answers `{"error": "..."}` with the HTTP status TF Serving maps its code to
(`http_server.cc`): 400 for a bad request, 404 for an unknown model or version, 500 otherwise.
HTTP/1.1 keep-alive is on, so a client can reuse its connection.
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_status_pb2,
    model_pb2,
    regression_pb2,
)

from tfship.serving import inference, metrics, rest_json
from tfship.serving.grpc_api import model_status
from tfship.serving.manager import ModelManager
from tfship.serving.status import ServingStatus, invalid_argument

log = logging.getLogger("tfship.serve")

_API_PATH = re.compile(r"/v1/.*", re.IGNORECASE)
_PREDICTION_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE,
)
_STATUS_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE,
)
_MAX_INT64 = 2**63 - 1
_JSON_OPTIONS = {"preserving_proto_field_name": True, "always_print_fields_with_no_presence": True}


def _model_spec(name: str, version: str | None, label: str | None) -> Any:
    """FillModelSpecWithNameVersionAndLabel (the regexes never yield both)."""
    spec = model_pb2.ModelSpec(name=urllib.parse.unquote(name))
    if version:
        if int(version) > _MAX_INT64:
            raise invalid_argument(f"Failed to convert version: {version} to numeric.")
        spec.version.value = int(version)
    if label:
        spec.version_label = urllib.parse.unquote(label)
    return spec


class RestApi:
    """The REST handlers, independent of the HTTP server (each returns the JSON body)."""

    def __init__(self, manager: ModelManager) -> None:
        self._manager = manager

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, str]:
        """(HTTP status, JSON body) for one request."""
        try:
            return 200, self._dispatch(method, path, body)
        except ServingStatus as status:
            return status.http_status, rest_json.error_body(status.message)
        except Exception as error:  # a bug in tfship: answer 500, keep the server up, log the trace
            log.exception("REST %s %s failed", method, path)
            return 500, rest_json.error_body(f"Internal error: {type(error).__name__}: {error}")

    def _dispatch(self, method: str, path: str, body: bytes) -> str:
        malformed = invalid_argument(f"Malformed request: {method} {path}")
        if method == "POST":
            match = _PREDICTION_PATH.fullmatch(path)
            if not match:
                raise malformed
            name, version, label, verb = match.groups()
            spec = _model_spec(name, version, label)
            if verb == "predict":
                return self._predict(spec, body)
            if verb in ("classify", "regress"):
                return self._classify_or_regress(spec, body, verb)
            raise malformed
        if method == "GET":
            match = _STATUS_PATH.fullmatch(path)
            if not match:
                raise malformed
            name, version, label, metadata = match.groups()
            if not name:
                raise invalid_argument("Missing model name in request.")
            spec = _model_spec(name, version, label)
            return self._metadata(spec) if metadata else self._status(spec)
        raise malformed

    def _predict(self, spec: Any, body: bytes) -> str:
        doc = rest_json.parse_body(body)
        signature = rest_json.signature_name(doc)
        servable = self._manager.acquire(spec)
        try:
            dtypes = inference.signature_input_dtypes(servable, signature)
            inputs, fmt = rest_json.predict_inputs(doc, dtypes)
            _, outputs = inference.run_predict(servable, signature, inputs)
        finally:
            servable.release()
        return rest_json.predict_response(outputs, fmt)

    def _classify_or_regress(self, spec: Any, body: bytes, verb: str) -> str:
        doc = rest_json.parse_body(body)
        signature = rest_json.signature_name(doc)
        request_input = rest_json.examples_input(doc)
        request_type = classification_pb2.ClassificationRequest if verb == "classify" else regression_pb2.RegressionRequest
        request = request_type(model_spec=spec, input=request_input)
        request.model_spec.signature_name = signature
        servable = self._manager.acquire(spec)
        try:
            if verb == "classify":
                return rest_json.classify_response(inference.classify(servable, request).result)
            return rest_json.regress_response(inference.regress(servable, request).result)
        finally:
            servable.release()

    def _status(self, spec: Any) -> str:
        request = get_model_status_pb2.GetModelStatusRequest(model_spec=spec)
        response = model_status(self._manager, request)
        return json.dumps(json_format.MessageToDict(response, **_JSON_OPTIONS), indent=1)

    def _metadata(self, spec: Any) -> str:
        servable = self._manager.acquire(spec)
        try:
            response = inference.model_metadata(servable)
        finally:
            servable.release()
        from tensorflow_serving.apis import get_model_metadata_pb2

        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata[inference.SIGNATURE_DEF_FIELD].Unpack(signature_map)
        document = {
            "model_spec": json_format.MessageToDict(response.model_spec, **_JSON_OPTIONS),
            "metadata": {"signature_def": json_format.MessageToDict(signature_map, **_JSON_OPTIONS)},
        }
        return json.dumps(document, indent=1)


def _handler_class(api: RestApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive
        # Headers and body go out in separate writes; with Nagle's algorithm on, the client's
        # delayed ACK then stalls every response by ~40 ms.
        disable_nagle_algorithm = True
        server_version = "tfship-serve"

        def _answer(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            path = urllib.parse.urlsplit(self.path).path
            content_type = "application/json"
            if method == "GET" and path == metrics.PROMETHEUS_PATH:  # TF Serving's monitoring path
                status, text, content_type = 200, metrics.SERVING_METRICS.exposition(), metrics.CONTENT_TYPE
            elif not _API_PATH.fullmatch(path):
                status, text = 404, rest_json.error_body(f"Not found: {method} {path}")
            else:
                started = time.perf_counter()
                status, text = api.handle(method, path, body)
                log.debug("%s %s -> %d in %.2f ms", method, path, status, 1000 * (time.perf_counter() - started))
            data = text.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server names)
            self._answer("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._answer("POST")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("rest: " + format, *args)

    return Handler


class RestServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with daemon threads (a stuck client never blocks shutdown)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # socketserver's default backlog of 5 resets connections under load


def make_rest_server(manager: ModelManager, host: str, port: int) -> RestServer:
    """Bind (port 0 picks a free one); `serve_forever()` starts answering."""
    return RestServer((host, port), _handler_class(RestApi(manager)))
