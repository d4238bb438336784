"""`tfship canary --traffic`: logged requests replayed to both versions of a real `tfship serve`.

The traffic is real: a server with `--request-log-dir` logs what gRPC clients send (predict,
classify and regress, on three signatures), and the canary replays those TFRecords. KServe's
payload logger cannot run here (no cluster); its JSON lines are written as it writes them.
"""

from __future__ import annotations

import base64
import json
import os
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
from test_canary_e2e import make_repo  # m: 123/124 half_plus_two, 125 half_plus_three

from tfship.canary_analysis import canary
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
    from tfship.serving import serve

    repo = make_repo(tmp_path_factory.mktemp("logging-repo"), tf_serving_testdata)
    logs = tmp_path_factory.mktemp("logs")
    with serve(repo, grpc_port=0, rest_port=-1, poll_seconds=0, request_log_dir=str(logs), request_log_rate=1.0,
               request_log_max_bytes=4000) as server:
        send_traffic(server.grpc_address, 20)
    return str(logs / "m-*.tfrecord")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tf_serving_testdata: Path):
    from tfship.serving import serve

    repo = make_repo(tmp_path_factory.mktemp("repo"), tf_serving_testdata, {"three": 125})
    with serve(repo, grpc_port=0, rest_port=0, poll_seconds=0) as handle:
        yield handle


def test_logged_traffic_keeps_its_api_and_signature_and_an_identical_candidate_passes(
    server: Any, logged: str, tmp_path: Path
) -> None:
    result = canary(f"grpc://{server.grpc_address}", "m", "", traffic=logged, requests=REQUESTS,
                    report_dir=str(tmp_path))
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


def test_kserve_logger_json_lines_are_replayed(server: Any, tmp_path: Path) -> None:
    path = tmp_path / "kserve.jsonl"
    path.write_text(kserve_lines(30))
    target = f"grpc://{server.grpc_address}"
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


def test_a_glob_matching_nothing_and_a_rest_target_are_refused(server: Any, tmp_path: Path) -> None:
    from tfship.errors import ConfigError

    with pytest.raises(DataError, match="no file matches"):
        canary(f"grpc://{server.grpc_address}", "m", "", traffic=str(tmp_path / "none-*.tfrecord"))
    with pytest.raises(ConfigError, match="--traffic replays logged requests over gRPC"):
        canary(server.rest_url, "m", "", traffic=str(tmp_path / "x.tfrecord"))
    assert not os.listdir(tmp_path)


def test_the_chains_canary_uses_the_newest_logged_traffic_when_there_is_any(tmp_path: Path) -> None:
    from tfship import chain, local_runner
    from tfship.serving.request_log import LogSettings, RequestLogger

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
