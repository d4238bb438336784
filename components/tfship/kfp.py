"""The Kubeflow Pipelines adapter: a pipeline factory for one model's chain, and component specs.

    data (Dataset) -> plan -> dsl.If train: train (Model: job, Metrics) -> export (Model)
                              dsl.Else (saved_model): export, importing it (Model)
      -> validate (Metrics; the model dir: dsl.OneOf of the two exports)
      -> push -> dsl.If first version: promote
                 dsl.Else: canary (Markdown report, Metrics) -> dsl.If PASS:
                     dsl.If rollout: rollout (Metrics) -> dsl.If PASS: promote
                     dsl.Else: promote

`retrain_pipeline(project)` builds the pipeline of one `tfship.yaml` (a `tfship.chain.project.Project`);
`compile_pipeline` writes its YAML (`tfship compile --config tfship.yaml`), and
`write_component_specs` writes each step's component spec, which a team loads into its own
pipeline with `kfp.components.load_component_from_file` (typed inputs and outputs). Importable
only where kfp is installed (`.venv`, the images); the steps never import it.

Each component is a lightweight Python component on the project's image that runs the step through
the CLI contract in-process (`tfship.cli.main(args)`, args from `tfship.chain.step_args`), so
`kfp.local.SubprocessRunner(use_venv=False)` runs the whole pipeline on one machine and a cluster
runs exactly the same commands. Placement, requests, retries and caching come from the project's
chain (`chain.step_for`, `pods.placement`): train gets the GPU (accelerator type and limit, the
GKE node selector, the `nvidia.com/gpu` toleration and the file's own selectors and tolerations
through kfp-kubernetes, and the Kueue queue label) and `set_retry` (KFP retries any failure; the
step exits 143 when preempted and resumes the run's job dir, keyed on the pipeline job id); only
validate is cached by default (a pure function of the model); plan, push, canary and promote touch
the repository. With more than one train worker, train is the object of the project's engine
(`jobset` by default, `trainjob`, `tfjob`), submitted from a CPU pod that waits on it; a retried
submit finds the object its first try created (its name is the job id's).

The rollout (pipeline parameter `rollout_steps`, e.g. "5,25,50,100"; "" = none: the canary PASS
promotes at once) moves live traffic to the new version in steps judged from `prometheus`
(`tfship rollout`, docs/rollout.md). The plan task gets the pipeline job id; it is the run id of
the plan, which every task puts in `TFSHIP_RUN_ID` before its step (`local_runner.run_planned_step`),
so the label history (`tfship history`) names the pipeline job that moved a label. With
`saved_model` (a SavedModel trained elsewhere) there is no train task: export imports it
(`tfship export --saved-model`) and the chain goes on from there.
"""


import dataclasses
import functools
import json
import os
from collections.abc import Callable
from typing import NamedTuple, Optional

from kfp import compiler, dsl, kubernetes
from kfp.dsl import Dataset, Input, Markdown, Metrics, Model, Output

from tfship import chain
from tfship.k8s import pods
from tfship.chain import project

# The components, in the chain's order; `plan_op` and `train_workers_op` are tfship's own tasks.
def plan_op(
    data: Input[Dataset], schema: str, contract: str, runs_root: str, repo: str, name: str,
    model: str, steps: int, checkpoint_every: int, batch_size: int, seed: int,
    canary_requests: int, serving_target: str, run_id: str, chain_config: str = "{}",
    rollout_steps: str = "", prometheus: str = "", saved_model: str = "",
) -> NamedTuple("Plan", [("plan", str), ("first_version", bool), ("train", bool), ("rollout", bool)]):
    """Decide the version and the run folder from the repository; write the default examples.

    `chain_config` is the rest of the chain's config (JSON of ChainConfig fields: canary traffic,
    thresholds, per-step settings, ...), as the tfship.yaml the pipeline was compiled from set it."""
    import json
    from collections import namedtuple

    from tfship import chain, local_runner

    config = chain.ChainConfig.from_mapping({
        **json.loads(chain_config),
        "data": data.uri, "schema": schema, "contract": contract, "runs_root": runs_root, "repo": repo,
        "name": name, "model": model, "steps": steps, "checkpoint_every": checkpoint_every,
        "batch_size": batch_size, "seed": seed, "canary_requests": canary_requests,
        "rollout_steps": rollout_steps, "prometheus": prometheus, "saved_model": saved_model,
    })
    run_plan = local_runner.plan(config, chain.safe_run_id(run_id))
    doc = chain.plan_document(config, run_plan, serving_target)
    print(f"plan: version {run_plan.version}, stable {run_plan.stable}, folder {run_plan.run_dir}")
    return namedtuple("Plan", ["plan", "first_version", "train", "rollout"])(
        json.dumps(doc), run_plan.first_version, "train" in doc["args"], "rollout" in doc["args"])


def train_op(plan: str, data: Input[Dataset], job: Output[Model], metrics: Output[Metrics]):
    """Train (resuming the run's job dir after a preemption); log the final metrics."""
    import json

    from tfship import chain, local_runner
    from tfship.steps.train.job import numeric_metrics

    doc = json.loads(plan)
    code = local_runner.run_planned_step(doc, "train")
    if code != 0:
        raise RuntimeError(f"tfship train exited {code} (143 = preempted: the retry resumes)")
    job_dir = chain.RunPlan.from_dict(doc["plan"]).job_dir
    job.metadata["job_dir"] = job_dir
    with open(job.path, "w") as handle:
        handle.write(json.dumps({"job_dir": job_dir}))
    for key, value in numeric_metrics(job_dir).items():
        metrics.log_metric(key, value)


def train_workers_op(plan: str, workers: int, engine: str, gpu_image: str, gpu_type: str,
                     gpu_count: int, spot: bool, queue: str, namespace: str, data: Input[Dataset],
                     job: Output[Model], metrics: Output[Metrics]):
    """Train on `workers` GPU workers as the `engine`'s object (submitted from this CPU pod, which
    waits on it; a retry of this task finds the object and waits again)."""
    import json

    from kubernetes import client
    from kubernetes import config as kube_config

    from tfship import chain, local_runner
    from tfship.k8s import workers as k8s_workers
    from tfship.steps.train.job import numeric_metrics

    doc = json.loads(plan)
    config = chain.ChainConfig.from_mapping({
        **doc["config"], "workers": workers, "engine": engine, "gpu_type": gpu_type,
        "gpu_count": gpu_count, "spot": spot, "queue": queue})
    run_plan = chain.RunPlan.from_dict(doc["plan"])
    kube_config.load_incluster_config()
    body = k8s_workers.render_workers(config, run_plan, image=gpu_image, namespace=namespace)
    local_runner.run_workload(client.CustomObjectsApi(), body)
    job.metadata["job_dir"] = run_plan.job_dir
    with open(job.path, "w") as handle:
        handle.write(json.dumps({"job_dir": run_plan.job_dir, body["kind"]: body["metadata"]["name"]}))
    for key, value in numeric_metrics(run_plan.job_dir).items():
        metrics.log_metric(key, value)


def export_op(plan: str, saved_model: Output[Model], job: Optional[Input[Model]] = None) -> str:
    """Export the job's latest checkpoint (or import the run's `saved_model`, with no job) as the
    run's SavedModel version; returns its directory (validate's and push's input)."""
    import json

    from tfship import chain, local_runner

    doc = json.loads(plan)
    code = local_runner.run_planned_step(doc, "export")
    if code != 0:
        raise RuntimeError(f"tfship export exited {code}")
    run_plan = chain.RunPlan.from_dict(doc["plan"])
    exported = {"model_dir": run_plan.model_dir, "version": run_plan.version}
    saved_model.metadata.update(exported)
    with open(saved_model.path, "w") as handle:
        handle.write(json.dumps(exported))
    return run_plan.model_dir


# validate and push take the exported version's directory as a parameter, not export's `Model`
# artifact: after the train-or-import branch it is a `dsl.OneOf` of the two exports, and kfp.local
# (2.17) resolves a OneOf of parameters but not of artifacts.
def validate_op(plan: str, model_dir: str, report: Output[Metrics]):
    """Validate the SavedModel at `model_dir` against the contract (fails the pipeline on a violation)."""
    import json

    from tfship import local_runner

    doc = json.loads(plan)
    code = local_runner.run_planned_step(doc, "validate")
    report.log_metric("passed", float(code == 0))
    if code != 0:
        raise RuntimeError(f"tfship validate exited {code}: the model breaks its contract")


def push_op(plan: str, model_dir: str) -> int:
    """Push the version at `model_dir` into the repository with the `canary` label."""
    import json

    from tfship import local_runner

    doc = json.loads(plan)
    code = local_runner.run_planned_step(doc, "push")
    if code != 0:
        raise RuntimeError(f"tfship push exited {code}")
    return int(doc["plan"]["version"])


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
    os.environ.update(local_runner.run_env(run_plan.run_id))  # the run the label history names
    verdict, _ = local_runner.run_canary(config, run_plan, target=doc["target"])
    metrics.log_metric("pass", float(verdict == chain.PASS))
    found = sorted(glob.glob(os.path.join(run_plan.canary_report_dir, "*.md")))
    text = open(found[0]).read() if found else f"# Canary {verdict}\n\nversion {pushed_version}\n"
    with open(report.path, "w") as handle:
        handle.write(text)
    return verdict


def rollout_op(plan: str, metrics: Output[Metrics]) -> str:
    """Move live traffic to the canary in steps, each judged from Prometheus; returns PASS or FAIL.

    FAIL has moved the traffic and the labels back and recorded why in the label history (a
    verdict, not an error: the pipeline ends without promoting).
    """
    import json

    from tfship import chain, local_runner

    doc = json.loads(plan)
    code = local_runner.run_planned_step(doc, "rollout")
    verdict = chain.verdict_from_exit_code(code)  # 0 PASS, 1 FAIL; anything else fails the task
    metrics.log_metric("pass", float(verdict == chain.PASS))
    return verdict


def promote_op(plan: str):
    """Move `stable` to the pushed (canary) version."""
    import json

    from tfship import local_runner

    doc = json.loads(plan)
    code = local_runner.run_planned_step(doc, "promote")
    if code != 0:
        raise RuntimeError(f"tfship promote exited {code}")



# Component name -> (function, runs on the GPU image).
_COMPONENT_FUNCTIONS: dict[str, tuple[Callable, bool]] = {
    "plan_op": (plan_op, False),
    "train_op": (train_op, True),
    "train_workers_op": (train_workers_op, False),
    "export_op": (export_op, False),
    "validate_op": (validate_op, False),
    "push_op": (push_op, False),
    "canary_op": (canary_op, False),
    "rollout_op": (rollout_op, False),
    "promote_op": (promote_op, False),
}
# Parameters of the pipeline that are ChainConfig fields (the rest of the config is `chain_config`).
_PIPELINE_FIELDS = ("data", "schema", "contract", "runs_root", "repo", "name", "model", "steps",
                    "checkpoint_every", "batch_size", "seed", "canary_requests", "rollout_steps",
                    "prometheus", "saved_model")
_PLAN_STEP = chain.Step("plan", cpu="500m", memory="1Gi")


@functools.cache
def components(image: str = chain.DEFAULT_IMAGE, gpu_image: str = chain.DEFAULT_GPU_IMAGE) -> dict:
    """Every step's component on these images. `install_kfp_package=False`: the image holds kfp
    and its dependencies (a run-time pip install fails on private GPU pools without internet)."""
    return {name: dsl.component(function, base_image=gpu_image if gpu else image,
                                install_kfp_package=False)
            for name, (function, gpu) in _COMPONENT_FUNCTIONS.items()}


def _apply(task: dsl.PipelineTask, step: chain.Step, config: chain.ChainConfig) -> dsl.PipelineTask:
    """Requests, limits, GPU placement, retries and caching of `step`, from the chain."""
    place = pods.placement(step, config)
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
    task.set_display_name(step.name)
    return task


def retrain_pipeline(config: "project.Project | str | os.PathLike", *, name: str = ""):
    """The retraining pipeline of one model, from its `tfship.yaml` (a path) or a loaded Project.

    The chain's main settings are pipeline parameters (defaults from the file: a run may change
    them); the rest of the chain (canary traffic and thresholds, per-step settings, ...) and the
    placement are compiled in from the file.

    Args:
        config: the model's tfship.yaml, or a `tfship.chain.project.Project`.
        name: the pipeline's name; "" = `tfship-retrain-<model name>`.

    Example::

        from kfp import compiler
        from tfship.kfp import retrain_pipeline
        compiler.Compiler().compile(retrain_pipeline("tfship.yaml"), "pipeline.yaml")
    """
    loaded = config if isinstance(config, project.Project) else project.load_project(os.fspath(config))
    base = loaded.chain
    ops = components(loaded.image, loaded.gpu_image)
    rest = json.dumps({k: v for k, v in base.to_dict().items() if k not in _PIPELINE_FIELDS}, sort_keys=True)

    @dsl.pipeline(name=name or f"tfship-retrain-{base.name}".lower().replace("_", "-").replace(".", "-"),
                  description="Train, export, validate, push, canary, promote.")
    def tfship_retrain(
        data: str = base.data,
        schema: str = base.schema,
        contract: str = base.contract,
        runs_root: str = base.runs_root,
        repo: str = base.repo,
        name: str = base.name,
        model: str = base.model,
        steps: int = base.steps,
        checkpoint_every: int = base.checkpoint_every,
        batch_size: int = base.batch_size,
        seed: int = base.seed,
        canary_requests: int = base.canary_requests,
        serving_target: str = loaded.serving_target,
        rollout_steps: str = ",".join(map(str, base.rollout_steps)),
        prometheus: str = base.prometheus,
        saved_model: str = base.saved_model,
    ):
        dataset = dsl.importer(artifact_uri=data, artifact_class=Dataset, reimport=False)
        dataset.set_display_name("data")
        plan = ops["plan_op"](
            data=dataset.output, schema=schema, contract=contract, runs_root=runs_root, repo=repo,
            name=name, model=model, steps=steps, checkpoint_every=checkpoint_every,
            batch_size=batch_size, seed=seed, canary_requests=canary_requests,
            serving_target=serving_target, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, chain_config=rest,
            rollout_steps=rollout_steps, prometheus=prometheus, saved_model=saved_model,
        )
        _apply(plan, _PLAN_STEP, base).set_display_name("plan")
        doc = plan.outputs["plan"]

        def step(name_: str) -> chain.Step:
            return chain.step_for(name_, base)

        with dsl.If(plan.outputs["train"] == True, name="train"):  # noqa: E712
            train_step = chain.train_step(base)
            if base.workers > 1:
                # This pod only submits the engine's object and waits: CPU placement; the workers get the GPUs.
                submit = dataclasses.replace(train_step, gpu=False, cpu="500m", memory="1Gi")
                train = _apply(ops["train_workers_op"](
                    plan=doc, workers=base.workers, engine=base.engine, gpu_image=loaded.gpu_image,
                    gpu_type=base.gpu_type, gpu_count=base.gpu_count, spot=base.spot,
                    queue=base.queue, namespace=loaded.namespace, data=dataset.output,
                ), submit, base)
            else:
                train = _apply(ops["train_op"](plan=doc, data=dataset.output), train_step, base)
            exported = _apply(ops["export_op"](plan=doc, job=train.outputs["job"]), step("export"), base)
        with dsl.Else(name="saved-model"):  # a model trained elsewhere: export imports it
            imported = _apply(ops["export_op"](plan=doc), step("export"), base)
        model_dir = dsl.OneOf(exported.outputs["Output"], imported.outputs["Output"])
        validate = _apply(ops["validate_op"](plan=doc, model_dir=model_dir), step("validate"), base)
        push = _apply(ops["push_op"](plan=doc, model_dir=model_dir), step("push"), base)
        push.after(validate)
        with dsl.If(plan.outputs["first_version"] == True, name="first-version"):  # noqa: E712
            _apply(ops["promote_op"](plan=doc), step("promote"), base).after(push)
        with dsl.Else(name="has-stable"):
            canary = _apply(ops["canary_op"](plan=doc, pushed_version=push.output), step("canary"), base)
            with dsl.If(canary.outputs["Output"] == chain.PASS, name="canary-pass"):
                with dsl.If(plan.outputs["rollout"] == True, name="rollout-on"):  # noqa: E712
                    rollout = _apply(ops["rollout_op"](plan=doc), step("rollout"), base)
                    with dsl.If(rollout.outputs["Output"] == chain.PASS, name="rollout-pass"):
                        _apply(ops["promote_op"](plan=doc), step("promote"), base)
                with dsl.Else(name="no-rollout"):
                    _apply(ops["promote_op"](plan=doc), step("promote"), base)

    return tfship_retrain


def compile_pipeline(config: "project.Project | str | os.PathLike", path: str, *, name: str = "") -> str:
    """Write the pipeline of `config` (see `retrain_pipeline`) as YAML to `path`; returns `path`."""
    compiler.Compiler().compile(retrain_pipeline(config, name=name), package_path=path)
    return path


def write_component_specs(directory: str, *, image: str = chain.DEFAULT_IMAGE,
                          gpu_image: str = chain.DEFAULT_GPU_IMAGE) -> list[str]:
    """Write every step's component spec (`<directory>/<component>.yaml`) on these images.

    A team loads one into its own pipeline with `kfp.components.load_component_from_file`; the
    inputs and outputs are typed (the plan JSON, Dataset, Model, Metrics, Markdown).
    """
    os.makedirs(directory, exist_ok=True)
    written = []
    for name, component in components(image, gpu_image).items():
        path = os.path.join(directory, f"{name}.yaml")
        compiler.Compiler().compile(component, package_path=path)
        written.append(path)
    return written
