"""tfship export: servable signatures over raw features, assets, warm-up, metadata, atomic versions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from tests.saved_model.test_savedmodel_builders import CLASSES, FEATURES, HELDOUT, VOCABULARY, keras_reference, raw_batch, tiny_job
from tfship.saved_model import signature_inputs
from tfship.errors import ConfigError, DataError, StorageError
from tfship.steps.export.step import METADATA_FILE, ExportConfig, export_job, next_version
from tfship.saved_model.loader import CLASSIFY_METHOD, PREDICT_METHOD, REGRESS_METHOD, load_session_model, read_warmup_requests
from tfship.saved_model.warmup import replay


@pytest.fixture(scope="module")
def classification(tmp_path_factory: pytest.TempPathFactory):
    """A tiny classification job and its export (version 1)."""
    root = tmp_path_factory.mktemp("classification")
    job = tiny_job(str(root / "job"))
    result = export_job(job, ExportConfig(job_dir=str(root / "job"), export_dir=str(root / "export")))
    return job, result


@pytest.fixture(scope="module")
def loaded(classification):
    with load_session_model(classification[1].path) as model:
        yield model


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_version_layout_and_vocabulary_assets(classification) -> None:
    job, result = classification
    root = Path(result.path)
    assert result.version == 1 and root.name == "1"
    assert {p.name for p in root.iterdir()} >= {"saved_model.pb", "variables", "assets", "assets.extra"}
    assert (root / "assets" / "c.txt").read_text().split() == VOCABULARY
    assert (root / "assets" / "_label.txt").read_text().split() == CLASSES
    assert [p.name for p in root.parent.iterdir()] == ["1"]  # no staging directory left behind


def test_serving_default_takes_raw_features_and_matches_keras(classification, loaded) -> None:
    job, _ = classification
    signature = loaded.signatures["serving_default"]
    assert signature.method_name == PREDICT_METHOD
    declared = {n: (s.dtype, s.shape) for n, s in signature.inputs.items()}
    assert declared == {n: (d, (None,)) for n, d in FEATURES.items()}
    assert {n: (s.dtype, s.shape) for n, s in signature.outputs.items()} == {
        "class_ids": ("int64", (None,)), "classes": ("string", (None,)), "probabilities": ("float32", (None, 3)),
    }
    for n in (5, 1):  # two batch sizes through the same graph
        raw = raw_batch(n, seed=n)
        out = loaded.run("serving_default", raw)
        expected = softmax(keras_reference(job, raw))
        np.testing.assert_allclose(out["probabilities"], expected, rtol=1e-5, atol=1e-6)
        assert out["class_ids"].tolist() == expected.argmax(-1).tolist()
        assert [c.decode() for c in out["classes"]] == [CLASSES[i] for i in expected.argmax(-1)]


def test_classify_signature_over_tf_examples(loaded) -> None:
    signature = loaded.signatures["classify"]
    assert signature.method_name == CLASSIFY_METHOD
    assert list(signature.inputs) == ["inputs"]
    rows = HELDOUT
    serialized = signature_inputs.serialized_examples(rows, FEATURES)
    out = loaded.run("classify", {"inputs": serialized})
    raw = {name: signature_inputs.column(rows, name, dtype, 1) for name, dtype in FEATURES.items()}
    direct = loaded.run("serving_default", raw)
    np.testing.assert_allclose(out["scores"], direct["probabilities"], rtol=1e-6)
    assert out["classes"].tolist() == [[c.encode() for c in CLASSES]] * len(rows)


def test_warmup_records_parse_and_replay(classification, loaded) -> None:
    records = read_warmup_requests(classification[1].path)
    assert [r.WhichOneof("log_type") for r in records] == ["predict_log", "predict_log", "classify_log"]
    assert len(records[0].predict_log.request.inputs["c"].string_val) == len(HELDOUT)
    assert len(records[2].classify_log.request.input.example_list.examples) == len(HELDOUT)
    assert [replay(loaded, r) for r in records] == ["predict serving_default"] * 2 + ["classify classify"]


def test_metadata_beside_the_model(classification) -> None:
    job, result = classification
    metadata = json.loads(Path(result.path, METADATA_FILE).read_text())
    assert metadata["checkpoint_step"] == 42
    assert metadata["schema"]["features"] == FEATURES and metadata["schema"]["task"] == "classification"
    assert metadata["metrics"] == {"heldout_accuracy": 0.5}
    assert metadata["fingerprints"] == {"data": "d1", "code": "c1"}
    assert metadata["class_names"] == CLASSES
    assert metadata["signatures"] == {"classify": CLASSIFY_METHOD, "serving_default": PREDICT_METHOD}
    assert metadata == result.metadata


def test_regression_export(tmp_path: Path) -> None:
    job = tiny_job(str(tmp_path / "job"), task="regression")
    result = export_job(job, ExportConfig(str(tmp_path / "job"), str(tmp_path / "export"), version=7))
    assert result.signatures == {"regress": REGRESS_METHOD, "serving_default": PREDICT_METHOD}
    raw = raw_batch(4)
    with load_session_model(result.path) as model:
        out = model.run("serving_default", raw)["predictions"]
        by_example = model.run("regress", {"inputs": signature_inputs.serialized_examples(
            [{k: v[i] for k, v in raw.items()} for i in range(4)], FEATURES)})["outputs"]
        assert model.signatures["regress"].outputs["outputs"].shape == (None,)
    np.testing.assert_allclose(out, keras_reference(job, raw).reshape(-1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(by_example, out, rtol=1e-6)
    assert Path(result.path).name == "7"


def test_next_version_is_pure_and_skips_non_versions() -> None:
    assert next_version([]) == 1
    assert next_version(["1", "3", ".tmp-4-abc", "3.validation.json", "latest"]) == 4
    assert next_version(["0009", "10"]) == 11


def test_default_version_is_next_and_existing_version_is_refused(classification, tmp_path: Path) -> None:
    job, first = classification
    export_dir = str(Path(first.path).parent)
    second = export_job(job, ExportConfig(job.job_dir, export_dir, warmup_rows=0))
    try:
        assert second.version == 2 and second.warmup_records == 0
        assert read_warmup_requests(second.path) == []
        with pytest.raises(ConfigError, match=r"`version`: 2 already exists in .*Pick another --version or omit it"):
            export_job(job, ExportConfig(job.job_dir, export_dir, version=2))
    finally:
        import shutil

        shutil.rmtree(second.path)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"version": 0}, ConfigError, r"`version`: 0\. Expected a positive integer"),
        ({"version": "3"}, ConfigError, r"`version`: '3'\. Expected a positive integer"),
        ({"version": True}, ConfigError, r"`version`: True\. Expected a positive integer"),
        ({"warmup_rows": 1001}, ConfigError, r"`warmup_rows`: 1001\. Expected an integer in \[0, 1000\]"),
        ({"export_dir": "s3://b/x"}, StorageError, r"Invalid --export-dir: 's3://b/x' has the unknown scheme 's3'"),
    ],
)
def test_config_is_checked_when_built(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        ExportConfig(**{"job_dir": "job", "export_dir": "export", **kwargs})


def test_failure_mid_write_leaves_no_version(tmp_path: Path) -> None:
    """The SavedModel is already written when the warm-up rows turn out bad: nothing is published."""
    bad_rows = [{"a": "not a number", "b": 1, "c": "x"}]
    job = tiny_job(str(tmp_path / "job"), heldout=bad_rows)
    export_dir = tmp_path / "export"
    with pytest.raises(DataError, match=r"held-out rows: row 0, 'a': cannot read 'not a number' as float32"):
        export_job(job, ExportConfig(str(tmp_path / "job"), str(export_dir), version=3))
    assert list(export_dir.iterdir()) == []


def test_killed_export_never_exposes_a_version(tmp_path: Path) -> None:
    """SIGKILL while the SavedModel is being written: only a hidden staging directory remains."""
    export_dir = tmp_path / "export"
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parents[2])!r})  # the repository root: `tests` imports
        from tests.saved_model.test_savedmodel_builders import tiny_job
        from tfship.steps.export.step import ExportConfig, export_job
        job = tiny_job({str(tmp_path / "job")!r})
        print("ready", flush=True)
        export_job(job, ExportConfig({str(tmp_path / "job")!r}, {str(export_dir)!r}, version=5))
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    try:
        assert process.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while not any(p.name.startswith(".tmp-5-") for p in export_dir.glob(".tmp-*")):
            assert time.monotonic() < deadline and process.poll() is None, "no staging directory appeared"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    names = [p.name for p in export_dir.iterdir()]
    assert "5" not in names and names and all(n.startswith(".tmp-5-") for n in names)
    assert next_version(names) == 1  # TF Serving and the next export ignore the leftover


def test_export_to_gcs_uploads_saved_model_pb_last(classification, gcs_bucket: str, tmp_path: Path) -> None:
    from tfship import storage

    job, local = classification
    result = export_job(job, ExportConfig(job.job_dir, f"{gcs_bucket}/models/tiny"))
    assert result.path == f"{gcs_bucket}/models/tiny/1"
    local_files = storage.list_files(local.path)
    assert storage.list_files(result.path) == local_files
    blobs = {b.name: b for b in storage.gcs_client().list_blobs(gcs_bucket[len("gs://"):], prefix="models/tiny/1/")}
    newest = max(blobs.values(), key=lambda b: (b.generation, b.updated))
    assert newest.name == "models/tiny/1/saved_model.pb"  # the completion marker is written last
    storage.download_tree(result.path, str(tmp_path / "1"))
    with load_session_model(str(tmp_path / "1")) as model:
        assert sorted(model.signatures) == ["classify", "serving_default"]
    second = export_job(job, ExportConfig(job.job_dir, f"{gcs_bucket}/models/tiny", warmup_rows=0))
    assert second.version == 2
    from tfship.saved_model.inspect import describe

    text = describe(result.path)  # inspect reads gs:// too (without downloading the variables)
    assert text.startswith(f"SavedModel {result.path}\n") and "warm-up: 3 record(s)" in text
