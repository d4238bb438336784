"""Schema, data validation and the pure decisions of the train step (no training here)."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from tfship.steps.train.checkpoint_policy import FixedIntervalPolicy
from tfship.steps.train.data import analyze, resolve_files
from tfship.steps.train.distribute import cluster_role
from tfship.errors import ConfigError, DataError, ModelError, SchemaError
from tfship.steps.train.model_families import resolve_model_fn
from tfship.schema import Schema, load_schema
from tfship.steps.train.step import TrainConfig

SCHEMA = Schema(task="classification", label="label", features={"f0": "float32", "colour": "string"})


def write(path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_issue_schema_format_is_accepted(tmp_path) -> None:
    schema = load_schema(write(tmp_path / "s.yaml", "task: classification\nlabel: label\nfeatures:\n  f0: float32\n  colour: string\n"))
    assert schema.numeric_features == ["f0"] and schema.categorical_features == ["colour"]
    assert schema.label_dtype == "string"


@pytest.mark.parametrize(
    "text, message",
    [
        ("task: clustering\nlabel: y\nfeatures: {x: float32}\n", "Invalid `task`: 'clustering'"),
        ("task: regression\nlabel: y\nfeatures: {x: float16}\n", "Invalid dtype for feature 'x': 'float16'"),
        ("task: regression\nfeatures: {x: float32}\n", r"missing key\(s\) \['label'\]"),
        ("task: regression\nlabel: y\nfeatures: [x]\n", "`features` must map"),
        ("task: [unclosed\n", "is not valid YAML"),
        ("task: regression\nlabel: x\nfeatures: {x: float32}\n", "also listed under `features`"),
    ],
)
def test_bad_schema_is_one_clear_error(tmp_path, text: str, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        load_schema(write(tmp_path / "s.yaml", text))


@pytest.mark.parametrize(
    "rows, message",
    [
        ("f0,colour,label\n1.0,red,a\n2.0,blue\n", r"d\.csv:3: expected 3 fields as in the header, found 2"),
        ("f0,colour,label\n1.0,red,a\nabc,blue,b\n", r"d\.csv:3: column 'f0': 'abc' is not a number"),
        ("f0,label\n1.0,a\n", r"schema names column\(s\) \['colour'\] that the header does not have"),
        ("f0,colour,label\n", "has no training rows"),
        ("", "is empty: expected a header row"),
        ("f0,colour,label\n1.0,red,a\n2.0,blue,a\n", r"has 1 class\(es\); need at least 2"),
    ],
)
def test_bad_rows_name_file_line_and_column(tmp_path, rows: str, message: str) -> None:
    files = resolve_files(write(tmp_path / "d.csv", rows))
    with pytest.raises(DataError, match=message):
        analyze(files, SCHEMA, holdout_every=5)


def test_missing_data_and_unknown_format(tmp_path) -> None:
    with pytest.raises(DataError, match="No data files match --data"):
        resolve_files(str(tmp_path / "absent*.csv"))
    with pytest.raises(DataError, match="Cannot tell the format"):
        resolve_files(write(tmp_path / "rows.json", "{}"))


def test_analysis_learns_vocabularies_and_statistics(demo_data) -> None:
    data, schema_path = demo_data
    stats = analyze(resolve_files(data), load_schema(schema_path), holdout_every=5)
    assert (stats.train_rows, stats.heldout_rows) == (276, 68)  # 344 penguins, every 5th held out
    assert stats.classes == ["Adelie", "Chinstrap", "Gentoo"]
    assert set(stats.vocabularies["island"]) == {"Biscoe", "Dream", "Torgersen"}
    assert "NA" not in stats.vocabularies["sex"]
    assert 4000 < stats.means["body_mass_g"] < 4400 and stats.stddevs["body_mass_g"] > 500


def test_config_rejects_bad_values_by_name(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"Invalid value for `steps`: 0\. Expected an integer >= 1"):
        TrainConfig(data="d.csv", schema="s.yaml", job_dir=str(tmp_path), steps=0)
    with pytest.raises(ConfigError, match=r"Invalid value for `learning_rate`: -1"):
        TrainConfig(data="d.csv", schema="s.yaml", job_dir=str(tmp_path), learning_rate=-1)
    with pytest.raises(Exception, match="unknown scheme 's3'"):
        TrainConfig(data="s3://b/d.csv", schema="s.yaml", job_dir=str(tmp_path))


def test_model_spec_errors() -> None:
    with pytest.raises(ModelError, match=r"Cannot import --model 'no_such_pkg\.models:build': ModuleNotFoundError"):
        resolve_model_fn("no_such_pkg.models:build")
    with pytest.raises(ModelError, match="module 'json' has no function 'nope'"):
        resolve_model_fn("json:nope")
    with pytest.raises(ModelError, match="expected one of mlp, linear"):
        resolve_model_fn("transformer")


def test_checkpoint_policy() -> None:
    policy = FixedIntervalPolicy(every=10, last_step=25)
    assert [s for s in range(0, 26) if policy.should_save(s)] == [10, 20, 25]
    with pytest.raises(ConfigError, match="checkpoint_every"):
        FixedIntervalPolicy(every=0, last_step=5)


def test_cluster_role_from_tf_config() -> None:
    assert cluster_role({}).is_chief and cluster_role({}).num_workers == 1
    two = '{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 1}}'
    role = cluster_role({"TF_CONFIG": two})
    assert role.num_workers == 2 and not role.is_chief
    with_chief = '{"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker", "index": 0}}'
    assert not cluster_role({"TF_CONFIG": with_chief}).is_chief
    with pytest.raises(ConfigError, match="Invalid TF_CONFIG"):
        cluster_role({"TF_CONFIG": "{not json"})


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path) -> None:
    data = write(tmp_path / "d.csv", "f0,colour,label\n1.0,red,a\nx,blue,b\n")
    schema = write(tmp_path / "s.yaml", "task: classification\nlabel: label\nfeatures: {f0: float32, colour: string}\n")
    result = subprocess.run(
        [sys.executable, "-m", "tfship.cli", "train", "--data", data, "--schema", schema,
         "--job-dir", str(tmp_path / "job"), "--steps", "5"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"tfship train: error: {data}:3: column 'f0': 'x' is not a number."
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "job" / "checkpoints").exists()


def test_cli_unimportable_model_fails_before_anything_is_written(demo_data, tmp_path) -> None:
    data, schema = demo_data
    result = subprocess.run(
        [sys.executable, "-m", "tfship.cli", "train", "--data", data, "--schema", schema,
         "--job-dir", str(tmp_path / "job"), "--model", "no_such_pkg.models:build"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(
        "tfship train: error: Cannot import --model 'no_such_pkg.models:build': ModuleNotFoundError"
    )
    assert not (tmp_path / "job").exists()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_and_json_lines_otherwise() -> None:
    from tfship.progress import StepProgress

    terminal = _Terminal()
    bar = StepProgress(total=4, every=2, stream=terminal)
    for step in range(1, 5):
        bar.update(step, loss=0.5)
    assert terminal.getvalue().count("\r") == 4 and "4/4 loss 0.5" in terminal.getvalue()
    assert terminal.getvalue().endswith("\n")
    log = io.StringIO()
    lines = StepProgress(total=4, every=2, stream=log)
    for step in range(1, 5):
        lines.update(step, loss=0.5)
    lines.event("done", heldout_accuracy=1.0)
    events = [json.loads(line) for line in log.getvalue().splitlines()]
    assert [e.get("step") for e in events] == [2, 4, None]
    assert events[-1] == {"event": "done", "heldout_accuracy": 1.0}
