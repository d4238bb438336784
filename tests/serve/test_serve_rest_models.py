"""Every model kind tfship exports answers over REST (row and columnar) and gRPC as it does in process.

TF Serving's toy models (tests/serve/test_serve_api.py) have float outputs only; tfship's own exports also
return strings (`classes`) and int64 (`class_ids`), which the row-format encoder once failed on
(HTTP 500 "'bytes' object has no attribute 'reshape'", issue 14 failure 1). The models are real
tfship exports (tests/saved_model/test_savedmodel_builders.tiny_job), served by a real server on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from tests.saved_model.test_savedmodel_builders import FEATURES, raw_batch, tiny_job

from tfship import storage
from tfship import models_config
from tfship.steps.export.step import ExportConfig, export_job
from tfship.saved_model.loader import load_session_model
from tfship.steps.serve import serve
from tfship.steps.serve.tensors import from_numpy, to_numpy

pytestmark = pytest.mark.timeout(300)
BATCH = 4
KINDS = ["classification", "regression"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """kind -> the path of a real tfship export of that kind."""
    root = tmp_path_factory.mktemp("exports")
    paths = {}
    for kind in KINDS:
        job = tiny_job(str(root / kind / "job"), task=kind)
        paths[kind] = export_job(job, ExportConfig(str(root / kind / "job"), str(root / kind / "export"), version=1)).path
    return paths


@pytest.fixture(scope="module")
def expected(exported: dict[str, str]) -> dict[str, dict[str, np.ndarray]]:
    """kind -> the serving_default outputs computed in process on `raw_batch(BATCH)`."""
    answers = {}
    for kind, path in exported.items():
        with load_session_model(path) as model:
            answers[kind] = model.run("serving_default", raw_batch(BATCH))
    return answers


@pytest.fixture(scope="module")
def server(exported: dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("repo")
    config = models_config.ModelServerConfig()
    for kind, path in exported.items():
        (root / kind).mkdir()
        os.symlink(path, root / kind / "1")
        config = models_config.with_version(config, kind, str(root / kind), 1)
    storage.write_text(models_config.config_uri(str(root)), models_config.format_models_config(config))
    with serve(str(root), grpc_port=0, rest_port=0, poll_seconds=0) as handle:
        yield handle


def json_values(array: np.ndarray) -> Any:
    """An input array as REST JSON values (strings decoded)."""
    if array.dtype.kind == "O":
        return [v.decode("utf-8") for v in array.tolist()]
    return array.tolist()


def post(server: Any, path: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(server.rest_url + path, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def assert_same(answer: dict[str, Any], expected: dict[str, np.ndarray]) -> None:
    """The JSON answer, output by output, equals the in-process outputs (floats to float32 precision)."""
    assert sorted(answer) == sorted(expected)
    for name, want in expected.items():
        got = answer[name]
        if want.dtype.kind == "O":
            assert got == [v.decode("utf-8") for v in want.tolist()], name
        elif want.dtype.kind in "iu":
            assert got == want.tolist(), name
        else:
            np.testing.assert_allclose(np.asarray(got, np.float32), want, rtol=1e-6, err_msg=name)


@pytest.mark.parametrize("kind", KINDS)
def test_rest_row_format_answers_what_the_model_computes(server: Any, expected: dict, kind: str) -> None:
    raw = raw_batch(BATCH)
    instances = [{name: json_values(raw[name])[i] for name in FEATURES} for i in range(BATCH)]
    status, answer = post(server, f"/v1/models/{kind}:predict", {"instances": instances})
    assert status == 200, answer  # was 500 "'bytes' object has no attribute 'reshape'" for classification
    predictions = answer["predictions"]
    assert len(predictions) == BATCH
    if len(expected[kind]) == 1:  # one output: each prediction is the bare value
        predictions = [{next(iter(expected[kind])): p} for p in predictions]
    columns = {name: [p[name] for p in predictions] for name in expected[kind]}
    assert_same(columns, expected[kind])


@pytest.mark.parametrize("kind", KINDS)
def test_rest_columnar_format_answers_what_the_model_computes(server: Any, expected: dict, kind: str) -> None:
    raw = raw_batch(BATCH)
    status, answer = post(server, f"/v1/models/{kind}:predict",
                          {"inputs": {name: json_values(values) for name, values in raw.items()}})
    assert status == 200, answer
    outputs = answer["outputs"]
    if len(expected[kind]) == 1:
        outputs = {next(iter(expected[kind])): outputs}
    assert_same(outputs, expected[kind])


def test_a_string_output_of_one_row_is_a_bare_string(server: Any, expected: dict) -> None:
    """TF Serving writes a DT_STRING element as a JSON string (`{"b64": ...}` only for *_bytes names)."""
    raw = raw_batch(1)
    status, answer = post(server, "/v1/models/classification:predict",
                          {"instances": [{name: json_values(raw[name])[0] for name in FEATURES}]})
    assert status == 200, answer
    prediction = answer["predictions"][0]
    assert isinstance(prediction["classes"], str) and isinstance(prediction["class_ids"], int)
    assert len(prediction["probabilities"]) == expected["classification"]["probabilities"].shape[1]


@pytest.mark.parametrize("kind", KINDS)
def test_grpc_answers_what_the_model_computes(server: Any, expected: dict, kind: str) -> None:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = kind
    for name, values in raw_batch(BATCH).items():
        request.inputs[name].CopyFrom(from_numpy(values))
    with grpc.insecure_channel(server.grpc_address) as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    got = {name: to_numpy(tensor) for name, tensor in response.outputs.items()}
    assert sorted(got) == sorted(expected[kind])
    for name, want in expected[kind].items():
        if want.dtype.kind == "O":
            assert got[name].tolist() == want.tolist(), name
        else:
            np.testing.assert_array_equal(got[name], want, err_msg=name)


@pytest.mark.parametrize(("kind", "verb", "key"), [("classification", "classify", "results"),
                                                   ("regression", "regress", "results")])
def test_rest_classify_and_regress_on_tfship_exports(server: Any, expected: dict, kind: str, verb: str,
                                                     key: str) -> None:
    raw = raw_batch(BATCH)
    examples = [{name: json_values(raw[name])[i] for name in FEATURES} for i in range(BATCH)]
    status, answer = post(server, f"/v1/models/{kind}:{verb}", {"signature_name": verb, "examples": examples})
    assert status == 200, answer
    if verb == "regress":
        np.testing.assert_allclose(answer[key], expected[kind]["predictions"], rtol=1e-6)
    else:
        scores = np.array([[score for _, score in row] for row in answer[key]], np.float32)
        np.testing.assert_allclose(scores, expected[kind]["probabilities"], rtol=1e-6)
