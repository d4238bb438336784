"""Waiting for a serving target over gRPC (ModelService.GetModelStatus), as TF Serving answers it.

The server here is a real gRPC server implementing TF Serving's ModelService from the
tensorflow-serving-api protos (importing them imports TensorFlow, hence a separate module).
"""

from __future__ import annotations

from concurrent import futures

import pytest

from tfship.errors import ModelError
from tfship.steps.push.version_wait import version_state, wait_until_available


@pytest.fixture
def model_service():
    grpc = pytest.importorskip("grpc")
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    states = {}

    class Service(model_service_pb2_grpc.ModelServiceServicer):
        def GetModelStatus(self, request, context):  # noqa: N802 - gRPC's name
            reply = get_model_status_pb2.GetModelStatusResponse()
            state, message = states.get(request.model_spec.version.value, ("START", ""))
            status = reply.model_version_status.add(
                version=request.model_spec.version.value,
                state=get_model_status_pb2.ModelVersionStatus.State.Value(state),
            )
            status.status.error_message = message
            return reply

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", states
    server.stop(0)


def test_grpc_status_is_read_and_waited_for(model_service) -> None:
    target, states = model_service
    assert version_state(target, "m", 7) == ("START", "")
    states[7] = ("AVAILABLE", "")
    wait_until_available(target, "m", 7, timeout_s=5)
    states[8] = ("END", "Not found: no SavedModel bundle")
    with pytest.raises(ModelError, match="failed to load version 8 of model 'm': Not found"):
        wait_until_available(target, "m", 8, timeout_s=5)
