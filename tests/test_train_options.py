"""Training options for real: mixed precision and XLA, each resumed exactly after a SIGKILL.

The killed runs are real `tfship train` processes; the uninterrupted reference and the resume run
in this process through the Python API (what a notebook calls), which also checks that the API
and the CLI train the same weights.
"""

from __future__ import annotations

import signal

import numpy as np
import pytest
import tensorflow as tf
from test_train import FLAGS, assert_same_weights, cli_args, start, wait_for_event, weights

import tfship
from tfship.errors import ConfigError
from tfship.training import TrainConfig, mixed_precision_policy

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
    from tfship.savedmodel import load_session_model

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
    monkeypatch.setattr("tfship.training.mixed_precision_policy", lambda enabled, gpus: "mixed_float16")
    result = tfship.train(*demo_data, job_dir=str(tmp_path / "job"), steps=5, checkpoint_every=5, log_every=5,
                          mixed_precision=True)
    saved = weights(result.checkpoint)
    scale = [v for k, v in saved.items() if "optimizer/" in k and v.shape == () and v.dtype == np.float32]
    assert scale, "the LossScaleOptimizer's dynamic scale is checkpointed"
    assert all(np.isfinite(v).all() for v in saved.values())
    assert result.metrics["heldout_loss"] is not None and np.isfinite(result.metrics["heldout_loss"])
