"""TF Serving's gRPC services: PredictionService and ModelService, on tensorflow-serving-api's stubs.

Each method resolves its ModelSpec through the manager (version, label or latest), runs the shared
inference code, and answers a failure with the canonical code TF Serving would send. The request's
gRPC deadline bounds injected latency (see `Fault`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from tfship.steps.serve import inference
from tfship.steps.serve.manager import ModelManager
from tfship.steps.serve.status import CODES, ServingStatus, invalid_argument

_GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}


def _abort(context: grpc.ServicerContext, status: ServingStatus) -> None:
    context.abort(_GRPC_CODES[CODES[status.code]], status.message)


def _deadline(context: grpc.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict, Classify, Regress and GetModelMetadata (MultiInference: UNIMPLEMENTED)."""

    def __init__(self, manager: ModelManager) -> None:
        self._manager = manager

    def _serve(self, request: Any, context: grpc.ServicerContext, run: Callable[..., Any]) -> Any:
        try:
            if not request.HasField("model_spec"):
                raise invalid_argument("Missing ModelSpec")
            servable = self._manager.acquire(request.model_spec)
            try:
                return run(servable, request, _deadline(context))
            finally:
                servable.release()
        except ServingStatus as status:
            _abort(context, status)

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 (gRPC names)
        return self._serve(request, context, inference.predict)

    def Classify(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._serve(request, context, inference.classify)

    def Regress(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._serve(request, context, inference.regress)

    def GetModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        def metadata(servable: Any, _request: Any, _deadline: float | None) -> Any:
            return inference.model_metadata(servable)

        try:
            if request.HasField("model_spec"):
                inference.check_metadata_request(request)
        except ServingStatus as status:
            _abort(context, status)
        return self._serve(request, context, metadata)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus (HandleReloadConfigRequest: UNIMPLEMENTED; tfship reloads by polling)."""

    def __init__(self, manager: ModelManager) -> None:
        self._manager = manager

    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        try:
            return model_status(self._manager, request)
        except ServingStatus as status:
            _abort(context, status)


def model_status(manager: ModelManager, request: Any) -> Any:
    """GetModelStatusImpl: one version, or every version (a label is ignored, as TF Serving does)."""
    if not request.HasField("model_spec"):
        raise invalid_argument("Missing ModelSpec")
    spec = request.model_spec
    version = spec.version.value if spec.HasField("version") else None
    response = get_model_status_pb2.GetModelStatusResponse()
    for number, state in manager.version_states(spec.name, version):
        entry = response.model_version_status.add()
        entry.version = number
        entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(state.state)
        entry.status.error_code = CODES[state.error_code]
        entry.status.error_message = state.error_message
    return response


def add_services(server: grpc.Server, manager: ModelManager) -> None:
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(manager), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(manager), server)
