"""`tfship serve`'s request log: real servers on 127.0.0.1, real TFRecord files read back with TensorFlow."""

from __future__ import annotations

import glob
import json
import os
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tests.canary.test_canary_e2e import make_repo  # the canary tests' repository: m 123..127 (half_plus_two)

from tfship import storage
from tfship import models_config
from tfship.errors import ConfigError
from tfship.steps.serve import serve
from tfship.steps.serve.request_log import finished_files

pytestmark = pytest.mark.timeout(180)


def read_records(paths: list[str]) -> list[Any]:
    records = []
    for path in paths:
        for data in tf.data.TFRecordDataset(path).as_numpy_iterator():
            records.append(prediction_log_pb2.PredictionLog.FromString(data))
    return records


def rest_predict(server: Any, x: float) -> list[float]:
    request = urllib.request.Request(
        f"{server.rest_url}/v1/models/m/versions/123:predict",
        data=json.dumps({"instances": [[x]]}).encode(), method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["predictions"][0]


def example_request(request: Any, x: float, signature: str) -> Any:
    request.model_spec.name = "m"
    request.model_spec.version.value = 123
    request.model_spec.signature_name = signature
    request.input.example_list.examples.add().features.feature["x"].float_list.value.append(x)
    return request


def test_every_api_over_both_transports_is_logged_with_its_response(tmp_path: Path, tf_serving_testdata: Path) -> None:
    repo = make_repo(tmp_path / "repo", tf_serving_testdata)
    logs = tmp_path / "logs"
    with serve(repo, grpc_port=0, rest_port=0, poll_seconds=0, request_log_dir=str(logs), request_log_rate=1.0) as server:
        rest_answer = rest_predict(server, 4.0)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(server.grpc_address))
        predict = predict_pb2.PredictRequest()
        predict.model_spec.name = "m"
        predict.model_spec.version_label = "canary"
        predict.inputs["x"].CopyFrom(tf.make_tensor_proto([[2.0]], dtype=tf.float32))
        stub.Predict(predict, timeout=10)
        stub.Classify(example_request(classification_pb2.ClassificationRequest(), 3.0, "classify_x_to_y"), timeout=10)
        stub.Regress(example_request(regression_pb2.RegressionRequest(), 5.0, "regress_x_to_y"), timeout=10)
        assert finished_files(str(logs / "m")) == []  # still being written: invisible to readers
        assert len(os.listdir(logs)) == 1 and os.listdir(logs)[0].startswith(".")
    files = finished_files(str(logs / "m"))
    assert len(files) == 1 and not glob.glob(str(logs / ".*"))  # renamed on shutdown
    records = read_records(files)
    assert [r.WhichOneof("log_type") for r in records] == ["predict_log", "predict_log", "classify_log", "regress_log"]
    rest, grpc_predict, classify, regress = records
    assert rest.log_metadata.model_spec.version.value == 123 and rest.log_metadata.sampling_config.sampling_rate == 1.0
    assert tf.make_ndarray(rest.predict_log.request.inputs["x"]).tolist() == [[4.0]]
    assert tf.make_ndarray(rest.predict_log.response.outputs["y"]).tolist() == [rest_answer]  # 4 / 2 + 2
    assert grpc_predict.log_metadata.model_spec.version.value == 124  # the label, resolved
    assert tf.make_ndarray(grpc_predict.predict_log.response.outputs["y"]).tolist() == [[3.0]]
    assert classify.classify_log.request.model_spec.signature_name == "classify_x_to_y"
    assert classify.classify_log.response.result.classifications[0].classes[0].score == pytest.approx(3.5)
    assert regress.regress_log.response.result.regressions[0].value == pytest.approx(4.5)


def test_files_rotate_by_size_and_readers_only_see_finished_ones(tmp_path: Path, tf_serving_testdata: Path) -> None:
    repo = make_repo(tmp_path / "repo", tf_serving_testdata)
    logs = tmp_path / "logs"
    with serve(repo, grpc_port=0, rest_port=0, poll_seconds=0, request_log_dir=str(logs),
               request_log_rate=1.0, request_log_max_bytes=1000) as server:
        sent = [float(i) for i in range(60)]
        for x in sent:
            rest_predict(server, x)
        finished_while_serving = finished_files(str(logs / "m"))
        # every finished file is complete while the server still writes the next one
        assert len(finished_while_serving) >= 3
        complete = read_records(finished_while_serving)
        assert len(complete) < len(sent)
    files = finished_files(str(logs / "m"))
    assert files[: len(finished_while_serving)] == finished_while_serving
    assert all(os.path.getsize(path) >= 1000 for path in files[:-1])
    logged = [tf.make_ndarray(r.predict_log.request.inputs["x"]).item() for r in read_records(files)]
    assert logged == sent


def test_sampling_rate_logs_a_share_of_requests(tmp_path: Path, tf_serving_testdata: Path) -> None:
    repo = make_repo(tmp_path / "repo", tf_serving_testdata)
    logs = tmp_path / "logs"
    with serve(repo, grpc_port=0, rest_port=0, poll_seconds=0, request_log_dir=str(logs), request_log_rate=0.1) as server:
        for _ in range(300):
            rest_predict(server, 1.0)
    count = len(read_records(finished_files(str(logs / "m"))))
    assert 10 <= count <= 55  # Binomial(300, 0.1): mean 30, sd 5.2


def configure_logging(repo: str, prefix: str, rate: float, collector: str = "tfrecord") -> None:
    config = models_config.read_models_config(repo)
    entry = models_config.find_model(config, "m")
    entry.logging_config.log_collector_config.type = collector
    entry.logging_config.log_collector_config.filename_prefix = prefix
    entry.logging_config.sampling_config.sampling_rate = rate
    storage.write_text(models_config.config_uri(repo), models_config.format_models_config(config))


def test_models_config_logging_config_wins_over_the_shortcut(tmp_path: Path, tf_serving_testdata: Path) -> None:
    repo = make_repo(tmp_path / "repo", tf_serving_testdata)
    configure_logging(repo, str(tmp_path / "own" / "m-requests"), 1.0)
    with serve(repo, grpc_port=0, rest_port=0, poll_seconds=0,
               request_log_dir=str(tmp_path / "shortcut"), request_log_rate=1.0) as server:
        rest_predict(server, 1.0)
    assert len(read_records(finished_files(str(tmp_path / "own" / "m-requests")))) == 1
    assert not (tmp_path / "shortcut").exists() or not os.listdir(tmp_path / "shortcut")


def test_an_unknown_collector_type_is_refused_naming_the_model(tmp_path: Path, tf_serving_testdata: Path) -> None:
    repo = make_repo(tmp_path / "repo", tf_serving_testdata)
    configure_logging(repo, str(tmp_path / "logs" / "m"), 1.0, collector="bigquery")
    with pytest.raises(ConfigError, match="model m has log_collector_config type 'bigquery'"):
        serve(repo, grpc_port=0, rest_port=0, poll_seconds=0)


@pytest.mark.parametrize("options, message", [
    ({"request_log_rate": 1.5, "request_log_dir": "/tmp/x"}, "request_log_rate=1.5"),
    ({"request_log_dir": "gs://bucket/logs"}, "local files only"),
])
def test_bad_request_log_options_are_refused(options: dict, message: str) -> None:
    from tfship.steps.serve.config import ServeConfig

    with pytest.raises(ConfigError, match=message):
        ServeConfig(repo="/tmp", **options)


def test_without_request_logging_nothing_is_written(tmp_path: Path, tf_serving_testdata: Path) -> None:
    repo = make_repo(tmp_path / "repo", tf_serving_testdata)
    with serve(repo, grpc_port=0, rest_port=0, poll_seconds=0, request_log_dir=str(tmp_path / "logs"),
               request_log_rate=0.0) as server:
        assert np.allclose(rest_predict(server, 2.0), [3.0])
    assert not (tmp_path / "logs").exists() or not os.listdir(tmp_path / "logs")


def test_a_log_that_cannot_be_written_never_fails_the_request(tmp_path: Path, tf_serving_testdata: Path) -> None:
    repo = make_repo(tmp_path / "repo", tf_serving_testdata)
    logs = tmp_path / "logs"
    with serve(repo, grpc_port=0, rest_port=0, poll_seconds=0, request_log_dir=str(logs), request_log_rate=1.0) as server:
        logs.rmdir()
        logs.write_text("a file where the log directory was")
        assert rest_predict(server, 2.0) == [3.0]
        assert rest_predict(server, 4.0) == [4.0]
    assert logs.read_text() == "a file where the log directory was"
