"""The `tfship-retrain` KFP pipeline: the committed YAML is fresh and its spec follows the chain.

The committed YAML runs end to end under kfp.local in the image's environment: tests/test_image_env.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kfp.dsl import Dataset, Metrics, Model

from fake_cluster import FakeCluster
from locks_util import pins
from tfship import chain

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "pipelines" / "tfship_retrain.py"
COMMITTED = ROOT / "pipelines" / "tfship_retrain.yaml"
TASK_STEP = {"plan-op": "plan", "train-op": "train", "export-op": "export", "export-op-2": "export",
             "validate-op": "validate", "push-op": "push", "canary-op": "canary",
             "rollout-op": "rollout", "promote-op": "promote", "promote-op-2": "promote",
             "promote-op-3": "promote"}


def compile_with(path: Path, **env: str) -> list[dict]:
    """Compile the pipeline with the compile-time settings `env` (TFSHIP_TRAIN_WORKERS, ...)."""
    base = {k: v for k, v in os.environ.items() if k not in ("TFSHIP_IMAGE", "TFSHIP_GPU_IMAGE")}
    done = subprocess.run([sys.executable, str(PIPELINE), str(path)], env={**base, **env}, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return list(yaml.safe_load_all(path.read_text()))


@pytest.fixture(scope="module")
def compiled_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("kfp") / "tfship_retrain.yaml"
    compile_with(path)
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


def _conditions_around(spec: dict, task: str) -> list[str]:
    """The trigger conditions of the dsl.If / dsl.Else blocks around `task`, innermost first."""
    holders = {name: component for component, body in spec["components"].items()
               for name in body.get("dag", {}).get("tasks", {})}
    tasks, found = _tasks(spec), []
    while task in holders:
        task = holders[task].removeprefix("comp-")  # the condition task whose sub-DAG holds it
        condition = tasks[task].get("triggerPolicy", {}).get("condition")
        if condition:
            found.append(condition)
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
        # Every task's history entries name the pipeline job: kfp's job id placeholder, in its env.
        assert {"name": chain.RUN_ID_ENV, "value": "{{$.pipeline_job_uuid}}"} in container["env"], task_name
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
    # After the canary PASS: the rollout when the plan turns it on (then promote on its PASS), else promote.
    chain_of = {task: _conditions_around(spec, task) for task in ("rollout-op", "promote-op-2", "promote-op-3")}
    assert chain_of["rollout-op"][0] == "inputs.parameter_values['pipelinechannel--plan-op-rollout'] == true"
    assert "'pipelinechannel--canary-op-Output'] == 'PASS'" in " ".join(chain_of["rollout-op"])
    assert chain_of["promote-op-2"][0] == "inputs.parameter_values['pipelinechannel--rollout-op-Output'] == 'PASS'"
    assert chain_of["promote-op-3"][0] == "!(inputs.parameter_values['pipelinechannel--plan-op-rollout'] == true)"
    assert "'pipelinechannel--canary-op-Output'] == 'PASS'" in " ".join(chain_of["promote-op-3"])
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert inputs["rollout_steps"]["defaultValue"] == ""  # no rollout unless asked
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


def test_a_saved_model_skips_train_and_export_imports_it(compiled):
    spec, _ = compiled
    assert spec["root"]["inputDefinitions"]["parameters"]["saved_model"]["defaultValue"] == ""  # train
    train = "inputs.parameter_values['pipelinechannel--plan-op-train'] == true"
    assert _conditions_around(spec, "train-op") == [train]
    assert _conditions_around(spec, "export-op") == [train]  # exports the job
    assert _conditions_around(spec, "export-op-2") == [f"!({train})"]  # imports the saved model
    tasks = _tasks(spec)
    assert "job" in tasks["export-op"]["inputs"]["artifacts"]  # train's output
    assert "job" not in tasks["export-op-2"]["inputs"].get("artifacts", {})
    # validate and push take whichever export ran.
    for task in ("validate-op", "push-op"):
        source = spec["root"]["dag"]["tasks"][task]["inputs"]["parameters"]["model_dir"]["taskOutputParameter"]
        assert source["producerTask"] == "condition-branches-1" and "oneof" in source["outputParameterKey"], task


@pytest.mark.parametrize("engine", ["", "trainjob", "tfjob"])  # "": the default, JobSet
def test_multi_worker_train_compiles_to_an_engine_submitter(tmp_path, engine):
    documents = compile_with(tmp_path / "multi.yaml", TFSHIP_TRAIN_WORKERS="2",
                             **({"TFSHIP_TRAIN_ENGINE": engine} if engine else {}))
    spec = documents[0]
    tasks = _tasks(spec)
    assert "train-workers-op" in tasks and "train-op" not in tasks
    submit = spec["deploymentSpec"]["executors"]["exec-train-workers-op"]["container"]
    assert "accelerator" not in submit["resources"]  # the engine's workers hold the GPUs
    parameters = tasks["train-workers-op"]["inputs"]["parameters"]
    assert parameters["workers"]["runtimeValue"]["constant"] == 2
    assert parameters["engine"]["runtimeValue"]["constant"] == (engine or "jobset")
    assert tasks["train-workers-op"]["retryPolicy"]["maxRetryCount"] == chain.STEPS["train"].retries
    assert len(documents) == 1  # no GPU node selector on any task of this variant


def test_the_kueue_queue_labels_the_gpu_task_only(tmp_path):
    _, platform = compile_with(tmp_path / "queued.yaml", TFSHIP_GPU_QUEUE="team-a-gpus")
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert executors["exec-train-op"]["podMetadata"]["labels"] == {chain.KUEUE_QUEUE_LABEL: "team-a-gpus"}
    assert set(executors) == {"exec-train-op"}
    cluster = FakeCluster([["Completed"]])
    _submit(tmp_path, cluster, queue="team-a-gpus")
    [body] = cluster.objects.values()
    assert body["metadata"]["labels"][chain.KUEUE_QUEUE_LABEL] == "team-a-gpus"


def _submit(tmp_path: Path, cluster: FakeCluster, **overrides) -> Metrics:
    """Run the submit component's body with the GKE cluster mocked: `cluster` stands in for the
    in-cluster CustomObjectsApi, and the workers' metrics.json is written as they would."""
    from kubernetes import client
    from kubernetes import config as kube_config

    from tfship.commands.run import plan_document

    sys.path.insert(0, str(ROOT))
    from pipelines.tfship_retrain import train_workers_op

    config = chain.ChainConfig(data=str(tmp_path / "d.csv"), schema=str(tmp_path / "s.yaml"),
                               runs_root=str(tmp_path / "runs"), repo=str(tmp_path / "repo"))
    run_plan = chain.plan_run(config, "tfship-retrain-20250102", [], None)
    Path(run_plan.job_dir).mkdir(parents=True, exist_ok=True)
    Path(run_plan.job_dir, "metrics.json").write_text('{"step": 30, "heldout_accuracy": 0.75}')
    job, metrics = Model(uri=str(tmp_path / "job.json")), Metrics(uri=str(tmp_path / "metrics"))
    settings = {"workers": 2, "engine": "jobset", "gpu_image": "tfship-gpu:0.1.0",
                "gpu_type": "nvidia-l4", "gpu_count": 1, "spot": True, "queue": "",
                "namespace": "tfship", **overrides}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kube_config, "load_incluster_config", lambda: None)
        patch.setattr(client, "CustomObjectsApi", lambda: cluster)
        patch.setattr("time.sleep", lambda _: None)
        train_workers_op.python_func(
            plan=json.dumps(plan_document(config, run_plan, "")), data=Dataset(uri=config.data),
            job=job, metrics=metrics, **settings)
    return metrics


def test_a_retried_submit_component_waits_on_the_jobset_it_created(tmp_path):
    from kubernetes.client.exceptions import ApiException

    # First try: the JobSet is created, then the API server fails while the pod waits; KFP retries.
    cluster = FakeCluster([ApiException(status=503, reason="ServiceUnavailable")])
    with pytest.raises(ApiException):
        _submit(tmp_path, cluster)
    cluster.polls = [[], ["Completed"]]
    metrics = _submit(tmp_path, cluster)
    assert cluster.creates == 2 and len(cluster.objects) == 1  # no second JobSet
    [body] = cluster.objects.values()
    assert body["kind"] == "JobSet" and body["metadata"]["name"] == "tfship-tfship-retrain-20250102"
    assert metrics.metadata == {"step": 30.0, "heldout_accuracy": 0.75}
