"""Warm-up from traffic: `tfship export --warmup-traffic` builds tf_serving_warmup_requests from real request logs.

The logs are real: a tfship export is served by `tfship serve` with request logging on 127.0.0.1,
and gRPC clients send it Predict (several batch sizes) and Classify requests.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2, prediction_service_pb2_grpc
from tests.saved_model.test_savedmodel_builders import raw_batch, tiny_job

from tfship import storage
from tfship import models_config
from tfship.errors import DataError
from tfship.steps.export.step import ExportConfig, export_job
from tfship.saved_model.loader import MAX_WARMUP_RECORDS, read_warmup_requests
from tfship.steps.serve import serve
from tfship.steps.serve.request_log import LogSettings, RequestLogger
from tfship.steps.serve.tensors import from_numpy
from tfship.saved_model.warmup import records_from_traffic

pytestmark = pytest.mark.timeout(300)


def serve_repo(root: Path, export_dir: str, version: int) -> str:
    config = models_config.with_version(models_config.ModelServerConfig(), "clf", export_dir, version)
    storage.write_text(models_config.config_uri(str(root)), models_config.format_models_config(config))
    return str(root)


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, str, str, list[bytes]]:
    """(the job, its export dir, the request-log glob, the serialized requests users sent)."""
    root = tmp_path_factory.mktemp("warmup-traffic")
    job = tiny_job(str(root / "job"))
    export_dir = str(root / "export")
    first = export_job(job, ExportConfig(job_dir=str(root / "job"), export_dir=export_dir))
    repo = serve_repo(root / "repo", export_dir, first.version)
    sent = []
    with serve(repo, grpc_port=0, rest_port=-1, poll_seconds=0, request_log_dir=str(root / "logs"),
               request_log_rate=1.0, request_log_max_bytes=2000) as server:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(server.grpc_address))
        # users' requests: the export's own warm-up requests are valid Predict and Classify calls
        for index in range(12):
            for record in read_warmup_requests(first.path):
                kind = record.WhichOneof("log_type")
                request = getattr(record, kind).request
                request.model_spec.name = "clf"
                if kind == "predict_log":  # vary the batch size as users do
                    request.inputs["a"].CopyFrom(from_numpy(raw_batch(1 + index % 4, seed=index)["a"]))
                    for name in ("b", "c"):
                        request.inputs[name].CopyFrom(from_numpy(raw_batch(1 + index % 4, seed=index)[name]))
                    stub.Predict(request, timeout=30)
                else:
                    stub.Classify(request, timeout=30)
                request.model_spec.ClearField("name")
                sent.append(request.SerializeToString(deterministic=True))
    return job, export_dir, str(root / "logs" / "clf-*.tfrecord"), sent


def request_bytes(record: prediction_log_pb2.PredictionLog) -> bytes:
    return getattr(record, record.WhichOneof("log_type")).request.SerializeToString(deterministic=True)


def test_an_export_warms_up_on_what_users_sent(logged, tmp_path: Path) -> None:
    job, export_dir, pattern, sent = logged
    result = export_job(job, ExportConfig(job_dir="unused", export_dir=export_dir, warmup_traffic=pattern))
    records = read_warmup_requests(result.path)
    assert result.warmup_records == len(records) == len(sent) == 36
    assert sorted(request_bytes(r) for r in records) == sorted(sent)  # requests only, no names
    assert all(not r.HasField("log_metadata") for r in records)
    assert not any(getattr(r, r.WhichOneof("log_type")).HasField("response") for r in records)
    # the new version loads with them: tfship serve replays warm-up records as TF Serving does
    with serve(serve_repo(tmp_path / "repo", export_dir, result.version), grpc_port=0, rest_port=-1,
               poll_seconds=0) as server:
        assert server.manager.loaded() == {"clf": [result.version]}


def test_at_most_the_limit_as_a_seeded_uniform_sample(logged) -> None:
    _job, _export_dir, pattern, sent = logged
    five = records_from_traffic(pattern, limit=5)
    assert len(five) == 5 and [request_bytes(r) for r in five] == [request_bytes(r) for r in records_from_traffic(pattern, limit=5)]
    assert {request_bytes(r) for r in five} <= set(sent)
    assert [request_bytes(r) for r in five] != sent[:5]  # a sample of all files, not the first five requests


def test_never_more_than_tf_servings_1000(tmp_path: Path) -> None:
    logger = RequestLogger(LogSettings(str(tmp_path / "m"), 1.0))
    for value in range(MAX_WARMUP_RECORDS + 20):
        record = prediction_log_pb2.PredictionLog()
        record.predict_log.request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([[value]], np.float32)))
        logger.write(record)
    logger.close()
    assert len(records_from_traffic(str(tmp_path / "m-*.tfrecord"), limit=5000)) == MAX_WARMUP_RECORDS


def test_bad_logs_are_one_error_naming_the_file_and_record(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no file matches"):
        records_from_traffic(str(tmp_path / "none-*.tfrecord"))
    path = tmp_path / "m-1.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(prediction_log_pb2.PredictionLog().SerializeToString())
        writer.write(b"\x00garbage")
    with pytest.raises(DataError, match=rf"{path}, record 2: not a PredictionLog"):
        records_from_traffic(str(tmp_path / "m-*.tfrecord"))


def tree_digests(root: str) -> dict[str, str]:
    """relative path -> SHA-256 of every file under `root`."""
    import hashlib

    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(Path(root).rglob("*")) if path.is_file()
    }


def test_push_rebuilds_the_pushed_versions_warmup_from_traffic_and_leaves_the_source_alone(
    logged, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import json

    from tfship.cli import main as cli_main
    from tfship.saved_model.loader import WARMUP_FILE

    job, export_dir, pattern, sent = logged
    source = export_job(job, ExportConfig(job_dir="unused", export_dir=str(tmp_path / "export"))).path
    before = tree_digests(source)
    held_out = sorted(request_bytes(r) for r in read_warmup_requests(source))  # the export's own records
    repo = str(tmp_path / "repo")
    command = ["push", "--model", source, "--repo", repo, "--name", "clf", "--label", "", "--warmup-traffic", pattern]
    assert cli_main(command) == 0
    assert tree_digests(source) == before  # the source directory is not modified
    version = Path(source).name
    pushed = str(Path(repo) / "clf" / version)
    assert sorted(request_bytes(r) for r in read_warmup_requests(pushed)) == sorted(sent) != held_out
    # the manifest (checksums, content id) is the pushed tree's, new warm-up file included
    manifest = json.loads((Path(repo) / "clf" / ".tfship" / "versions" / f"{version}.json").read_text())
    assert {path: digest["sha256"] for path, digest in manifest["files"].items()} == tree_digests(pushed)
    assert tree_digests(pushed)[WARMUP_FILE] != before[WARMUP_FILE]
    capsys.readouterr()
    assert cli_main(command) == 0 and "already there (no-op)" in capsys.readouterr().out  # same logs, same content
    # tfship serve loads the version, replaying its new warm-up records first
    with serve(repo, grpc_port=0, rest_port=-1, poll_seconds=0) as server:
        assert server.manager.loaded() == {"clf": [int(version)]}


def test_push_refuses_traffic_it_cannot_warm_up_on_before_writing_anything(
    logged, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from tfship.cli import main as cli_main

    job, export_dir, _pattern, _sent = logged
    source = export_job(job, ExportConfig(job_dir="unused", export_dir=str(tmp_path / "export"))).path
    other = tmp_path / "logs"
    logger = RequestLogger(LogSettings(str(other / "clf"), 1.0))
    record = prediction_log_pb2.PredictionLog()  # a request for an input the model does not have
    record.predict_log.request.inputs["nope"].CopyFrom(tf.make_tensor_proto(np.array([[1.0]], np.float32)))
    logger.write(record)
    logger.close()
    repo = tmp_path / "repo"
    for pattern, message in ((str(tmp_path / "none-*.tfrecord"), "no file matches"),
                             (str(other / "clf-*.tfrecord"), "the model fails sampled logged request 0")):
        code = cli_main(["push", "--model", source, "--repo", str(repo), "--name", "clf", "--warmup-traffic", pattern])
        error = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and message in error[-1] and pattern in error[-1], error
        assert not repo.exists()
