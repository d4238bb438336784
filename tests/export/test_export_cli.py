"""The container contract end to end: `tfship train` -> `tfship export` (twice) -> `tfship validate`
against the first version as baseline, each a real `tfship` process on a real job directory."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from tfship import cli
from tfship.errors import EXIT_BAD_INPUT

CONTRACT = """
signatures:
  serving_default:
    inputs:
      a: {dtype: float32, shape: [-1]}
      b: {dtype: int64, shape: [-1]}
      c: {dtype: string, shape: [-1]}
    outputs:
      class_ids: {dtype: int64, shape: [-1]}
      classes: {dtype: string, shape: [-1]}
      probabilities: {dtype: float32, shape: [-1, 3]}
  classify:
    method_name: tensorflow/serving/classify
    inputs:
      inputs: {dtype: string, shape: [-1]}
    outputs:
      classes: {dtype: string, shape: [-1, 3]}
      scores: {dtype: float32, shape: [-1, 3], probabilities: true}
"""


def tfship(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tfship.cli", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("e2e")
    rng = random.Random(0)
    lines = ["a,b,c,species"]
    for _ in range(60):
        c, b = rng.choice("xyz"), rng.randint(0, 5)
        lines.append(f"{rng.gauss(0, 1):.3f},{b},{c},k{(b + (c == 'x')) % 3}")
    (root / "rows.csv").write_text("\n".join(lines) + "\n")
    (root / "schema.yaml").write_text("task: classification\nlabel: species\n"
                                      "features: {a: float32, b: int64, c: string}\n")
    done = tfship("train", "--data", str(root / "rows.csv"), "--schema", str(root / "schema.yaml"),
                  "--job-dir", str(root / "job"), "--steps", "20", "--checkpoint-every", "10", "--batch-size", "16")
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def test_train_export_validate_through_the_cli(trained: Path) -> None:
    export_dir = trained / "export"
    first = tfship("export", "--job-dir", str(trained / "job"), "--export-dir", str(export_dir))
    assert first.returncode == 0, first.stderr[-3000:]
    assert "exported version 1" in first.stdout and "checkpoint step 20" in first.stdout
    second = tfship("export", "--job-dir", str(trained / "job"), "--export-dir", str(export_dir),
                    "--warmup-rows", "2")
    assert second.returncode == 0 and "exported version 2" in second.stdout, second.stderr[-3000:]
    metadata = json.loads((export_dir / "2" / "assets.extra" / "tfship_metadata.json").read_text())
    assert metadata["checkpoint_step"] == 20 and metadata["metrics"]["step"] == 20
    assert set(metadata["fingerprints"]) and metadata["schema"]["label"] == "species"

    (trained / "contract.yaml").write_text(CONTRACT)
    (trained / "golden.jsonl").write_text('{"a": [0.5], "b": [1], "c": ["x"]}\n{"a": [1.5], "b": [3], "c": ["q"]}\n')
    checked = tfship("validate", "--model", str(export_dir / "2"), "--contract", str(trained / "contract.yaml"),
                     "--baseline", str(export_dir / "1"), "--examples", str(trained / "golden.jsonl"),
                     "--report", str(trained / "validate.json"))
    assert checked.returncode == 0, checked.stdout + checked.stderr[-3000:]
    report = json.loads((trained / "validate.json").read_text())
    assert report["passed"] and report["checks"] == {
        "contract": "passed", "load": "passed", "run": "passed", "outputs": "passed", "warmup": "passed",
        "baseline": "passed",
    }
    assert report["baseline_diff"] == {"breaking": [], "compatible": [], "text": ""}
    assert report["runtime"]["warmup"]["records"] == 3


def test_export_of_a_directory_that_is_not_a_job(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = cli.main(["export", "--job-dir", str(tmp_path), "--export-dir", str(tmp_path / "export")])
    assert code == EXIT_BAD_INPUT
    assert "is not a tfship job directory" in capsys.readouterr().err
    assert not (tmp_path / "export").exists()
