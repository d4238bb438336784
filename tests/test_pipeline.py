"""The `tfship-retrain` KFP pipeline: the committed YAML is fresh and its spec follows the chain.

The committed YAML runs end to end under kfp.local in the image's environment: tests/test_image_env.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from locks_util import pins
from tfship import chain

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "pipelines" / "tfship_retrain.py"
COMMITTED = ROOT / "pipelines" / "tfship_retrain.yaml"
TASK_STEP = {"plan-op": "plan", "train-op": "train", "export-op": "export",
             "validate-op": "validate", "push-op": "push", "canary-op": "canary",
             "promote-op": "promote", "promote-op-2": "promote"}


def compile_to(path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("TFSHIP_IMAGE", "TFSHIP_GPU_IMAGE")}
    done = subprocess.run([sys.executable, str(PIPELINE), str(path)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def compiled_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("kfp") / "tfship_retrain.yaml"
    compile_to(path)
    return path


@pytest.fixture(scope="module")
def compiled(compiled_path) -> list[dict]:
    return list(yaml.safe_load_all(compiled_path.read_text()))


def test_committed_yaml_is_byte_identical_to_a_recompile(compiled_path):
    """kfp is locked (locks/dev.txt), so a new kfp release cannot make this fail; a changed pipeline can."""
    assert compiled_path.read_bytes() == COMMITTED.read_bytes(), (
        "pipelines/tfship_retrain.yaml is stale: run `.venv/bin/python pipelines/tfship_retrain.py`"
        " and commit the result"
    )


def test_compiled_with_the_locked_kfp(compiled):
    assert compiled[0]["sdkVersion"] == f"kfp-{pins('dev')['kfp']}"


def _tasks(spec: dict) -> dict[str, dict]:
    """Every task of the pipeline, including those inside dsl.If / dsl.Else sub-DAGs."""
    found = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        found.update(component.get("dag", {}).get("tasks", {}))
    return found


def test_spec_follows_the_chain(compiled):
    spec, platform = compiled
    assert spec["pipelineInfo"]["name"] == "tfship-retrain"
    tasks = _tasks(spec)
    executors = spec["deploymentSpec"]["executors"]
    for task_name, step_name in TASK_STEP.items():
        task = tasks[task_name]
        step = chain.STEPS.get(step_name) or chain.Step(step_name)
        caching = task.get("cachingOptions", {}).get("enableCache", False)
        assert caching == step.cacheable, task_name
        executor = task["componentRef"]["name"].replace("comp-", "exec-")
        container = executors[executor]["container"]
        resources = container["resources"]
        assert resources["cpuRequest"] > 0 and resources["memoryRequest"] > 0, task_name
        assert container["image"] == (chain.DEFAULT_GPU_IMAGE if step_name == "train"
                                      else chain.DEFAULT_IMAGE)
        if step_name == "train":
            assert resources["accelerator"] == {"count": "1", "resourceCount": "1",
                                                "type": chain.DEFAULT_GPU_TYPE,
                                                "resourceType": chain.DEFAULT_GPU_TYPE}
            assert task["retryPolicy"]["maxRetryCount"] == chain.STEPS["train"].retries
        else:
            assert "accelerator" not in resources, task_name
            assert "retryPolicy" not in task or step.retries, task_name
    # GPU placement through kfp-kubernetes, for train only.
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(k8s) == {"exec-train-op"}
    assert k8s["exec-train-op"]["nodeSelector"]["labels"] == {
        "cloud.google.com/gke-accelerator": chain.DEFAULT_GPU_TYPE, "cloud.google.com/gke-spot": "true"}
    assert {"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"} in \
        k8s["exec-train-op"]["tolerations"]


def test_promotion_is_gated_on_the_verdict(compiled):
    spec, _ = compiled
    tasks = _tasks(spec)
    conditions = {name: task.get("triggerPolicy", {}).get("condition", "") for name, task in tasks.items()}
    assert any("first_version" in c and "true" in c for c in conditions.values()), conditions
    assert any("'PASS'" in c for c in conditions.values()), conditions
    # promote appears only inside conditions; canary only when a stable version exists.
    assert "promote-op" not in spec["root"]["dag"]["tasks"]
    assert "canary-op" not in spec["root"]["dag"]["tasks"]
    # Typed artifacts between the steps.
    components = spec["components"]
    assert components["comp-train-op"]["outputDefinitions"]["artifacts"]["job"]["artifactType"][
        "schemaTitle"] == "system.Model"
    assert components["comp-train-op"]["outputDefinitions"]["artifacts"]["metrics"]["artifactType"][
        "schemaTitle"] == "system.Metrics"
    assert components["comp-canary-op"]["outputDefinitions"]["artifacts"]["report"]["artifactType"][
        "schemaTitle"] == "system.Markdown"
    assert components["comp-plan-op"]["inputDefinitions"]["artifacts"]["data"]["artifactType"][
        "schemaTitle"] == "system.Dataset"


def test_multi_worker_train_compiles_to_a_tfjob_submitter(tmp_path, monkeypatch):
    path = tmp_path / "multi.yaml"
    env = {k: v for k, v in os.environ.items() if k not in ("TFSHIP_IMAGE", "TFSHIP_GPU_IMAGE")}
    done = subprocess.run([sys.executable, str(PIPELINE), str(path)],
                          env={**env, "TFSHIP_TRAIN_WORKERS": "2"}, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    documents = list(yaml.safe_load_all(path.read_text()))
    spec = documents[0]
    tasks = _tasks(spec)
    assert "train-tfjob-op" in tasks and "train-op" not in tasks
    submit = spec["deploymentSpec"]["executors"]["exec-train-tfjob-op"]["container"]
    assert "accelerator" not in submit["resources"]  # the TFJob's workers hold the GPUs
    assert tasks["train-tfjob-op"]["inputs"]["parameters"]["workers"]["runtimeValue"]["constant"] == 2
    assert len(documents) == 1  # no GPU node selector on any task of this variant
