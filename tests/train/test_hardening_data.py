"""Issue 14 (data / train / validate / CLI): hostile and careless inputs get one clear answer.

Real files, real `tfship` processes and real TensorFlow throughout. Exit codes: 2 bad input (one
line), 1 a gate said no, 70 a bug in tfship (a one-line header naming the traceback file).
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from tfship import cli
from tfship.steps.validate.contract import load_contract
from tfship.steps.train.data import analyze, resolve_files
from tfship.errors import EXIT_BAD_INPUT, EXIT_INTERNAL_ERROR, ConfigError, DataError, ModelError, SchemaError
from tfship.schema import Schema, graph_name, load_schema
from tfship.steps.train.step import TrainConfig, settings_warnings

SCHEMA = Schema(task="classification", label="label", features={"f0": "float32", "colour": "string"})
# Column names Keras refuses as layer names: a space, a non-ASCII letter.
ODD_SCHEMA = "task: classification\nlabel: species\nfeatures: {île: string, bill length: float32, n: int64}\n"


def tfship(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tfship.cli", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env})


def last_line(result: subprocess.CompletedProcess) -> str:
    return result.stderr.strip().splitlines()[-1]


def write(path: Path, text: str | bytes) -> str:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def small_rows(n: int = 40, seed: int = 0) -> list[str]:
    """`île,bill length,n,species` rows where the species depends on every column."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        island, length, count = rng.choice(["Biscoe", "Dream", "Torgersen"]), rng.gauss(0, 1), rng.randint(0, 4)
        species = ("a", "b", "c")[(int(length > 0) + count + (island == "Dream")) % 3]
        rows.append(f"{island},{length:.3f},{count},{species}")
    return rows


@pytest.fixture(scope="module")
def odd_names(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """A job trained through the CLI on a CSV saved with a BOM whose columns are `île` and `bill length`."""
    root = tmp_path_factory.mktemp("odd")
    text = "\ufeff" + "\n".join(["île,bill length,n,species", *small_rows()]) + "\n"
    write(root / "rows.csv", text.encode("utf-8"))
    write(root / "schema.yaml", "\ufeff" + ODD_SCHEMA)
    trained = tfship("train", "--data", str(root / "rows.csv"), "--schema", str(root / "schema.yaml"),
                     "--job-dir", str(root / "job"), "--steps", "20")
    assert trained.returncode == 0, trained.stderr[-3000:]
    return root, trained


# ---- Failure 6: column names with a space or non-ASCII letters ----------------------------------


def test_odd_column_names_train_export_and_validate_with_their_own_names(odd_names) -> None:
    root, _ = odd_names
    exported = tfship("export", "--job-dir", str(root / "job"), "--export-dir", str(root / "export"))
    assert exported.returncode == 0, exported.stderr[-3000:]
    contract = tfship("inspect", "--contract", str(root / "export" / "1"))
    assert contract.returncode == 0, contract.stderr[-3000:]
    inputs = load_contract(write(root / "contract.yaml", contract.stdout)).signatures["serving_default"].inputs
    assert sorted(inputs) == ["bill length", "n", "île"]  # clients see the column names, not graph names
    write(root / "golden.jsonl", '{"île": ["Dream"], "bill length": [0.5], "n": [1]}\n'
                                 '{"île": ["Biscoe"], "bill length": [-1.5], "n": [3]}\n')
    checked = tfship("validate", "--model", str(root / "export" / "1"), "--contract", str(root / "contract.yaml"),
                     "--examples", str(root / "golden.jsonl"), "--report", str(root / "validate.json"))
    assert checked.returncode == 0, checked.stdout + checked.stderr[-3000:]
    assert json.loads((root / "validate.json").read_text())["passed"]


def test_graph_names_are_valid_stable_and_distinct() -> None:
    assert graph_name("bill_length_mm") == "bill_length_mm"  # names Keras accepts are kept
    odd = ["île", "bill length", "1x", "日本", "a-b", "_label"]
    names = [graph_name(n) for n in odd]
    assert names[0].startswith("ile_") and names[1].startswith("bill_length_") and names[2].startswith("f_1x_")
    assert all(n[0].isalpha() and n.replace("_", "").isalnum() and n.isascii() for n in names)
    assert len(set(names)) == len(odd) and names == [graph_name(n) for n in odd]


# ---- Item 4: settings that contradict the data; text encodings ------------------------------------


def test_train_warns_about_settings_that_contradict_the_data(odd_names) -> None:
    _, trained = odd_names
    events = [json.loads(line) for line in trained.stderr.splitlines() if line.startswith('{"event": "warning"')]
    messages = [e["message"] for e in events]
    assert any(m.startswith("--batch-size 64 is larger than the 32 training row(s)") for m in messages), messages
    assert any(m.startswith("--checkpoint-every 100 is more than --steps 20") for m in messages), messages


def test_settings_warnings_are_silent_for_sensible_settings(tmp_path: Path) -> None:
    config = TrainConfig(data="d.csv", schema="s.yaml", job_dir=str(tmp_path), steps=1000, checkpoint_every=100,
                         batch_size=64)
    assert settings_warnings(config, train_rows=5000, heldout_rows=1250) == []
    (warning,) = settings_warnings(config, train_rows=5000, heldout_rows=0)
    assert warning.startswith("No row is held out")


def test_text_that_is_not_utf8_is_named_with_file_and_line(tmp_path: Path) -> None:
    data = write(tmp_path / "d.csv", "f0,colour,label\n1.0,red,a\n2.0,rouge foncé,b\n".encode("latin-1"))
    with pytest.raises(DataError, match=rf"^{data}:3: not UTF-8 text \(byte 0xe9 at byte 15 of the line\)"):
        analyze(resolve_files(data), SCHEMA, holdout_every=5)
    schema = write(tmp_path / "s.yaml", "task: classification\nlabel: label\n# é\nfeatures: {f0: float32}\n"
                   .encode("latin-1"))
    with pytest.raises(SchemaError, match=rf"^schema {schema}:3: not UTF-8 text"):
        load_schema(schema)
    contract = write(tmp_path / "c.yaml", b"signatures:\n  s:\n    inputs: {\xff: {dtype: float32}}\n")
    with pytest.raises(ConfigError, match=rf"^--contract {contract}:3: not UTF-8 text \(byte 0xff"):
        load_contract(contract)


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    data = write(tmp_path / "d.csv", "\ufefff0,colour,label\n1.0,red,a\n2.0,blue,b\n3.0,red,b\n".encode())
    assert analyze(resolve_files(data), SCHEMA, holdout_every=5).train_rows == 3
    contract = write(tmp_path / "c.yaml", "\ufeffsignatures:\n  s:\n    inputs: {x: {dtype: float32}}\n")
    assert list(load_contract(contract).signatures) == ["s"]


# ---- Failure 3: inf / nan in numeric data ---------------------------------------------------------


@pytest.mark.parametrize("cell", ["inf", "-inf", "nan", "NaN", "Infinity", "1e999"])
def test_non_finite_numbers_are_refused_with_file_line_and_column(tmp_path: Path, cell: str) -> None:
    data = write(tmp_path / "d.csv", f"f0,colour,label\n1.0,red,a\n{cell},blue,b\n3.0,red,b\n")
    with pytest.raises(DataError, match=rf"^{data}:3: column 'f0': '{cell}' is not a finite number \(list it"):
        analyze(resolve_files(data), SCHEMA, holdout_every=5)


def test_non_finite_cells_listed_in_na_values_are_missing(tmp_path: Path) -> None:
    data = write(tmp_path / "d.csv", "f0,colour,label\n1.0,red,a\ninf,blue,b\n3.0,red,b\n")
    schema = Schema(task="classification", label="label", features={"f0": "float32"}, na_values=("inf",))
    stats = analyze(resolve_files(data), schema, holdout_every=5)
    assert stats.means["f0"] == 2.0 and math.isfinite(stats.stddevs["f0"])


def test_values_too_large_to_normalise_are_refused(tmp_path: Path) -> None:
    data = write(tmp_path / "d.csv", "f0,colour,label\n1e308,red,a\n-1e308,blue,b\n1e308,red,b\n")
    with pytest.raises(DataError, match=r"^Column 'f0': its values are too large to normalise"):
        analyze(resolve_files(data), SCHEMA, holdout_every=5)


def test_non_finite_tfrecord_values_are_refused(tmp_path: Path) -> None:
    import tensorflow as tf

    path = str(tmp_path / "d.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for value in (1.0, math.inf):
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                "f0": tf.train.Feature(float_list=tf.train.FloatList(value=[value])),
                "colour": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"red"])),
                "label": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"a"])),
            })).SerializeToString())
    with pytest.raises(DataError, match=rf"^{path}: record 1: feature 'f0' is inf, not a finite number"):
        analyze(resolve_files(path), SCHEMA, holdout_every=5)


def test_cli_refuses_inf_before_anything_is_written(tmp_path: Path) -> None:
    data = write(tmp_path / "d.csv", "f0,colour,label\n1.0,red,a\ninf,blue,b\n")
    schema = write(tmp_path / "s.yaml", "task: classification\nlabel: label\nfeatures: {f0: float32, colour: string}\n")
    result = tfship("train", "--data", data, "--schema", schema, "--job-dir", str(tmp_path / "job"), "--steps", "5")
    assert result.returncode == EXIT_BAD_INPUT
    assert last_line(result) == (f"tfship train: error: {data}:3: column 'f0': 'inf' is not a finite number "
                                 "(list it under the schema's `na_values` to read it as missing).")
    assert "Traceback" not in result.stderr and not (tmp_path / "job").exists()


def test_validate_fails_a_model_that_ignores_a_declared_input(odd_names, tmp_path: Path) -> None:
    """The model a NaN mean produced before the data check: `bill length` is 0 for every row."""
    root, _ = odd_names
    job_dir = tmp_path / "job"
    shutil.copytree(root / "job", job_dir)
    description = json.loads((job_dir / "tfship_job.json").read_text())
    description["stats"]["means"]["bill length"] = math.nan
    (job_dir / "tfship_job.json").write_text(json.dumps(description))
    exported = tfship("export", "--job-dir", str(job_dir), "--export-dir", str(tmp_path / "export"))
    assert exported.returncode == 0, exported.stderr[-3000:]
    contract = write(tmp_path / "contract.yaml", tfship("inspect", "--contract", str(tmp_path / "export" / "1")).stdout)
    checked = tfship("validate", "--model", str(tmp_path / "export" / "1"), "--contract", contract,
                     "--report", str(tmp_path / "validate.json"))
    assert checked.returncode == 1, checked.stdout + checked.stderr[-3000:]
    report = json.loads((tmp_path / "validate.json").read_text())
    assert [v["where"] for v in report["violations"]] == ["serving_default.inputs.bill length"]
    assert report["violations"][0]["message"].startswith("no output changes when this input moves up or down")


# ---- Item 3: unexpected errors are one line and exit 2; a bug is exit 70, never 1 -----------------


def test_hyper_parameters_keras_rejects_are_one_line_and_leave_no_job(tmp_path: Path) -> None:
    data = write(tmp_path / "rows.csv", "\n".join(["île,bill length,n,species", *small_rows()]) + "\n")
    schema = write(tmp_path / "schema.yaml", ODD_SCHEMA)
    job_dir = tmp_path / "job"
    args = ("train", "--data", data, "--schema", schema, "--job-dir", str(job_dir), "--steps", "2",
            "--checkpoint-every", "2")
    refused = tfship(*args, "--hparam", "hidden_units=[-3]")
    assert refused.returncode == EXIT_BAD_INPUT, refused.stderr[-3000:]
    assert last_line(refused).startswith(
        "tfship train: error: --model 'mlp' cannot be built with hyper-parameters {'hidden_units': [-3]}: ValueError")
    assert "Traceback" not in refused.stderr and not (job_dir / "tfship_job.json").exists()
    corrected = tfship(*args, "--hparam", "hidden_units=[3]")  # the same job dir takes the fix
    assert corrected.returncode == 0, corrected.stderr[-3000:]


def test_paths_of_the_wrong_kind_are_one_line_and_exit_2(odd_names, tmp_path: Path) -> None:
    root, _ = odd_names
    a_file = Path(write(tmp_path / "a-file", "x"))
    export = tfship("export", "--job-dir", str(root / "job"), "--export-dir", str(a_file / "export"))
    assert export.returncode == EXIT_BAD_INPUT, export.stderr[-3000:]
    assert last_line(export) == f"tfship export: error: Cannot use {a_file / 'export'}: Not a directory (NotADirectoryError)."
    train = tfship("train", "--data", str(root / "rows.csv"), "--schema", str(root / "schema.yaml"),
                   "--job-dir", str(a_file), "--steps", "2")
    assert train.returncode == EXIT_BAD_INPUT
    assert last_line(train) == f"tfship train: error: --job-dir {a_file} is a file; expected a directory (new, or a tfship job's)."
    assert "Traceback" not in export.stderr + train.stderr


def test_damaged_job_description_is_bad_input(odd_names, tmp_path: Path) -> None:
    root, _ = odd_names
    job_dir = tmp_path / "job"
    shutil.copytree(root / "job", job_dir)
    (job_dir / "tfship_job.json").write_text('{"config": ')
    code = cli.main(["export", "--job-dir", str(job_dir), "--export-dir", str(tmp_path / "export")])
    assert code == EXIT_BAD_INPUT


def test_csv_field_over_the_csv_modules_limit_is_named(tmp_path: Path) -> None:
    limit = csv.field_size_limit()
    data = write(tmp_path / "d.csv", f"f0,colour,label\n1.0,red,a\n2.0,{'x' * (limit + 1)},b\n")
    with pytest.raises(DataError, match=rf"^{data}:3: not valid CSV \(field larger than field limit \({limit}\)\)"):
        analyze(resolve_files(data), SCHEMA, holdout_every=5)


def test_a_bug_exits_70_with_a_one_line_header_and_the_traceback_in_a_file(monkeypatch, capsys) -> None:
    """A stand-in for a bug in tfship: a real step module whose `main` raises (a bug cannot be
    produced on demand in the real steps once it is fixed)."""
    from tfship.commands import inspect

    class Buggy:
        add_arguments = staticmethod(inspect.add_arguments)

        @staticmethod
        def main(args) -> int:
            return {}["no such key"]

    monkeypatch.setattr(cli, "_command_module", lambda name: Buggy)
    code = cli.main(["inspect", "some/model"])
    assert code == EXIT_INTERNAL_ERROR == 70
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("tfship inspect: internal error (a bug in tfship, exit 70): KeyError: 'no such key' - traceback: ")
    traceback_file = Path(line.rsplit(" ", 1)[1])
    assert 'return {}["no such key"]' in traceback_file.read_text()
    traceback_file.unlink()


def test_a_bug_in_the_validating_process_is_not_a_failed_check(tmp_path: Path) -> None:
    """A plan the worker cannot read stands in for a bug in its checking code (a real process)."""
    from tfship.steps.validate.step import ValidatorBug, run_in_fresh_process

    with pytest.raises(ValidatorBug, match=r"(?s)^the checking process failed:\nTraceback.*KeyError: 'contract'"):
        run_in_fresh_process({"model": str(tmp_path)}, timeout_s=120)


# ---- Item 5: a job directory is code -------------------------------------------------------------


def test_export_refuses_a_model_function_changed_since_training(tmp_path: Path, monkeypatch) -> None:
    from tfship.steps.export.step import export
    from tfship.steps.train.step import train

    module = f"user_models_{uuid.uuid4().hex[:8]}"
    source = tmp_path / "code" / f"{module}.py"
    source.parent.mkdir()
    source.write_text("import keras\n"
                      "def small(ctx):\n"
                      "    inputs = ctx.keras_inputs()\n"
                      "    x = keras.layers.Concatenate()([ctx.dense(inputs, n) for n in inputs])\n"
                      "    return keras.Model(inputs, keras.layers.Dense(ctx.num_outputs)(x))\n")
    monkeypatch.syspath_prepend(str(source.parent))
    data = write(tmp_path / "rows.csv", "\n".join(["île,bill length,n,species", *small_rows()]) + "\n")
    schema = write(tmp_path / "schema.yaml", ODD_SCHEMA)
    train(data, schema, job_dir=str(tmp_path / "job"), model=f"{module}:small", steps=2, checkpoint_every=2)

    # Someone edits the module after training: export must not import (run) it.
    source.write_text(source.read_text() + "raise SystemExit(99)  # runs on import\n")
    env = {"PYTHONPATH": os.pathsep.join([str(source.parent), os.environ.get("PYTHONPATH", "")])}
    refused = tfship("export", "--job-dir", str(tmp_path / "job"), "--export-dir", str(tmp_path / "export"), **env)
    assert refused.returncode == EXIT_BAD_INPUT, refused.stderr[-3000:]
    assert f"--model '{module}:small' is not the code the job was trained with" in last_line(refused)
    assert "--allow-model-change" in last_line(refused)
    with pytest.raises(ModelError, match="is not the code the job was trained with"):
        export(str(tmp_path / "job"), str(tmp_path / "export"))

    source.write_text(source.read_text().replace("raise SystemExit(99)  # runs on import\n", "# reviewed\n"))
    allowed = tfship("export", "--job-dir", str(tmp_path / "job"), "--export-dir", str(tmp_path / "export"),
                     "--allow-model-change", **env)
    assert allowed.returncode == 0, allowed.stderr[-3000:]
    assert (tmp_path / "export" / "1" / "saved_model.pb").is_file()
