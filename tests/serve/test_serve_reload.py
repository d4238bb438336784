"""`tfship serve` follows models.config: labels move, versions load (with warm-up) and unload, faults.

Real servers on loopback, real SavedModels, config changes made with tfship's own models.config
and push functions, observed through the plain tensorflow-serving-api client.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tfship import storage
from tfship import models_config
from tfship.errors import ConfigError, TfshipError
from tfship.steps.push.step import promote, remove_label, rollback
from tfship.steps.serve import Fault, serve
from tfship.saved_model.warmup import predict_log, write_warmup_file

pytestmark = pytest.mark.timeout(180)
DEADLINE_S = 10
POLL_S = 0.1


def wait_for(condition: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll `condition` until it returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def link_version(repo: Path, name: str, version: int, source: Path) -> None:
    (repo / name).mkdir(parents=True, exist_ok=True)
    os.symlink(source, repo / name / str(version))


def write_config(repo: Path, config: Any) -> None:
    storage.write_text(models_config.config_uri(str(repo)), models_config.format_models_config(config))


def labelled_config(repo: Path, name: str, versions: list[int], labels: dict[str, int]) -> Any:
    config = models_config.ModelServerConfig()
    for version in versions:
        config = models_config.with_version(config, name, str(repo / name), version)
    for label, version in labels.items():
        config = models_config.with_label(config, name, label, version)
    return config


class Client:
    """The tensorflow-serving-api calls a user makes, each with a deadline."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def version_of(self, name: str, label: str) -> int | None:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = name
        request.model_spec.version_label = label
        try:
            return self.predictions.GetModelMetadata(request, timeout=DEADLINE_S).model_spec.version.value
        except grpc.RpcError:
            return None

    def predict(self, name: str, version: int | None = None, timeout: float = DEADLINE_S) -> float:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = name
        if version is not None:
            request.model_spec.version.value = version
        request.inputs["x"].CopyFrom(tf.make_tensor_proto([[2.0]], dtype=tf.float32))
        return float(tf.make_ndarray(self.predictions.Predict(request, timeout=timeout).outputs["y"])[0, 0])

    def states(self, name: str) -> dict[int, tuple[str, int, str]]:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = name
        response = self.models.GetModelStatus(request, timeout=DEADLINE_S)
        return {
            s.version: (get_model_status_pb2.ModelVersionStatus.State.Name(s.state), s.status.error_code,
                        s.status.error_message)
            for s in response.model_version_status
        }


@pytest.fixture
def two_versions(tmp_path: Path, tf_serving_testdata: Path) -> Path:
    """A repo with model m: 123 = half_plus_two, 124 = half_plus_two (second export), 125 = half_plus_three."""
    repo = tmp_path / "repo"
    link_version(repo, "m", 123, tf_serving_testdata / "saved_model_half_plus_two_2_versions" / "00000123")
    link_version(repo, "m", 124, tf_serving_testdata / "saved_model_half_plus_two_2_versions" / "00000124")
    link_version(repo, "m", 125, tf_serving_testdata / "saved_model_half_plus_three" / "00000123")
    return repo


def test_promote_rollback_and_label_removal_reach_the_running_server(two_versions: Path) -> None:
    repo = two_versions
    write_config(repo, labelled_config(repo, "m", [123, 124], {"stable": 123, "canary": 124}))
    with serve(str(repo), grpc_port=0, rest_port=-1, poll_seconds=POLL_S) as server:
        client = Client(server.grpc_address)
        assert (client.version_of("m", "stable"), client.version_of("m", "canary")) == (123, 124)
        assert promote(str(repo), "m") == 124
        wait_for(lambda: client.version_of("m", "stable") == 124)
        assert client.version_of("m", "previous") == 123
        assert rollback(str(repo), "m") == 123
        wait_for(lambda: client.version_of("m", "stable") == 123)
        remove_label(str(repo), "m", "canary")
        wait_for(lambda: client.version_of("m", "canary") is None)
        # 124 lost its last label, so it left the config and is unloaded; 123 keeps serving
        wait_for(lambda: client.states("m").get(124, ("",))[0] == "END")
        with pytest.raises(grpc.RpcError, match=r"Servable not found for request: Specific\(m, 124\)"):
            client.predict("m", 124)
        assert client.predict("m") == 3.0


def test_a_label_moves_only_after_its_version_has_loaded(two_versions: Path) -> None:
    repo = two_versions
    write_config(repo, labelled_config(repo, "m", [123], {"stable": 123}))
    with serve(str(repo), grpc_port=0, rest_port=-1, poll_seconds=60) as server:
        client = Client(server.grpc_address)
        # one config update adds version 125 AND points stable at it (TF Serving itself would refuse
        # the label until the version is loaded; tfship loads first, then moves the label)
        config = models_config.with_version(models_config.read_models_config(str(repo)), "m", str(repo / "m"), 125)
        write_config(repo, models_config.with_label(config, "m", "stable", 125))
        server.poll_now()
        assert client.version_of("m", "stable") == 125
        assert client.predict("m", 125) == 4.0
        assert client.states("m")[125][0] == "AVAILABLE"


def test_versions_that_fail_to_load_are_reported_and_the_others_keep_serving(
    two_versions: Path, tf_serving_testdata: Path
) -> None:
    repo = two_versions
    link_version(repo, "m", 126, tf_serving_testdata / "bad_half_plus_two" / "00000123")
    write_config(repo, labelled_config(repo, "m", [123], {"stable": 123}))
    with serve(str(repo), grpc_port=0, rest_port=-1, poll_seconds=60) as server:
        client = Client(server.grpc_address)
        write_config(repo, labelled_config(repo, "m", [123, 126], {"stable": 123}))
        server.poll_now()
        state, code, message = client.states("m")[126]
        assert state == "END" and code != 0
        assert "saved_model.pb" in message
        assert client.predict("m") == 3.0


def test_a_model_that_cannot_load_fails_the_start(tmp_path: Path, tf_serving_testdata: Path) -> None:
    repo = tmp_path / "repo"
    link_version(repo, "bad", 1, tf_serving_testdata / "bad_half_plus_two" / "00000123")
    write_config(repo, labelled_config(repo, "bad", [1], {}))
    with pytest.raises(TfshipError, match=r"Not a SavedModel: .* holds no saved_model.pb"):
        serve(str(repo), grpc_port=0, rest_port=-1)


def test_an_unreadable_config_keeps_the_current_models_serving(two_versions: Path, tf_serving_testdata: Path) -> None:
    repo = two_versions
    write_config(repo, labelled_config(repo, "m", [123], {"stable": 123}))
    with serve(str(repo), grpc_port=0, rest_port=-1, poll_seconds=60) as server:
        shutil.copy(tf_serving_testdata / "bad_model_config.txt", models_config.config_uri(str(repo)))
        server.poll_now()
        assert Client(server.grpc_address).predict("m") == 3.0


def test_an_emptied_config_is_refused_and_the_current_models_keep_serving(
    two_versions: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: a 0-byte models.config unloaded every version of a running server."""
    repo = two_versions
    write_config(repo, labelled_config(repo, "m", [123], {"stable": 123}))
    with serve(str(repo), grpc_port=0, rest_port=-1, poll_seconds=60) as server:
        client = Client(server.grpc_address)
        Path(models_config.config_uri(str(repo))).write_bytes(b"")
        with caplog.at_level(logging.ERROR, logger="tfship.serve"):
            server.poll_now()
            server.poll_now()  # logged once, not at every poll
        refusals = [r.getMessage() for r in caplog.records if "names no model" in r.getMessage()]
        assert len(refusals) == 1
        assert "not applied, keeping the current one: it names no model, but versions are being served ({'m': [123]})" in refusals[0]
        assert client.predict("m") == 3.0
        assert client.version_of("m", "stable") == 123
        write_config(repo, labelled_config(repo, "m", [124], {"stable": 124}))  # a real config applies again
        server.poll_now()
        assert client.version_of("m", "stable") == 124
        assert client.states("m")[123][0] == "END"


def test_warmup_records_are_replayed_and_a_failing_record_fails_the_load(
    tmp_path: Path, tf_serving_testdata: Path, caplog: pytest.LogCaptureFixture
) -> None:
    repo = tmp_path / "repo"
    source = tf_serving_testdata / "saved_model_half_plus_two_cpu" / "00000123"
    shutil.copytree(source, repo / "m" / "1")
    shutil.copytree(source, repo / "m" / "2")
    write_warmup_file(str(repo / "m" / "1"), [predict_log("serving_default", {"x": np.array([[1.0]], np.float32)})])
    write_warmup_file(str(repo / "m" / "2"), [predict_log("serving_default", {"nope": np.array([[1.0]], np.float32)})])
    write_config(repo, labelled_config(repo, "m", [1], {}))
    with caplog.at_level(logging.INFO, logger="tfship.serve"):
        with serve(str(repo), grpc_port=0, rest_port=-1, poll_seconds=60) as server:
            client = Client(server.grpc_address)
            assert "m version 1: replayed 1 warm-up records" in caplog.text
            write_config(repo, labelled_config(repo, "m", [1, 2], {}))
            server.poll_now()
            state, _, message = client.states("m")[2]
            assert state == "END"
            assert message == "warm-up record 0 failed: Missing required input: x"
            assert client.predict("m") == 3.0


def test_latest_policy_follows_new_version_directories(two_versions: Path) -> None:
    repo = two_versions
    (repo / "n").mkdir()
    os.symlink(os.readlink(repo / "m" / "123"), repo / "n" / "1")
    storage.write_text(models_config.config_uri(str(repo)), (
        'model_config_list { config { name: "n" base_path: "%s" model_platform: "tensorflow" } }' % (repo / "n")
    ))
    with serve(str(repo), grpc_port=0, rest_port=-1, poll_seconds=POLL_S) as server:
        client = Client(server.grpc_address)
        assert client.predict("n") == 3.0
        os.symlink(os.readlink(repo / "m" / "125"), repo / "n" / "2")  # a newer version appears
        wait_for(lambda: client.states("n") == {1: ("END", 0, ""), 2: ("AVAILABLE", 0, "")})
        assert client.predict("n") == 4.0


def test_a_gcs_repository_is_downloaded_and_served(
    gcs_bucket: str, tf_serving_testdata: Path, tmp_path: Path
) -> None:
    repo = f"{gcs_bucket}/models"
    storage.upload_tree(str(tf_serving_testdata / "saved_model_half_plus_two_cpu" / "00000123"), f"{repo}/m/7")
    config = models_config.with_version(models_config.ModelServerConfig(), "m", f"{repo}/m", 7)
    storage.write_text(models_config.config_uri(repo), models_config.format_models_config(config))
    with serve(repo, grpc_port=0, rest_port=-1, poll_seconds=0, cache_dir=str(tmp_path / "cache")) as server:
        assert Client(server.grpc_address).predict("m", 7) == 3.0


def test_injected_latency_and_errors_hit_only_their_version(two_versions: Path) -> None:
    repo = two_versions
    write_config(repo, labelled_config(repo, "m", [123, 124, 125], {}))
    faults = (Fault("m", 124, latency_s=0.3), Fault("m", 125, error_rate=1.0))
    with serve(str(repo), grpc_port=0, rest_port=-1, poll_seconds=0, faults=faults) as server:
        client = Client(server.grpc_address)
        started = time.monotonic()
        assert client.predict("m", 124) == 3.0
        assert time.monotonic() - started >= 0.3
        with pytest.raises(grpc.RpcError, match="Deadline Exceeded"):
            client.predict("m", 124, timeout=0.1)
        with pytest.raises(grpc.RpcError, match="injected fault on m version 125"):
            client.predict("m", 125)
        assert client.predict("m", 123) == 3.0


@pytest.mark.parametrize("text, message", [
    ("m/124", "Expected MODEL/VERSION:latency=SECONDS"),
    ("m/124:latency=fast", "latency='fast' is not a number"),
    ("m/124:jitter=1", "Unknown key 'jitter'"),
    ("m/124:error_rate=2", "error_rate=2.0. Expected 0-1"),
])
def test_bad_fault_flags_are_rejected(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Fault.parse(text)


def test_a_busy_port_is_one_clear_error(two_versions: Path) -> None:
    write_config(two_versions, labelled_config(two_versions, "m", [123], {}))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=f"Cannot listen for gRPC on 127.0.0.1:{port}"):
            serve(str(two_versions), grpc_port=port, rest_port=-1)
        with pytest.raises(ConfigError, match=f"Cannot listen for REST on 127.0.0.1:{port}"):
            serve(str(two_versions), grpc_port=0, rest_port=port)


@contextlib.contextmanager
def _serve_cli(repo: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """`tfship serve` as its own process on free ports; yields it and its "serving" line."""
    write_config(repo, labelled_config(repo, "m", [123], {"stable": 123}))
    process = subprocess.Popen(
        [sys.executable, "-m", "tfship.cli", "serve", "--repo", str(repo), "--grpc-port", "0", "--rest-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        line = process.stdout.readline()  # "tfship serve: serving R on gRPC H:P, REST http://H:Q"
        assert line.startswith("tfship serve: serving"), line
        yield process, line
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_cli_serves_until_sigterm(two_versions: Path) -> None:
    with _serve_cli(two_versions) as (process, line):
        rest_url = line.rsplit("REST ", 1)[1].strip()
        with urllib.request.urlopen(f"{rest_url}/v1/models/m/labels/stable", timeout=DEADLINE_S) as response:
            assert b'"AVAILABLE"' in response.read()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_sigterm_right_after_the_serving_line_is_a_clean_stop(two_versions: Path) -> None:
    """A supervisor may stop the server the moment it says it serves: the handler is already there."""
    with _serve_cli(two_versions) as (process, _line):
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
