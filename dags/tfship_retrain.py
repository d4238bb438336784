"""`tfship_retrain`: scheduled (and data-triggered) retraining, derived from `tfship.chain`.

    plan -> train_needed? --yes--> train -> export
                          \\--no (saved_model)--> export
    export -> validate -> push -> first_version? --yes--> promote
                                                \\--no--> canary --PASS--> rollout_enabled?
    rollout_enabled? --yes--> rollout --PASS--> promote
                     \\--no--> promote

Two modes, chosen when the file is parsed (`TFSHIP_DAG_MODE`, default `kubernetes`):

- `kubernetes`: every step is a KubernetesPodOperator running `tfship <step> ...` in the tfship
  image. `train` runs the GPU image on the GPU node pool (node selector
  `cloud.google.com/gke-accelerator`, the `nvidia.com/gpu` toleration and limit, spot nodes unless
  `TFSHIP_GPU_SPOT=false`) and is retried on exit 143 (preempted after a checkpoint); every other
  exit code fails the task at once. The canary talks to the TF Serving Service of
  images/tf-serving.yaml (param `serving_target`). With `TFSHIP_TRAIN_WORKERS` > 1, train runs on
  that many GPU workers as the object of `TFSHIP_TRAIN_ENGINE` (`jobset`, the default; `trainjob`,
  Kubeflow Trainer v2; `tfjob`, legacy), rendered by `chain.render_workers`, which a task submits
  and waits on. With `TFSHIP_GPU_QUEUE`, every GPU workload carries that Kueue queue label.
- `local`: the same commands as local processes (`$TFSHIP_CLI`, else `python -m tfship.cli`), the
  canary against a `tfship serve` started on free loopback ports, so `airflow dags test
  tfship_retrain` runs the whole chain on one machine with SQLite.

The `rollout` task (param `rollout_steps`, e.g. "5,25,50,100"; "" = off, the canary PASS
promotes at once) moves live traffic to the new version in steps judged from `prometheus`, and
promotes or rolls back (`tfship rollout --promote`); in `local` mode it needs `serving_target`, a
server that Prometheus scrapes, and then the canary runs against it too.

With the param `saved_model` (a SavedModel trained elsewhere, e.g. `keras.Model.export()`'s
output) the `train_needed` branch skips train and export imports that model (`tfship export
--saved-model`): it is validated, pushed, canaried and promoted like a trained one.

The plan step decides the run's version and folders and every step's arguments (`tfship run
--plan-only`); the other tasks only execute them. Every step process gets the DAG run id in
`TFSHIP_RUN_ID`, so the label history names the run that moved a label. Nothing here touches
the network or imports TensorFlow at parse time.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from tfship import chain

DAG_ID = "tfship_retrain"
MODE = os.environ.get("TFSHIP_DAG_MODE", "kubernetes")
if MODE not in ("kubernetes", "local"):
    raise ValueError(
        f"Invalid value for TFSHIP_DAG_MODE. Received: {MODE!r}. Expected 'kubernetes' or 'local'."
    )
# Asset updated by whatever lands new training data; a new event triggers a run.
TRAINING_DATA = Asset(uri=os.environ.get("TFSHIP_DATA_ASSET", "gs://tfship-data/penguins/"),
                      name="tfship_training_data")
NAMESPACE = os.environ.get("TFSHIP_NAMESPACE", "tfship")
GPU_SPOT = os.environ.get("TFSHIP_GPU_SPOT", "true").lower() != "false"
GPU_COUNT = int(os.environ.get("TFSHIP_GPU_COUNT", "1"))
# More than one worker: train runs on a multi-worker engine (MultiWorkerMirroredStrategy), kubernetes mode.
TRAIN_WORKERS = int(os.environ.get("TFSHIP_TRAIN_WORKERS", "1"))
TRAIN_ENGINE = os.environ.get("TFSHIP_TRAIN_ENGINE", chain.ENGINES[0])
# A Kueue LocalQueue for the GPU workloads ("" = no Kueue).
GPU_QUEUE = os.environ.get("TFSHIP_GPU_QUEUE", "")
# How long the train task waits for the engine's object to end.
TRAIN_TIMEOUT_S = float(os.environ.get("TFSHIP_TRAIN_TIMEOUT_S", 12 * 3600))
# The defaults of the params; built with the engine and queue so a bad value is an import error.
_D = chain.ChainConfig(data="-", schema="-", runs_root="-", repo="-", engine=TRAIN_ENGINE,
                       queue=GPU_QUEUE)

PARAMS = {
    "data": Param(os.environ.get("TFSHIP_DATA", "gs://tfship-data/penguins/penguins.csv"), type="string"),
    "schema": Param(os.environ.get("TFSHIP_SCHEMA", "gs://tfship-data/penguins/schema.yaml"), type="string"),
    "contract": Param(os.environ.get("TFSHIP_CONTRACT", ""), type="string"),
    "workspace": Param(os.environ.get("TFSHIP_WORKSPACE", "gs://tfship-runs/retrain"), type="string",
                       description="runs land under <workspace>/runs/<run id>/"),
    "repo": Param(os.environ.get("TFSHIP_REPO", "gs://tfship-models/repo"), type="string"),
    "name": Param(os.environ.get("TFSHIP_MODEL_NAME", "penguins"), type="string"),
    "model": Param(_D.model, type="string"),
    "steps": Param(int(os.environ.get("TFSHIP_STEPS", _D.steps)), type="integer", minimum=1),
    "checkpoint_every": Param(_D.checkpoint_every, type="integer", minimum=1),
    "batch_size": Param(_D.batch_size, type="integer", minimum=1),
    "seed": Param(_D.seed, type="integer", minimum=0),
    "canary_requests": Param(int(os.environ.get("TFSHIP_CANARY_REQUESTS", _D.canary_requests)),
                             type="integer", minimum=1),
    "saved_model": Param(os.environ.get("TFSHIP_SAVED_MODEL", _D.saved_model), type="string",
                         description="a SavedModel trained elsewhere: no train, export imports it "
                         "(data and schema are then not read); empty = train on data"),
    "image": Param(os.environ.get("TFSHIP_IMAGE", chain.DEFAULT_IMAGE), type="string"),
    "gpu_image": Param(os.environ.get("TFSHIP_GPU_IMAGE", chain.DEFAULT_GPU_IMAGE), type="string"),
    "gpu_type": Param(os.environ.get("TFSHIP_GPU_TYPE", chain.DEFAULT_GPU_TYPE), type="string"),
    "serving_target": Param(os.environ.get("TFSHIP_SERVING_TARGET", chain.DEFAULT_SERVING_TARGET),
                            type="string", description="kubernetes mode: the TF Serving Service; local "
                            "mode: used with a rollout only (a server that Prometheus scrapes)"),
    "rollout_steps": Param(os.environ.get("TFSHIP_ROLLOUT_STEPS", ""), type="string",
                           description="after the canary PASS, live traffic in steps, e.g. 5,25,50,100 "
                           "(tfship rollout --steps); empty = promote at once"),
    "rollout_interval": Param(_D.rollout_interval, type="string", description="longest rollout step"),
    "rollout_check_every": Param(_D.rollout_check_every, type="string",
                                 description="sequential looks of the rollout; empty = interval / 10"),
    "rollout_apply": Param(os.environ.get("TFSHIP_ROLLOUT_APPLY", _D.rollout_apply), type="string",
                           description="kinds the rollout server-side applies, e.g. virtualservice"),
    "prometheus": Param(os.environ.get("TFSHIP_PROMETHEUS", _D.prometheus), type="string",
                        description="Prometheus' URL, scraping the serving target (for the rollout)"),
}

# `tfship run --plan-only` flag -> the param it comes from.
PLAN_FLAGS = {
    "--data": "data", "--schema": "schema", "--contract": "contract", "--run-dir": "workspace",
    "--repo": "repo", "--name": "name", "--model": "model", "--steps": "steps",
    "--checkpoint-every": "checkpoint_every", "--batch-size": "batch_size", "--seed": "seed",
    "--requests": "canary_requests", "--rollout-steps": "rollout_steps",
    "--rollout-interval": "rollout_interval", "--rollout-check-every": "rollout_check_every",
    "--rollout-apply": "rollout_apply", "--prometheus": "prometheus", "--saved-model": "saved_model",
}
# Not passed with `saved_model`: nothing is trained (`tfship run` refuses data with a saved model).
TRAINING_ONLY = ("data", "schema")


def plan_args(params: dict, run_id: str, target: str) -> list[str]:
    """`tfship run --plan-only ...` for this run's params (the first task's command)."""
    args = ["run", "--plan-only", "--run-id", chain.safe_run_id(run_id)]
    for flag, key in PLAN_FLAGS.items():
        if not (params["saved_model"] and key in TRAINING_ONLY):
            args += [flag, str(params[key])]
    if target:
        args += ["--target", target]
    return args


def next_task(plan_doc: dict, choices: list[str]) -> str:
    """A branch's choice: the first of `choices` that this run executes (`chain.steps_for`).

    After plan: train, unless the run imports a `saved_model` (then export); after push: canary
    when a stable version exists, else straight to promote; after the canary: rollout when the
    run's config turns it on, else promote.
    """
    config = chain.ChainConfig.from_mapping(plan_doc["config"])
    names = {s.name for s in chain.steps_for(chain.RunPlan.from_dict(plan_doc["plan"]), config)}
    return next(name for name in choices if name in names)


def _fail_or_retry(step: chain.Step, exit_code: int | None) -> None:
    """Raise so that Airflow retries only what the chain calls retryable."""
    message = f"tfship {step.name} exited {exit_code}"
    if step.is_retryable(exit_code):
        raise AirflowException(f"{message}: retryable, Airflow runs it again")
    raise AirflowFailException(f"{message}: not retryable, failing fast")


def workers_for(plan_doc: dict, image: str, gpu_type: str, workers: int = TRAIN_WORKERS,
                engine: str = TRAIN_ENGINE) -> dict:
    """The engine object that runs this run's train on `workers` GPU workers.

    Its name comes from the plan's run id (`chain.workload_name`): a retried task renders the same.
    """
    config = chain.ChainConfig.from_mapping(
        {**plan_doc["config"], "workers": workers, "engine": engine, "gpu_type": gpu_type,
         "gpu_count": GPU_COUNT, "spot": GPU_SPOT, "queue": GPU_QUEUE})
    run_plan = chain.RunPlan.from_dict(plan_doc["plan"])
    return chain.render_workers(config, run_plan, image=image, namespace=NAMESPACE)


def container_exit_code(pod, container: str = "base") -> int | None:
    """The exit code of `container` in a finished pod; None when it never terminated (node lost)."""
    statuses = (pod.status.container_statuses if pod is not None and pod.status else None) or []
    status = next((s for s in statuses if s.name == container), None)
    if status is None or status.state is None or status.state.terminated is None:
        return None
    return status.state.terminated.exit_code


def _local_tasks():
    """TaskFlow tasks that run each step as a local `tfship` process."""
    from tfship import local_runner

    @task(task_id="plan")
    def plan(params: dict | None = None, run_id: str | None = None) -> dict:
        import json
        import subprocess

        # Locally the canary gets a server on free ports, unless a rollout needs the one Prometheus scrapes.
        target = params["serving_target"] if params["rollout_steps"] else ""
        argv = [*local_runner.tfship_command(), *plan_args(params, run_id, target=target)]
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stdout + done.stderr)
            _fail_or_retry(chain.Step("plan"), done.returncode)
        return json.loads(done.stdout.strip().splitlines()[-1])

    def step_task(name: str):
        step = chain.train_step(_D) if name == "train" else chain.STEPS[name]

        @task(task_id=name, retries=step.retries, retry_delay=timedelta(seconds=5))
        def run(plan_doc: dict, run_id: str | None = None) -> None:
            # One attempt per try: Airflow does the retrying (`retries` above).
            result = local_runner.run_step(step, plan_doc["args"][name], raise_on_failure=False,
                                           retry=False, env={chain.RUN_ID_ENV: run_id})
            if result.exit_code != 0:
                _fail_or_retry(step, result.exit_code)

        return run

    @task(task_id="canary")
    def canary(plan_doc: dict, run_id: str | None = None) -> str:
        config = chain.ChainConfig.from_mapping(plan_doc["config"])
        run_plan = chain.RunPlan.from_dict(plan_doc["plan"])
        verdict, _ = local_runner.run_canary(config, run_plan, target=plan_doc["target"],
                                             env={chain.RUN_ID_ENV: run_id})
        if verdict != chain.PASS:
            raise AirflowFailException(f"canary {verdict}: version {run_plan.version} is not promoted")
        return verdict

    @task(task_id="rollout")
    def rollout(plan_doc: dict, run_id: str | None = None) -> str:
        verdict, _ = local_runner.run_gate(chain.STEPS["rollout"], plan_doc["args"]["rollout"],
                                           env={chain.RUN_ID_ENV: run_id})
        if verdict != chain.PASS:
            raise AirflowFailException(f"rollout {verdict}: rolled back, version "
                                       f"{plan_doc['plan']['version']} is not promoted")
        return verdict

    return plan, step_task, {"canary": canary, "rollout": rollout}


def _kubernetes_tasks():
    """KubernetesPodOperators running each step's CLI in the tfship image."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from kubernetes.client import models as k8s

    class TfshipPodOperator(KubernetesPodOperator):
        """A step's pod: fails fast unless the chain calls the container's exit code retryable."""

        def __init__(self, *, step: chain.Step, **kwargs) -> None:
            super().__init__(**kwargs)
            self.step = step

        def cleanup(self, pod, remote_pod, xcom_result=None, context=None):
            try:
                return super().cleanup(pod, remote_pod, xcom_result=xcom_result, context=context)
            except AirflowException as error:
                code = container_exit_code(remote_pod, self.base_container_name)
                if not self.step.is_retryable(code):
                    raise AirflowFailException(f"tfship {self.step.name} exited {code}: {error}") from error
                raise

    def pod(step: chain.Step, arguments, image: str, **kwargs) -> KubernetesPodOperator:
        place = chain.placement(step, chain.ChainConfig(
            data="-", schema="-", runs_root="-", repo="-", gpu_count=GPU_COUNT, spot=GPU_SPOT,
            gpu_type="placeholder", queue=GPU_QUEUE))
        selector = dict(place.node_selector)
        if step.gpu:
            # Templated: the GPU type is a run parameter.
            selector["cloud.google.com/gke-accelerator"] = "{{ params.gpu_type }}"
        return TfshipPodOperator(
            step=step,
            task_id=step.name,
            name=f"tfship-{step.name}",
            namespace=NAMESPACE,
            image=image,
            arguments=arguments,
            container_resources=k8s.V1ResourceRequirements(
                requests=dict(place.requests), limits=dict(place.limits)),
            node_selector=selector,
            tolerations=[k8s.V1Toleration(**t) for t in place.tolerations],
            retries=step.retries,
            retry_delay=timedelta(seconds=30),
            # GPU nodes scale up from zero: give the pod time to be scheduled and pull the image.
            startup_timeout_seconds=1800 if step.gpu else 300,
            get_logs=True,
            on_finish_action="delete_succeeded_pod",
            labels={"app.kubernetes.io/name": "tfship", "tfship/step": step.name, **place.labels},
            # The label history (`tfship.history`) records which DAG run moved a label.
            env_vars={chain.RUN_ID_ENV: "{{ run_id }}"},
            **kwargs,
        )

    plan_step = chain.Step("plan", cpu="500m", memory="1Gi")
    # One expression that yields the whole list: native rendering would turn a lone "300" into an int.
    plan_arguments = ("{{ tfship_plan_args(params, run_id, params.serving_target)"
                      " + ['--plan-out', '/airflow/xcom/return.json'] }}")

    def plan_task():
        return pod(plan_step, plan_arguments, "{{ params.image }}", do_xcom_push=True)

    # The engine restarts preempted workers itself (the JobSet's failure policy); Airflow retries
    # only this submitting task (a lost Airflow worker, an API error), and the retry finds the
    # object the first try created and waits on it.
    @task(task_id="train", retries=2, retry_delay=timedelta(seconds=30))
    def train_workers(plan_doc: dict, params: dict | None = None) -> str:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        from tfship import local_runner

        body = workers_for(plan_doc, params["gpu_image"], params["gpu_type"])
        try:
            return local_runner.run_workload(KubernetesHook().custom_object_client, body,
                                             timeout_s=TRAIN_TIMEOUT_S)
        except local_runner.StepFailed as error:  # the engine gave up (or the wait ran out)
            raise AirflowFailException(f"{body['kind']} {body['metadata']['name']}: {error}") from error

    def step_task(name: str):
        if name == "train" and TRAIN_WORKERS > 1:
            return train_workers
        step = chain.train_step(_D) if name == "train" else chain.STEPS[name]
        image = "{{ params.gpu_image }}" if step.gpu else "{{ params.image }}"
        arguments = f"{{{{ ti.xcom_pull(task_ids='plan')['args']['{name}'] }}}}"
        return pod(step, arguments, image)

    return plan_task, step_task


@dag(
    dag_id=DAG_ID,
    description="Retrain, export, validate, push, canary and promote a TF Serving model",
    # Weekly, and whenever new training data lands (an event on the Asset).
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(os.environ.get("TFSHIP_SCHEDULE", "0 3 * * 1"), timezone="UTC"),
        assets=(TRAINING_DATA,),
    ),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,  # two runs would pick the same next version
    params=PARAMS,
    render_template_as_native_obj=True,  # templated `arguments` stay lists
    user_defined_macros={"tfship_plan_args": plan_args},
    tags=["tfship", MODE],
    doc_md=__doc__,
)
def tfship_retrain():
    # The chain's job steps, in order: those before the gate run in a line; the steps that need a
    # stable version to compare with (the canary, the rollout) sit behind the `first_version`
    # branch, and an optional one (the rollout) behind a branch of its own.
    steps = chain.job_steps()
    line = [s.name for s in steps if not s.after_canary_only and s.name != "promote"]
    behind_gate = [s.name for s in steps if s.after_canary_only]
    if MODE == "local":
        plan, step_task, gate_tasks = _local_tasks()
        plan_doc = plan()
        tasks = {name: step_task(name)(plan_doc) for name in line}
        tasks.update({name: gate_tasks[name](plan_doc) for name in behind_gate})
        promote = step_task("promote").override(trigger_rule="none_failed_min_one_success")(plan_doc)
    else:
        plan_task, step_task = _kubernetes_tasks()
        plan_pod = plan_task()
        tasks = {name: step_task(name) for name in [*line, *behind_gate]}
        if TRAIN_WORKERS > 1:
            tasks["train"] = tasks["train"](plan_pod.output)
        promote = step_task("promote")
        promote.trigger_rule = "none_failed_min_one_success"
        plan_pod >> tasks[line[0]]
        plan_doc = plan_pod.output

    def branch(task_id: str, choices: list[str]):
        @task.branch(task_id=task_id)
        def choose(doc: dict) -> str:
            return next_task(doc, choices)

        return choose(plan_doc)

    for before, after in zip(line, line[1:]):
        tasks[before] >> tasks[after]
        if chain.STEPS[before].skipped_by:  # train: skipped when the run imports a saved model
            branch(f"{before}_needed", [before, after]) >> [tasks[before], tasks[after]]
            getattr(tasks[after], "operator", tasks[after]).trigger_rule = "none_failed_min_one_success"
    previous = tasks[line[-1]]
    for index, name in enumerate(behind_gate):
        # `first_version` before the first step behind the gate, `<step>_enabled` before an optional one.
        if index == 0 or chain.STEPS[name].enabled_by:
            gate = branch("first_version" if index == 0 else f"{name}_enabled", [name, "promote"])
            previous >> gate >> [tasks[name], promote]
        else:
            previous >> tasks[name]
        previous = tasks[name]
    previous >> promote


tfship_retrain()
