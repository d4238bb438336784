"""The pure half of tfship validate: contract parsing, signature checks, baseline diff, output checks,
row conversion. No TensorFlow graph, no process: microseconds each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tfship.saved_model import signature_inputs
from tfship.steps.validate import golden_examples
from tfship.steps.validate.contract import (
    Contract,
    check_signatures,
    diff_signatures,
    load_contract,
    shape_covers,
)
from tfship.errors import ConfigError, DataError
from tfship.saved_model.loader import SignatureInfo, TensorSpecInfo
from tfship.steps.validate.worker import check_outputs
from tests.conftest import ISSUE_CONTRACT


def spec(name: str, dtype: str = "float32", shape: tuple | None = (None, 1)) -> TensorSpecInfo:
    return TensorSpecInfo(name, dtype, shape, f"{name}:0")


def signature(name: str = "serving_default", inputs=None, outputs=None, method="tensorflow/serving/predict"):
    inputs = inputs if inputs is not None else [spec("x")]
    outputs = outputs if outputs is not None else [spec("y")]
    return SignatureInfo(name, method, {s.name: s for s in inputs}, {s.name: s for s in outputs})


def contract(text: str, tmp_path: Path) -> Contract:
    path = tmp_path / "contract.yaml"
    path.write_text(text)
    return load_contract(str(path))


def test_the_issue_contract_parses_and_round_trips(tmp_path: Path) -> None:
    parsed = contract(ISSUE_CONTRACT, tmp_path)
    x = parsed.signatures["serving_default"].inputs["x"]
    assert (x.dtype, x.shape) == ("float32", (None, 1))
    assert Contract.from_dict(parsed.to_dict()).signatures == parsed.signatures
    assert check_signatures(parsed, {"serving_default": signature()}) == []


TENSOR = "signatures:\n  s:\n    {kind}:\n      {name}: {spec}\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("signatures: [unclosed", r"contract\.yaml is not valid YAML \(line 1, column 22\): expected ',' or '\]'"),
        (TENSOR.format(kind="inputs", name="x", spec="{dtype: float33}"),
         r"unknown dtype 'float33' for `signatures\.s\.inputs\.x`\. Expected one of float16"),
        (TENSOR.format(kind="inputs", name="x", spec="{dtype: float32, shape: [-2]}"),
         r"invalid shape \[-2\] for `signatures\.s\.inputs\.x`"),
        ("signatures:\n  s:\n    allow_extra_output: true\n",
         r"unknown key\(s\) \['allow_extra_output'\] in `signatures\.s`"),
        ("signatures: {}\n", r"`signatures` is empty"),
        ("signature:\n  s: {}\n", r"unknown key\(s\) \['signature'\] in the top level"),
        ("- a list\n", r"invalid content: \['a list'\]\. Expected a mapping with `signatures`"),
        (TENSOR.format(kind="outputs", name="y", spec="{dtype: float32, probabilities: maybe}"),
         r"`signatures\.s\.outputs\.y\.probabilities`: 'maybe'\. Expected true or false"),
    ],
)
def test_bad_contracts_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        contract(text, tmp_path)


def test_missing_contract_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"Cannot read --contract .*nope\.yaml: No such file"):
        load_contract(str(tmp_path / "nope.yaml"))


def test_every_contract_violation_is_reported(tmp_path: Path) -> None:
    wanted = contract(
        """
signatures:
  serving_default:
    inputs:
      x: {dtype: float32, shape: [-1, 1]}
      z: {dtype: string}
    outputs:
      y: {dtype: float32, shape: [-1, 1]}
  classify:
    inputs: {}
    outputs: {}
""",
        tmp_path,
    )
    model = signature(inputs=[spec("x", "float64", (1,)), spec("extra_in")], outputs=[spec("y"), spec("extra_out")])
    found = [str(v) for v in check_signatures(wanted, {"serving_default": model})]
    assert found == [
        "[contract] serving_default.inputs.x: dtype is float64, the contract requires float32",
        "[contract] serving_default.inputs.x: shape is [1], the contract requires [-1, 1]",
        "[contract] serving_default.inputs.z: missing; the model has ['extra_in', 'x']",
        "[contract] serving_default.inputs: not in the contract: ['extra_in']",
        "[contract] serving_default.outputs: not in the contract: ['extra_out'] "
        "(set allow_extra_outputs: true to allow them)",
        "[contract] classify: missing signature; the model has ['serving_default']",
    ]


def test_extra_outputs_allowed_only_when_said(tmp_path: Path) -> None:
    model = {"serving_default": signature(outputs=[spec("y"), spec("extra")])}
    strict = contract(ISSUE_CONTRACT, tmp_path)
    assert [v.where for v in check_signatures(strict, model)] == ["serving_default.outputs"]
    lenient = contract(ISSUE_CONTRACT.replace("signatures:", "allow_extra_outputs: true\nsignatures:"), tmp_path)
    assert check_signatures(lenient, model) == []


def test_contracted_shapes_bind_inputs_and_outputs_in_opposite_directions(tmp_path: Path) -> None:
    """Inputs must accept all the contract allows; outputs must stay within it.

    TF Serving's half_plus_two_tf2 has x: [1]: a [-1, 1] contract fails on it.
    """
    wanted = contract(ISSUE_CONTRACT, tmp_path)
    for shape, ok in [((None, 1), True), (None, True), ((1,), False), ((1, 1), False), ((None, 2), False)]:
        model = {"serving_default": signature(inputs=[spec("x", shape=shape)])}
        expected = [] if ok else ["serving_default.inputs.x"]
        assert [v.where for v in check_signatures(wanted, model)] == expected, shape
    free = contract(ISSUE_CONTRACT.replace("shape: [-1, 1]}\n", "shape: [-1, -1]}\n").replace(
        "x: {dtype: float32, shape: [-1, -1]}", "x: {dtype: float32, shape: [-1, 1]}"), tmp_path)
    assert free.signatures["serving_default"].outputs["y"].shape == (None, None)
    for shape, ok in [((None, 3), True), ((None, None), True), ((None,), False), (None, False)]:
        model = {"serving_default": signature(outputs=[spec("y", shape=shape)])}
        expected = [] if ok else ["serving_default.outputs.y"]
        assert [v.where for v in check_signatures(free, model)] == expected, shape
    model = {"serving_default": signature(outputs=[spec("y", shape=(None, None))])}
    assert [v.message for v in check_signatures(wanted, model)] == ["shape is [-1, -1], the contract requires [-1, 1]"]


def test_baseline_diff_marks_breaking_and_compatible_changes() -> None:
    baseline = {
        "serving_default": signature(
            inputs=[spec("x"), spec("gone"), spec("retyped"), spec("narrowed", shape=(None, None)),
                    spec("widened", shape=(None, 3))],
            outputs=[spec("y"), spec("out_gone"), spec("out_free", shape=(None, None)),
                     spec("out_fixed", shape=(None, 2))],
        ),
        "removed_sig": signature("removed_sig"),
    }
    candidate = {
        "serving_default": signature(
            inputs=[spec("x"), spec("retyped", "int64"), spec("narrowed", shape=(None, 4)),
                    spec("widened", shape=(None, None)), spec("new_in")],
            outputs=[spec("y"), spec("out_free", shape=(None, 5)), spec("out_fixed", shape=(None, 3)), spec("new_out")],
        ),
        "added_sig": signature("added_sig"),
    }
    changes = {c.where: (c.breaking, c.reason) for c in diff_signatures(baseline, candidate)}
    assert changes == {
        "added_sig": (False, "signature added"),
        "removed_sig": (True, "signature removed"),
        "serving_default.inputs.gone": (True, "input removed"),
        "serving_default.inputs.retyped": (True, "dtype changed"),
        "serving_default.inputs.narrowed": (True, "input shape narrowed"),
        "serving_default.inputs.widened": (False, "input shape widened"),
        "serving_default.inputs.new_in": (True, "input added (old clients do not send it)"),
        "serving_default.outputs.out_gone": (True, "output removed"),
        "serving_default.outputs.out_free": (False, "output shape narrowed"),
        "serving_default.outputs.out_fixed": (True, "output shape changed"),
        "serving_default.outputs.new_out": (False, "output added"),
    }
    retyped = next(c for c in diff_signatures(baseline, candidate) if c.where.endswith("retyped"))
    assert retyped.diff_lines() == [
        "- serving_default.inputs.retyped: float32 [-1, 1]",
        "+ serving_default.inputs.retyped: int64 [-1, 1]",
    ]
    assert diff_signatures(baseline, baseline) == []


def test_shape_covers() -> None:
    assert shape_covers(None, (3,)) and shape_covers((None, 2), (4, 2))
    assert not shape_covers((None, 2), None) and not shape_covers((None,), (None, 1))
    assert not shape_covers((3,), (None,))


def test_output_checks_find_nan_bad_probabilities_and_shapes(tmp_path: Path) -> None:
    wanted = contract(ISSUE_CONTRACT, tmp_path).signatures["serving_default"]
    values = {
        "y": np.array([[1.0], [np.nan], [np.inf]], np.float32),
        "probabilities": np.array([[0.7, 0.7], [1.5, -0.5], [0.5, 0.5]], np.float32),
        "class_ids": np.array([0, 1, 2]),
    }
    found = [str(v) for v in check_outputs("serving_default", wanted, values, 3)]
    assert found == [
        "[outputs] serving_default.outputs.y: batch of 3: 2 NaN/Inf value(s) of 3",
        "[outputs] serving_default.outputs.probabilities: probabilities outside [0, 1]: min -0.5, max 1.5",
        "[outputs] serving_default.outputs.probabilities: probabilities do not sum to 1 over the last axis "
        "(off by up to 0.4)",
    ]
    shaped = {"y": np.zeros([3, 2], np.float32)}
    assert [v.message for v in check_outputs("serving_default", wanted, shaped, 3)] == [
        "batch of 3: produced shape [3, 2], the contract requires [-1, 1]"
    ]
    good = {"y": np.zeros([3, 1], np.float32), "probabilities": np.full([3, 4], 0.25, np.float32)}
    assert check_outputs("serving_default", wanted, good, 3) == []


def test_rows_become_arrays_of_the_input_shape() -> None:
    csv_rows = [{"x": "2", "s": "a", "n": "3"}, {"x": "", "s": "", "n": "4"}]
    x = signature_inputs.column(csv_rows, "x", "float32", rank=2)
    assert x.shape == (2, 1) and x[0, 0] == 2.0 and np.isnan(x[1, 0])
    assert signature_inputs.column(csv_rows, "s", "string", rank=1).tolist() == [b"a", b""]
    jsonl_rows = [{"x": [2.0]}, {"x": [3.0]}]
    assert signature_inputs.column(jsonl_rows, "x", "float32", rank=1).tolist() == [2.0, 3.0]
    assert signature_inputs.column(jsonl_rows, "x", "float32", rank=2).shape == (2, 1)
    with pytest.raises(DataError, match=r"rows: row 1, 'n': cannot read None as int64"):
        signature_inputs.column([{"n": 1}, {"n": None}], "n", "int64")
    with pytest.raises(DataError, match=r"rows: row 0 has no value for 'missing'"):
        signature_inputs.column(csv_rows, "missing", "float32")


def test_golden_files(tmp_path: Path) -> None:
    (tmp_path / "g.csv").write_text("x,label\n2,a\n3,b\n")
    assert golden_examples.read_rows(str(tmp_path / "g.csv")) == [{"x": "2", "label": "a"}, {"x": "3", "label": "b"}]
    (tmp_path / "g.jsonl").write_text('{"x": [2.0]}\n\n{"x": 3}\n')
    assert golden_examples.read_rows(str(tmp_path / "g.jsonl")) == [{"x": [2.0]}, {"x": 3}]
    (tmp_path / "bad.jsonl").write_text('{"x": 1}\n{"x": \n')
    with pytest.raises(DataError, match=r"bad\.jsonl, line 2: not JSON"):
        golden_examples.read_rows(str(tmp_path / "bad.jsonl"))
    with pytest.raises(ConfigError, match=r"`--examples`: '.*g\.parquet'\. Expected a file ending in \.csv"):
        golden_examples.read_rows(str(tmp_path / "g.parquet"))
    (tmp_path / "empty.csv").write_text("x\n")
    with pytest.raises(DataError, match=r"empty\.csv holds no rows"):
        golden_examples.read_rows(str(tmp_path / "empty.csv"))


def test_public_names_stay_functions_after_their_modules_are_imported() -> None:
    import tfship
    import tfship.steps.export.step
    import tfship.steps.validate.step

    assert tfship.export is tfship.steps.export.step.export and tfship.validate is tfship.steps.validate.step.validate
    assert tfship.ExportConfig is tfship.steps.export.step.ExportConfig
