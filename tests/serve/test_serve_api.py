"""`tfship serve` answers exactly what TF Serving answers, over REST and over gRPC.

The expected bodies are the ones TF Serving's own server tests expect (tests/data/tf_serving/README.md),
for TF Serving's own test models. The gRPC side is driven by the plain tensorflow-serving-api client
code a user would write; REST by urllib. One server (real ports on 127.0.0.1) serves the module.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from google.protobuf import json_format
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tfship import storage
from tfship import models_config
from tfship.steps.serve import serve

pytestmark = pytest.mark.timeout(180)
DEADLINE_S = 10


def write_repo(root: Path, models: dict[str, dict[int, Path]], labels: dict[str, dict[str, int]] | None = None) -> str:
    """A model repository: <root>/<name>/<version> links to existing SavedModels, plus models.config."""
    config = models_config.ModelServerConfig()
    for name, versions in models.items():
        base = root / name
        base.mkdir(parents=True, exist_ok=True)
        for version, source in versions.items():
            if not (base / str(version)).exists():
                os.symlink(source, base / str(version))
            config = models_config.with_version(config, name, str(base), version)
        for label, version in (labels or {}).get(name, {}).items():
            config = models_config.with_label(config, name, label, version)
    storage.write_text(models_config.config_uri(str(root)), models_config.format_models_config(config))
    return str(root)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tf_serving_testdata: Path):
    data = tf_serving_testdata
    repo = write_repo(
        tmp_path_factory.mktemp("repo"),
        {
            "default": {123: data / "saved_model_half_plus_two_cpu" / "00000123"},
            "saved_model_half_plus_two_2_versions": {
                123: data / "saved_model_half_plus_two_2_versions" / "00000123",
                124: data / "saved_model_half_plus_two_2_versions" / "00000124",
            },
            "three": {123: data / "saved_model_half_plus_three" / "00000123"},
        },
        {"saved_model_half_plus_two_2_versions": {"stable": 123, "canary": 124}},
    )
    with serve(repo, grpc_port=0, rest_port=0, poll_seconds=0) as handle:
        yield handle


def rest(server: Any, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(server.rest_url + path, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=DEADLINE_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def stub(server: Any) -> prediction_service_pb2_grpc.PredictionServiceStub:
    channel = grpc.insecure_channel(server.grpc_address)
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
    channel.close()


def tf_example(x: float) -> tf.train.Example:
    return tf.train.Example(features=tf.train.Features(feature={"x": tf.train.Feature(float_list=tf.train.FloatList(value=[x]))}))


# ---- the answers TF Serving's own tests expect (README table), REST ----------------------------


def test_rest_predict_row_format(server: Any) -> None:
    assert rest(server, "POST", "/v1/models/default:predict", {"instances": [2.0, 3.0, 4.0]}) == (
        200, {"predictions": [3.0, 3.5, 4.0]})


def test_rest_predict_columnar_format(server: Any) -> None:
    assert rest(server, "POST", "/v1/models/default:predict", {"inputs": [2.0, 3.0, 4.0]}) == (
        200, {"outputs": [3.0, 3.5, 4.0]})


def test_rest_predict_row_and_columnar_with_batched_rows(server: Any) -> None:
    assert rest(server, "POST", "/v1/models/default:predict", {"instances": [[2.0], [3.0], [4.0]]}) == (
        200, {"predictions": [[3.0], [3.5], [4.0]]})
    assert rest(server, "POST", "/v1/models/default:predict", {"inputs": {"x": [[2.0], [3.0]]}}) == (
        200, {"outputs": [[3.0], [3.5]]})


def test_rest_classify(server: Any) -> None:
    body = {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}
    assert rest(server, "POST", "/v1/models/default:classify", body) == (200, {"results": [[["", 3.0]]]})


def test_rest_regress(server: Any) -> None:
    body = {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]}
    assert rest(server, "POST", "/v1/models/default:regress", body) == (200, {"results": [3.0]})


def test_rest_model_status(server: Any) -> None:
    assert rest(server, "GET", "/v1/models/default") == (200, {"model_version_status": [
        {"version": "123", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})


@pytest.mark.parametrize("name, expected", [
    ("default", "half_plus_two_model_metadata.json"),
    ("saved_model_half_plus_two_2_versions/versions/123", "saved_model_half_plus_two_2_versions_metadata.json"),
])
def test_rest_metadata_is_tf_servings_json(server: Any, tf_serving_testdata: Path, name: str, expected: str) -> None:
    status, body = rest(server, "GET", f"/v1/models/{name}/metadata")
    want = json.loads((tf_serving_testdata / expected).read_text())
    assert status == 200
    assert json.dumps(body, sort_keys=True) == json.dumps(want, sort_keys=True)


# ---- the same over gRPC, as a user writes it ---------------------------------------------------


def test_grpc_predict(stub: Any) -> None:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "default"
    request.model_spec.signature_name = "serving_default"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([[2.0], [3.0], [4.0]], dtype=tf.float32))
    response = stub.Predict(request, timeout=DEADLINE_S)
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["y"]), [[3.0], [3.5], [4.0]])
    assert (response.model_spec.name, response.model_spec.version.value, response.model_spec.signature_name) == (
        "default", 123, "serving_default")


def _regress(stub: Any, model: str, signature: str) -> list[float]:
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    request.input.example_list.examples.append(tf_example(2.0))
    return [r.value for r in stub.Regress(request, timeout=DEADLINE_S).result.regressions]


def test_grpc_classify_and_regress(stub: Any) -> None:
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = "default"
    classify.model_spec.signature_name = "classify_x_to_y"
    classify.input.example_list.examples.append(tf_example(2.0))
    result = stub.Classify(classify, timeout=DEADLINE_S).result
    assert [(c.label, c.score) for c in result.classifications[0].classes] == [("", 3.0)]
    assert _regress(stub, "default", "regress_x_to_y") == [3.0]
    # half_plus_three names its regression signature after the method (TF Serving's file, as is)
    assert _regress(stub, "three", "tensorflow/serving/regress") == [4.0]


def test_grpc_predict_half_plus_three(stub: Any) -> None:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "three"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([[2.0]], dtype=tf.float32))
    assert tf.make_ndarray(stub.Predict(request, timeout=DEADLINE_S).outputs["y"]).tolist() == [[4.0]]


@pytest.mark.parametrize("model, expected", [("default", 3.0), ("three", 4.0)])
def test_grpc_predict_as_tf_servings_own_test_sends_it(stub: Any, model: str, expected: float) -> None:
    """TF Serving's VerifyPredictRequest: x of shape [1] (not [1, 1]), output_filter y."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = "serving_default"
    request.inputs["x"].dtype = types_pb2.DT_FLOAT
    request.inputs["x"].float_val.append(2.0)
    request.inputs["x"].tensor_shape.dim.add().size = 1
    request.output_filter.append("y")
    result = stub.Predict(request, timeout=DEADLINE_S)
    assert result.outputs["y"].dtype == types_pb2.DT_FLOAT
    assert list(result.outputs["y"].float_val) == [expected]


def test_grpc_metadata_matches_tf_servings_json(stub: Any, tf_serving_testdata: Path) -> None:
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "default"
    response = stub.GetModelMetadata(request, timeout=DEADLINE_S)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_map)
    want = json.loads((tf_serving_testdata / "half_plus_two_model_metadata.json").read_text())
    got = json_format.MessageToDict(signature_map, preserving_proto_field_name=True,
                                    always_print_fields_with_no_presence=True)
    assert got == want["metadata"]["signature_def"]
    assert response.model_spec.version.value == 123


def test_grpc_model_status(server: Any) -> None:
    with grpc.insecure_channel(server.grpc_address) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "saved_model_half_plus_two_2_versions"
        response = stub.GetModelStatus(request, timeout=DEADLINE_S)
    states = [(s.version, get_model_status_pb2.ModelVersionStatus.State.Name(s.state), s.status.error_code)
              for s in response.model_version_status]
    assert states == [(123, "AVAILABLE", 0), (124, "AVAILABLE", 0)]


# ---- versions and labels -----------------------------------------------------------------------


def test_labels_and_versions_resolve_over_both_transports(server: Any, stub: Any) -> None:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "saved_model_half_plus_two_2_versions"
    request.model_spec.version_label = "canary"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([[1.0]], dtype=tf.float32))
    assert stub.Predict(request, timeout=DEADLINE_S).model_spec.version.value == 124
    request.model_spec.version.value = 123
    assert stub.Predict(request, timeout=DEADLINE_S).model_spec.version.value == 123
    for path in ("labels/stable", "versions/124"):
        assert rest(server, "POST", f"/v1/models/saved_model_half_plus_two_2_versions/{path}:predict",
                    {"instances": [[1.0]]}) == (200, {"predictions": [[2.5]]})


# ---- errors: TF Serving's codes, statuses and messages ----------------------------------------


def _predict_error(stub: Any, **spec: Any) -> grpc.RpcError:
    request = predict_pb2.PredictRequest()
    for key, value in spec.items():
        if key == "version":
            request.model_spec.version.value = value
        elif key == "inputs":
            for name, array in value.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
        else:
            setattr(request.model_spec, key, value)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Predict(request, timeout=DEADLINE_S)
    return caught.value


@pytest.mark.parametrize("spec, code, message", [
    ({"name": "nope"}, grpc.StatusCode.NOT_FOUND, r"^Servable not found for request: Latest\(nope\)$"),
    ({"name": "default", "version": 999}, grpc.StatusCode.NOT_FOUND,
     r"^Servable not found for request: Specific\(default, 999\)$"),
    ({"name": "default", "version_label": "nope"}, grpc.StatusCode.INVALID_ARGUMENT,
     r"^Unrecognized servable version label: nope$"),
    ({"name": "default", "signature_name": "nope"}, grpc.StatusCode.FAILED_PRECONDITION,
     r'^Serving signature key "nope" not found\.$'),
    ({"name": "default", "inputs": {"x": np.ones((1, 1), np.float32), "z": np.ones((1, 1), np.float32)}},
     grpc.StatusCode.INVALID_ARGUMENT, r"input size does not match signature: 2!=1 .*Sent extra: \{z\}"),
    ({"name": "default", "inputs": {"x": np.ones((1, 1), np.int32)}}, grpc.StatusCode.INVALID_ARGUMENT,
     r"Expects arg\[0\] to be float but int32 is provided"),
    ({"name": ""}, grpc.StatusCode.INVALID_ARGUMENT, r"^ModelSpec has no name specified\.$"),
])
def test_grpc_predict_errors(stub: Any, spec: dict, code: grpc.StatusCode, message: str) -> None:
    error = _predict_error(stub, **spec)
    assert error.code() == code
    assert re.search(message, error.details()), error.details()


def test_grpc_classify_on_a_predict_signature_is_refused(stub: Any) -> None:
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "default"
    request.input.example_list.examples.append(tf_example(2.0))
    with pytest.raises(grpc.RpcError, match="Expected classification signature method_name to be "
                                            "tensorflow/serving/classify. Was: tensorflow/serving/predict"):
        stub.Classify(request, timeout=DEADLINE_S)


def test_grpc_metadata_and_status_errors(server: Any, stub: Any) -> None:
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "default"
    with pytest.raises(grpc.RpcError, match="must specify at least one metadata_field"):
        stub.GetModelMetadata(request, timeout=DEADLINE_S)
    with grpc.insecure_channel(server.grpc_address) as channel:
        status_stub = model_service_pb2_grpc.ModelServiceStub(channel)
        missing = get_model_status_pb2.GetModelStatusRequest()
        missing.model_spec.name = "nope"
        with pytest.raises(grpc.RpcError, match="Could not find any versions of model nope"):
            status_stub.GetModelStatus(missing, timeout=DEADLINE_S)


@pytest.mark.parametrize("method, path, body, status, message", [
    ("GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
    ("GET", "/v1/models/default/versions/999", None, 404, "Could not find version 999 of model default"),
    ("POST", "/v1/models/nope:predict", {"instances": [1.0]}, 404, r"Servable not found for request: Latest\(nope\)"),
    ("POST", "/v1/models/default/labels/nope:predict", {"instances": [1.0]}, 400,
     "Unrecognized servable version label: nope"),
    ("POST", "/v1/models/default:predict", b"{not json", 400, "JSON Parse error"),
    ("POST", "/v1/models/default:predict", {"x": 1}, 400, "Missing 'inputs' or 'instances' key"),
    ("POST", "/v1/models/default:predict", {"instances": ["a"]}, 400, "is not of expected type: float"),
    ("POST", "/v1/models/default:predict", {"signature_name": "nope", "instances": [1.0]}, 400,
     'Serving signature name: "nope" not found in signature def'),
    ("POST", "/v1/models/default:predict", {"instances": [[1.0], [1.0, 2.0]]}, 400, "Expecting tensor size: 1 but got: 2"),
    ("POST", "/v1/models/default:regress", {"signature_name": "regress_x_to_y"}, 400,
     "key 'examples' is expected and was not found"),
    ("POST", "/v1/models/default:explode", {}, 400, r"Malformed request: POST /v1/models/default:explode"),
    ("GET", "/v1/models", None, 400, "Missing model name in request."),
])
def test_rest_errors(server: Any, method: str, path: str, body: Any, status: int, message: str) -> None:
    got_status, got = rest(server, method, path, body)
    assert got_status == status
    assert set(got) == {"error"} and re.search(message, got["error"]), got
