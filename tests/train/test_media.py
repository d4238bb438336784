"""Image, text and vector features through the chain: schema, data, training, export, validate.

Real TensorFlow on tiny data: 8x8 PNG digits written by the test, short texts, 4-wide vectors.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import tfship
from tfship import demo, local_runner, storage
from tfship.saved_model import signature_inputs
from tfship.steps.canary.examples import as_json_values, fit_examples, read_examples
from tfship.commands import run as run_command
from tfship.steps.train.data import analyze, make_dataset, read_rows, resolve_files
from tfship.demo import TEXT_LANGUAGES, write_image_demo
from tfship.errors import EXIT_BAD_INPUT, EXIT_PREEMPTED, ConfigError, DataError, SchemaError, StorageError
from tfship.steps.train.job import load_trained_job
from tfship.steps.train.model_families import ModelContext, build_model
from tfship.saved_model.loader import load_session_model, read_signatures
from tfship.schema import Schema, load_schema
from tfship.steps.serve import rest_json
from tests.conftest import importable_module
from tests.train.test_train import assert_same_weights, cli_args, start, wait_for_event


def write(path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_image_text_and_vector_features_round_trip(tmp_path) -> None:
    schema = load_schema(write(tmp_path / "s.yaml", (
        "task: classification\nlabel: y\nfeatures:\n"
        "  image: {dtype: image, shape: [28, 28, 1]}\n"
        "  review: {dtype: text, max_tokens: 20000, sequence_length: 128}\n"
        "  embedding: {dtype: float32, shape: [16]}\n"
        "  notes: text\n"
        "  x: float32\n")))
    assert schema.image_features == ["image"] and schema.text_features == ["review", "notes"]
    assert schema.vector_features == ["embedding"] and schema.numeric_features == ["x"]
    assert schema.shape_of("image") == (28, 28, 1) and schema.raw_shape("embedding") == (16,)
    assert schema.raw_dtypes == {"image": "string", "review": "string", "embedding": "float32",
                                 "notes": "string", "x": "float32"}
    assert schema.options["notes"] == {"max_tokens": 20000, "sequence_length": 128}  # the defaults
    assert Schema.from_dict(schema.to_dict()) == schema  # what the job file records


@pytest.mark.parametrize(
    "feature, message",
    [
        ("image", r"Image feature 'f' needs a shape"),
        ("{dtype: image}", r"Feature 'f': invalid `shape`: None\. Expected \[height, width, channels\]"),
        ("{dtype: image, shape: [8, 8, 2]}", r"The channels \(last\) must be 1 \(grayscale\), 3 \(RGB\) or 4"),
        ("{dtype: image, shape: [8, 0, 1]}", r"invalid `shape`: \[8, 0, 1\]"),
        ("{dtype: float32, shape: [4, 4]}", r"invalid `shape`: \[4, 4\]\. Expected \[n\]"),
        ("{dtype: text, max_tokens: 0}", r"Feature 'f': invalid `max_tokens`: 0\. Expected an integer >= 1"),
        ("{dtype: text, sequence_length: many}", r"invalid `sequence_length`: 'many'"),
        ("{dtype: text, shape: [3]}", r"unknown key\(s\) \['shape'\] for dtype text"),
        ("{dtype: string, shape: [3]}", r"Feature 'f' of dtype 'string' takes no settings"),
        ("{shape: [3]}", r"feature 'f': a mapping needs a `dtype` key"),
        ("{dtype: audio}", r"Invalid dtype for feature 'f': 'audio'"),
    ],
)
def test_bad_media_feature_is_one_line_naming_the_feature(tmp_path, feature: str, message: str) -> None:
    path = write(tmp_path / "s.yaml", f"task: classification\nlabel: y\nfeatures:\n  f: {feature}\n")
    with pytest.raises(SchemaError, match=message) as caught:
        load_schema(path)
    assert "\n" not in str(caught.value) and str(caught.value).startswith(f"schema {path}: ")


# ---- data, training and export on a tiny mixed data set ------------------------------------

ROWS = 40
MIXED_SCHEMA = """\
task: classification
label: parity
features:
  image: {dtype: image, shape: [8, 8, 1]}
  review: {dtype: text, max_tokens: 200, sequence_length: 12}
  embedding: {dtype: float32, shape: [4]}
  x: float32
"""
TINY_MODEL = {"conv_filters": [4], "text_embedding_dim": 4, "hidden_units": [8]}


def png(pixels: np.ndarray) -> bytes:
    return tf.io.encode_png(pixels.astype(np.uint8)).numpy()


def digits(n: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return np.round(data.images[:n] * (255 / 16))[..., np.newaxis], data.target[:n]


def example(**features) -> bytes:
    proto = tf.train.Example()
    for name, value in features.items():
        feature = proto.features.feature[name]
        if isinstance(value, bytes):
            feature.bytes_list.value.append(value)
        elif isinstance(value, str):
            feature.bytes_list.value.append(value.encode())
        else:
            feature.float_list.value.extend(np.atleast_1d(value).tolist())
    return proto.SerializeToString()


def write_records(path, records: list[bytes]) -> str:
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return str(path)


@pytest.fixture(scope="module")
def mixed_data(tmp_path_factory) -> tuple[str, str]:
    """ROWS tf.Examples: an 8x8 PNG digit, a sentence, a 4-vector, a number; label: the digit's parity."""
    folder = tmp_path_factory.mktemp("mixed")
    images, targets = digits(ROWS)
    words = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "zero"]
    records = [example(image=png(image), review=f"Digit {words[t - 1]}, written by hand!", embedding=[t, 1.0, -t, 0.5],
                       x=float(i), parity="even" if t % 2 == 0 else "odd")
               for i, (image, t) in enumerate(zip(images, targets))]
    data = write_records(folder / "rows.tfrecord", records)
    return data, write(folder / "schema.yaml", MIXED_SCHEMA)


@pytest.fixture(scope="module")
def mixed_export(mixed_data, tmp_path_factory) -> tuple[str, str]:
    """(job_dir, version_dir): 8 steps of the default model, exported."""
    root = tmp_path_factory.mktemp("mixed-job")
    job_dir = str(root / "job")
    tfship.train(*mixed_data, job_dir, steps=8, checkpoint_every=8, batch_size=8, hparams=TINY_MODEL)
    return job_dir, tfship.export(job_dir, str(root / "export")).path


def test_text_vocabulary_is_learned_and_shipped_as_an_asset(mixed_export) -> None:
    job_dir, version = mixed_export
    vocabulary = (Path(job_dir) / "vocabularies" / "review.txt").read_text().split()
    # Lower-cased and stripped of punctuation by the graph's own tokenizer; most frequent first.
    assert vocabulary[:4] == ["by", "digit", "hand", "written"] and "Digit" not in vocabulary
    assert (Path(version) / "assets" / "review.txt").read_text().split() == vocabulary
    signature = read_signatures(version)["serving_default"]
    assert {name: (spec.dtype, spec.shape) for name, spec in signature.inputs.items()} == {
        "image": ("string", (None,)), "review": ("string", (None,)), "embedding": ("float32", (None, 4)),
        "x": ("float32", (None,))}


def test_served_model_decodes_images_as_training_did(mixed_data, mixed_export) -> None:
    """Raw bytes (gRPC), REST {"b64": ...} and tf.Example (classify) give the probabilities of the
    trained Keras model on the training pipeline's own preprocessing."""
    job_dir, version = mixed_export
    schema = load_schema(mixed_data[1])
    rows = read_rows(resolve_files(mixed_data[0]), schema, 5, "heldout", 8)
    features = [{k: v for k, v in row.items() if k != "parity"} for row in rows]
    raw = {name: signature_inputs.column(features, name, dtype, 1) for name, dtype in schema.raw_dtypes.items()}
    job = load_trained_job(job_dir)
    expected = tf.nn.softmax(job.model(job.preprocessor(raw), training=False)).numpy()
    rest_doc = {"instances": [{name: signature_inputs.json_value(value) for name, value in row.items()} for row in features]}
    assert "b64" in rest_doc["instances"][0]["image"]
    with load_session_model(version) as model:
        sig = model.signatures["serving_default"]
        input_dtypes = {name: tf.as_dtype(spec.dtype).as_datatype_enum for name, spec in sig.inputs.items()}
        from_rest, _ = rest_json.predict_inputs(rest_doc, input_dtypes)
        by_bytes = model.run("serving_default", raw)["probabilities"]
        by_rest = model.run("serving_default", from_rest)["probabilities"]
        by_example = model.run("classify", {"inputs": signature_inputs.serialized_examples(features, schema.raw_dtypes)})["scores"]
    np.testing.assert_allclose(by_bytes, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(by_rest, by_bytes)
    np.testing.assert_allclose(by_example, by_bytes, rtol=1e-6)


def test_validate_and_canary_read_b64_examples_from_the_data(mixed_data, mixed_export, tmp_path) -> None:
    _, version = mixed_export
    examples = write(tmp_path / "examples.jsonl", local_runner.examples_from_data(*mixed_data, rows=5))
    contract = write(tmp_path / "contract.yaml", local_runner.contract_from_schema(mixed_data[1]))
    lines = [json.loads(line) for line in Path(examples).read_text().splitlines()]
    assert len(lines) == 5 and set(lines[0]["image"]) == {"b64"} and isinstance(lines[0]["review"], str)
    report = tfship.validate(version, contract, examples=examples, report=str(tmp_path / "report.json"))
    assert report.passed, report
    with pytest.raises(ConfigError, match=r"takes image or vector feature\(s\) \['image', 'embedding'\], which "
                                          r"validate cannot generate: pass --examples"):
        tfship.validate(version, contract, report=str(tmp_path / "generated.json"))
    assert not (tmp_path / "generated.json").exists()
    signature = read_signatures(version)["serving_default"]
    fitted = fit_examples(read_examples(examples), signature, examples)
    assert fitted[0]["image"].item()[:4] == b"\x89PNG"  # decoded to the bytes gRPC sends
    assert as_json_values(fitted[0])["image"] == lines[0]["image"]  # and back to b64 for REST


# ---- bad input: one line naming the file, row and feature; exit 2; nothing written -----------

IMAGE_SCHEMA = "task: classification\nlabel: y\nfeatures:\n  image: {dtype: image, shape: [8, 8, 1]}\n"


def image_records(tmp_path, bad: bytes | None = None, rows: int = 6) -> str:
    images, targets = digits(rows)
    records = [example(image=png(image), y=str(t)) for image, t in zip(images, targets)]
    if bad is not None:
        records[1] = example(image=bad, y="1")
    return write_records(tmp_path / "rows.tfrecord", records)


def analyze_files(data: str, schema_text: str, tmp_path) -> None:
    analyze(resolve_files(data), load_schema(write(tmp_path / "schema.yaml", schema_text)), holdout_every=5)


@pytest.mark.parametrize(
    "bad, message",
    [
        (b"not an image", r"rows\.tfrecord: record 1: feature 'image': not a decodable image \(PNG, JPEG, GIF or BMP\)"),
        (None, r"rows\.tfrecord: record 1: feature 'image': the image has 3 channel\(s\); the schema's shape says 1\."),
    ],
    ids=["undecodable", "rgb-for-grayscale"],
)
def test_bad_image_in_tfrecord_names_record_and_feature(tmp_path, bad: bytes | None, message: str) -> None:
    data = image_records(tmp_path, bad if bad is not None else png(np.zeros((8, 8, 3))))
    with pytest.raises(DataError, match=message) as caught:
        analyze_files(data, IMAGE_SCHEMA, tmp_path)
    assert "\n" not in str(caught.value)


def test_bad_image_in_csv_names_line_and_column(tmp_path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "ok.png").write_bytes(png(np.zeros((8, 8, 1))))
    (tmp_path / "images" / "broken.png").write_bytes(b"\x89PNG truncated")
    rows = "image,y\nimages/ok.png,a\nimages/ok.png,b\nimages/broken.png,a\n"
    data = write(tmp_path / "d.csv", rows)
    with pytest.raises(DataError, match=r"d\.csv:4: column 'image' \(.*images/broken\.png\): not a decodable image"):
        analyze_files(data, IMAGE_SCHEMA, tmp_path)
    write(tmp_path / "d.csv", rows.replace("broken", "missing"))
    with pytest.raises(DataError, match=r"d\.csv:4: column 'image': cannot read image .*images/missing\.png: "
                                        r"No such file or directory"):
        analyze_files(data, IMAGE_SCHEMA, tmp_path)


def test_images_named_by_a_csv_train_from_paths_relative_to_it(tmp_path) -> None:
    """The tf.data pipeline reads the files the analysis pass checked (relative to the CSV's folder)."""
    images, targets = digits(10)
    (tmp_path / "data" / "img").mkdir(parents=True)
    lines = ["image,y"]
    for index, (image, target) in enumerate(zip(images, targets)):
        (tmp_path / "data" / "img" / f"{index}.png").write_bytes(png(image))
        lines.append(f"img/{index}.png,{target % 2}")
    data = write(tmp_path / "data" / "d.csv", "\n".join(lines) + "\n")
    schema = load_schema(write(tmp_path / "schema.yaml", IMAGE_SCHEMA))
    batch = next(iter(make_dataset(resolve_files(data), schema, 4, 5, "heldout", 0)))
    assert [bytes(b) for b in batch[0]["image"].numpy()] == [png(images[4]), png(images[9])]


def test_images_named_by_a_gcs_csv_are_fetched_beside_its_local_copy(tmp_path, gcs_bucket, monkeypatch) -> None:
    """gs:// data: the CSV and the images its rows name (relative to it) are mirrored into the local
    cache, so training reads them as for local data; a missing image object is named."""
    monkeypatch.setenv("TFSHIP_CACHE", str(tmp_path / "cache"))
    images, targets = digits(12)
    lines = ["image,y"]
    for index, (image, target) in enumerate(zip(images, targets)):
        storage.write_bytes(f"{gcs_bucket}/digits/img/{index}.png", png(image))
        lines.append(f"img/{index}.png,{target % 2}")
    storage.write_text(f"{gcs_bucket}/digits/d.csv", "\n".join(lines) + "\n")
    schema_path = write(tmp_path / "schema.yaml", IMAGE_SCHEMA)
    result = tfship.train(f"{gcs_bucket}/digits/*.csv", schema_path, str(tmp_path / "job"), steps=4,
                          checkpoint_every=4, batch_size=4, hparams={"conv_filters": [4]})
    assert result.step == 4
    files = resolve_files(f"{gcs_bucket}/digits/d.csv", schema=load_schema(schema_path))
    mirrored = Path(files.paths[0]).parent / "img"
    assert sorted(p.name for p in mirrored.iterdir()) == sorted(f"{i}.png" for i in range(12))
    assert (mirrored / "3.png").read_bytes() == png(images[3])
    storage.write_text(f"{gcs_bucket}/gone/d.csv", "image,y\nimg/nowhere.png,1\n")
    with pytest.raises(StorageError, match=r"gone/img/nowhere\.png"):
        resolve_files(f"{gcs_bucket}/gone/d.csv", schema=load_schema(schema_path))


@pytest.mark.parametrize(
    "rows, schema_text, message",
    [
        ("review,y\n...,a\n!!,b\n,a\n", "review: text",
         r"Text feature 'review' holds no words in the 3 training row\(s\) of .*d\.csv: nothing to learn"),
        ("v,y\n1,a\n", "v: {dtype: float32, shape: [4]}", r"Vector feature\(s\) \['v'\] need TFRecord data"),
    ],
    ids=["text-without-words", "vector-in-csv"],
)
def test_unusable_text_or_vector_column_is_one_line(tmp_path, rows: str, schema_text: str, message: str) -> None:
    data = write(tmp_path / "d.csv", rows)
    with pytest.raises(DataError, match=message):
        analyze_files(data, f"task: classification\nlabel: y\nfeatures:\n  {schema_text}\n", tmp_path)


def test_vector_of_the_wrong_length_names_record_and_feature(tmp_path) -> None:
    data = write_records(tmp_path / "rows.tfrecord", [example(v=[1.0, 2.0, 3.0, 4.0], y="a"),
                                                      example(v=[1.0, 2.0, 3.0], y="b")])
    with pytest.raises(DataError, match=r"record 1: feature 'v' has 3 float_list value\(s\); expected 4 number"):
        analyze_files(data, "task: classification\nlabel: y\nfeatures:\n  v: {dtype: float32, shape: [4]}\n", tmp_path)


def test_train_cli_refuses_a_bad_image_with_exit_2_and_writes_nothing(tmp_path) -> None:
    data = image_records(tmp_path, b"GIF89a broken")
    schema = write(tmp_path / "schema.yaml", IMAGE_SCHEMA)
    job_dir = tmp_path / "job"
    result = subprocess.run([sys.executable, "-m", "tfship.cli", "train", "--data", data, "--schema", schema,
                             "--job-dir", str(job_dir), "--steps", "2"], capture_output=True, text=True, timeout=120)
    assert result.returncode == EXIT_BAD_INPUT
    lines = [line for line in result.stderr.splitlines() if line.startswith("tfship train: error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "rows.tfrecord: record 1: feature 'image': not a decodable image" in lines[0]
    assert not job_dir.exists()


# ---- exact resume on image data ---------------------------------------------------------------


def test_sigkill_then_resume_on_image_data_ends_with_identical_weights(tmp_path) -> None:
    """The kill test of test_train.py, on PNG digits: decoding in tf.data keeps the resume exact."""
    data, schema = write_image_demo(str(tmp_path / "digits"), limit=100)
    flags = {"hparam": "conv_filters=[4]"}
    reference = str(tmp_path / "reference")
    subprocess.run(cli_args(data, schema, reference, **flags), check=True, capture_output=True, timeout=300)
    job_dir = str(tmp_path / "job")
    process = start(cli_args(data, schema, job_dir, **flags))
    wait_for_event(process, lambda e: e["event"] == "checkpoint" and e["step"] == 10)
    wait_for_event(process, lambda e: e["event"] == "progress" and e["step"] >= 13)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    resumed = subprocess.run(cli_args(data, schema, job_dir, **flags), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    start_event = next(json.loads(line) for line in resumed.stderr.splitlines() if '"event": "start"' in line)
    assert start_event["resumed_from"] in (10, 20)
    assert_same_weights(f"{reference}/checkpoints/ckpt-30", f"{job_dir}/checkpoints/ckpt-30")


def test_sigterm_on_text_data_checkpoints_exits_143_and_resumes_exactly(tmp_path) -> None:
    """The SIGTERM test of test_train.py, on the jokes: tokenising in tf.data keeps the preemption
    checkpoint and the resume exact."""
    data, schema = demo.write_text_demo(str(tmp_path / "jokes"))
    flags = {"hparam": "text_embedding_dim=4", "checkpoint_every": 1000}
    reference = str(tmp_path / "reference")
    subprocess.run(cli_args(data, schema, reference, **flags), check=True, capture_output=True, timeout=300)
    job_dir = str(tmp_path / "job")
    process = start(cli_args(data, schema, job_dir, **flags))
    wait_for_event(process, lambda e: e.get("event") == "progress" and e["step"] >= 5)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == EXIT_PREEMPTED, stderr[-2000:]
    preempted = next(json.loads(line) for line in stderr.splitlines() if '"event": "preempted"' in line)
    assert tf.train.latest_checkpoint(f"{job_dir}/checkpoints").endswith(f"ckpt-{preempted['step']}")
    resumed = subprocess.run(cli_args(data, schema, job_dir, **flags), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_weights(f"{reference}/checkpoints/ckpt-30", f"{job_dir}/checkpoints/ckpt-30")


def test_multi_worker_training_on_image_text_and_vector_data(mixed_data, tmp_path) -> None:
    """Two local worker processes (MultiWorkerMirroredStrategy over gRPC on 127.0.0.1) on PNG images,
    text and vectors: the chief writes the checkpoints; a resume skips to the input position."""
    from tests.conftest import free_port

    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    job_dir = str(tmp_path / "job")
    model = [arg for key, value in TINY_MODEL.items() for arg in ("--hparam", f"{key}={json.dumps(value)}")]

    def train_on_both(steps: int) -> list[str]:
        args = [*cli_args(*mixed_data, job_dir, steps=steps, checkpoint_every=4, batch_size=8), *model]
        workers = [start(args, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}))
                   for i in range(2)]
        errors = [worker.communicate(timeout=300)[1] for worker in workers]
        assert [worker.returncode for worker in workers] == [0, 0], errors[0][-2000:] + errors[1][-2000:]
        return errors

    first = train_on_both(8)
    start_event = next(json.loads(line) for line in first[0].splitlines() if '"event": "start"' in line)
    assert (start_event["workers"], start_event["replicas"]) == (2, 2)
    assert tf.train.latest_checkpoint(f"{job_dir}/checkpoints").endswith("ckpt-8")
    resumed = train_on_both(12)
    assert next(json.loads(line) for line in resumed[0].splitlines() if '"event": "start"' in line)["resumed_from"] == 8
    assert json.loads(Path(job_dir, "metrics.json").read_text())["step"] == 12


def test_run_demo_text_writes_the_jokes_and_names_the_model(tmp_path) -> None:
    parser = argparse.ArgumentParser()
    run_command.add_arguments(parser)
    config = run_command.config_from_args(parser.parse_args(["--demo", "text", "--run-dir", str(tmp_path)]))
    assert config.name == "jokes" and config.data == str(tmp_path / "data" / "jokes.csv")
    schema = load_schema(config.schema)
    stats = analyze(resolve_files(config.data), schema, holdout_every=5)
    assert stats.classes == sorted(TEXT_LANGUAGES) and stats.train_rows + stats.heldout_rows > 900
    vocabulary = stats.vocabularies["joke"]
    assert 1000 < len(vocabulary) <= schema.options["joke"]["max_tokens"] and vocabulary[:2] == ["chuck", "norris"]
    with pytest.raises(ConfigError, match="--demo image runs the embedded demo data; it takes no --data"):
        run_command.config_from_args(parser.parse_args(["--demo", "image", "--data", "x.csv", "--schema", "s.yaml"]))


def test_model_functions_get_keras_inputs_for_every_feature_kind() -> None:
    schema = Schema.from_dict({"task": "classification", "label": "y", "features": {
        "image": {"dtype": "image", "shape": [28, 28, 3]}, "review": {"dtype": "text", "sequence_length": 16},
        "embedding": {"dtype": "float32", "shape": [5]}, "colour": "string", "x": "float32"}})
    ctx = ModelContext(schema, {"review": 50, "colour": 3}, num_outputs=4, hparams={"conv_filters": [2]})
    inputs = ctx.keras_inputs()
    assert {name: (tuple(t.shape), t.dtype) for name, t in inputs.items()} == {
        "image": ((None, 28, 28, 3), "float32"), "review": ((None, 16), "int64"), "embedding": ((None, 5), "float32"),
        "colour": ((None, 1), "int64"), "x": ((None, 1), "float32")}
    model = build_model("mlp", ctx)  # each kind made dense by ctx.dense: CNN, pooled embedding, ...
    assert model.output.shape == (None, 4)
    assert {layer.name for layer in model.layers} >= {"image_conv_0", "review_embedding", "review_mean"}


# ---- a team's own --input on image, text and vector features ------------------------------------

MEDIA_INPUT_MODULE = '''
import tensorflow as tf

FEATURES = {"image": tf.io.FixedLenFeature([], tf.string), "review": tf.io.FixedLenFeature([], tf.string),
            "embedding": tf.io.FixedLenFeature([4], tf.float32), "x": tf.io.FixedLenFeature([], tf.float32),
            "parity": tf.io.FixedLenFeature([], tf.string)}


def raw(ctx):
    """Encoded PNG bytes, the text, the 4-vector: what tfship's own reader yields."""
    rows = tf.data.TFRecordDataset(list(ctx.files)).map(lambda r: tf.io.parse_single_example(r, FEATURES))
    return rows.map(lambda row: ({k: row[k] for k in ("image", "review", "embedding", "x")}, row["parity"]))


def decoded(ctx):
    """The image decoded to pixels: not what the serving signature takes."""
    return raw(ctx).map(lambda f, label: ({**f, "image": tf.io.decode_png(f["image"])}, label))
'''


@pytest.fixture(scope="module")
def media_input_module(tmp_path_factory) -> str:
    with importable_module(tmp_path_factory.mktemp("team-media"), "team_media", MEDIA_INPUT_MODULE) as folder:
        yield folder


def test_input_function_trains_on_raw_image_text_and_vector_features(mixed_data, media_input_module, tmp_path) -> None:
    result = tfship.train(*mixed_data, str(tmp_path / "job"), steps=4, checkpoint_every=4, batch_size=8,
                          hparams=TINY_MODEL, input_fn="team_media:raw")
    assert result.step == 4 and np.isfinite(result.metrics["heldout_loss"])


def test_input_function_with_decoded_images_is_refused_by_name(mixed_data, media_input_module, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"^--input 'team_media:decoded' returns feature 'image' as uint8; "
                                          r"the schema says image, given as its raw string\.$"):
        tfship.train(*mixed_data, str(tmp_path / "job"), steps=4, batch_size=8, hparams=TINY_MODEL,
                     input_fn="team_media:decoded")
