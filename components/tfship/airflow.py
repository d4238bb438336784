"""The Airflow adapter: a DAG factory for one model's chain, and one for a folder of models.

    plan -> train_needed? --yes--> train -> export
                          \\--no (saved_model)--> export
    export -> validate -> push -> first_version? --yes--> promote
                                                \\--no--> canary --PASS--> rollout_enabled?
    rollout_enabled? --yes--> rollout --PASS--> promote
                     \\--no--> promote

`retrain_dag(project)` builds the DAG of one `tfship.yaml` (a `tfship.chain.project.Project`);
`retrain_dags(folder)` builds one per `tfship.yaml` in a folder, the usual Airflow pattern for
many similar DAGs (dags/tfship_models.py is that file). Importable only where Airflow is (the
`.venv-airflow` environment); the steps never import it.

Two modes:

- `kubernetes`: every step is a KubernetesPodOperator running `tfship <step> ...` in the project's
  image. `train` runs the GPU image on the GPU node pool (the project's accelerator, count, spot,
  node selector and tolerations: `pods.placement`) and is retried on exit 143 (preempted after a
  checkpoint); every other exit code fails the task at once. The canary talks to the project's TF
  Serving Service (param `serving_target`). With more than one train worker, train runs as the
  object of the project's engine (`jobset`, `trainjob`, `tfjob`), rendered by
  `workers.render_workers`, which a task submits and waits on.
- `local`: the same commands as local processes (`$TFSHIP_CLI`, else `python -m tfship.cli`), the
  canary against a `tfship serve` started on free loopback ports, so `airflow dags test <dag id>`
  runs the whole chain on one machine with SQLite.

The plan task decides the run's version and folders and every step's arguments (`tfship run
--plan-only --chain-json ...`, the chain's config with the run's params applied); the other tasks
only execute them. The params are ChainConfig's scalar fields (a field added to ChainConfig
becomes a param; `rollout_steps` is a string such as "5,25,50,100"), except the placement ones,
which shape the pods when the file is parsed. The `rollout` task (on when `rollout_steps` is set;
"" = the canary PASS promotes at once) moves live traffic to the new version in steps judged from
`prometheus` (`tfship rollout`); locally it needs `serving_target`, a server Prometheus scrapes,
and then the canary runs against it too. Every step process gets the DAG run id in
`TFSHIP_RUN_ID`, so the label history names the run that moved a label. With the param
`saved_model` (a SavedModel trained elsewhere) the `train_needed` branch skips train and export
imports that model (`tfship export --saved-model`); it is validated, pushed, canaried and
promoted like a trained one. Nothing here touches the
network or imports TensorFlow at parse time.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from tfship import chain
from tfship.k8s import pods, workers
from tfship.chain import project
from tfship.errors import ConfigError, TfshipError

MODES = ("kubernetes", "local")
# Fields that shape the pods or the task graph when the file is parsed: set in tfship.yaml, not
# per run.
_PARSE_TIME_FIELDS = frozenset({"gpu_count", "spot", "queue", "workers", "engine"})
_PARAM_TYPES = {str: "string", int: "integer", bool: "boolean"}
# The plan's own pod (it only reads the repository and writes the examples).
_PLAN_STEP = chain.Step("plan", cpu="500m", memory="1Gi")
# How long the multi-worker train task waits for the engine's object to end.
DEFAULT_TRAIN_TIMEOUT_S = 12 * 3600.0


def chain_params(config: chain.ChainConfig) -> dict[str, Param]:
    """The DAG's params for the chain: one per scalar ChainConfig field, defaults from `config`."""
    params = {}
    for field in dataclasses.fields(chain.ChainConfig):
        value = getattr(config, field.name)
        if field.name == "rollout_steps":  # a tuple of percentages; a param holds "5,25,50,100"
            value = ",".join(map(str, value))
        kind = _PARAM_TYPES.get(type(value))
        if kind is None or field.name in _PARSE_TIME_FIELDS:
            continue
        bounds = ({"minimum": 1} if field.name in chain.POSITIVE_FIELDS else
                  {"minimum": 0} if field.name in chain.NON_NEGATIVE_FIELDS else {})
        params[field.name] = Param(value, type=kind, **bounds)
    return params


def plan_args(config: chain.ChainConfig, params: dict, run_id: str, target: str) -> list[str]:
    """`tfship run --plan-only ...` for this run: `config` with the run's params applied."""
    fields = {f.name for f in dataclasses.fields(chain.ChainConfig)}
    mapping = {**config.to_dict(), **{k: v for k, v in params.items() if k in fields}}
    args = ["run", "--plan-only", "--run-id", chain.safe_run_id(run_id),
            "--chain-json", json.dumps(mapping, sort_keys=True)]
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


def fail_or_retry(step: chain.Step, exit_code: int | None) -> None:
    """Raise so that Airflow retries only what the chain calls retryable."""
    message = f"tfship {step.name} exited {exit_code}"
    if step.is_retryable(exit_code):
        raise AirflowException(f"{message}: retryable, Airflow runs it again")
    raise AirflowFailException(f"{message}: not retryable, failing fast")


def workers_for(config: chain.ChainConfig, plan_doc: dict, image: str, gpu_type: str,
                namespace: str) -> dict:
    """The engine object that runs this run's train on `config.workers` GPU workers.

    The run's own settings come from the plan; the placement from `config` (the file). Its name
    comes from the plan's run id (`workers.workload_name`): a retried task renders the same.
    """
    params = chain_params(config)
    from_file = {f.name: getattr(config, f.name) for f in dataclasses.fields(chain.ChainConfig)
                 if f.name not in params}
    run_config = chain.ChainConfig.from_mapping({**plan_doc["config"], **from_file, "gpu_type": gpu_type})
    run_plan = chain.RunPlan.from_dict(plan_doc["plan"])
    return workers.render_workers(run_config, run_plan, image=image, namespace=namespace)


def container_exit_code(pod, container: str = "base") -> int | None:
    """The exit code of `container` in a finished pod; None when it never terminated (node lost)."""
    statuses = (pod.status.container_statuses if pod is not None and pod.status else None) or []
    status = next((s for s in statuses if s.name == container), None)
    if status is None or status.state is None or status.state.terminated is None:
        return None
    return status.state.terminated.exit_code


def _local_tasks(config: chain.ChainConfig, plan_macro: Callable[..., list[str]]):
    """TaskFlow tasks that run each step as a local `tfship` process."""
    from tfship import local_runner

    @task(task_id="plan")
    def plan(params: dict | None = None, run_id: str | None = None) -> dict:
        import subprocess

        # Locally the canary gets a server on free ports, unless a rollout needs the one Prometheus scrapes.
        target = params["serving_target"] if params["rollout_steps"] else ""
        argv = [*local_runner.tfship_command(), *plan_macro(params, run_id, target)]
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stdout + done.stderr)
            fail_or_retry(_PLAN_STEP, done.returncode)
        return json.loads(done.stdout.strip().splitlines()[-1])

    def step_task(name: str):
        step = chain.step_for(name, config)

        @task(task_id=name, retries=step.retries, retry_delay=timedelta(seconds=5))
        def run(plan_doc: dict, run_id: str | None = None) -> None:
            # One attempt per try: Airflow does the retrying (`retries` above).
            result = local_runner.run_step(step, plan_doc["args"][name], raise_on_failure=False,
                                           retry=False, env={chain.RUN_ID_ENV: run_id})
            if result.exit_code != 0:
                fail_or_retry(step, result.exit_code)

        return run

    @task(task_id="canary")
    def canary(plan_doc: dict, run_id: str | None = None) -> str:
        run_config = chain.ChainConfig.from_mapping(plan_doc["config"])
        run_plan = chain.RunPlan.from_dict(plan_doc["plan"])
        verdict, _ = local_runner.run_canary(run_config, run_plan, target=plan_doc["target"],
                                             env={chain.RUN_ID_ENV: run_id})
        if verdict != chain.PASS:
            raise AirflowFailException(f"canary {verdict}: version {run_plan.version} is not promoted")
        return verdict

    @task(task_id="rollout")
    def rollout(plan_doc: dict, run_id: str | None = None) -> str:
        verdict, _ = local_runner.run_gate(chain.step_for("rollout", config), plan_doc["args"]["rollout"],
                                           env={chain.RUN_ID_ENV: run_id})
        if verdict != chain.PASS:
            raise AirflowFailException(f"rollout {verdict}: rolled back, version "
                                       f"{plan_doc['plan']['version']} is not promoted")
        return verdict

    return plan, step_task, {"canary": canary, "rollout": rollout}


def _kubernetes_tasks(loaded: project.Project, train_timeout_s: float):
    """KubernetesPodOperators running each step's CLI in the project's image."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from kubernetes.client import models as k8s

    config = loaded.chain

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
        place = pods.placement(step, config)
        selector = dict(place.node_selector)
        if step.gpu:
            # Templated: the GPU type is a run parameter.
            selector["cloud.google.com/gke-accelerator"] = "{{ params.gpu_type }}"
        return TfshipPodOperator(
            step=step,
            task_id=step.name,
            name=f"tfship-{step.name}",
            namespace=loaded.namespace,
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

    # One expression that yields the whole list: native rendering would turn a lone "300" into an int.
    plan_arguments = ("{{ tfship_plan_args(params, run_id, params.serving_target)"
                      " + ['--plan-out', '/airflow/xcom/return.json'] }}")

    def plan_task():
        return pod(_PLAN_STEP, plan_arguments, "{{ params.image }}", do_xcom_push=True)

    # The engine restarts preempted workers itself (the JobSet's failure policy); Airflow retries
    # only this submitting task (a lost Airflow worker, an API error), and the retry finds the
    # object the first try created and waits on it.
    @task(task_id="train", retries=2, retry_delay=timedelta(seconds=30))
    def train_workers(plan_doc: dict, params: dict | None = None) -> str:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        from tfship import local_runner

        body = workers_for(config, plan_doc, params["gpu_image"], params["gpu_type"], loaded.namespace)
        try:
            return local_runner.run_workload(KubernetesHook().custom_object_client, body,
                                             timeout_s=train_timeout_s)
        except local_runner.StepFailed as error:  # the engine gave up (or the wait ran out)
            raise AirflowFailException(f"{body['kind']} {body['metadata']['name']}: {error}") from error

    def step_task(name: str):
        if name == "train" and config.workers > 1:
            return train_workers
        step = chain.step_for(name, config)
        image = pods.image_for(step, "{{ params.image }}", "{{ params.gpu_image }}")
        arguments = f"{{{{ ti.xcom_pull(task_ids='plan')['args']['{name}'] }}}}"
        return pod(step, arguments, image)

    return plan_task, step_task


def _schedule(loaded: project.Project):
    """The cron, or the cron OR an event on the project's data Asset (new training data landed)."""
    timetable = CronTriggerTimetable(loaded.schedule, timezone="UTC")
    if not loaded.data_asset:
        return timetable
    asset = Asset(uri=loaded.data_asset, name=f"{loaded.chain.name}_training_data")
    return AssetOrTimeSchedule(timetable=timetable, assets=(asset,))


def retrain_dag(config: project.Project | str | os.PathLike, *, mode: str = "kubernetes",
                dag_id: str = "", train_timeout_s: float = DEFAULT_TRAIN_TIMEOUT_S) -> DAG:
    """The retraining DAG of one model, from its `tfship.yaml` (a path) or a loaded Project.

    Args:
        config: the model's tfship.yaml, or a `tfship.chain.project.Project`.
        mode: `kubernetes` (pods on the cluster) or `local` (processes on this machine).
        dag_id: "" = the project's (`tfship_retrain_<name>`).
        train_timeout_s: how long a multi-worker train task waits for its engine's object.

    Raises ConfigError (one line naming the file and key) for a bad file or mode: in a DAG file
    that is the file's import error.

    Example (a DAG file)::

        from tfship.airflow import retrain_dag
        dag = retrain_dag("/opt/airflow/dags/churn/tfship.yaml")
    """
    if mode not in MODES:
        raise ConfigError(f"Invalid value for argument `mode` (TFSHIP_DAG_MODE). Received: {mode!r}. "
                          "Expected 'kubernetes' or 'local'.")
    loaded = config if isinstance(config, project.Project) else project.load_project(os.fspath(config))
    base = loaded.chain

    def plan_macro(params: dict, run_id: str, target: str) -> list[str]:
        return plan_args(base, params, run_id, target)

    params = {
        **chain_params(base),
        "image": Param(loaded.image, type="string"),
        "gpu_image": Param(loaded.gpu_image, type="string"),
        "serving_target": Param(loaded.serving_target, type="string",
                                description="kubernetes mode: the TF Serving Service; local mode: "
                                "used with a rollout only (a server that Prometheus scrapes)"),
    }

    @dag(
        dag_id=dag_id or loaded.dag_id,
        description=f"Retrain, export, validate, push, canary and promote {base.name!r} ({loaded.path})",
        schedule=_schedule(loaded),
        start_date=datetime(2025, 1, 1),
        catchup=False,
        max_active_runs=1,  # two runs would pick the same next version
        params=params,
        render_template_as_native_obj=True,  # templated `arguments` stay lists
        user_defined_macros={"tfship_plan_args": plan_macro},
        tags=["tfship", mode, base.name],
        doc_md=__doc__,
    )
    def tfship_retrain():
        # The chain's job steps, in order: those before the gate run in a line; the steps that need
        # a stable version to compare with (the canary, the rollout) sit behind the `first_version`
        # branch, and an optional one (the rollout) behind a branch of its own.
        steps = chain.job_steps()
        line = [s.name for s in steps if not s.after_canary_only and s.name != "promote"]
        behind_gate = [s.name for s in steps if s.after_canary_only]
        if mode == "local":
            plan, step_task, gate_tasks = _local_tasks(base, plan_macro)
            plan_doc = plan()
            tasks = {name: step_task(name)(plan_doc) for name in line}
            tasks.update({name: gate_tasks[name](plan_doc) for name in behind_gate})
            promote = step_task("promote").override(trigger_rule="none_failed_min_one_success")(plan_doc)
        else:
            plan_task, step_task = _kubernetes_tasks(loaded, train_timeout_s)
            plan_pod = plan_task()
            tasks = {name: step_task(name) for name in [*line, *behind_gate]}
            if base.workers > 1:
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

    return tfship_retrain()


class BrokenModels(DAG):
    """Stands for the models of a folder whose tfship.yaml does not load: Airflow refuses to bag
    it (its `validate` raises), which records the files' one-line errors as the DAG file's import
    error while the folder's other DAGs load. (Airflow keys import errors by DAG file, so every
    broken model of the folder is one line of that one error.)"""

    def __init__(self, errors: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tfship_errors = errors

    def validate(self) -> None:
        raise ConfigError("\n".join(self.tfship_errors))


def model_files(folder: str) -> list[str]:
    """The model files of a folder: every `tfship.yaml` (one model's project each) and every
    `<model>.tfship.yaml`, at any depth, in a stable order."""
    found = {*glob.glob(os.path.join(folder, "**", project.FILE_NAME), recursive=True),
             *glob.glob(os.path.join(folder, "**", f"*.{project.FILE_NAME}"), recursive=True)}
    return sorted(found)


def retrain_dags(folder: str, *, mode: str = "kubernetes",
                 train_timeout_s: float = DEFAULT_TRAIN_TIMEOUT_S) -> dict[str, DAG]:
    """One retraining DAG per model file in `folder` (see `model_files`), keyed by DAG id.

    A file that does not load (or two models with one DAG id) does not stop the others: its error
    line becomes the DAG file's import error through a `BrokenModels` placeholder.
    """
    dags: dict[str, DAG] = {}
    errors: list[str] = []
    for path in model_files(folder):
        try:
            built = retrain_dag(path, mode=mode, train_timeout_s=train_timeout_s)
        except TfshipError as error:
            errors.append(str(error))
            continue
        if built.dag_id in dags:
            errors.append(f"{path}: name: another model file of the folder already has DAG id {built.dag_id!r}")
            continue
        dags[built.dag_id] = built
    if errors:
        slug = re.sub(r"[^A-Za-z0-9_]+", "_", os.path.abspath(folder)).strip("_")
        dags[f"tfship_broken_{slug}"] = BrokenModels(errors, dag_id=f"tfship_broken_{slug}", schedule=None)
    return dags
