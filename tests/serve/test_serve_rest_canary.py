"""`tfship canary` over REST against tfship's own models, and against a server that fails (issue 14, 1 and 7).

Before: every canary over REST on a tfship classification model ended "the baseline rejects the first
example" because the server answered 500 (its row-format encoder failed on the string output
`classes`): a server failure reported as a problem with the user's examples. Real servers on
127.0.0.1; the failing baseline is the server's own test-only fault injection (`Fault`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from tests.canary.test_canary_e2e import make_repo
from tests.saved_model.test_savedmodel_builders import FEATURES, raw_batch, tiny_job

from tfship import storage
from tfship import models_config
from tfship.steps.canary import canary
from tfship.cli import main as cli_main
from tfship.errors import EndpointError
from tfship.steps.export.step import ExportConfig, export_job
from tfship.steps.serve import Fault, serve

pytestmark = pytest.mark.timeout(300)
REQUESTS = 300


@pytest.fixture(scope="module")
def failing_baseline(tmp_path_factory: pytest.TempPathFactory, tf_serving_testdata: Path):
    """TF Serving's half_plus_two as m: the baseline (stable -> 123) fails every inference call."""
    repo = make_repo(tmp_path_factory.mktemp("repo"), tf_serving_testdata)
    with serve(repo, grpc_port=0, rest_port=0, poll_seconds=0, faults=(Fault("m", 123, error_rate=1.0),)) as handle:
        yield handle


@pytest.fixture(scope="module")
def toy_examples(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("examples") / "examples.jsonl"
    path.write_text("".join(json.dumps({"x": [0.5 * i]}) + "\n" for i in range(10)))
    return str(path)


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_a_failing_server_is_reported_as_the_server_not_the_examples(
    failing_baseline: Any, toy_examples: str, transport: str, capsys: pytest.CaptureFixture
) -> None:
    target = failing_baseline.rest_url if transport == "rest" else f"grpc://{failing_baseline.grpc_address}"
    with pytest.raises(EndpointError, match=r"the server failed the first request to the baseline \(version 123\): "
                                            r"INTERNAL: injected fault"):
        canary(target, "m", toy_examples, requests=REQUESTS)
    code = cli_main(["canary", "--target", target, "--name", "m", "--examples", toy_examples])
    err = capsys.readouterr().err
    assert code == 2 and "rejects the first example" not in err
    assert err.strip().splitlines() == [f"tfship canary: error: {target}: the server failed the first request to the "
                                        "baseline (version 123): INTERNAL: injected fault on m version 123 "
                                        "(tfship serve --inject-fault)"]


@pytest.fixture(scope="module")
def tfship_classifier(tmp_path_factory: pytest.TempPathFactory):
    """A real tfship classification export served as versions 1 (stable) and 2 (canary)."""
    root = tmp_path_factory.mktemp("classifier")
    job = tiny_job(str(root / "job"))
    path = export_job(job, ExportConfig(str(root / "job"), str(root / "export"), version=1)).path
    repo = root / "repo"
    (repo / "penguins").mkdir(parents=True)
    config = models_config.ModelServerConfig()
    for version in (1, 2):
        os.symlink(path, repo / "penguins" / str(version))
        config = models_config.with_version(config, "penguins", str(repo / "penguins"), version)
    config = models_config.with_label(config, "penguins", "stable", 1)
    config = models_config.with_label(config, "penguins", "canary", 2)
    storage.write_text(models_config.config_uri(str(repo)), models_config.format_models_config(config))
    raw = raw_batch(20)
    examples = root / "examples.jsonl"
    examples.write_text("".join(
        json.dumps({name: (raw[name][i].decode() if isinstance(raw[name][i], bytes) else raw[name][i].item())
                    for name in FEATURES}) + "\n"
        for i in range(20)
    ))
    with serve(str(repo), grpc_port=0, rest_port=0, poll_seconds=0) as handle:
        yield handle, str(examples)


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_the_canary_of_a_tfship_classifier_passes_over_both_transports(
    tfship_classifier: Any, transport: str, tmp_path: Path
) -> None:
    """Before (REST): DataError "The baseline (version 1) rejects the first example ... INTERNAL: Internal
    error: AttributeError: 'bytes' object has no attribute 'reshape'"."""
    server, examples = tfship_classifier
    target = server.rest_url if transport == "rest" else f"grpc://{server.grpc_address}"
    result = canary(target, "penguins", examples, requests=REQUESTS, report_dir=str(tmp_path))
    assert result.verdict == "PASS", result.reasons
    assert (result.baseline_version, result.candidate_version) == (1, 2)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["requests"]["pairs_answered"] == REQUESTS
