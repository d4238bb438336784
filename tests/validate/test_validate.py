"""tfship validate on real SavedModels: TF Serving's own, Keras exports, plain tf.Modules, broken ones.

Each `validate` call loads the model in a fresh process, as the issue requires; the cases are
grouped so that one call checks several things.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from tests.saved_model.test_savedmodel_builders import keras_export, naive_keras_module, plain_module
from tfship import cli
from tfship.errors import EXIT_BAD_INPUT, EXIT_FAILED_CHECK, ConfigError, ModelError
from tfship.saved_model.inspect import contract_yaml, describe
from tfship.steps.validate.step import ValidateConfig, run_validation
from tests.conftest import ISSUE_CONTRACT

HALF_PLUS_TWO = "saved_model_half_plus_two_cpu/00000123"
HALF_PLUS_TWO_TF2 = "saved_model_half_plus_two_tf2_cpu/00000123"


HALF_PLUS_TWO_CONTRACT = ISSUE_CONTRACT + """
  classify_x_to_y:
    method_name: tensorflow/serving/classify
    inputs:
      inputs: {dtype: string}
    outputs:
      scores: {dtype: float32, shape: [-1, 1]}
  regress_x_to_y:
    inputs:
      inputs: {dtype: string}
    outputs:
      outputs: {dtype: float32, shape: [-1, 1]}
"""


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def report_of(path: str) -> dict:
    return json.loads(Path(path).read_text())


def test_half_plus_two_passes_on_golden_rows(tf_serving_testdata: Path, tmp_path: Path) -> None:
    contract = write(tmp_path / "contract.yaml", HALF_PLUS_TWO_CONTRACT)
    examples = write(tmp_path / "golden.csv", "x\n2\n3\n4\n")  # x2 has a default in the graph
    report = run_validation(ValidateConfig(
        model=str(tf_serving_testdata / HALF_PLUS_TWO), contract=contract, examples=examples,
        report=str(tmp_path / "report.json"),
    ))
    assert report.passed, report.summary_lines()
    saved = report_of(str(tmp_path / "report.json"))
    assert saved["passed"] is True and saved["violations"] == []
    assert saved["checks"] == {"contract": "passed", "load": "passed", "run": "passed", "outputs": "passed",
                               "warmup": "skipped", "baseline": "skipped"}
    runs = {(r["signature"], r["batch"]): r["output_shapes"] for r in saved["runtime"]["runs"]}
    assert runs == {
        ("serving_default", 3): {"y": [3, 1]}, ("serving_default", 1): {"y": [1, 1]},
        ("classify_x_to_y", 3): {"scores": [3, 1]}, ("classify_x_to_y", 1): {"scores": [1, 1]},
        ("regress_x_to_y", 3): {"outputs": [3, 1]}, ("regress_x_to_y", 1): {"outputs": [1, 1]},
    }
    assert saved["runtime"]["runs"][0]["inputs"] == "golden"


def test_tf2_half_plus_two_without_batch_dimension_fails_with_a_diff(tf_serving_testdata: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    contract = write(tmp_path / "contract.yaml", ISSUE_CONTRACT)
    code = cli.main([
        "validate", "--model", str(tf_serving_testdata / HALF_PLUS_TWO_TF2), "--contract", contract,
        "--baseline", str(tf_serving_testdata / HALF_PLUS_TWO), "--report", str(tmp_path / "r.json"),
    ])
    assert code == EXIT_FAILED_CHECK
    out = capsys.readouterr().out
    assert "FAIL" in out and "BREAKING: serving_default.inputs.x: input shape narrowed" in out
    saved = report_of(str(tmp_path / "r.json"))
    found = {(v["check"], v["where"]) for v in saved["violations"]}
    assert {
        ("contract", "serving_default.inputs.x"),
        ("contract", "serving_default.outputs.y"),
        ("baseline", "serving_default.inputs.x"),
        ("baseline", "classify_x_to_y.method_name"),  # TF2 wrote "predict": TF Serving's Classify refuses it
    } <= found
    assert "- serving_default.inputs.x: float32 [-1, 1]\n+ serving_default.inputs.x: float32 [1]" in (
        saved["baseline_diff"]["text"]
    )
    assert {c["where"] for c in saved["baseline_diff"]["compatible"]} == {"classify_x2_to_y3"}
    assert saved["checks"]["contract"] == saved["checks"]["baseline"] == "failed"


def test_keras_model_export_passes_with_its_inspected_contract(tmp_path: Path) -> None:
    model_dir = tmp_path / "models" / "1"
    keras_export(str(model_dir))
    contract_text = contract_yaml(str(tmp_path / "models"))  # a base path: its latest version
    assert "shape: [-1, 2]" in contract_text and "shape: [-1, 3]" in contract_text
    assert sorted(yaml.safe_load(contract_text)["signatures"]) == ["serve", "serving_default"]
    contract = write(tmp_path / "contract.yaml", contract_text)
    examples = write(tmp_path / "golden.jsonl", '{"x": [1.0, 2.0]}\n{"x": [-3.0, 0.5]}\n')
    report = run_validation(ValidateConfig(model=str(model_dir), contract=contract, examples=examples))
    assert report.passed, report.summary_lines()
    assert Path(str(model_dir) + ".validation.json").is_file()  # default: beside the version directory
    assert "signature 'serving_default'  method: tensorflow/serving/predict" in describe(str(model_dir))


def test_plain_tf_module_passes_on_generated_inputs(tmp_path: Path) -> None:
    plain_module(str(tmp_path / "1"))
    contract = write(tmp_path / "contract.yaml", """
signatures:
  serving_default:
    inputs:
      x: {dtype: float32, shape: [-1]}
    outputs:
      y: {dtype: float32, shape: [-1]}
      probabilities: {dtype: float32, shape: [-1, 2]}
""")
    report = run_validation(ValidateConfig(model=str(tmp_path / "1"), contract=contract, report=str(tmp_path / "r.json")))
    assert report.passed, report.summary_lines()
    assert [(r["batch"], r["inputs"]) for r in report.runtime["runs"]] == [(4, "generated"), (1, "generated")]


def test_naive_keras_module_is_rejected_with_the_fix(tmp_path: Path) -> None:
    naive_keras_module(str(tmp_path / "1"))
    contract = write(tmp_path / "contract.yaml", """
signatures:
  serving_default:
    inputs: {x: {dtype: float32, shape: [-1, 2]}}
    outputs: {y: {dtype: float32, shape: [-1, 3]}}
""")
    report = run_validation(ValidateConfig(model=str(tmp_path / "1"), contract=contract, report=str(tmp_path / "r.json")))
    assert not report.passed
    (violation,) = report.violations
    assert violation.check == "run" and violation.where == "serving_default"
    assert re.search(r"^batch of 4: Could not find variable seq/dense/(kernel|bias)\.", violation.message)
    assert "export it with model.export(path)" in violation.message


def test_every_failure_is_reported_at_once(tmp_path: Path) -> None:
    """NaN outputs, fake probabilities, a contract mismatch and a bad warm-up file, in one report."""
    from tfship.saved_model.warmup import predict_log, write_warmup_file

    model_dir = tmp_path / "1"
    plain_module(str(model_dir), outputs="bad")
    warmup_file = write_warmup_file(str(model_dir), [predict_log("serving_default", {"x": np.ones([1], np.float32)})])
    with open(warmup_file, "ab") as handle:
        handle.write(b"\x10\x00 a truncated record")
    contract = write(tmp_path / "contract.yaml", """
signatures:
  serving_default:
    inputs:
      x: {dtype: float32, shape: [-1]}
    outputs:
      y: {dtype: float32, shape: [-1]}
      probabilities: {dtype: float32, shape: [-1, 3]}
""")
    report = run_validation(ValidateConfig(model=str(model_dir), contract=contract, report=str(tmp_path / "r.json")))
    messages = [str(v) for v in report.violations]
    assert not report.passed
    assert ("[contract] serving_default.outputs.probabilities: shape is [-1, 2], the contract requires [-1, 3]"
            in messages)
    assert "[outputs] serving_default.outputs.y: batch of 4: 4 NaN/Inf value(s) of 4" in messages
    assert any(m.startswith("[outputs] serving_default.outputs.probabilities: batch of 4: produced shape [4, 2]")
               for m in messages)
    assert any("probabilities do not sum to 1" in m for m in messages)
    assert any(m.startswith("[warmup] assets.extra/tf_serving_warmup_requests: Warm-up file") and
               "is not a valid TFRecord file" in m for m in messages), messages
    assert report.to_dict()["checks"]["warmup"] == "failed"


def test_too_many_and_failing_warmup_records(tmp_path: Path) -> None:
    from tfship.saved_model.warmup import predict_log, write_warmup_file

    model_dir = tmp_path / "1"
    plain_module(str(model_dir))
    good = predict_log("serving_default", {"x": np.array([1.0, 2.0], np.float32)})
    unknown = predict_log("no_such_signature", {"x": np.array([1.0], np.float32)})
    write_warmup_file(str(model_dir), [unknown] + [good] * 999)
    extra = str(tmp_path / "extra")
    write_warmup_file(extra, [good])  # append one more record: 1001 in all
    warmup_file = model_dir / "assets.extra" / "tf_serving_warmup_requests"
    one_more = Path(extra, "assets.extra", "tf_serving_warmup_requests").read_bytes()
    warmup_file.write_bytes(warmup_file.read_bytes() + one_more)
    contract = write(tmp_path / "contract.yaml", "signatures:\n  serving_default:\n    inputs: {x: {dtype: float32}}\n"
                                                "    outputs: {}\n    allow_extra_outputs: true\n")
    report = run_validation(ValidateConfig(model=str(model_dir), contract=contract, report=str(tmp_path / "r.json")))
    assert [str(v) for v in report.violations] == [
        "[warmup] assets.extra/tf_serving_warmup_requests: 1001 records; TF Serving refuses more than 1000",
        "[warmup] record 0: Unknown signature 'no_such_signature'. Expected one of ['serving_default'].",
    ]
    assert report.runtime["warmup"] == {"records": 1001, "replayed": 999, "requests": ["predict serving_default"]}


# ----------------------------------------------------------------------------------------------
# Bad input: one line, exit 2, no traceback, before any process is started.


def test_bad_inputs_are_one_line_errors(tf_serving_testdata: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    good_contract = write(tmp_path / "c.yaml", ISSUE_CONTRACT)
    corrupt = tmp_path / "corrupt" / "1"
    shutil.copytree(tf_serving_testdata / HALF_PLUS_TWO, corrupt)
    (corrupt / "saved_model.pb").write_bytes(b"\x08\x01\x12\xff\xff garbage")
    cases = [
        (str(tf_serving_testdata / "bad_half_plus_two" / "00000123"), good_contract,
         r"--model: Not a SavedModel: .*bad_half_plus_two/00000123' holds no saved_model\.pb"),
        (str(corrupt), good_contract, r"Corrupt SavedModel: .*corrupt/1/saved_model\.pb cannot be parsed"),
        (str(tf_serving_testdata / HALF_PLUS_TWO), write(tmp_path / "bad.yaml", "signatures: [x"),
         r"bad\.yaml is not valid YAML \(line 1, column \d+\)"),
        (str(tf_serving_testdata / HALF_PLUS_TWO),
         write(tmp_path / "dtype.yaml", ISSUE_CONTRACT.replace("dtype: float32", "dtype: float", 1)),
         r"unknown dtype 'float' for `signatures\.serving_default\.inputs\.x`"),
        (str(tmp_path / "nowhere"), good_contract, r"--model: Invalid SavedModel path: .*nowhere' is not a directory"),
    ]
    for model, contract, message in cases:
        code = cli.main(["validate", "--model", model, "--contract", contract, "--report", str(tmp_path / "r.json")])
        err = capsys.readouterr().err.strip()
        assert code == EXIT_BAD_INPUT, (model, err)
        assert len(err.splitlines()) == 1 and err.startswith("tfship validate: error: "), err
        assert re.search(message, err), err
    assert not (tmp_path / "r.json").exists()


def test_bad_input_in_a_real_process_prints_no_traceback(tf_serving_testdata: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tfship.cli", "validate", "--model", str(tf_serving_testdata / "bad_half_plus_two"),
         "--contract", write(tmp_path / "c.yaml", ISSUE_CONTRACT)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == EXIT_BAD_INPUT
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("tfship validate: error: --model: Not a SavedModel:")


def test_config_is_checked_when_built() -> None:
    with pytest.raises(ConfigError, match=r"`timeout_s`: 0\. Expected a positive number of seconds"):
        ValidateConfig(model="m", contract="c.yaml", timeout_s=0)
    with pytest.raises(ConfigError, match=r"`contract`: ''\. Expected a path"):
        ValidateConfig(model="m", contract="")


def test_inspect_prints_signatures_readably(tf_serving_testdata: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["inspect", str(tf_serving_testdata / "saved_model_half_plus_two_cpu")]) == 0
    out = capsys.readouterr().out
    assert "MetaGraph tags: serve" in out
    assert "signature 'classify_x_to_y'  method: tensorflow/serving/classify" in out
    assert "      x  float32  [-1, 1]  (x:0)" in out
    assert "inputs  string  unknown rank  (tf_example:0)" in out
    assert cli.main(["inspect", "--json", str(tf_serving_testdata / HALF_PLUS_TWO)]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["meta_graphs"][0]["signatures"]["serving_default"]["inputs"]["x"] == {
        "dtype": "float32", "shape": [-1, 1], "tensor": "x:0"}
    assert cli.main(["inspect", str(tf_serving_testdata / "bad_half_plus_two")]) == EXIT_BAD_INPUT
    with pytest.raises(ModelError, match="holds no saved_model.pb"):
        describe(str(tf_serving_testdata / "bad_half_plus_two"))
