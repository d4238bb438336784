"""The train step for real: TensorFlow training, checkpoints, SIGKILL/SIGTERM, resume, gs://.

The central claim: a run killed at any point and resumed with the same --job-dir ends with
exactly the weights of an uninterrupted run (max difference 0.0), never redoing or skipping a
step. Interrupted runs are real `tfship train` processes killed with real signals.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import tfship
from tfship import storage
from tfship.errors import EXIT_PREEMPTED, ConfigError

STEPS = 30
FLAGS = {"steps": STEPS, "checkpoint_every": 10, "batch_size": 32, "seed": 7, "shuffle_buffer": 100}


def cli_args(data: str, schema: str, job_dir: str, **overrides) -> list[str]:
    flags = {**FLAGS, "log_every": 1, **overrides}
    args = [sys.executable, "-m", "tfship.cli", "train", "--data", data, "--schema", schema, "--job-dir", job_dir]
    for key, value in flags.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def start(args: list[str], **env: str) -> subprocess.Popen:
    return subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **env})


def wait_for_event(process: subprocess.Popen, predicate) -> dict:
    """Read the structured log lines until one satisfies `predicate`; return it."""
    deadline = time.monotonic() + 120
    for line in process.stderr:
        if time.monotonic() > deadline:
            break
        if line.startswith("{"):
            event = json.loads(line)
            if predicate(event):
                return event
    process.kill()
    raise AssertionError("the expected event never came")


def weights(checkpoint_path: str) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(checkpoint_path)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if k.startswith(("model/", "optimizer/", "step/"))}


def assert_same_weights(a: str, b: str) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys() and len(wa) > 10
    for key in wa:
        np.testing.assert_array_equal(wa[key], wb[key], err_msg=key)


@pytest.fixture(scope="module")
def reference(demo_data, tmp_path_factory) -> str:
    """An uninterrupted run, in a subprocess like the interrupted ones."""
    job_dir = str(tmp_path_factory.mktemp("reference") / "job")
    subprocess.run(cli_args(*demo_data, job_dir), check=True, capture_output=True, timeout=300)
    return job_dir


def test_job_directory_holds_checkpoints_logs_and_metrics(reference) -> None:
    job = Path(reference)
    assert sorted(p.name for p in (job / "checkpoints").glob("*.index")) == ["ckpt-10.index", "ckpt-20.index", "ckpt-30.index"]
    assert tf.train.latest_checkpoint(str(job / "checkpoints")).endswith("ckpt-30")
    assert list((job / "logs" / "train").glob("events.out.tfevents.*"))
    metrics = json.loads((job / "metrics.json").read_text())
    assert metrics["step"] == STEPS and metrics["heldout_rows"] == 68
    assert metrics["heldout_accuracy"] > 0.6  # 3 classes: well above chance after 30 steps
    description = json.loads((job / "tfship_job.json").read_text())
    assert description["stats"]["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert len(description["fingerprints"]["data"]) == 64
    assert (job / "vocabularies" / "island.txt").read_text().split() == description["stats"]["vocabularies"]["island"]
    # The optimizer took exactly STEPS steps: none redone, none skipped.
    assert weights(str(job / "checkpoints" / "ckpt-30"))["optimizer/0/.ATTRIBUTES/VARIABLE_VALUE"] == STEPS


@pytest.mark.parametrize(
    "kill_when",
    [
        pytest.param(lambda e: e["event"] == "progress" and e["step"] >= 13, id="between-checkpoints"),
        pytest.param(lambda e: e["event"] == "save" and e["step"] == 20, id="while-writing-ckpt-20"),
    ],
)
def test_sigkill_then_resume_ends_with_identical_weights(demo_data, reference, tmp_path, kill_when) -> None:
    job_dir = str(tmp_path / "job")
    process = start(cli_args(*demo_data, job_dir))
    wait_for_event(process, lambda e: e["event"] == "checkpoint" and e["step"] == 10)  # durable
    wait_for_event(process, kill_when)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    resumed = subprocess.run(cli_args(*demo_data, job_dir), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    start_event = next(json.loads(l) for l in resumed.stderr.splitlines() if '"event": "start"' in l)
    assert start_event["resumed_from"] in (10, 20)
    first_step = next(json.loads(l)["step"] for l in resumed.stderr.splitlines() if '"event": "progress"' in l)
    assert first_step == start_event["resumed_from"] + 1  # continues at the next step
    assert_same_weights(f"{reference}/checkpoints/ckpt-30", f"{job_dir}/checkpoints/ckpt-30")


def test_sigterm_saves_the_current_step_and_exits_143(demo_data, reference, tmp_path) -> None:
    job_dir = str(tmp_path / "job")
    process = start(cli_args(*demo_data, job_dir, checkpoint_every=1000))
    wait_for_event(process, lambda e: e.get("event") == "progress" and e["step"] >= 5)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - sent < 15  # inside GKE's spot window
    assert process.returncode == EXIT_PREEMPTED
    preempted = next(json.loads(l) for l in stderr.splitlines() if '"event": "preempted"' in l)
    assert preempted["step"] >= 5
    assert tf.train.latest_checkpoint(f"{job_dir}/checkpoints").endswith(f"ckpt-{preempted['step']}")
    assert stderr.strip().splitlines()[-1].startswith(f"tfship train: error: SIGTERM at step {preempted['step']}")
    resumed = subprocess.run(cli_args(*demo_data, job_dir, checkpoint_every=1000), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(f"{reference}/checkpoints/ckpt-30", f"{job_dir}/checkpoints/ckpt-30")


def test_resume_refuses_changed_settings(reference, demo_data) -> None:
    with pytest.raises(ConfigError, match=r"holds a run with other settings \(batch_size: 32 -> 16\)"):
        tfship.train(*demo_data, job_dir=reference, **{**FLAGS, "batch_size": 16})


def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(demo_data, reference, tmp_path) -> None:
    job_dir = tmp_path / "job"
    subprocess.run(cli_args(*demo_data, str(job_dir), steps=20), check=True, capture_output=True, timeout=300)
    data_file = next((job_dir / "checkpoints").glob("ckpt-20.data-*"))
    data_file.write_bytes(b"garbage")
    result = subprocess.run(cli_args(*demo_data, str(job_dir)), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    start_event = next(json.loads(l) for l in result.stderr.splitlines() if '"event": "start"' in l)
    assert start_event["resumed_from"] == 10
    assert_same_weights(f"{reference}/checkpoints/ckpt-30", f"{job_dir}/checkpoints/ckpt-30")


def test_gcs_job_dir_resumes_on_a_new_machine(demo_data, reference, gcs_bucket, tmp_path) -> None:
    data, schema = demo_data
    storage.upload_file(data, f"{gcs_bucket}/data/penguins.csv")
    storage.upload_file(schema, f"{gcs_bucket}/data/schema.yaml")
    job_dir = f"{gcs_bucket}/jobs/run-1"
    args = cli_args(f"{gcs_bucket}/data/*.csv", f"{gcs_bucket}/data/schema.yaml", job_dir)
    first = start(args, TFSHIP_CACHE=str(tmp_path / "machine-a"))
    # "checkpoint" events come once a checkpoint is durable: here, uploaded to the bucket.
    wait_for_event(first, lambda e: e.get("event") == "checkpoint" and e["step"] == 10)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert {"checkpoint", "ckpt-10.index", "input/input-10.index"} <= set(storage.list_files(f"{job_dir}/checkpoints"))
    # A different local cache: nothing local survives, the checkpoint comes from the bucket.
    second = subprocess.run(args, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TFSHIP_CACHE": str(tmp_path / "machine-b")})
    assert second.returncode == 0, second.stderr
    start_event = next(json.loads(l) for l in second.stderr.splitlines() if '"event": "start"' in l)
    assert start_event["resumed_from"] in (10, 20)
    remote = storage.list_files(f"{job_dir}/checkpoints")
    assert {"ckpt-30.index", "checkpoint"} <= set(remote)
    assert json.loads(storage.read_text(f"{job_dir}/metrics.json"))["step"] == STEPS
    local_copy = tmp_path / "downloaded"
    storage.download_tree(f"{job_dir}/checkpoints", str(local_copy))
    assert_same_weights(f"{reference}/checkpoints/ckpt-30", str(local_copy / "ckpt-30"))


def test_tfrecord_input_trains_like_csv(demo_data, tmp_path) -> None:
    from tfship.steps.train.data import read_rows, resolve_files
    from tfship.schema import load_schema

    data, schema_path = demo_data
    schema = load_schema(schema_path)
    rows = read_rows(resolve_files(data), schema, 10**9, "train", 10**6)
    path = tmp_path / "penguins.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for row in rows:
            feature = {
                k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode()])) if isinstance(v, str)
                else tf.train.Feature(float_list=tf.train.FloatList(value=[v]))
                for k, v in row.items()
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    result = tfship.train(str(path), schema_path, str(tmp_path / "job"), steps=20, checkpoint_every=10, log_every=10)
    assert result.metrics["train_rows"] == 276 and result.metrics["heldout_rows"] == 68
    assert result.metrics["heldout_accuracy"] > 0.4


def test_user_model_function(demo_data, tmp_path, monkeypatch) -> None:
    (tmp_path / "my_models.py").write_text(
        "import keras\n"
        "def wide(ctx):\n"
        "    inputs = ctx.keras_inputs()\n"
        "    x = keras.layers.Concatenate()([ctx.dense(inputs, n) for n in inputs])\n"
        "    x = keras.layers.Dense(int(ctx.hparams['width']), activation='relu')(x)\n"
        "    return keras.Model(inputs, keras.layers.Dense(ctx.num_outputs)(x))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    result = tfship.train(*demo_data, job_dir=str(tmp_path / "job"), model="my_models:wide",
                          hparams={"width": 12}, steps=10, checkpoint_every=10)
    reader = tf.train.load_checkpoint(result.checkpoint)
    shapes = reader.get_variable_to_shape_map().values()
    assert [None for s in shapes if s[-1:] == [12]], "the user's 12-unit layer is in the checkpoint"


def test_multi_worker_training_with_two_local_processes(demo_data, tmp_path) -> None:
    from tests.conftest import free_port

    ports = [free_port(), free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    job_dir = str(tmp_path / "job")
    workers = [
        start(cli_args(*demo_data, job_dir, steps=20, checkpoint_every=10),
              TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}))
        for i in range(2)
    ]
    outputs = [w.communicate(timeout=300) for w in workers]
    for worker, (_, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-3000:]
    starts = [next(json.loads(l) for l in err.splitlines() if '"event": "start"' in l) for _, err in outputs]
    assert all(s["workers"] == 2 and s["replicas"] == 2 for s in starts)
    # Only the chief (worker 0) writes the job directory's checkpoints and metrics.
    assert tf.train.latest_checkpoint(f"{job_dir}/checkpoints").endswith("ckpt-20")
    assert json.loads(Path(job_dir, "metrics.json").read_text())["step"] == 20
    assert weights(f"{job_dir}/checkpoints/ckpt-20")["optimizer/0/.ATTRIBUTES/VARIABLE_VALUE"] == 20
    # Resuming a multi-worker job (the input position is skipped to, not restored).
    workers = [
        start(cli_args(*demo_data, job_dir, steps=30, checkpoint_every=10),
              TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}))
        for i in range(2)
    ]
    outputs = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs[1][1][-3000:]
    assert next(json.loads(l) for l in outputs[0][1].splitlines() if '"event": "start"' in l)["resumed_from"] == 20
    assert weights(f"{job_dir}/checkpoints/ckpt-30")["optimizer/0/.ATTRIBUTES/VARIABLE_VALUE"] == 30


def test_regression_with_integer_and_missing_values_trains_and_exports(tmp_path) -> None:
    """Regression end to end through the Python API: train, export, load as TF Serving does."""
    import random

    from tfship.saved_model.loader import load_session_model

    rng = random.Random(3)
    lines = ["rooms,area,city,price"]
    for i in range(300):
        rooms, area = rng.randint(1, 6), rng.uniform(20, 200)
        city = rng.choice(["a", "b", "c"])
        price = 10 * rooms + 2 * area + {"a": 0, "b": 50, "c": 100}[city] + rng.gauss(0, 5)
        lines.append(f"{rooms},{'NA' if i % 37 == 0 else round(area, 1)},{city},{price:.2f}")
    (tmp_path / "houses.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "schema.yaml").write_text(
        "task: regression\nlabel: price\nfeatures: {rooms: int64, area: float32, city: string}\nna_values: [NA]\n"
    )
    result = tfship.train(str(tmp_path / "houses.csv"), str(tmp_path / "schema.yaml"), str(tmp_path / "job"),
                          steps=300, checkpoint_every=100, batch_size=32, learning_rate=0.01, log_every=100)
    spread = float(np.std([float(line.split(",")[-1]) for line in lines[1:]]))
    assert result.metrics["heldout_mae"] < 0.5 * spread  # learned far better than predicting the mean
    exported = tfship.export(str(tmp_path / "job"), str(tmp_path / "export"))
    model = load_session_model(exported.path)
    try:
        signature = model.signatures["serving_default"]
        assert {n: s.dtype for n, s in signature.inputs.items()} == {"rooms": "int64", "area": "float32", "city": "string"}
        outputs = model.run("serving_default", {
            "rooms": np.array([2, 5], np.int64), "area": np.array([50.0, np.nan], np.float32),
            "city": np.array([b"a", b"zzz"], object),  # NaN and an unseen city are served, not refused
        })
        assert outputs["predictions"].shape == (2,) and np.all(np.isfinite(outputs["predictions"]))
    finally:
        model.close()
