"""`tfship run --saved-model`: a model trained elsewhere through validate, push, canary and promote.

Real SavedModels: a Keras 3 `model.export()`, a plain `tf.Module`, TF Serving's own test models,
and a naive Keras 3 `tf.saved_model.save` that TF Serving's loader refuses.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from tests.chain.test_run import tfship
from tests.saved_model.test_savedmodel_builders import keras_export, naive_keras_module, plain_module
from tfship import local_runner
from tfship import models_config
from tfship.errors import ConfigError, ModelError
from tfship.steps.export.step import import_saved_model


def _same_tree(left: Path, right: Path) -> bool:
    """Whether two folders hold the same files with the same bytes (empty folders aside: push skips them)."""
    def files(root: Path) -> dict[Path, bytes]:
        return {path.relative_to(root): path.read_bytes() for path in root.rglob("*") if path.is_file()}

    return files(left) == files(right)


def _stable(repo: Path, name: str) -> int | None:
    return models_config.version_labels(models_config.read_models_config(str(repo)), name).get("stable")


@pytest.mark.parametrize("kind", ["keras_export", "tf_module", "tf_serving"])
def test_import_copies_a_servable_saved_model_unchanged(tmp_path, kind, tf_serving_testdata):
    if kind == "keras_export":
        source = tmp_path / "model"
        keras_export(str(source))
    elif kind == "tf_module":
        source = tmp_path / "model"
        plain_module(str(source))
    else:
        source = tf_serving_testdata / "saved_model_half_plus_two_cpu" / "00000123"
    result = import_saved_model(str(source), str(tmp_path / "export"), 7)
    assert result.version == 7 and "serving_default" in result.signatures
    assert _same_tree(source, tmp_path / "export" / "7")
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["7"]  # no staging left


def test_a_saved_model_in_a_bucket_is_planned_and_imported_into_a_bucket(gcs_bucket, tf_serving_testdata):
    """What the DAG's and the pipeline's pods do with a gs:// `saved_model` (GCS is fake-gcs-server)."""
    from tfship import storage

    source = tf_serving_testdata / "saved_model_half_plus_two_cpu" / "00000123"
    model = f"{gcs_bucket}/elsewhere/hp/123"
    storage.upload_tree(str(source), model, storage.local_files(str(source)))
    config = local_runner.chain.ChainConfig(data="", schema="", saved_model=model, runs_root=f"{gcs_bucket}/runs",
                                            repo=f"{gcs_bucket}/repo", name="hp")
    run_plan = local_runner.plan(config, "r1")
    assert "x" in yaml.safe_load(storage.read_text(run_plan.default_contract))["signatures"]["serving_default"]["inputs"]
    assert len(storage.read_text(run_plan.default_examples).splitlines()) == local_runner.EXAMPLE_ROWS
    result = import_saved_model(model, run_plan.export_dir, run_plan.version)
    assert result.metadata["source"] == model
    assert sorted(storage.list_files(result.path)) == sorted(storage.local_files(str(source)))


def test_import_refuses_what_tf_serving_cannot_load_and_writes_nothing(tmp_path):
    naive_keras_module(str(tmp_path / "naive"))
    result = tfship("export", "--saved-model", str(tmp_path / "naive"), "--export-dir", str(tmp_path / "export"))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "fails its first request to serving_default" in lines[0]
    assert "Could not find variable" in lines[0]
    assert "model.export" in lines[0]  # the way out
    assert not (tmp_path / "export").exists() or not list((tmp_path / "export").iterdir())


def test_contract_and_examples_come_from_the_signatures(tmp_path, tf_serving_testdata):
    model = tf_serving_testdata / "saved_model_half_plus_two_cpu" / "00000123"
    config = local_runner.chain.ChainConfig(data="", schema="", saved_model=str(model), runs_root=str(tmp_path / "runs"),
                                            repo=str(tmp_path / "repo"), name="hp")
    run_plan = local_runner.plan(config, "r1")
    contract = yaml.safe_load(Path(run_plan.default_contract).read_text())
    assert list(contract["signatures"]) == ["serving_default"]  # the one the examples feed
    assert contract["signatures"]["serving_default"]["inputs"] == {"x": {"dtype": "float32", "shape": [-1, 1]}}
    rows = [json.loads(line) for line in Path(run_plan.default_examples).read_text().splitlines()]
    assert len(rows) == local_runner.EXAMPLE_ROWS
    assert all(set(row) == {"x"} and len(row["x"]) == 1 and isinstance(row["x"][0], float) for row in rows)
    assert len({row["x"][0] for row in rows}) > 1  # varied inputs, or a canary compares nothing


def test_plan_only_names_the_saved_model_and_has_no_train(tmp_path, tf_serving_testdata):
    """What the DAG's plan pod runs with its `saved_model` param: no train, export imports the model."""
    model = str(tf_serving_testdata / "saved_model_half_plus_two_cpu" / "00000123")
    done = tfship("run", "--plan-only", "--run-dir", str(tmp_path), "--run-id", "r1", "--saved-model", model,
                  "--target", "grpc://127.0.0.1:9")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["config"]["saved_model"] == model and (doc["config"]["data"], doc["config"]["schema"]) == ("", "")
    assert list(doc["args"]) == ["export", "validate", "push", "canary", "promote"]
    export = doc["args"]["export"]
    assert export[export.index("--saved-model") + 1] == model and "--job-dir" not in export
    assert (tmp_path / "runs" / "r1" / "contract.yaml").exists()  # from the signatures


def test_examples_refuse_a_string_input(tmp_path):
    import tensorflow as tf

    module = tf.Module()
    module.serve = tf.function(lambda text: {"length": tf.strings.length(text)},
                               input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    tf.saved_model.save(module, str(tmp_path / "m"), signatures={"serving_default": module.serve})
    with pytest.raises(ConfigError, match="input 'text' of serving_default is a string.*--examples"):
        local_runner.examples_from_signatures(str(tmp_path / "m"))


def test_run_refuses_a_path_that_is_not_a_saved_model(tmp_path):
    (tmp_path / "not-a-model").mkdir()
    (tmp_path / "not-a-model" / "weights.h5").write_bytes(b"x")
    result = tfship("run", "--run-dir", str(tmp_path), "--saved-model", str(tmp_path / "not-a-model"))
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not-a-model" in lines[0] and "saved_model.pb" in lines[0]
    assert not (tmp_path / "repo").exists()
    with pytest.raises(ModelError):
        import_saved_model(str(tmp_path / "not-a-model"), str(tmp_path / "export"))


@pytest.mark.slow
def test_run_refuses_a_model_tf_serving_cannot_load_and_pushes_nothing(tmp_path):
    naive_keras_module(str(tmp_path / "naive"))
    result = tfship("run", "--run-dir", str(tmp_path), "--name", "naive", "--saved-model", str(tmp_path / "naive"))
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    assert "fails its first request to serving_default" in result.stdout
    assert not (tmp_path / "repo" / "naive").exists()


@pytest.mark.slow
def test_run_takes_saved_models_through_validate_push_canary_and_promote(tmp_path):
    for seed in (0, 1):
        keras_export(str(tmp_path / f"keras-{seed}"), seed=seed)
    args = ["run", "--run-dir", str(tmp_path), "--name", "keras"]
    first = tfship(*args, "--saved-model", str(tmp_path / "keras-0"))
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    assert _stable(tmp_path / "repo", "keras") == 1
    assert _same_tree(tmp_path / "keras-0", tmp_path / "repo" / "keras" / "1")
    same = tfship(*args, "--saved-model", str(tmp_path / "keras-0"))
    assert same.returncode == 0, same.stdout[-4000:] + same.stderr[-4000:]
    assert "verdict:  PASS" in same.stdout and _stable(tmp_path / "repo", "keras") == 2
    other = tfship(*args, "--saved-model", str(tmp_path / "keras-1"))  # other weights: other answers
    assert other.returncode == 1, other.stdout[-4000:] + other.stderr[-4000:]
    assert "verdict:  FAIL" in other.stdout and _stable(tmp_path / "repo", "keras") == 2
    summary = json.loads((sorted((tmp_path / "runs").iterdir())[0] / "summary.json").read_text())
    assert [s["name"] for s in summary["steps"]] == ["export", "validate", "push", "promote"]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["saved_model_half_plus_two_cpu", "saved_model_half_plus_three"])
def test_run_promotes_tf_serving_test_models(tmp_path, tf_serving_testdata, model):
    source = tf_serving_testdata / model / "00000123"
    result = tfship("run", "--run-dir", str(tmp_path), "--name", "hp", "--saved-model", str(source))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert _stable(tmp_path / "repo", "hp") == 1
    assert _same_tree(source, tmp_path / "repo" / "hp" / "1")
