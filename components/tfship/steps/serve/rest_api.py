"""TF Serving's REST API, served by waitress.

Routes, as TF Serving documents them (paths matched with its own regular expressions):
    GET  /v1/models/NAME[/versions/N | /labels/L]            model status
    GET  /v1/models/NAME[/versions/N | /labels/L]/metadata   signatures
    POST /v1/models/NAME[/versions/N | /labels/L]:predict|:classify|:regress
A failure answers `{"error": "..."}` with the HTTP status TF Serving maps its code to
(`http_server.cc`): 400 for a bad request, 404 for an unknown model or version, 500 otherwise.
A body over the size limit answers 413, bad framing (an invalid Content-Length, broken chunks) 400,
both with an `{"error": ...}` body. HTTP/1.1 keep-alive is on, so a client can reuse its connection.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import time
import urllib.parse
from collections.abc import Callable
from http.client import responses as _REASONS
from typing import Any

import waitress
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.task import ErrorTask
from waitress.utilities import RequestEntityTooLarge

from google.protobuf import json_format
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_status_pb2,
    model_pb2,
    regression_pb2,
)

from tfship.steps.serve import inference, metrics, rest_json
from tfship.steps.serve.grpc_api import model_status
from tfship.steps.serve.manager import ModelManager
from tfship.steps.serve.status import ServingStatus, invalid_argument

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
        except RecursionError:  # JSON nested deeper than the parser or the tensor walk can follow
            return 400, rest_json.error_body("JSON Parse error: the document nests too deeply")
        except Exception as error:  # a bug in tfship: answer 500, keep the server up, log the trace
            # The message stays in the log: it may hold file paths that a client has no business seeing.
            log.exception("REST %s %s failed", method, path)
            return 500, rest_json.error_body(f"Internal error: {type(error).__name__} (details in the server log)")

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


def _wsgi_app(api: RestApi) -> Callable[[dict[str, Any], Callable[..., Any]], list[bytes]]:
    """The WSGI application: every path outside /v1/ is 404, the rest goes to `api`."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        method = environ["REQUEST_METHOD"]
        # REQUEST_URI is the path as sent: TF Serving matches its routes before decoding escapes.
        path = urllib.parse.urlsplit(environ.get("REQUEST_URI") or environ["PATH_INFO"]).path
        length = int(environ.get("CONTENT_LENGTH") or 0)  # waitress has checked it, and de-chunked the body
        body = environ["wsgi.input"].read(length) if length > 0 else b""
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
        start_response(
            f"{status} {_REASONS.get(status, 'Unknown')}",
            [("Content-Type", content_type), ("Content-Length", str(len(data)))],
        )
        return [data]

    return app


class _JsonErrorTask(ErrorTask):
    """waitress's own refusals (413 body too large, 400 bad framing, 431 headers too large) as
    TF Serving's `{"error": ...}` JSON, instead of its plain text signed "(generated by ...)"."""

    def execute(self) -> None:
        error = self.request.error
        if isinstance(error, RequestEntityTooLarge):  # waitress refuses at its limit; ours is one byte less
            limit = self.channel.server.adj.max_request_body_size - 1
            message = f"{error.reason}: the body is over the limit of {limit} bytes"
        else:
            message = f"{error.reason}: {error.body}"
        data = rest_json.error_body(message).encode("utf-8")
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(data)
        self.write(data)


class _JsonErrorChannel(HTTPChannel):
    error_task_class = _JsonErrorTask


# The most connections open at once (waitress's default is 100); past it, new ones wait in the backlog.
_CONNECTION_LIMIT = 1000


class RestServer:
    """The REST API on waitress, a production WSGI server (http.server's docs say it is not one).

    waitress reads every request in one I/O thread (select/poll) and hands only complete requests
    to its worker threads, so a slow or stalled client never holds a worker; it de-chunks
    `Transfer-Encoding: chunked` bodies, keeps connections alive, refuses a body over
    `max_body_bytes` with 413 before buffering it, and drops a connection idle (or stalled
    mid-request) for `timeout_s`. Responses carry no `Server:` header.
    """

    def __init__(self, api: RestApi, sock: socket.socket, threads: int, max_body_bytes: int, timeout_s: int) -> None:
        self._server = waitress.create_server(
            _wsgi_app(api),
            sockets=[sock],
            threads=threads,
            ident="",  # no Server: banner
            max_request_body_size=max_body_bytes + 1,  # waitress refuses a body of this size or more
            channel_timeout=timeout_s,
            cleanup_interval=1,  # look for timed-out connections every second
            connection_limit=_CONNECTION_LIMIT,
            asyncore_use_poll=True,  # select() fails past 1024 file descriptors
            expose_tracebacks=False,
        )
        self._server.channel_class = _JsonErrorChannel
        self.port: int = sock.getsockname()[1]

    def serve_forever(self) -> None:
        """Answer requests until `shutdown()` (run it in its own thread)."""
        self._server.run()

    def shutdown(self) -> None:
        """Close the listening socket and every connection, then stop the worker threads.

        The closing runs in the I/O thread (through waitress's trigger), which owns the sockets;
        its loop ends once nothing is left to watch.
        """
        server = self._server
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        server.task_dispatcher.shutdown()


def make_rest_server(
    manager: ModelManager, host: str, port: int, *, threads: int, max_body_bytes: int, timeout_s: int
) -> RestServer:
    """Bind (port 0 picks a free one; OSError when the port is taken); `serve_forever()` starts answering."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.create_server(address, family=family, backlog=1024)
    return RestServer(RestApi(manager), sock, threads, max_body_bytes, timeout_s)
