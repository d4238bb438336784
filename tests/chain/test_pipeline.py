"""The `tfship-retrain` KFP pipeline: the committed YAML is fresh and its spec follows the chain.

The committed YAML runs end to end under kfp.local in the image's environment: tests/environments/test_image_env.py.
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

from tests.fake_cluster import FakeCluster
from tests.locks_util import pins
from tfship import chain
from tfship.cli import main as tfship_main

ROOT = Path(__file__).resolve().parents[2]
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
        # No placeholder of their own in the tasks' env: they take the run id from the plan
        # (kfp.local shows it: tests/environments/test_image_env.py).
        assert "pipeline_job" not in json.dumps(container.get("env", [])), task_name
    # The plan task takes the pipeline job id as an input parameter (resolved by KFP's backend since
    # 2.4, kubeflow/pipelines#11599, and by kfp.local).
    plan_inputs = tasks["plan-op"]["inputs"]["parameters"]
    assert plan_inputs["run_id"]["runtimeValue"]["constant"] == "{{$.pipeline_job_uuid}}"
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


    from tfship.kfp import components

    train_workers_op = components()["train_workers_op"]

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
            plan=json.dumps(chain.plan_document(config, run_plan, "")), data=Dataset(uri=config.data),
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


# ---------------------------------------------------------------------------------------------
# The factory (`tfship.kfp.retrain_pipeline`, `tfship compile`) and the step component specs.

COMPONENTS = ROOT / "pipelines" / "components"


def test_committed_component_specs_are_byte_identical_to_a_regeneration(tmp_path):
    from tfship.kfp import write_component_specs

    written = write_component_specs(str(tmp_path))
    assert sorted(p.name for p in COMPONENTS.iterdir()) == sorted(Path(p).name for p in written)
    for path in written:
        assert Path(path).read_bytes() == (COMPONENTS / Path(path).name).read_bytes(), (
            f"pipelines/components/{Path(path).name} is stale: run `.venv/bin/python pipelines/tfship_retrain.py`")


def test_a_team_loads_each_step_component_with_typed_inputs_and_outputs(tmp_path):
    from kfp import components, dsl

    loaded = {path.stem: components.load_component_from_file(str(path)) for path in COMPONENTS.glob("*.yaml")}
    spec = loaded["train_op"].component_spec
    assert spec.inputs["plan"].type == "String" and spec.inputs["data"].type == "system.Dataset@0.0.1"
    assert spec.outputs["job"].type == "system.Model@0.0.1"
    assert spec.outputs["metrics"].type == "system.Metrics@0.0.1"
    assert loaded["canary_op"].component_spec.outputs["report"].type == "system.Markdown@0.0.1"
    assert loaded["push_op"].component_spec.outputs["Output"].type == "Integer"

    def pipeline(function):
        function.__annotations__ = {"plan": str, "data": str}  # this module's annotations are strings
        return dsl.pipeline(name=function.__name__.replace("_", "-"))(function)

    def team_pipeline(plan, data):  # a team's own pipeline around tfship's train and export
        dataset = dsl.importer(artifact_uri=data, artifact_class=Dataset)
        train = loaded["train_op"](plan=plan, data=dataset.output)
        loaded["export_op"](plan=plan, job=train.outputs["job"])

    from kfp import compiler

    compiler.Compiler().compile(pipeline(team_pipeline), str(tmp_path / "team.yaml"))
    assert "comp-train-op" in (tmp_path / "team.yaml").read_text()

    def wrong_types(plan, data):
        dataset = dsl.importer(artifact_uri=data, artifact_class=Dataset)
        loaded["export_op"](plan=plan, job=dataset.output)  # a Dataset is not a Model

    with pytest.raises(Exception, match="Incompatible argument passed to the input 'job'"):
        pipeline(wrong_types)


def test_tfship_compile_builds_the_pipeline_from_a_tfship_yaml(tmp_path, capsys):
    config = tmp_path / "tfship.yaml"
    config.write_text(yaml.safe_dump({
        "name": "churn", "data": "gs://team/rows.csv", "schema": "gs://team/schema.yaml",
        "repo": "gs://team/repo", "runs_root": "gs://team/runs", "train": {"steps": 40, "retries": 1},
        "canary": {"thresholds": "gs://team/judge.yaml"},
        "placement": {"accelerator": "nvidia-l4", "gpu_count": 2, "spot": False, "queue": "team-a",
                      "node_selector": {"pool": "team-a"},
                      "tolerations": [{"key": "team", "operator": "Equal", "value": "a", "effect": "NoSchedule"}]},
        "tasks": {"train": {"cpu": "8", "memory": "32Gi"}, "validate": {"cache": False},
                  "export": {"cache": True}, "push": {"retries": 4}},
        "images": {"cpu": "team/churn:1", "gpu": "team/churn-gpu:1"},
    }))
    assert tfship_main(["compile", "--config", str(config), "--components-dir", str(tmp_path / "c")]) == 0
    spec, platform = yaml.safe_load_all((tmp_path / "pipeline.yaml").read_text())
    assert spec["pipelineInfo"]["name"] == "tfship-retrain-churn"
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert inputs["steps"]["defaultValue"] == 40 and inputs["repo"]["defaultValue"] == "gs://team/repo"
    tasks = _tasks(spec)
    executors = spec["deploymentSpec"]["executors"]
    train = executors["exec-train-op"]["container"]
    assert train["image"] == "team/churn-gpu:1" and executors["exec-export-op"]["container"]["image"] == "team/churn:1"
    assert train["resources"]["accelerator"]["resourceType"] == "nvidia-l4"
    assert train["resources"]["accelerator"]["resourceCount"] == "2"
    assert train["resources"]["cpuRequest"] == 8 and train["resources"]["memoryRequest"] == 34.359738368
    assert tasks["train-op"]["retryPolicy"]["maxRetryCount"] == 1
    assert tasks["push-op"]["retryPolicy"]["maxRetryCount"] == 4
    assert tasks["export-op"]["cachingOptions"].get("enableCache") is True
    assert tasks["validate-op"]["cachingOptions"].get("enableCache", False) is False
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train-op"]
    assert k8s["nodeSelector"]["labels"] == {"cloud.google.com/gke-accelerator": "nvidia-l4", "pool": "team-a"}
    assert {"effect": "NoSchedule", "key": "team", "operator": "Equal", "value": "a"} in k8s["tolerations"]
    assert k8s["podMetadata"]["labels"] == {chain.KUEUE_QUEUE_LABEL: "team-a"}
    # The rest of the chain travels to the plan task, which builds the run's ChainConfig from it.
    rest = json.loads(tasks["plan-op"]["inputs"]["parameters"]["chain_config"]["runtimeValue"]["constant"])
    assert rest["canary_thresholds"] == "gs://team/judge.yaml" and rest["step_settings"]["push"] == {"retries": 4}
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == sorted(p.name for p in COMPONENTS.iterdir())
    assert "team/churn-gpu:1" in (tmp_path / "c" / "train_op.yaml").read_text()


def test_tfship_compile_names_a_bad_file(tmp_path, capsys):
    config = tmp_path / "tfship.yaml"
    config.write_text("data: d\nschema: s\nplacement: {accelerator: nvidia-l4, gpu_count: 3}\n")
    assert tfship_main(["compile", "--config", str(config)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"tfship compile: error: {config}: placement.gpu_count: 3 GPUs: a nvidia-l4 node has 1, 2, 4, 8")
    assert not (tmp_path / "pipeline.yaml").exists()


SAVED_MODEL_ONLY = """
import sys
import kfp.local
from tfship.kfp import retrain_pipeline

kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[2])
retrain_pipeline(sys.argv[1])(serving_target="")
"""


def test_a_tfship_yaml_with_only_a_saved_model_runs_under_kfp_local(tmp_path, tf_serving_testdata):
    """No data, no schema: the data importer gets an empty URI, plan skips train, export imports."""
    (tmp_path / "tfship.yaml").write_text(
        f"name: hp\nsaved_model: {tf_serving_testdata / 'saved_model_half_plus_two_cpu' / '00000123'}\n"
        "runs_root: runs\nrepo: repo\n")
    done = subprocess.run([sys.executable, "-c", SAVED_MODEL_ONLY, str(tmp_path / "tfship.yaml"),
                           str(tmp_path / "pipeline-root")], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    from tfship import history
    from tfship import models_config

    labels = models_config.version_labels(models_config.read_models_config(str(tmp_path / "repo")), "hp")
    assert labels.get("stable") == 1, labels  # validated, pushed and promoted
    (run,) = (tmp_path / "runs").iterdir()  # one pipeline job, its id the run's folder
    assert not (run / "job").exists()  # nothing trained
    assert {entry["run_id"] for entry in history.read_history(str(tmp_path / "repo"), "hp")} == {run.name}
