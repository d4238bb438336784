"""`tfship-retrain`: the chain of `tfship.chain` as a Kubeflow Pipelines v2 pipeline.

    data (Dataset) -> plan -> dsl.If train: train (Model: job, Metrics) -> export (Model)
                              dsl.Else (saved_model): export, importing it (Model)
      -> validate (Metrics; the model dir: dsl.OneOf of the two exports) -> push -> dsl.If first version: promote
                 dsl.Else: canary (Markdown report, Metrics) -> dsl.If PASS:
                     dsl.If rollout: rollout (Metrics) -> dsl.If PASS: promote
                     dsl.Else: promote

Each component is a lightweight Python component on the tfship image that runs the step through
the CLI contract in-process (`tfship.cli.main(args)`, args from `tfship.chain.step_args`), so
`kfp.local.SubprocessRunner(use_venv=False)` runs the whole pipeline on one machine and a cluster
runs exactly the same commands. Placement, requests, retries and caching come from `chain.CHAIN`:
train gets the GPU (accelerator type and limit, the GKE node selector and the `nvidia.com/gpu`
toleration through kfp-kubernetes, and the Kueue queue label with `TFSHIP_GPU_QUEUE`) and
`set_retry` (KFP retries any failure; the step exits 143 when preempted and resumes the run's job
dir, keyed on the pipeline job id); only validate is cached (a pure function of the model); plan,
push, canary and promote touch the repository. With `TFSHIP_TRAIN_WORKERS` > 1, train is the object
of `TFSHIP_TRAIN_ENGINE` (`jobset` by default, `trainjob`, `tfjob`), submitted from a CPU pod that
waits on it; a retried submit finds the object its first try created (its name is the job id's).
The rollout (parameter `rollout_steps`, e.g. "5,25,50,100"; "" = none: the canary PASS promotes)
moves live traffic to the new version in steps judged from `prometheus` (`tfship rollout --promote`).
Every task gets the pipeline job id in `TFSHIP_RUN_ID`, so the label history names the run.
With `saved_model` (a SavedModel trained elsewhere) there is no train task: export imports it
(`tfship export --saved-model`) and the chain goes on from there.

Compile with `python pipelines/tfship_retrain.py` (writes pipelines/tfship_retrain.yaml, committed;
tests/test_pipeline.py fails when it is stale).
"""


import dataclasses
import os
import sys
from typing import NamedTuple, Optional

from kfp import compiler, dsl, kubernetes
from kfp.dsl import Dataset, Input, Markdown, Metrics, Model, Output
from kfp.dsl.pipeline_channel import PipelineChannel

from tfship import chain

PIPELINE_NAME = "tfship-retrain"
IMAGE = os.environ.get("TFSHIP_IMAGE", chain.DEFAULT_IMAGE)
GPU_IMAGE = os.environ.get("TFSHIP_GPU_IMAGE", chain.DEFAULT_GPU_IMAGE)
# More than one worker: train is submitted to a multi-worker engine (MultiWorkerMirroredStrategy).
TRAIN_WORKERS = int(os.environ.get("TFSHIP_TRAIN_WORKERS", "1"))
TRAIN_ENGINE = os.environ.get("TFSHIP_TRAIN_ENGINE", chain.ENGINES[0])
# A Kueue LocalQueue for the GPU workloads ("" = no Kueue).
GPU_QUEUE = os.environ.get("TFSHIP_GPU_QUEUE", "")
NAMESPACE = os.environ.get("TFSHIP_NAMESPACE", "tfship")
COMPILED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tfship_retrain.yaml")


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def plan_op(
    data: Input[Dataset], schema: str, contract: str, runs_root: str, repo: str, name: str,
    model: str, steps: int, checkpoint_every: int, batch_size: int, seed: int,
    canary_requests: int, serving_target: str, rollout_steps: str, rollout_interval: str,
    rollout_check_every: str, rollout_apply: str, prometheus: str, saved_model: str, run_id: str,
) -> NamedTuple("Plan", [("plan", str), ("first_version", bool), ("train", bool), ("rollout", bool)]):
    """Decide the version and the run folder from the repository; write the default examples."""
    import json
    from collections import namedtuple

    from tfship import chain, local_runner
    from tfship.commands.run import plan_document

    config = chain.ChainConfig.from_mapping(dict(
        data=data.uri, schema=schema, contract=contract, runs_root=runs_root, repo=repo, name=name,
        model=model, steps=steps, checkpoint_every=checkpoint_every, batch_size=batch_size,
        seed=seed, canary_requests=canary_requests, rollout_steps=rollout_steps,
        rollout_interval=rollout_interval, rollout_check_every=rollout_check_every,
        rollout_apply=rollout_apply, prometheus=prometheus, saved_model=saved_model,
    ))
    run_plan = local_runner.plan(config, chain.safe_run_id(run_id))
    doc = plan_document(config, run_plan, serving_target)
    print(f"plan: version {run_plan.version}, stable {run_plan.stable}, folder {run_plan.run_dir}")
    return namedtuple("Plan", ["plan", "first_version", "train", "rollout"])(
        json.dumps(doc), run_plan.first_version, "train" in doc["args"], "rollout" in doc["args"])


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def train_op(plan: str, data: Input[Dataset], job: Output[Model], metrics: Output[Metrics]):
    """Train (resuming the run's job dir after a preemption); log the final metrics."""
    import json

    from tfship import cli, storage

    doc = json.loads(plan)
    code = cli.main(doc["args"]["train"])
    if code != 0:
        raise RuntimeError(f"tfship train exited {code} (143 = preempted: the retry resumes)")
    job_dir = doc["plan"]["run_dir"].rstrip("/") + "/job"
    job.metadata["job_dir"] = job_dir
    with open(job.path, "w") as handle:
        handle.write(json.dumps({"job_dir": job_dir}))
    values = json.loads(storage.read_text(storage.join(job_dir, "metrics.json")))
    for key, value in values.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            metrics.log_metric(key, float(value))


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_workers_op(plan: str, workers: int, engine: str, gpu_image: str, gpu_type: str,
                     gpu_count: int, spot: bool, queue: str, namespace: str, data: Input[Dataset],
                     job: Output[Model], metrics: Output[Metrics]):
    """Train on `workers` GPU workers as the `engine`'s object (submitted from this CPU pod, which
    waits on it; a retry of this task finds the object and waits again)."""
    import json

    from kubernetes import client
    from kubernetes import config as kube_config

    from tfship import chain, local_runner, storage

    doc = json.loads(plan)
    config = chain.ChainConfig.from_mapping({
        **doc["config"], "workers": workers, "engine": engine, "gpu_type": gpu_type,
        "gpu_count": gpu_count, "spot": spot, "queue": queue})
    run_plan = chain.RunPlan.from_dict(doc["plan"])
    kube_config.load_incluster_config()
    body = chain.render_workers(config, run_plan, image=gpu_image, namespace=namespace)
    local_runner.run_workload(client.CustomObjectsApi(), body)
    job.metadata["job_dir"] = run_plan.job_dir
    with open(job.path, "w") as handle:
        handle.write(json.dumps({"job_dir": run_plan.job_dir, body["kind"]: body["metadata"]["name"]}))
    values = json.loads(storage.read_text(storage.join(run_plan.job_dir, "metrics.json")))
    for key, value in values.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            metrics.log_metric(key, float(value))


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def export_op(plan: str, saved_model: Output[Model], job: Optional[Input[Model]] = None) -> str:
    """Export the job's latest checkpoint (or import the run's `saved_model`, with no job) as the
    run's SavedModel version; returns its directory (validate's and push's input)."""
    import json

    from tfship import cli, storage

    doc = json.loads(plan)
    code = cli.main(doc["args"]["export"])
    if code != 0:
        raise RuntimeError(f"tfship export exited {code}")
    version = doc["plan"]["version"]
    model_dir = storage.join(doc["plan"]["run_dir"], "export", str(version))
    saved_model.metadata.update({"model_dir": model_dir, "version": version})
    with open(saved_model.path, "w") as handle:
        handle.write(json.dumps({"model_dir": model_dir, "version": version}))
    return model_dir


# validate and push take the exported version's directory as a parameter, not export's `Model`
# artifact: after a train-or-import branch it is a `dsl.OneOf` of the two exports, and kfp.local
# (2.17) resolves a OneOf of parameters but not of artifacts.
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def validate_op(plan: str, model_dir: str, report: Output[Metrics]):
    """Validate the SavedModel at `model_dir` against the contract (fails the pipeline on a violation)."""
    import json

    from tfship import cli

    doc = json.loads(plan)
    code = cli.main(doc["args"]["validate"])
    report.log_metric("passed", float(code == 0))
    if code != 0:
        raise RuntimeError(f"tfship validate exited {code}: the model breaks its contract")


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def push_op(plan: str, model_dir: str) -> int:
    """Push the version at `model_dir` into the repository with the `canary` label."""
    import json

    from tfship import cli

    doc = json.loads(plan)
    code = cli.main(doc["args"]["push"])
    if code != 0:
        raise RuntimeError(f"tfship push exited {code}")
    return int(doc["plan"]["version"])


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def canary_op(plan: str, pushed_version: int, report: Output[Markdown],
              metrics: Output[Metrics]) -> str:
    """Canary the pushed version against `stable`; returns PASS or FAIL (the gate's input).

    With no serving target in the plan (local runs), a `tfship serve` is started on free loopback
    ports for the canary and stopped after; on a cluster the plan names the TF Serving Service.
    """
    import glob
    import json
    import os

    from tfship import chain, local_runner

    doc = json.loads(plan)
    config = chain.ChainConfig.from_mapping(doc["config"])
    run_plan = chain.RunPlan.from_dict(doc["plan"])
    verdict, _ = local_runner.run_canary(config, run_plan, target=doc["target"])
    metrics.log_metric("pass", float(verdict == chain.PASS))
    found = sorted(glob.glob(os.path.join(run_plan.canary_report_dir, "*.md")))
    text = open(found[0]).read() if found else f"# Canary {verdict}\n\nversion {pushed_version}\n"
    with open(report.path, "w") as handle:
        handle.write(text)
    return verdict


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def rollout_op(plan: str, metrics: Output[Metrics]) -> str:
    """Move live traffic to the canary in steps, each judged from Prometheus; returns PASS or FAIL.

    PASS (every step passed) has moved `stable` to the new version; FAIL has moved the traffic and
    the labels back (a verdict, not an error: the pipeline ends without promoting).
    """
    import json

    from tfship import chain, cli

    doc = json.loads(plan)
    code = cli.main(doc["args"]["rollout"])
    verdict = chain.verdict_from_exit_code(code)  # 0 PASS, 1 FAIL; anything else fails the task
    metrics.log_metric("pass", float(verdict == chain.PASS))
    return verdict


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def promote_op(plan: str):
    """Move `stable` to the pushed (canary) version."""
    import json

    from tfship import cli

    doc = json.loads(plan)
    code = cli.main(doc["args"]["promote"])
    if code != 0:
        raise RuntimeError(f"tfship promote exited {code}")


def _apply(task: dsl.PipelineTask, step: chain.Step, config: chain.ChainConfig) -> dsl.PipelineTask:
    """Requests, limits, GPU placement, retries and caching of `step`, from the chain."""
    place = chain.placement(step, config)
    task.set_cpu_request(step.cpu).set_memory_request(step.memory).set_memory_limit(step.memory)
    task.set_caching_options(step.cacheable)
    if step.retries:
        task.set_retry(num_retries=step.retries, backoff_duration="30s", backoff_factor=2)
    if step.gpu:
        task.set_accelerator_type(config.gpu_type).set_accelerator_limit(config.gpu_count)
        for key, value in place.node_selector.items():
            kubernetes.add_node_selector(task, label_key=key, label_value=value)
        for toleration in place.tolerations:
            kubernetes.add_toleration(task, key=toleration["key"], operator=toleration["operator"],
                                      value=toleration.get("value"), effect=toleration["effect"])
        for key, value in place.labels.items():  # the Kueue queue
            kubernetes.add_pod_label(task, label_key=key, label_value=value)
    # The label history (`tfship.history`) records which pipeline job moved a label.
    task.set_env_variable(chain.RUN_ID_ENV, dsl.PIPELINE_JOB_ID_PLACEHOLDER)
    task.set_display_name(step.name)
    return task


def _train_and_export(doc: PipelineChannel, dataset: dsl.PipelineTask,
                      config: chain.ChainConfig) -> dsl.PipelineTask:
    """Train (on one GPU, or on `TRAIN_WORKERS` through the engine) and export the job: the export task."""
    if TRAIN_WORKERS > 1:
        # This pod only submits the engine's object and waits: CPU placement; the workers get the GPUs.
        submit = dataclasses.replace(chain.train_step(config), gpu=False, cpu="500m", memory="1Gi")
        train = _apply(train_workers_op(
            plan=doc, workers=TRAIN_WORKERS, engine=TRAIN_ENGINE, gpu_image=GPU_IMAGE,
            gpu_type=config.gpu_type, gpu_count=config.gpu_count, spot=config.spot,
            queue=config.queue, namespace=NAMESPACE, data=dataset.output,
        ), submit, config)
    else:
        train = _apply(train_op(plan=doc, data=dataset.output), chain.train_step(config), config)
    return _apply(export_op(plan=doc, job=train.outputs["job"]), chain.STEPS["export"], config)


_D = chain.ChainConfig(data="-", schema="-", runs_root="-", repo="-")
# Compile-time placement: GPU type and count, spot, the Kueue queue (see compile_pipeline()).
PLACEMENT = dataclasses.replace(_D, queue=GPU_QUEUE, engine=TRAIN_ENGINE)  # checked here


@dsl.pipeline(name=PIPELINE_NAME, description="Train, export, validate, push, canary, promote.")
def tfship_retrain(
    data: str = "gs://tfship-data/penguins/penguins.csv",
    schema: str = "gs://tfship-data/penguins/schema.yaml",
    contract: str = "",
    runs_root: str = "gs://tfship-runs/retrain/runs",
    repo: str = "gs://tfship-models/repo",
    name: str = "penguins",
    model: str = _D.model,
    steps: int = _D.steps,
    checkpoint_every: int = _D.checkpoint_every,
    batch_size: int = _D.batch_size,
    seed: int = _D.seed,
    canary_requests: int = _D.canary_requests,
    serving_target: str = chain.DEFAULT_SERVING_TARGET,
    rollout_steps: str = "",
    rollout_interval: str = _D.rollout_interval,
    rollout_check_every: str = _D.rollout_check_every,
    rollout_apply: str = _D.rollout_apply,
    prometheus: str = _D.prometheus,
    saved_model: str = _D.saved_model,
):
    config = PLACEMENT
    steps_ = chain.STEPS
    dataset = dsl.importer(artifact_uri=data, artifact_class=Dataset, reimport=False)
    dataset.set_display_name("data")
    plan = plan_op(
        data=dataset.output, schema=schema, contract=contract, runs_root=runs_root, repo=repo,
        name=name, model=model, steps=steps, checkpoint_every=checkpoint_every,
        batch_size=batch_size, seed=seed, canary_requests=canary_requests,
        serving_target=serving_target, rollout_steps=rollout_steps, rollout_interval=rollout_interval,
        rollout_check_every=rollout_check_every, rollout_apply=rollout_apply, prometheus=prometheus,
        saved_model=saved_model, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
    )
    _apply(plan, chain.Step("plan", cpu="500m", memory="1Gi"), config).set_display_name("plan")
    doc = plan.outputs["plan"]
    with dsl.If(plan.outputs["train"] == True, name="train"):  # noqa: E712
        exported = _train_and_export(doc, dataset, config)
    with dsl.Else(name="saved-model"):  # a model trained elsewhere: export imports it
        imported = _apply(export_op(plan=doc), steps_["export"], config)
    model_dir = dsl.OneOf(exported.outputs["Output"], imported.outputs["Output"])
    validate = _apply(validate_op(plan=doc, model_dir=model_dir), steps_["validate"], config)
    push = _apply(push_op(plan=doc, model_dir=model_dir), steps_["push"], config)
    push.after(validate)
    with dsl.If(plan.outputs["first_version"] == True, name="first-version"):  # noqa: E712
        _apply(promote_op(plan=doc), steps_["promote"], config).after(push)
    with dsl.Else(name="has-stable"):
        canary = _apply(canary_op(plan=doc, pushed_version=push.output), steps_["canary"], config)
        with dsl.If(canary.outputs["Output"] == chain.PASS, name="canary-pass"):
            with dsl.If(plan.outputs["rollout"] == True, name="rollout-on"):  # noqa: E712
                rollout = _apply(rollout_op(plan=doc), steps_["rollout"], config)
                with dsl.If(rollout.outputs["Output"] == chain.PASS, name="rollout-pass"):
                    _apply(promote_op(plan=doc), steps_["promote"], config)
            with dsl.Else(name="no-rollout"):
                _apply(promote_op(plan=doc), steps_["promote"], config)


def compile_pipeline(path: str = COMPILED) -> str:
    """Write the pipeline's YAML (the committed copy is pipelines/tfship_retrain.yaml)."""
    compiler.Compiler().compile(tfship_retrain, package_path=path)
    return path


if __name__ == "__main__":
    print(compile_pipeline(sys.argv[1] if len(sys.argv) > 1 else COMPILED))
