"""`tfship run` and the local runner: planning, retries, and the whole chain on the demo data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tfship import chain, local_runner
from tfship import models_config
from tfship.demo import write_demo
from tfship.errors import DataError

TFSHIP = [sys.executable, "-m", "tfship.cli"]


def tfship(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*TFSHIP, *args], capture_output=True, text=True, timeout=timeout)


def config_for(tmp_path: Path, **overrides) -> chain.ChainConfig:
    data, schema = write_demo(str(tmp_path / "data"))
    values = dict(data=data, schema=schema, runs_root=str(tmp_path / "runs"),
                  repo=str(tmp_path / "repo"), name="penguins")
    return chain.ChainConfig(**{**values, **overrides})


def test_plan_only_prints_every_step_and_writes_the_examples(tmp_path):
    done = tfship("run", "--plan-only", "--run-dir", str(tmp_path), "--run-id", "r1",
                  "--target", "grpc://127.0.0.1:9")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["plan"] == {"run_id": "r1", "run_dir": str(tmp_path / "runs" / "r1"), "version": 1,
                           "stable": None}
    # Every step but the rollout, which only a config with rollout steps turns on.
    assert list(doc["args"]) == [s.name for s in chain.job_steps() if s.name != "rollout"]
    assert doc["target"] == "grpc://127.0.0.1:9"
    # The demo's contract is used; the canary's examples come from the data, features only.
    assert doc["config"]["contract"] == str(tmp_path / "data" / "contract.yaml")
    lines = (tmp_path / "runs" / "r1" / "examples.jsonl").read_text().splitlines()
    assert len(lines) == local_runner.EXAMPLE_ROWS
    first = json.loads(lines[0])
    assert set(first) == {"island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm",
                          "body_mass_g", "sex"}
    assert isinstance(first["island"], str) and isinstance(first["body_mass_g"], float)


def test_plan_only_passes_the_train_options(tmp_path):
    done = tfship("run", "--plan-only", "--run-dir", str(tmp_path), "--run-id", "r1",
                  "--mixed-precision", "--jit", "--input", "team.pipes:penguins")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert (doc["config"]["mixed_precision"], doc["config"]["jit_compile"], doc["config"]["input_fn"]) == (
        True, True, "team.pipes:penguins")
    train = doc["args"]["train"]
    assert "--mixed-precision" in train and "--jit" in train
    assert train[train.index("--input") + 1] == "team.pipes:penguins"


def test_data_needs_a_schema(tmp_path):
    done = tfship("run", "--run-dir", str(tmp_path), "--data", "x.csv")
    assert done.returncode == 2
    assert "--data needs --schema" in done.stderr


def test_repo_state_counts_every_used_version(tmp_path):
    repo = tmp_path / "repo"
    assert local_runner.repo_state(str(repo), "penguins") == ([], None)
    (repo / "penguins" / "4").mkdir(parents=True)
    (repo / "penguins" / "4" / "saved_model.pb").write_bytes(b"x")
    claims = repo / "penguins" / ".tfship" / "versions"
    claims.mkdir(parents=True)
    (claims / "7.json").write_text("{}")  # a push that claimed 7 and has not finished
    config = models_config.with_version(models_config.parse_models_config(""), "penguins",
                                       str(repo / "penguins"), 4)
    config = models_config.with_label(config, "penguins", "stable", 4)
    (repo / "models.config").write_text(models_config.format_models_config(config))
    versions, stable = local_runner.repo_state(str(repo), "penguins")
    assert versions == [4, 7] and stable == 4
    assert chain.next_version(versions) == 8


def test_contract_from_schema_names_every_feature(tmp_path):
    config = config_for(tmp_path)
    contract = yaml.safe_load(local_runner.contract_from_schema(config.schema))
    inputs = contract["signatures"]["serving_default"]["inputs"]
    assert inputs["island"] == {"dtype": "string", "shape": [-1]}
    assert inputs["body_mass_g"] == {"dtype": "float32", "shape": [-1]}


def test_examples_from_tfrecord_data_need_a_complete_row(tmp_path):
    config = config_for(tmp_path)
    (tmp_path / "rows.tfrecord").write_bytes(b"")
    with pytest.raises(DataError, match="rows.tfrecord: no complete row to use as an example"):
        local_runner.examples_from_data(str(tmp_path / "rows.tfrecord"), config.schema)


def test_run_step_retries_only_retryable_exits(tmp_path, monkeypatch):
    """A real process that is 'preempted' (exit 143) once, then succeeds; and one that fails (2)."""
    script = tmp_path / "step.py"
    script.write_text(
        "import os, sys\n"
        "marker = os.path.join(os.path.dirname(__file__), 'attempts')\n"
        "n = int(open(marker).read()) + 1 if os.path.exists(marker) else 1\n"
        "open(marker, 'w').write(str(n))\n"
        "print('attempt', n, sys.argv[1:])\n"
        "sys.exit({'train': 143 if n == 1 else 0, 'export': 2}[sys.argv[1]])\n"
    )
    monkeypatch.setenv("TFSHIP_CLI", f"{sys.executable} {script}")
    lines: list[str] = []
    result = local_runner.run_step(chain.STEPS["train"], ["train"], echo=lines.append)
    assert (result.exit_code, result.attempts) == (0, 2)
    assert any("exited 143 (retryable)" in line for line in lines)
    (tmp_path / "attempts").unlink()
    with pytest.raises(local_runner.StepFailed, match="step `export` failed with exit code 2"):
        local_runner.run_step(chain.STEPS["export"], ["export"], echo=lines.append)
    assert (tmp_path / "attempts").read_text() == "1"  # not retried


def _stable(repo: Path) -> int | None:
    return models_config.version_labels(models_config.read_models_config(str(repo)), "penguins").get("stable")


@pytest.mark.slow
def test_tfship_run_twice_on_the_demo_data(tmp_path):
    args = ["run", "--run-dir", str(tmp_path), "--steps", "60"]
    first = tfship(*args)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    assert "no stable version yet" in first.stdout
    assert "first version: no stable model yet, promoting version 1" in first.stdout
    assert _stable(tmp_path / "repo") == 1
    second = tfship(*args)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    assert "verdict:  PASS" in second.stdout
    assert _stable(tmp_path / "repo") == 2
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2
    summary = json.loads((runs[1] / "summary.json").read_text())
    assert summary["version"] == 2 and summary["previous_stable"] == 1 and summary["promoted"]
    assert [s["name"] for s in summary["steps"]] == [
        "train", "export", "validate", "push", "canary", "promote"]
    assert "heldout_accuracy" in summary["metrics"]
    assert list((runs[1] / "reports" / "canary").iterdir())


def test_tfship_run_with_data_repo_and_runs_on_gcs(tmp_path, gcs_bucket):
    from tfship import storage

    data, schema = write_demo(str(tmp_path / "demo"))
    storage.upload_file(data, f"{gcs_bucket}/data/penguins.csv")
    storage.upload_file(schema, f"{gcs_bucket}/data/schema.yaml")
    args = ["run", "--data", f"{gcs_bucket}/data/penguins.csv", "--schema", f"{gcs_bucket}/data/schema.yaml",
            "--repo", f"{gcs_bucket}/repo", "--run-dir", f"{gcs_bucket}/workspace", "--steps", "40"]
    for expected_stable in (1, 2):
        result = tfship(*args)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        config = models_config.parse_models_config(storage.read_text(f"{gcs_bucket}/repo/models.config"))
        assert config.model_config_list.config[0].version_labels["stable"] == expected_stable
    assert "verdict:  PASS" in result.stdout
    assert config.model_config_list.config[0].base_path == f"{gcs_bucket}/repo/penguins"
    assert "saved_model.pb" in storage.list_files(f"{gcs_bucket}/repo/penguins/2")


@pytest.mark.slow
def test_a_failing_step_stops_the_chain_before_promotion(tmp_path):
    data = tmp_path / "bad.csv"
    data.write_text("island,bill_length_mm,species\nDream,not-a-number,Adelie\n")
    schema = tmp_path / "schema.yaml"
    schema.write_text("task: classification\nlabel: species\nfeatures:\n  island: string\n"
                      "  bill_length_mm: float32\n")
    done = tfship("run", "--run-dir", str(tmp_path), "--data", str(data), "--schema", str(schema),
                  "--examples", str(data), "--steps", "10")
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-3000:]
    assert "step `train` failed with exit code 2" in done.stderr
    assert not (tmp_path / "repo" / "models.config").exists()


def test_run_step_once_leaves_retrying_to_the_orchestrator(tmp_path, monkeypatch):
    script = tmp_path / "step.py"
    script.write_text("import sys\nsys.exit(143)\n")
    monkeypatch.setenv("TFSHIP_CLI", f"{sys.executable} {script}")
    result = local_runner.run_step(chain.STEPS["train"], ["train"], echo=lambda _: None,
                                   raise_on_failure=False, retry=False)
    assert (result.exit_code, result.attempts) == (143, 1)
    result = local_runner.run_step(chain.STEPS["train"], ["train"], echo=lambda _: None,
                                   raise_on_failure=False)
    assert (result.exit_code, result.attempts) == (143, chain.STEPS["train"].retries + 1)


def test_examples_name_the_bad_row(tmp_path):
    config = config_for(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex,species\n"
                   "Dream,39.1,18.7,181,3750,male,Adelie\n"
                   "Dream,oops,18.7,181,3750,male,Adelie\n")
    with pytest.raises(DataError, match=r"bad.csv, line 3: could not convert string to float: 'oops'"):
        local_runner.examples_from_data(str(bad), config.schema)
