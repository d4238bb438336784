"""tfship.saved_model.loader: reading and running SavedModels the way TF Serving does.

TF Serving's own test models are the reference: tfship did not write them.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from tests.saved_model.test_savedmodel_builders import keras_export, naive_keras_module
from tfship.errors import ModelError, RequestError
from tfship.saved_model.loader import (
    CLASSIFY_METHOD,
    REGRESS_METHOD,
    example_features,
    explain_run_error,
    load_session_model,
    read_signatures,
    read_warmup_requests,
)


def version(testdata: Path, model: str) -> str:
    return str(testdata / model / "00000123")


@pytest.fixture(scope="module")
def half_plus_two(tf_serving_testdata: Path):
    with load_session_model(version(tf_serving_testdata, "saved_model_half_plus_two_cpu")) as model:
        yield model


def test_half_plus_two_runs_through_the_session_loader(half_plus_two) -> None:
    out = half_plus_two.run("serving_default", {"x": np.array([[2.0], [3.0], [4.0]], np.float32)})
    assert out["y"].reshape(-1).tolist() == [3.0, 3.5, 4.0]


def test_signatures_are_read_as_declared(half_plus_two, tf_serving_testdata: Path) -> None:
    signatures = read_signatures(version(tf_serving_testdata, "saved_model_half_plus_two_cpu"))
    assert signatures == half_plus_two.signatures
    assert sorted(signatures) == [
        "classify_x_to_y", "regress_x2_to_y3", "regress_x_to_y", "regress_x_to_y2", "serving_default"
    ]
    x = signatures["serving_default"].inputs["x"]
    assert (x.dtype, x.shape, x.tensor_name) == ("float32", (None, 1), "x:0")
    classify = signatures["classify_x_to_y"]
    assert classify.method_name == CLASSIFY_METHOD
    assert classify.inputs["inputs"].dtype == "string" and classify.inputs["inputs"].shape is None
    assert signatures["regress_x_to_y"].method_name == REGRESS_METHOD
    assert half_plus_two.meta_graph_def.signature_def["serving_default"].method_name.endswith("predict")


def test_classify_signature_takes_serialized_examples(half_plus_two) -> None:
    from tensorflow.core.example import example_pb2

    assert example_features(half_plus_two.meta_graph_def) == {"x": "float32", "x2": "float32"}
    proto = example_pb2.Example()
    proto.features.feature["x"].float_list.value.append(2.0)
    proto.features.feature["x2"].float_list.value.append(0.0)
    serialized = np.array([proto.SerializeToString()], dtype=object)
    assert half_plus_two.run("classify_x_to_y", {"inputs": serialized})["scores"].tolist() == [[3.0]]


def test_tf2_model_has_no_batch_dimension(tf_serving_testdata: Path) -> None:
    with load_session_model(version(tf_serving_testdata, "saved_model_half_plus_two_tf2_cpu")) as model:
        assert model.signatures["serving_default"].inputs["x"].shape == (1,)
        assert model.run("serving_default", {"x": np.array([2.0], np.float32)})["y"].tolist() == [3.0]


def test_reference_variables_read_as_their_base_dtype(tf_serving_testdata: Path) -> None:
    signatures = read_signatures(version(tf_serving_testdata, "saved_model_counter"))
    assert signatures["get_counter"].outputs["output"].dtype == "float32"
    assert signatures["incr_counter_by"].inputs["delta"].shape is None


def test_run_rejects_requests_that_do_not_fit(half_plus_two) -> None:
    with pytest.raises(RequestError, match=r"Unknown signature 'nope'\. Expected one of \['classify_x_to_y'"):
        half_plus_two.run("nope", {})
    with pytest.raises(RequestError, match=r"takes inputs \['x'\]; missing \['x'\], unknown \['z'\]"):
        half_plus_two.run("serving_default", {"z": np.zeros([1, 1], np.float32)})
    with pytest.raises(RequestError, match=r"has no output \['w'\]"):
        half_plus_two.run("serving_default", {"x": np.zeros([1, 1], np.float32)}, ["w"])


def test_run_is_thread_safe(half_plus_two) -> None:
    results: dict[int, list[float]] = {}

    def call(i: int) -> None:
        x = np.full([50, 1], float(i), np.float32)
        for _ in range(20):
            results[i] = half_plus_two.run("serving_default", {"x": x})["y"].reshape(-1).tolist()

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {i: [0.5 * i + 2.0] * 50 for i in range(8)}


def test_legacy_export_without_saved_model_is_rejected(tf_serving_testdata: Path) -> None:
    with pytest.raises(ModelError, match=r"Not a SavedModel: .*bad_half_plus_two.* holds no saved_model\.pb"):
        load_session_model(version(tf_serving_testdata, "bad_half_plus_two"))


def test_missing_path_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"Invalid SavedModel path: .*nowhere' is not a directory"):
        read_signatures(str(tmp_path / "nowhere"))


def test_corrupt_saved_model_pb_is_rejected(tf_serving_testdata: Path, tmp_path: Path) -> None:
    copy = tmp_path / "1"
    shutil.copytree(version(tf_serving_testdata, "saved_model_half_plus_two_cpu"), copy)
    (copy / "saved_model.pb").write_bytes(b"\x0a\xff\xff\xff this is not a protobuf")
    with pytest.raises(ModelError, match=r"Corrupt SavedModel: .*saved_model\.pb cannot be parsed"):
        load_session_model(str(copy))


def test_keras_export_is_servable_and_matches_keras(tmp_path: Path) -> None:
    model = keras_export(str(tmp_path / "1"))
    x = np.array([[1.0, 2.0], [-3.0, 0.5]], np.float32)
    with load_session_model(str(tmp_path / "1")) as loaded:
        (name, spec), = loaded.signatures["serving_default"].inputs.items()
        (output,) = loaded.run("serving_default", {name: x}).values()
    assert spec.shape == (None, 2)
    np.testing.assert_allclose(output, model(x).numpy(), rtol=1e-6)


def test_naive_keras_module_loads_but_cannot_run(tmp_path: Path) -> None:
    """The known pitfall: TF2 loads it, the session loader finds no variables at run time."""
    import tensorflow as tf

    naive_keras_module(str(tmp_path / "1"))
    tf.saved_model.load(str(tmp_path / "1"))  # TF2 is happy
    with load_session_model(str(tmp_path / "1")) as loaded:
        with pytest.raises(tf.errors.FailedPreconditionError) as caught:
            loaded.run("serving_default", {"x": np.ones([1, 2], np.float32)})
    assert "Could not find variable" in explain_run_error(caught.value)
    assert "export it with model.export(path)" in explain_run_error(caught.value)


def test_close_is_idempotent_and_final(tf_serving_testdata: Path) -> None:
    model = load_session_model(version(tf_serving_testdata, "saved_model_half_plus_two_cpu"))
    model.close()
    model.close()
    with pytest.raises(RequestError, match="is closed"):
        model.run("serving_default", {"x": np.zeros([1, 1], np.float32)})


def test_warmup_file_absent_corrupt_and_round_trip(tf_serving_testdata: Path, tmp_path: Path) -> None:
    from tfship.saved_model.warmup import predict_log, write_warmup_file

    assert read_warmup_requests(version(tf_serving_testdata, "saved_model_half_plus_two_cpu")) == []
    record = predict_log("serving_default", {"x": np.array([[2.0]], np.float32)})
    write_warmup_file(str(tmp_path), [record, record])
    assert read_warmup_requests(str(tmp_path)) == [record, record]
    (tmp_path / "assets.extra" / "tf_serving_warmup_requests").write_bytes(b"garbage, not a TFRecord")
    with pytest.raises(ModelError, match=r"tf_serving_warmup_requests is not a valid TFRecord file"):
        read_warmup_requests(str(tmp_path))


def test_a_signature_without_a_shape_has_unknown_rank(tf_serving_testdata: Path) -> None:
    """half_plus_three (TF 1.0) declares no tensor_shape: any shape goes, not only scalars."""
    signatures = read_signatures(version(tf_serving_testdata, "saved_model_half_plus_three"))
    assert signatures["serving_default"].inputs["x"].shape is None
    assert signatures["serving_default"].outputs["y"].shape_text() == "unknown rank"
    declared = read_signatures(version(tf_serving_testdata, "saved_model_half_plus_two_cpu"))
    assert declared["serving_default"].inputs["x"].shape == (None, 1)
