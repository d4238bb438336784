"""Training options for real: mixed precision and XLA, each resumed exactly after a SIGKILL.

The killed runs are real `tfship train` processes; the uninterrupted reference and the resume run
in this process through the Python API (what a notebook calls), which also checks that the API
and the CLI train the same weights.
"""

from __future__ import annotations

import os
import signal
import subprocess

import numpy as np
import pytest
import tensorflow as tf
from tests.conftest import importable_module
from tests.train.test_train import FLAGS, assert_same_weights, cli_args, start, wait_for_event, weights

import tfship
from tfship.errors import ConfigError
from tfship.steps.train.step import TrainConfig, mixed_precision_policy

STEPS = 30  # the resumed run goes on past the killed run's last checkpoint (step 10 or 20)
OPTIONS = {"mixed_precision": "--mixed-precision", "jit_compile": "--jit"}


def test_mixed_precision_policy_is_float16_on_gpus_bfloat16_on_cpus() -> None:
    assert mixed_precision_policy(False, gpus=2) == "float32"
    assert mixed_precision_policy(True, gpus=1) == "mixed_float16"
    assert mixed_precision_policy(True, gpus=0) == "mixed_bfloat16"


def test_options_must_be_booleans(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"Invalid value for `mixed_precision`: 'yes'\. Expected True or False"):
        TrainConfig(data="d.csv", schema="s.yaml", job_dir=str(tmp_path), mixed_precision="yes")


def kill_after_first_checkpoint(args: list[str]) -> dict:
    """SIGKILL a long run once its step-10 checkpoint is durable (it is then at step 11 to 20:
    the event comes at the latest when the step-20 save begins); returns its `start` event."""
    process = start(args)
    started = wait_for_event(process, lambda e: e["event"] == "start")
    wait_for_event(process, lambda e: e["event"] == "checkpoint" and e["step"] == 10)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    return started


@pytest.fixture(scope="module")
def float32_run(demo_data, tmp_path_factory) -> str:
    """The same run without options: its last checkpoint."""
    job_dir = str(tmp_path_factory.mktemp("float32") / "job")
    return tfship.train(*demo_data, job_dir, **{**FLAGS, "steps": STEPS}, log_every=10).checkpoint


def assert_serving_signature_is_float32(job_dir: str, export_dir: str) -> None:
    """The export of a mixed precision job takes and returns what a float32 job's does."""
    from tfship.saved_model.loader import load_session_model

    exported = tfship.export(job_dir, export_dir)
    with load_session_model(exported.path) as model:
        signature = model.signatures["serving_default"]
        assert {n: s.dtype for n, s in signature.inputs.items()} == {
            "island": "string", "bill_length_mm": "float32", "bill_depth_mm": "float32",
            "flipper_length_mm": "float32", "body_mass_g": "float32", "sex": "string"}
        assert {n: s.dtype for n, s in signature.outputs.items()} == {
            "class_ids": "int64", "classes": "string", "probabilities": "float32"}


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_sigkill_then_resume_is_exact_with_the_option(demo_data, float32_run, tmp_path, option) -> None:
    data, schema = demo_data
    flags = {**FLAGS, "steps": STEPS, "checkpoint_every": 10}
    job_dir = str(tmp_path / "job")
    started = kill_after_first_checkpoint([*cli_args(data, schema, job_dir, **{**flags, "steps": 1000}),
                                           OPTIONS[option]])
    assert started["precision"] == ("mixed_bfloat16" if option == "mixed_precision" else "float32")
    assert started["jit_compile"] == (option == "jit_compile")
    resumed = tfship.train(data, schema, job_dir, **flags, log_every=10, **{option: True})
    assert resumed.resumed_from in (10, 20)
    reference = tfship.train(data, schema, str(tmp_path / "reference"), **flags, log_every=10, **{option: True})
    assert_same_weights(reference.checkpoint, resumed.checkpoint)
    # The option changed the computation (else the comparison above proves nothing about it)...
    plain_weights, option_weights = weights(float32_run), weights(reference.checkpoint)
    assert any(not np.array_equal(plain_weights[k], option_weights[k]) for k in plain_weights)
    # ...and a resume may not switch it: the saved state belongs to the option's run.
    with pytest.raises(ConfigError, match=rf"other settings \({option}: True -> False\)"):
        tfship.train(data, schema, job_dir, **flags)
    if option == "mixed_precision":
        assert reference.metrics["heldout_accuracy"] > 0.6
        # Master weights stay float32 in the checkpoint; serving sees the float32 model.
        assert {v.dtype for k, v in option_weights.items() if k.startswith("model/")} == {np.dtype("float32")}
        assert_serving_signature_is_float32(job_dir, str(tmp_path / "export"))


def test_mixed_float16_scales_the_loss(demo_data, tmp_path, monkeypatch) -> None:
    """The GPU policy's loss scaling, run on the CPU (float16 is slow there, but it runs)."""
    monkeypatch.setattr("tfship.steps.train.step.mixed_precision_policy", lambda enabled, gpus: "mixed_float16")
    result = tfship.train(*demo_data, job_dir=str(tmp_path / "job"), steps=5, checkpoint_every=5, log_every=5,
                          mixed_precision=True)
    saved = weights(result.checkpoint)
    scale = [v for k, v in saved.items() if "optimizer/" in k and v.shape == () and v.dtype == np.float32]
    assert scale, "the LossScaleOptimizer's dynamic scale is checkpointed"
    assert all(np.isfinite(v).all() for v in saved.values())
    assert result.metrics["heldout_loss"] is not None and np.isfinite(result.metrics["heldout_loss"])


# --- --input: a team's own input pipeline --------------------------------------------------------

TEAM_PIPELINES = '''
import csv
import random

import numpy as np
import tensorflow as tf

from tfship.steps.train.data import is_heldout


def _rows(ctx):
    for path in ctx.files:
        with open(path, newline="") as handle:
            for index, row in enumerate(csv.DictReader(handle)):
                if is_heldout(index, ctx.holdout_every) == (ctx.split == "heldout"):
                    yield row


def _value(text, dtype):
    return text if dtype == "string" else np.float32("nan" if text == "NA" else text)


def _signature(schema):
    features = {n: tf.TensorSpec([], tf.string if d == "string" else tf.float32) for n, d in schema.features.items()}
    return features, tf.TensorSpec([], tf.string)


def tensors(ctx):
    """tf.data only: its iterator is checkpointed."""
    rows = list(_rows(ctx))
    features = {n: [_value(r[n], d) for r in rows] for n, d in ctx.schema.features.items()}
    return tf.data.Dataset.from_tensor_slices((features, [r[ctx.schema.label] for r in rows]))


def generator(ctx):
    """The same examples from Python: deterministic, not checkpointable."""
    def rows():
        for row in _rows(ctx):
            yield {n: _value(row[n], d) for n, d in ctx.schema.features.items()}, row[ctx.schema.label]
    return tf.data.Dataset.from_generator(rows, output_signature=_signature(ctx.schema))


def unseeded(ctx):
    """Python shuffling with an unseeded generator: neither checkpointable nor deterministic."""
    def rows():
        shuffled = list(_rows(ctx))
        random.SystemRandom().shuffle(shuffled)
        for row in shuffled:
            yield {n: _value(row[n], d) for n, d in ctx.schema.features.items()}, row[ctx.schema.label]
    return tf.data.Dataset.from_generator(rows, output_signature=_signature(ctx.schema))


def pooled(ctx):
    """A model with max pooling, whose gradient XLA has no deterministic kernel for."""
    import keras
    inputs = ctx.keras_inputs()
    x = keras.layers.Concatenate()([ctx.dense(inputs, n) for n in inputs])
    x = keras.layers.MaxPooling1D(2)(keras.layers.Reshape((-1, 1))(x))
    return keras.Model(inputs, keras.layers.Dense(ctx.num_outputs)(keras.layers.Flatten()(x)))


def empty(ctx):
    return tensors(ctx).take(0)


def float64_mass(ctx):
    return tensors(ctx).map(lambda f, y: ({**f, "body_mass_g": tf.cast(f["body_mass_g"], tf.float64)}, y))
'''


@pytest.fixture(scope="module")
def team_pipelines(tmp_path_factory) -> str:
    """A team's module (`--input` functions, a model), importable here and (through PYTHONPATH) by the CLI."""
    with importable_module(tmp_path_factory.mktemp("team"), "team_pipelines", TEAM_PIPELINES) as folder:
        yield folder


def features_spec(**overrides):
    spec = {"island": tf.TensorSpec([], tf.string), "bill_length_mm": tf.TensorSpec([], tf.float32),
            "bill_depth_mm": tf.TensorSpec([], tf.float32), "flipper_length_mm": tf.TensorSpec([], tf.float32),
            "body_mass_g": tf.TensorSpec([], tf.float32), "sex": tf.TensorSpec([], tf.string)}
    spec.update(overrides)
    return {k: v for k, v in spec.items() if v is not None}


@pytest.mark.parametrize(
    "element_spec, message",
    [
        (tf.TensorSpec([], tf.float32), r"returns elements of TensorSpec\(shape=\(\), dtype=tf.float32.*expected \(features, label\)"),
        ((features_spec(), tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.float32)), "elements of a tuple of 3"),
        ((features_spec(sex=None), tf.TensorSpec([], tf.string)), r"missing \['sex'\], not in the schema \[\]"),
        ((features_spec(colour=tf.TensorSpec([], tf.string)), tf.TensorSpec([], tf.string)), r"not in the schema \['colour'\]"),
        ((features_spec(body_mass_g=tf.TensorSpec([], tf.int64)), tf.TensorSpec([], tf.string)),
         "returns feature 'body_mass_g' as int64; the schema says float32"),
        ((features_spec(), tf.TensorSpec([], tf.int64)), "returns the label 'species' as int64; the schema says string"),
        ((features_spec(island=tf.TensorSpec([None], tf.string)), tf.TensorSpec([None], tf.string)),
         r"feature 'island' with shape \(None,\); expected one value per example .* return unbatched examples"),
    ],
)
def test_input_of_the_wrong_structure_is_refused_by_name(demo_data, element_spec, message) -> None:
    from tfship.steps.train.input_pipeline import check_element_spec
    from tfship.schema import load_schema

    with pytest.raises(ConfigError, match=rf"^--input 'team:fn' .*{message}"):
        check_element_spec("team:fn", element_spec, load_schema(demo_data[1]))


def test_input_function_that_fails_or_returns_no_dataset(demo_data, team_pipelines) -> None:
    from tfship.steps.train.input_pipeline import InputContext, examples
    from tfship.schema import load_schema

    context = InputContext(load_schema(demo_data[1]), "train", 0, (demo_data[0],), 5)
    with pytest.raises(ConfigError, match=r"--input 'json:dumps' failed for split 'train': TypeError: Object of type InputContext"):
        examples("json:dumps", context)
    with pytest.raises(ConfigError, match=r"--input 'os:getcwd' failed"):
        examples("os:getcwd", context)
    with pytest.raises(ConfigError, match=r"--input 'team_pipelines:_rows' returned generator; expected a tf.data.Dataset"):
        examples("team_pipelines:_rows", context)
    with pytest.raises(ConfigError, match=r"Cannot import --input 'no_such_team:fn': ModuleNotFoundError"):
        examples("no_such_team:fn", context)
    with pytest.raises(ConfigError, match=r"Invalid value for `split`: 'test'"):
        InputContext(context.schema, "test", 0, (), 5)


def test_cli_input_with_wrong_dtypes_is_one_line_exit_2(demo_data, team_pipelines, tmp_path) -> None:
    job_dir = tmp_path / "job"
    result = subprocess.run([*cli_args(*demo_data, str(job_dir)), "--input", "team_pipelines:float64_mass"],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": team_pipelines})
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == (
        "tfship train: error: --input 'team_pipelines:float64_mass' returns feature 'body_mass_g' as float64; "
        "the schema says float32.")
    assert not (job_dir / "tfship_job.json").exists()


def test_uncheckpointable_input_resumes_by_skipping_ahead_exactly(demo_data, team_pipelines, tmp_path) -> None:
    data, schema = demo_data
    flags = {**FLAGS, "steps": STEPS, "checkpoint_every": 10}
    job_dir = tmp_path / "job"
    args = [*cli_args(data, schema, str(job_dir), **{**flags, "steps": 1000}), "--input", "team_pipelines:generator"]
    process = start(args, PYTHONPATH=team_pipelines)
    warning = wait_for_event(process, lambda e: e["event"] == "warning")
    assert warning["message"] == (
        "--input 'team_pipelines:generator': its dataset cannot be checkpointed (PyFunc is stateful.); a resume "
        "re-reads it from the start and skips the batches already trained on (exact: two datasets it made gave "
        "the same examples).")
    wait_for_event(process, lambda e: e["event"] == "checkpoint" and e["step"] == 10)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not (job_dir / "checkpoints" / "input").exists()  # no iterator position: the step is the position
    resumed = tfship.train(data, schema, str(job_dir), **flags, log_every=10, input_fn="team_pipelines:generator")
    assert resumed.resumed_from in (10, 20)
    # The same examples through tf.data alone: checkpointed iterator, never interrupted.
    reference = tfship.train(data, schema, str(tmp_path / "reference"), **flags, log_every=10,
                             input_fn="team_pipelines:tensors")
    assert (tmp_path / "reference" / "checkpoints" / "input").is_dir()
    assert_same_weights(reference.checkpoint, resumed.checkpoint)
    assert resumed.metrics["heldout_rows"] == 68 and resumed.metrics["heldout_accuracy"] > 0.6


def test_input_that_is_neither_checkpointable_nor_deterministic_is_refused(demo_data, team_pipelines, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"--input 'team_pipelines:unseeded': its dataset cannot be checkpointed "
                                          r"\(PyFunc is stateful\.\) and two datasets it makes give different examples"):
        tfship.train(*demo_data, str(tmp_path / "job"), steps=5, input_fn="team_pipelines:unseeded")
    assert not (tmp_path / "job" / "tfship_job.json").exists()


def test_jit_refuses_a_model_xla_cannot_compile_deterministically(demo_data, team_pipelines, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"^--jit cannot compile this model's training step with op determinism on, "
                                          r"which exact resume needs: .*MaxPool gradient ops do not yet have a "
                                          r"deterministic XLA implementation\. Train it without --jit"):
        tfship.train(*demo_data, str(tmp_path / "job"), steps=3, model="team_pipelines:pooled", jit_compile=True)


def test_input_without_training_examples_is_refused(demo_data, team_pipelines, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"^--input 'team_pipelines:empty' returned no training examples"):
        tfship.train(*demo_data, str(tmp_path / "job"), steps=3, input_fn="team_pipelines:empty")
