"""What `tfship validate` runs in a fresh process: every check that needs TensorFlow.

`python -m tfship.steps.validate.worker PLAN.json RESULT.json`. A fresh interpreter loads the model the
way TF Serving does, with nothing the validating process holds (Keras objects, registered ops, a
TF2-loaded copy); a crash of the C++ loader becomes a reported violation instead of killing the
gate; and the parent never imports TensorFlow (about 3 s), so `tfship validate` pays for one
import. The plan names the model, the baseline, the contract (as data) and the golden rows;
`tfship.steps.validate.step` writes the plan and reads the result.

Checks, all reported (never only the first):
- contract: the declared signatures against the contract (`tfship.steps.validate.contract.check_signatures`);
- baseline: breaking changes from the baseline's signatures (`tfship.steps.validate.contract.diff_signatures`);
- load: the model loads with the session-based loader, tag "serve" (`tfship.saved_model.loader`);
- run: each contracted signature runs on the golden rows, or on inputs generated from the
  contract (a batch of GENERATED_BATCH, then a batch of 1, to prove the batch size is free);
- outputs: contracted shapes, finite floats, probability outputs in [0, 1] summing to 1, and
  every numeric input matters (moving it changes some output: `ignored_inputs`);
- warmup: the warm-up file parses, has at most 1000 records, and every record replays.

A model or baseline that is not a SavedModel (or whose saved_model.pb is corrupt) is not a
failed check but bad input: the result carries it as `input_error`, and validate raises it.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from typing import Any

import numpy as np
from tfship.saved_model import signature_inputs, warmup
from tfship.steps.validate.contract import (
    Contract,
    SignatureContract,
    TensorContract,
    Violation,
    check_signatures,
    diff_signatures,
    is_probability_output,
    shape_text,
    value_shape_matches,
)
from tfship.errors import ModelError, TfshipError
from tfship.saved_model.loader import (
    CLASSIFY_METHOD,
    MAX_WARMUP_RECORDS,
    REGRESS_METHOD,
    SessionModel,
    SignatureInfo,
    example_features,
    explain_run_error,
    load_session_model,
    read_signatures,
    read_warmup_requests,
)

GENERATED_BATCH = 4
# Input names that carry serialized tf.Examples by convention (TF Serving, Estimator exports).
EXAMPLE_INPUT_NAMES = ("inputs", "examples", "serialized", "tf_example", "input_example_tensor")
PROBABILITY_TOLERANCE = 1e-3


def _is_example_input(name: str, signature: SignatureInfo, contracted: TensorContract | None,
                      features: dict[str, str]) -> bool:
    """Whether `name` is fed serialized tf.Examples (see the contract module's docstring)."""
    if contracted is not None and contracted.tf_example is not None:
        return contracted.tf_example
    if signature.inputs[name].dtype != "string":
        return False
    if signature.method_name in (CLASSIFY_METHOD, REGRESS_METHOD):
        return True
    return len(signature.inputs) == 1 and bool(features) and name in EXAMPLE_INPUT_NAMES


def concrete_shape(shape: tuple[int | None, ...] | None, batch: int) -> tuple[int, ...]:
    """A declared shape made concrete: the first free dimension is the batch, other free ones 1."""
    if shape is None:
        return (batch,)
    return tuple((batch if i == 0 else 1) if d is None else d for i, d in enumerate(shape))


def generate_values(dtype: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Random values of `dtype` and `shape`: the inputs validate runs when there are no golden rows."""
    if dtype == "string":
        return rng.choice(np.array([b"a", b"b", b""], dtype=object), size=shape)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype.startswith(("int", "uint")):
        return rng.integers(0, 3, size=shape).astype(signature_inputs.numpy_dtype(dtype))
    if dtype.startswith("complex"):
        return (rng.normal(size=shape) + 0j).astype(dtype)
    return rng.normal(size=shape).astype(signature_inputs.numpy_dtype(dtype))


def _generated_rows(features: dict[str, str], batch: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    return [{name: generate_values(dtype, (), rng).item() for name, dtype in features.items()} for _ in range(batch)]


def _inferred_features(row: dict[str, Any]) -> dict[str, str]:
    """tf.Example feature types from one row's values, when the graph does not tell them."""
    def kind(value: Any) -> str:
        first = signature_inputs.scalars(value)[0] if signature_inputs.scalars(value) else ""
        if isinstance(first, bool) or isinstance(first, (int, np.integer)):
            return "int64"
        return "float32" if isinstance(first, (float, np.floating)) else "string"

    return {name: kind(value) for name, value in row.items()}


def _input_shape(name: str, signature: SignatureInfo, wanted: SignatureContract) -> tuple | None:
    """The shape a client sends: the contracted one, else the model's."""
    contracted = wanted.inputs.get(name)
    return contracted.shape if contracted is not None and contracted.shape is not None else signature.inputs[name].shape


def _batches(signature: SignatureInfo, wanted: SignatureContract, rows: list | None) -> list[int]:
    """Batch sizes to run: all golden rows then 1, or GENERATED_BATCH then 1.

    Once only when the batch size is not free (no inputs, or an input with a fixed first
    dimension, like TF Serving's half_plus_two_tf2 whose x is [1]).
    """
    size = len(rows) if rows else GENERATED_BATCH
    shapes = [_input_shape(name, signature, wanted) for name in signature.inputs]
    if not shapes or any(s is not None and (not s or s[0] is not None) for s in shapes):
        return [size if rows else 1]
    return [size, 1] if size > 1 else [size]


def _feeds(signature: SignatureInfo, wanted: SignatureContract, rows: list | None, batch: int,
           features: dict[str, str], rng: np.random.Generator, source: str) -> dict[str, np.ndarray]:
    out = {}
    for name, spec in signature.inputs.items():
        contracted = wanted.inputs.get(name)
        dtype = contracted.dtype if contracted else spec.dtype
        shape = _input_shape(name, signature, wanted)
        if _is_example_input(name, signature, contracted, features):
            example_rows = rows[:batch] if rows else _generated_rows(features, batch, rng)
            if rows:  # golden rows carry the features a client sends; the model decides if enough
                kinds = {n: d for n, d in features.items() if n in rows[0]} or _inferred_features(rows[0])
            else:
                kinds = features or _inferred_features(example_rows[0])
            out[name] = signature_inputs.serialized_examples(example_rows, kinds, source)
        elif rows:
            out[name] = signature_inputs.column(rows[:batch], name, dtype, None if shape is None else len(shape), source)
        else:
            out[name] = generate_values(dtype, concrete_shape(shape, batch), rng)
    return out


def check_outputs(signature: str, wanted: SignatureContract, values: dict[str, np.ndarray],
                  batch: int) -> list[Violation]:
    """Shapes, finiteness and probabilities of one run's outputs (pure)."""
    violations = []
    for name, value in values.items():
        where = f"{signature}.outputs.{name}"
        array = np.asarray(value)
        contracted = wanted.outputs.get(name)
        if contracted is not None and not value_shape_matches(contracted.shape, array.shape):
            violations.append(Violation(
                "outputs", where,
                f"batch of {batch}: produced shape {list(array.shape)}, the contract requires "
                f"{shape_text(contracted.shape)}",
            ))
        if array.dtype.kind not in "fc":
            continue
        bad = ~np.isfinite(array)
        if bad.any():
            violations.append(Violation(
                "outputs", where, f"batch of {batch}: {int(bad.sum())} NaN/Inf value(s) of {array.size}"
            ))
            continue
        if is_probability_output(name, contracted) and array.size:
            low, high = float(array.min()), float(array.max())
            sums = array.sum(axis=-1) if array.ndim else array
            worst = float(np.max(np.abs(sums - 1.0)))
            if low < -PROBABILITY_TOLERANCE or high > 1 + PROBABILITY_TOLERANCE:
                violations.append(Violation(
                    "outputs", where, f"probabilities outside [0, 1]: min {low:.4g}, max {high:.4g}"
                ))
            if worst > PROBABILITY_TOLERANCE:
                violations.append(Violation(
                    "outputs", where, f"probabilities do not sum to 1 over the last axis (off by up to {worst:.4g})"
                ))
    return violations


def _same_outputs(first: dict[str, np.ndarray], second: dict[str, np.ndarray]) -> bool:
    def same(a: np.ndarray, b: np.ndarray) -> bool:
        a, b = np.asarray(a), np.asarray(b)
        return np.array_equal(a, b, equal_nan=a.dtype.kind in "fc" and b.dtype.kind in "fc")

    return first.keys() == second.keys() and all(same(first[k], second[k]) for k in first)


def _perturbed(array: np.ndarray, direction: int) -> np.ndarray:
    """Every value moved by at least 1 (floats: by max(1, |x|)), up or down."""
    if array.dtype.kind == "f":
        return (array + direction * np.maximum(1.0, np.abs(array))).astype(array.dtype)
    return array + np.asarray(direction, array.dtype)


def ignored_inputs(model: SessionModel, signature: str, inputs: dict[str, np.ndarray],
                   values: dict[str, np.ndarray]) -> list[Violation]:
    """Numeric inputs whose change, up or down on every row, leaves every output bit-identical.

    A declared input the model ignores is a silent bug: clients send it and nothing happens. It
    is what a non-finite normalisation constant does (NaN statistics zero the scaled feature for
    every row). String inputs (serialized tf.Examples among them), booleans and unsigned integers
    are not perturbed.
    """
    violations = []
    for name, array in inputs.items():
        if array.dtype.kind not in "fi" or not array.size:
            continue
        unchanged = True
        for direction in (1, -1):
            try:
                moved = model.run(signature, {**inputs, name: _perturbed(array, direction)})
            except Exception:  # the model reacts to the input (e.g. an id out of range): it is used
                moved = None
            if moved is None or not _same_outputs(values, moved):
                unchanged = False
                break
        if unchanged:
            violations.append(Violation(
                "outputs", f"{signature}.inputs.{name}",
                "no output changes when this input moves up or down on every row: the model ignores "
                "it (for example a normalisation constant that is not finite)",
            ))
    return violations


def run_signatures(model: SessionModel, contract: Contract, rows: list | None, source: str,
                   seed: int = 0) -> tuple[list[Violation], list[dict[str, Any]]]:
    """Run every contracted signature the model has; returns violations and a log of the runs."""
    rng = np.random.default_rng(seed)
    features = example_features(model.meta_graph_def)
    violations: list[Violation] = []
    runs: list[dict[str, Any]] = []
    for name, wanted in contract.signatures.items():
        signature = model.signatures.get(name)
        if signature is None:
            continue  # reported by the static check
        for index, batch in enumerate(_batches(signature, wanted, rows)):
            try:
                inputs = _feeds(signature, wanted, rows, batch, features, rng, source)
            except TfshipError as error:
                violations.append(Violation("run", name, str(error)))
                break
            try:
                values = model.run(name, inputs)
            except Exception as error:  # OpError, RequestError: the model rejected these inputs
                violations.append(Violation("run", name, f"batch of {batch}: {explain_run_error(error)}"))
                break
            found = check_outputs(name, wanted, values, batch)
            if index == 0:  # one batch is enough to see whether each input matters
                found += ignored_inputs(model, name, inputs, values)
            violations.extend(found)
            runs.append({
                "signature": name,
                "batch": batch,
                "inputs": "golden" if rows else "generated",
                "output_shapes": {k: list(np.shape(v)) for k, v in values.items()},
                "passed": not found,
            })
    return violations, runs


def replay_warmup(model: SessionModel) -> tuple[list[Violation], dict[str, Any]]:
    """Parse and replay the warm-up file as TF Serving does at load time."""

    try:
        records = read_warmup_requests(model.path)
    except ModelError as error:
        return [Violation("warmup", "assets.extra/tf_serving_warmup_requests", str(error))], {"records": None}
    violations = []
    if len(records) > MAX_WARMUP_RECORDS:
        violations.append(Violation(
            "warmup", "assets.extra/tf_serving_warmup_requests",
            f"{len(records)} records; TF Serving refuses more than {MAX_WARMUP_RECORDS}",
        ))
    replayed = []
    for index, record in enumerate(records[:MAX_WARMUP_RECORDS]):
        try:
            replayed.append(warmup.replay(model, record))
        except Exception as error:
            violations.append(Violation("warmup", f"record {index}", explain_run_error(error)))
    return violations, {"records": len(records), "replayed": len(replayed), "requests": sorted(set(replayed))}


def signature_dict(signature: SignatureInfo) -> dict[str, Any]:
    """A signature as report data: method, and dtype/shape/tensor of each input and output."""
    def tensors(specs: dict) -> dict[str, Any]:
        return {n: {"dtype": s.dtype, "shape": None if s.shape is None else [-1 if d is None else d for d in s.shape],
                    "tensor": s.tensor_name} for n, s in specs.items()}

    return {"method_name": signature.method_name, "inputs": tensors(signature.inputs),
            "outputs": tensors(signature.outputs)}


def check(plan: dict[str, Any]) -> dict[str, Any]:
    """Everything the fresh process does; returns the result document."""
    started = time.monotonic()
    import tensorflow  # noqa: F401  (timed apart from the model's load)

    import_s = time.monotonic() - started
    contract = Contract.from_dict(plan["contract"], source="contract")
    try:
        signatures = read_signatures(plan["model"])
        baseline = read_signatures(plan["baseline"]) if plan.get("baseline") else None
    except ModelError as error:
        return {"input_error": str(error)}
    violations = check_signatures(contract, signatures)
    changes = diff_signatures(baseline, signatures) if baseline is not None else []
    violations += [
        Violation("baseline", c.where, f"{c.reason}: {c.baseline or 'absent'} -> {c.candidate or 'absent'}")
        for c in changes if c.breaking
    ]
    runtime: dict[str, Any] = {"loaded": False, "import_s": round(import_s, 3), "runs": [], "warmup": {"records": None}}
    started = time.monotonic()
    try:
        model = load_session_model(plan["model"])
    except ModelError as error:
        violations.append(Violation("load", "model", str(error)))
    else:
        runtime["load_s"] = round(time.monotonic() - started, 3)
        runtime["loaded"] = True
        with model:
            found, runtime["runs"] = run_signatures(
                model, contract, plan.get("rows"), plan.get("rows_source") or "rows", plan.get("seed", 0)
            )
            warmup_violations, runtime["warmup"] = replay_warmup(model)
        violations += found + warmup_violations
    return {
        "input_error": None,
        "signatures": {name: signature_dict(sig) for name, sig in signatures.items()},
        "baseline_changes": [c.to_dict() for c in changes],
        "violations": [v.to_dict() for v in violations],
        "runtime": runtime,
    }


def main(argv: list[str]) -> int:
    """Write the result document of the plan; a bug here is reported as `internal_error`, so that
    validate exits 70 instead of turning it into a failed check (exit 1)."""
    plan_path, result_path = argv
    with open(plan_path, encoding="utf-8") as handle:
        plan = json.load(handle)
    try:
        result = check(plan)
    except Exception:  # not the model's failure: load and run errors are violations inside check()
        result = {"internal_error": traceback.format_exc()}
    with open(result_path, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
