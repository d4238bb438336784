"""`tfship canary` end to end: real `tfship serve` on loopback, TF Serving's test models, both transports.

The candidate's faults are real: half_plus_three answers differently, and the server's test-only
fault injection (`Fault`, `tfship serve --inject-fault`) makes a version slow or failing.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tfship import storage
from tfship import models_config
from tfship.steps.canary import canary
from tfship.cli import main as cli_main
from tfship.errors import DataError, EndpointError
from tfship.history import read_history
from tfship.steps.serve import Fault, serve

pytestmark = pytest.mark.timeout(240)
REQUESTS = 300


def wait_for(condition: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
    return value


def make_repo(root: Path, data: Path, extra_labels: dict[str, int] | None = None) -> str:
    """Model m: 123 and 124 = half_plus_two (two exports), 125 = half_plus_three, 126/127 = 124 again.

    stable -> 123, canary -> 124, plus `extra_labels`.
    """
    sources = {
        123: data / "saved_model_half_plus_two_2_versions" / "00000123",
        124: data / "saved_model_half_plus_two_2_versions" / "00000124",
        125: data / "saved_model_half_plus_three" / "00000123",
        126: data / "saved_model_half_plus_two_2_versions" / "00000124",
        127: data / "saved_model_half_plus_two_2_versions" / "00000124",
    }
    (root / "m").mkdir(parents=True)
    config = models_config.ModelServerConfig()
    for version, source in sources.items():
        os.symlink(source, root / "m" / str(version))
        config = models_config.with_version(config, "m", str(root / "m"), version)
    for label, version in {"stable": 123, "canary": 124, **(extra_labels or {})}.items():
        config = models_config.with_label(config, "m", label, version)
    storage.write_text(models_config.config_uri(str(root)), models_config.format_models_config(config))
    return str(root)


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("examples") / "examples.jsonl"
    path.write_text("".join(json.dumps({"x": [round(0.25 * i, 2)]}) + "\n" for i in range(40)))
    return str(path)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tf_serving_testdata: Path):
    """One server for the read-only canaries: labels three -> 125, slow -> 126, flaky -> 127."""
    repo = make_repo(tmp_path_factory.mktemp("repo"), tf_serving_testdata, {"three": 125, "slow": 126, "flaky": 127})
    faults = (Fault("m", 126, latency_s=0.03), Fault("m", 127, error_rate=0.2))
    with serve(repo, grpc_port=0, rest_port=0, poll_seconds=0.1, faults=faults) as handle:
        yield handle


def target(server: Any, transport: str) -> str:
    return f"grpc://{server.grpc_address}" if transport == "grpc" else server.rest_url


def labels_in(repo: str) -> dict[str, int]:
    return models_config.version_labels(models_config.read_models_config(repo), "m")


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_an_identical_candidate_passes(server: Any, examples: str, tmp_path: Path, transport: str) -> None:
    result = canary(target(server, transport), "m", examples, requests=REQUESTS, report_dir=str(tmp_path))
    assert result.verdict == "PASS", result.reasons
    assert (result.candidate_version, result.baseline_version, result.exit_code) == (124, 123, 0)
    assert {m.classification for m in result.metrics} == {"PASS"}
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["verdict"] == "PASS" and report["requests"]["pairs_answered"] == REQUESTS
    assert (tmp_path / "report.md").read_text().startswith("# Canary PASS: m label 'canary' vs label 'stable'")
    assert (tmp_path / "report.html").read_text().count("<svg") == 2


def test_a_slow_candidate_fails_on_latency(server: Any, examples: str) -> None:
    result = canary(target(server, "grpc"), "m", examples, candidate="slow", requests=REQUESTS, concurrency=8)
    failing = {m.name for m in result.metrics if m.classification != "PASS"}
    assert result.verdict == "FAIL"
    assert "latency" in failing and failing <= {"latency", "latency_p99"}


def test_a_candidate_failing_some_requests_fails_on_error_rate(server: Any, examples: str) -> None:
    result = canary(target(server, "rest"), "m", examples, candidate="flaky", requests=REQUESTS)
    metrics = {m.name: m for m in result.metrics}
    assert result.verdict == "FAIL"
    assert metrics["error_rate"].classification == "HIGH"
    assert metrics["error_rate"].estimate == pytest.approx(0.2, abs=0.07)
    assert result.report["candidate"]["errors_by_code"]["INTERNAL"] > 0


@pytest.mark.parametrize("policy", ["promote", "rollback_on_fail"])  # both roll a FAIL back
def test_a_shifted_candidate_fails_is_not_promoted_and_loses_its_label(
    tmp_path: Path, tf_serving_testdata: Path, examples: str, policy: str
) -> None:
    repo = make_repo(tmp_path / "repo", tf_serving_testdata)
    config = models_config.with_label(models_config.read_models_config(repo), "m", "canary", 125)  # half_plus_three
    storage.write_text(models_config.config_uri(repo), models_config.format_models_config(config))
    with serve(repo, grpc_port=0, rest_port=-1, poll_seconds=0.1) as handle:
        address = f"grpc://{handle.grpc_address}"
        reports = str(tmp_path / "reports")
        result = canary(address, "m", examples, requests=REQUESTS, repo=repo, report_dir=reports, **{policy: True})
        assert result.verdict == "FAIL" and result.exit_code == 1
        assert {m.name: m.classification for m in result.metrics}["score_shift[y]"] == "HIGH"
        assert result.action == "rolled back: removed label 'canary' (version 125)"
        assert labels_in(repo) == {"stable": 123}  # not promoted
        # the move is in the label history, with the verdict and the report it rests on
        entry = read_history(repo, "m")[-1]
        assert (entry["action"], entry["state"], entry["verdict"]) == ("remove-label", "done", "FAIL")
        assert entry["moves"] == {"canary": [125, None]}
        assert entry["report"] == result.report_paths["json"] and os.path.isfile(entry["report"])
        # the running server follows: the canary label is gone
        wait_for(lambda: handle.manager.labels("m") == {"stable": 123})
        with pytest.raises(EndpointError, match="Unrecognized servable version label: canary"):
            canary(address, "m", examples, requests=REQUESTS)


def test_a_pass_with_promote_moves_stable_on_the_running_server(
    tmp_path: Path, tf_serving_testdata: Path, examples: str
) -> None:
    repo = make_repo(tmp_path / "repo", tf_serving_testdata)
    with serve(repo, grpc_port=0, rest_port=0, poll_seconds=0.1) as handle:
        # Before a rollout (the chain's canary with a rollout step) a PASS moves nothing.
        passed = canary(handle.rest_url, "m", examples, requests=REQUESTS, rollback_on_fail=True, repo=repo)
        assert passed.verdict == "PASS" and passed.action.startswith("none (PASS; --rollback-on-fail")
        assert labels_in(repo) == {"stable": 123, "canary": 124}
        result = canary(handle.rest_url, "m", examples, requests=REQUESTS, promote=True, repo=repo)
        assert result.verdict == "PASS" and result.action == "promoted version 124 to stable"
        assert labels_in(repo)["stable"] == 124
        wait_for(lambda: handle.manager.labels("m").get("stable") == 124)
        after = canary(handle.rest_url, "m", examples, candidate="stable", baseline="previous", requests=REQUESTS)
        assert (after.candidate_version, after.baseline_version) == (124, 123)


def test_the_endpoint_dying_mid_canary_gives_nodata_quickly_and_changes_nothing(
    tmp_path: Path, tf_serving_testdata: Path, examples: str
) -> None:
    repo = make_repo(tmp_path / "repo", tf_serving_testdata)
    handle = serve(repo, grpc_port=0, rest_port=-1, poll_seconds=0)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = canary(f"grpc://{handle.grpc_address}", "m", examples, requests=200_000,
                                       concurrency=4, deadline_s=2.0, promote=True, repo=repo)
        except Exception as error:  # noqa: BLE001 - the assertion below says what happened
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(2.0)
    handle.stop(grace=0)
    stopped = time.monotonic()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the canary hung after its endpoint died"
    assert time.monotonic() - stopped < 30
    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    assert result.verdict == "NODATA" and result.exit_code == 1
    assert result.reasons[0].startswith("run aborted: the endpoint stopped answering")
    assert result.action == "none (NODATA: labels unchanged)"
    assert labels_in(repo) == {"stable": 123, "canary": 124}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unknown_labels_dead_endpoints_and_bad_examples_are_clear_errors(
    server: Any, examples: str, tmp_path: Path
) -> None:
    with pytest.raises(EndpointError, match=r"--candidate nope: the server does not serve model 'm' label 'nope': "
                                            r"INVALID_ARGUMENT: Unrecognized servable version label: nope"):
        canary(target(server, "grpc"), "m", examples, candidate="nope")
    with pytest.raises(EndpointError, match=r"--baseline 999: .*HTTP 404: Servable not found for request: Specific\(m, 999\)"):
        canary(target(server, "rest"), "m", examples, baseline="999")
    with pytest.raises(EndpointError, match=r"Cannot reach the serving endpoint grpc://127.0.0.1:\d+ .*UNAVAILABLE"):
        canary(f"grpc://127.0.0.1:{_free_port()}", "m", examples, deadline_s=2.0)
    with pytest.raises(EndpointError, match=r"Cannot reach the serving endpoint http://127.0.0.1:\d+ .*ConnectionRefusedError"):
        canary(f"http://127.0.0.1:{_free_port()}", "m", examples, deadline_s=2.0)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"x": [1.0, 2.0]}\n')
    with pytest.raises(DataError, match=r"one example has shape \[2\], but the signature takes \[-1, 1\]"):
        canary(target(server, "grpc"), "m", str(bad))


def test_the_cli_exit_codes(server: Any, examples: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    common = ["canary", "--target", target(server, "grpc"), "--name", "m", "--examples", examples,
              "--requests", str(REQUESTS)]
    assert cli_main(common + ["--report-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("canary PASS (score 100.0): m label 'canary' = version 124")
    assert cli_main(common + ["--candidate", "three"]) == 1
    assert "canary FAIL" in capsys.readouterr().out
    assert cli_main(common + ["--candidate", "nope"]) == 2
    assert "tfship canary: error: --candidate nope" in capsys.readouterr().err
