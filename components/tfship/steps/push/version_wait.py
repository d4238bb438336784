"""Wait until a TF Serving target reports a model version AVAILABLE (ModelService.GetModelStatus).

A push adds a version to models.config and may move a label onto it only once the server has
loaded it: TF Serving refuses a config whose label names an unloaded version, and keeps refusing
it at every poll (the new version is never loaded). The push therefore asks the serving target.

Targets: `host:port` is TF Serving's gRPC port (ModelService.GetModelStatus; imports the
tensorflow-serving-api protos, hence TensorFlow, only here); `http://host:port` is its REST port
(`GET /v1/models/<name>/versions/<version>`, the same status through the REST gateway, no
TensorFlow import). A target that cannot be reached yet, or does not know the version yet, is
asked again until the deadline: the server polls models.config on its own schedule.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request

from tfship.errors import ModelError, ServingTimeoutError

log = logging.getLogger(__name__)

AVAILABLE = "AVAILABLE"
END = "END"


def _rest_state(target: str, name: str, version: int, timeout: float) -> tuple[str | None, str]:
    url = f"{target.rstrip('/')}/v1/models/{name}/versions/{version}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        return None, f"HTTP {error.code}"
    except (OSError, ValueError) as error:
        return None, str(getattr(error, "reason", error))
    for status in body.get("model_version_status", []):
        if int(status.get("version", -1)) == version:
            detail = status.get("status", {}) or {}
            return status.get("state"), str(detail.get("error_message", ""))
    return None, "version not reported"


def _grpc_state(target: str, name: str, version: int, timeout: float) -> tuple[str | None, str]:
    import grpc
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    request.model_spec.version.value = version
    with grpc.insecure_channel(target) as channel:
        try:
            reply = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=timeout)
        except grpc.RpcError as error:
            return None, f"{error.code().name}: {error.details()}"
    for status in reply.model_version_status:
        if status.version == version:
            state = get_model_status_pb2.ModelVersionStatus.State.Name(status.state)
            return state, status.status.error_message
    return None, "version not reported"


def version_state(target: str, name: str, version: int, timeout: float = 5.0) -> tuple[str | None, str]:
    """(state, detail) of one version on `target`; state None when the target cannot say yet."""
    if target.startswith(("http://", "https://")):
        return _rest_state(target, name, version, timeout)
    return _grpc_state(target, name, version, timeout)


def wait_until_available(
    target: str, name: str, version: int, timeout_s: float = 300.0, poll_s: float = 0.5
) -> None:
    """Return once `target` serves `version` of `name`; raise after `timeout_s` seconds.

    Raises:
        ModelError: the server tried and failed to load the version (state END with an error).
        ServingTimeoutError: the deadline passed first.
    """
    deadline = time.monotonic() + timeout_s
    state, detail = None, ""
    while True:
        state, detail = version_state(target, name, version, timeout=min(5.0, max(timeout_s, 0.1)))
        if state == AVAILABLE:
            return
        if state == END and detail:
            raise ModelError(
                f"Serving target {target} failed to load version {version} of model {name!r}: {detail}. "
                "The version is in models.config but no label was moved to it. Fix the model and push "
                "it as a new version."
            )
        if time.monotonic() >= deadline:
            break
        log.debug("waiting for %s version %d on %s: %s %s", name, version, target, state, detail)
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
    raise ServingTimeoutError(
        f"Serving target {target} did not report version {version} of model {name!r} AVAILABLE within "
        f"{timeout_s:g} s (last answer: {state or 'none'} {detail}). The version is in models.config, "
        "unlabelled. Fix: check that the server follows this repository's models.config, then re-run "
        "the same push (it resumes), or raise --wait-timeout."
    )
