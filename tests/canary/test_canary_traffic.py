"""`tfship canary --traffic`: logged requests replayed to both versions of a real `tfship serve`.

The traffic is real: a server with `--request-log-dir` logs what gRPC and REST clients send
(predict, classify and regress, on three signatures; binary strings), and the canary replays those
TFRecords over gRPC and over REST. KServe's payload logger cannot run here (no cluster); its JSON
lines are written as it writes them.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tests.canary.test_canary_e2e import make_repo  # m: 123/124 half_plus_two, 125 half_plus_three

from tfship.steps.canary import canary
from tfship.cli import main as cli_main
from tfship.errors import DataError

pytestmark = pytest.mark.timeout(240)

REQUESTS = 480  # cycles through the 80 logged examples: >= 100 per output (the judge's min_samples)


def send_traffic(address: str, count: int) -> None:
    """Users' requests: batched Predict, Classify and Regress, on their own signatures."""
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(address))
    for i in range(count):
        predict = predict_pb2.PredictRequest()
        predict.model_spec.name = "m"
        predict.inputs["x"].CopyFrom(tf.make_tensor_proto([[0.5 * i], [0.5 * i + 0.25]], dtype=tf.float32))
        stub.Predict(predict, timeout=10)
        for request, call, signature in (
            (classification_pb2.ClassificationRequest(), stub.Classify, "classify_x_to_y"),
            (regression_pb2.RegressionRequest(), stub.Regress, "regress_x_to_y"),
        ):
            request.model_spec.name = "m"
            request.model_spec.signature_name = signature
            request.input.example_list.examples.add().features.feature["x"].float_list.value.append(float(i))
            call(request, timeout=10)


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory, tf_serving_testdata: Path) -> str:
    from tfship.steps.serve import serve

    repo = make_repo(tmp_path_factory.mktemp("logging-repo"), tf_serving_testdata)
    logs = tmp_path_factory.mktemp("logs")
    with serve(repo, grpc_port=0, rest_port=-1, poll_seconds=0, request_log_dir=str(logs), request_log_rate=1.0,
               request_log_max_bytes=4000) as server:
        send_traffic(server.grpc_address, 20)
    return str(logs / "m-*.tfrecord")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tf_serving_testdata: Path):
    from tfship.steps.serve import serve

    repo = make_repo(tmp_path_factory.mktemp("repo"), tf_serving_testdata, {"three": 125})
    with serve(repo, grpc_port=0, rest_port=0, poll_seconds=0) as handle:
        yield handle


def target_of(server: Any, scheme: str) -> str:
    return f"grpc://{server.grpc_address}" if scheme == "grpc" else server.rest_url


@pytest.mark.parametrize("scheme", ["grpc", "rest"])
def test_logged_traffic_keeps_its_api_and_signature_and_an_identical_candidate_passes(
    server: Any, logged: str, tmp_path: Path, scheme: str
) -> None:
    # over REST each record goes to :predict (columnar), :classify or :regress
    result = canary(target_of(server, scheme), "m", "", traffic=logged, requests=REQUESTS, report_dir=str(tmp_path))
    assert result.verdict == "PASS", result.reasons
    judged = {m.name for m in result.metrics}
    # one output per logged API and signature: the answers came from Predict, Classify and Regress
    assert {"score_shift[serving_default/y]", "score_shift[classify_x_to_y/scores]",
            "score_shift[regress_x_to_y/outputs]"} <= judged
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["input"] == f"traffic {logged}"


def test_a_candidate_lacking_a_signature_users_call_fails_without_traffic(server: Any, logged: str) -> None:
    # half_plus_three has serving_default only: users' classify/regress calls would fail on it
    result = canary(f"grpc://{server.grpc_address}", "m", "", traffic=logged, candidate="three", requests=REQUESTS)
    assert result.verdict == "FAIL" and result.metrics == ()
    assert result.reasons == (
        "the candidate is incompatible: signature 'classify_x_to_y': the candidate has no such signature; "
        "signature 'regress_x_to_y': the candidate has no such signature",
    )


def kserve_lines(count: int) -> str:
    """CloudEvents in structured mode, as KServe's logger emits them: a request, then its response."""
    lines = []
    for i in range(count):
        body = {"instances": [[0.25 * i]]}
        event = {"specversion": "1.0", "id": f"r{i}", "source": "http://localhost:9081/", "inferenceservicename": "m",
                 "type": "org.kubeflow.serving.inference.request", "datacontenttype": "application/json"}
        if i % 2:
            event["data_base64"] = base64.b64encode(json.dumps(body).encode()).decode()
        else:
            event["data"] = body
        lines.append(event)
        lines.append({**event, "type": "org.kubeflow.serving.inference.response", "data": {"predictions": [[1.0]]}})
    return "".join(json.dumps(line) + "\n" for line in lines)


@pytest.mark.parametrize("scheme", ["grpc", "rest"])
def test_kserve_logger_json_lines_are_replayed(server: Any, tmp_path: Path, scheme: str) -> None:
    path = tmp_path / "kserve.jsonl"
    path.write_text(kserve_lines(30))
    target = target_of(server, scheme)
    assert canary(target, "m", "", traffic=str(path), requests=REQUESTS).verdict == "PASS"
    shifted = canary(target, "m", "", traffic=str(path), candidate="three", requests=REQUESTS)
    assert shifted.verdict == "FAIL"
    assert {m.name: m.classification for m in shifted.metrics}["score_shift[serving_default/y]"] == "HIGH"


def write_records(path: Path, records: list[bytes]) -> None:
    with tf.io.TFRecordWriter(str(path)) as writer:
        for data in records:
            writer.write(data)


def good_record() -> bytes:
    record = prediction_log_pb2.PredictionLog()
    record.predict_log.request.inputs["x"].CopyFrom(tf.make_tensor_proto([[1.0]], dtype=tf.float32))
    return record.SerializeToString()


def bad_traffic(tmp_path: Path, kind: str) -> tuple[str, str]:
    """(a traffic file with one bad record, the message naming it)."""
    path = tmp_path / ("bad.jsonl" if kind.startswith("json") else "bad.tfrecord")
    if kind == "not a PredictionLog":
        write_records(path, [good_record(), good_record(), b"\xff\xff not a proto"])
        return str(path), rf"{path}, record 3: not a PredictionLog"
    if kind == "session_run_log":
        record = prediction_log_pb2.PredictionLog()
        record.session_run_log.request.feed.add()
        write_records(path, [good_record(), record.SerializeToString()])
        return str(path), rf"{path}, record 2: log_type 'session_run_log' cannot be replayed"
    if kind == "truncated":
        write_records(path, [good_record(), good_record()])
        path.write_bytes(path.read_bytes()[:-5])
        return str(path), rf"{path}, record 2: not a readable TFRecord"
    if kind == "json syntax":
        path.write_text(kserve_lines(1) + "{not json\n")
        return str(path), rf"{path}, record 3: not JSON"
    path.write_text(json.dumps({"examples": [{"x": 1.0}]}) + "\n")  # json examples
    return str(path), rf"{path}, record 1: a classify/regress body"


@pytest.mark.parametrize("kind", ["not a PredictionLog", "session_run_log", "truncated", "json syntax", "json examples"])
def test_a_bad_record_is_one_line_naming_file_and_record(
    server: Any, tmp_path: Path, kind: str, capsys: pytest.CaptureFixture
) -> None:
    path, message = bad_traffic(tmp_path, kind)
    with pytest.raises(DataError, match=message):
        canary(f"grpc://{server.grpc_address}", "m", "", traffic=path, requests=5)
    code = cli_main(["canary", "--target", f"grpc://{server.grpc_address}", "--name", "m", "--traffic", path])
    error = capsys.readouterr().err.strip()
    assert code == 2 and len(error.splitlines()) == 1 and path in error


@pytest.mark.parametrize("scheme", ["grpc", "rest"])
def test_a_glob_matching_nothing_is_refused(server: Any, tmp_path: Path, scheme: str) -> None:
    with pytest.raises(DataError, match="no file matches"):
        canary(target_of(server, scheme), "m", "", traffic=str(tmp_path / "none-*.tfrecord"))
    assert not os.listdir(tmp_path)


def save_length_model(path: Path, offset: float) -> None:
    """A servable model of a string input: y = byte length of `text` + offset."""

    class Length(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def __call__(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": tf.cast(tf.strings.length(text), tf.float32) + offset}

    module = Length()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.__call__})


@pytest.fixture(scope="module")
def bytes_server(tmp_path_factory: pytest.TempPathFactory):
    """Model b: 1 and 2 = length, 3 = length + 1; labels stable -> 1, canary -> 2, shifted -> 3.

    Yields (server, the glob of the REST requests it logged: binary strings sent as {"b64": ...}).
    """
    from tfship import storage
    from tfship import models_config
    from tfship.steps.serve import serve

    root = tmp_path_factory.mktemp("bytes-repo")
    config = models_config.ModelServerConfig()
    for version, offset in ((1, 0.0), (2, 0.0), (3, 1.0)):
        save_length_model(root / "b" / str(version), offset)
        config = models_config.with_version(config, "b", str(root / "b"), version)
    for label, version in (("stable", 1), ("canary", 2), ("shifted", 3)):
        config = models_config.with_label(config, "b", label, version)
    storage.write_text(models_config.config_uri(str(root)), models_config.format_models_config(config))
    logs = tmp_path_factory.mktemp("bytes-logs")
    with serve(str(root), grpc_port=0, rest_port=0, poll_seconds=0, request_log_dir=str(logs),
               request_log_rate=1.0) as handle:
        for i in range(40):
            texts = [bytes([0xFF, 0x00]) * i, bytes(range(i % 7 + 1)) + b"\xfe"]  # not UTF-8
            body = {"inputs": {"text": [{"b64": base64.b64encode(t).decode()} for t in texts]}}
            request = urllib.request.Request(f"{handle.rest_url}/v1/models/b/labels/stable:predict", json.dumps(body).encode(),
                                             {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert json.loads(answer.read())["outputs"] == [2.0 * i, float(i % 7 + 2)]
    # the log files are complete (visible to readers) once the logging server stops
    with serve(str(root), grpc_port=0, rest_port=0, poll_seconds=0) as handle:
        yield handle, str(logs / "b-*.tfrecord")


def test_binary_strings_logged_over_rest_are_replayed_over_rest_as_b64(bytes_server: Any) -> None:
    server, logged = bytes_server
    same = canary(server.rest_url, "b", "", traffic=logged, requests=REQUESTS)
    assert same.verdict == "PASS", same.reasons
    shifted = canary(server.rest_url, "b", "", traffic=logged, candidate="shifted", requests=REQUESTS)
    assert shifted.verdict == "FAIL"
    assert {m.name: m.classification for m in shifted.metrics}["score_shift[serving_default/y]"] == "HIGH"


def test_the_chains_canary_uses_the_newest_logged_traffic_when_there_is_any(tmp_path: Path) -> None:
    from tfship import chain, local_runner
    from tfship.steps.serve.request_log import LogSettings, RequestLogger

    config = chain.ChainConfig(data=str(tmp_path / "d.csv"), schema=str(tmp_path / "s.yaml"),
                               runs_root=str(tmp_path / "runs"), repo=str(tmp_path / "repo"), name="m")
    plan = chain.plan_run(config, "r1", (1, 2), 1)
    said: list[str] = []
    args = local_runner.canary_args(config, plan, "grpc://127.0.0.1:8500", said.append)
    assert args[args.index("--examples") + 1] == chain.examples_path(config, plan) and "--traffic" not in args
    assert "input: data rows" in said[-1]

    logger = RequestLogger(LogSettings(local_runner.request_log_prefix(config), 1.0))
    logger.write(prediction_log_pb2.PredictionLog.FromString(good_record()))
    # a file still being written is not traffic yet
    assert "--traffic" not in local_runner.canary_args(config, plan, "grpc://127.0.0.1:8500", said.append)
    logger.close()
    args = local_runner.canary_args(config, plan, "grpc://127.0.0.1:8500", said.append)
    assert "--examples" not in args
    assert args[args.index("--traffic") + 1] == str(tmp_path / "repo" / "request-logs" / "m-*.tfrecord")
    assert said[-1] == f"  [canary] input: logged traffic {args[args.index('--traffic') + 1]}"


@pytest.fixture(scope="module")
def export_server(tmp_path_factory: pytest.TempPathFactory):
    """A real tfship classification export (string, int64 and float features; several outputs, one a
    string) as versions 1 = stable and 2 = canary. Yields (server, the glob of the gRPC traffic it logged:
    batched Predict, some with an output filter, and Classify over tf.Examples)."""
    from tests.saved_model.test_savedmodel_builders import raw_batch, tiny_job

    from tfship import storage
    from tfship import models_config
    from tfship.steps.export.step import ExportConfig, export_job
    from tfship.saved_model.loader import read_warmup_requests
    from tfship.steps.serve import serve
    from tfship.steps.serve.tensors import from_numpy

    root = tmp_path_factory.mktemp("export-traffic")
    job = tiny_job(str(root / "job"))
    exported = export_job(job, ExportConfig(job_dir=str(root / "job"), export_dir=str(root / "export"), version=1)).path
    config = models_config.ModelServerConfig()
    (root / "repo" / "clf").mkdir(parents=True)
    for version in (1, 2):
        os.symlink(exported, root / "repo" / "clf" / str(version))
        config = models_config.with_version(config, "clf", str(root / "repo" / "clf"), version)
    for label, version in (("stable", 1), ("canary", 2)):
        config = models_config.with_label(config, "clf", label, version)
    repo = str(root / "repo")
    storage.write_text(models_config.config_uri(repo), models_config.format_models_config(config))
    with serve(repo, grpc_port=0, rest_port=-1, poll_seconds=0, request_log_dir=str(root / "logs"),
               request_log_rate=1.0) as handle:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(handle.grpc_address))
        for index in range(20):
            for record in read_warmup_requests(exported):  # the export's own Predict and Classify requests
                kind = record.WhichOneof("log_type")
                request = getattr(record, kind).request
                request.model_spec.name = "clf"
                if kind == "predict_log":
                    for name, column in raw_batch(1 + index % 4, seed=index).items():
                        request.inputs[name].CopyFrom(from_numpy(column))
                    if index % 2:
                        request.output_filter.extend(["probabilities", "classes"])
                    stub.Predict(request, timeout=30)
                else:
                    stub.Classify(request, timeout=30)
    with serve(repo, grpc_port=0, rest_port=0, poll_seconds=0) as handle:
        yield handle, str(root / "logs" / "clf-*.tfrecord")


def test_rest_replay_judges_the_same_outputs_as_grpc_on_a_tfship_export(export_server: Any) -> None:
    server, logged = export_server
    # enough pairs that a zero flip rate of the least sent output is conclusive (upper bound < 2%)
    requests = 1500
    over_grpc = canary(f"grpc://{server.grpc_address}", "clf", "", traffic=logged, requests=requests)
    over_rest = canary(server.rest_url, "clf", "", traffic=logged, requests=requests)
    assert over_grpc.verdict == over_rest.verdict == "PASS", (over_grpc.reasons, over_rest.reasons)
    judged = {m.name for m in over_rest.metrics}
    assert judged == {m.name for m in over_grpc.metrics}
    # several outputs (a string one among them) read from columnar answers, and Classify's scores
    assert {"score_shift[serving_default/probabilities]", "flip_rate[serving_default/classes]"} <= judged, judged
    assert any(name.endswith("/scores]") and "serving_default" not in name for name in judged), judged
