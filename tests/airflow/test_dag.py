"""The `tfship_retrain` DAG: imports, its graph is the chain, its pods, and a real local run.

Only the GKE cluster is absent: pods are built (`build_pod_request_obj`, with a dummy kubeconfig)
and inspected, never submitted; the pod-status objects fed to the exit-code check stand in for what
the cluster would report, and `fake_cluster.FakeCluster` stands in for its custom-object API.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.exceptions import AirflowException, AirflowFailException
import kubernetes_validate
from kubernetes.client import ApiClient
from kubernetes.client import models as k8s

from tfship import airflow as tfship_airflow
from tfship import chain
from tfship.errors import ConfigError
from tfship.chain.project import load_project

# The helpers shared with the steps' tests live in tests/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import engine_schemas  # noqa: E402
from fake_cluster import FakeCluster  # noqa: E402

DAGS = Path(__file__).resolve().parents[2] / "dags"

DAG_ID = "tfship_retrain"
DUMMY_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""


def load_dag(monkeypatch, mode: str):
    monkeypatch.setenv("TFSHIP_DAG_MODE", mode)
    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag.dags[DAG_ID]


@pytest.mark.parametrize("mode", ["local", "kubernetes"])
def test_dag_files_import_without_errors(monkeypatch, mode):
    dag = load_dag(monkeypatch, mode)
    assert mode in dag.tags
    assert set(dag.params) >= {"data", "schema", "repo", "name", "image", "gpu_type", "runs_root",
                               "rollout_steps", "rollout_interval", "prometheus", "saved_model"}
    assert dag.params["saved_model"] == ""  # train, unless a model trained elsewhere is named
    assert dag.params["rollout_steps"] == ""  # no rollout unless asked: the canary PASS promotes
    # Scheduled, and triggered by new data through an Asset.
    assert [a.name for a in dag.timetable.asset_condition.objects] == ["penguins_training_data"]
    assert dag.timetable.timetable.expression == "0 3 * * 1"


def planned_chain(dag, run_params: dict) -> chain.ChainConfig:
    """The chain the DAG's plan task would run with these params (its `tfship run` arguments, parsed)."""
    from tfship.cli import build_parser
    from tfship.commands.run import config_from_args

    plan_args = dag.user_defined_macros["tfship_plan_args"]
    return config_from_args(build_parser("run").parse_args(plan_args(run_params, "manual__1", "")))


def test_plan_args_carry_the_train_options(monkeypatch):
    dag = load_dag(monkeypatch, "kubernetes")
    params = {name: dag.params[name] for name in dag.params}

    plain = planned_chain(dag, params)
    assert (plain.mixed_precision, plain.jit_compile, plain.input_fn) == (False, False, "")
    params.update(mixed_precision=True, jit_compile=True, input_fn="team.pipes:penguins")
    chosen = planned_chain(dag, params)
    assert (chosen.mixed_precision, chosen.jit_compile, chosen.input_fn) == (True, True, "team.pipes:penguins")


def test_bad_mode_is_an_import_error(monkeypatch):
    monkeypatch.setenv("TFSHIP_DAG_MODE", "cloud")
    bag = DagBag(dag_folder=str(DAGS))
    assert "Received: 'cloud'. Expected 'kubernetes' or 'local'" in next(iter(bag.import_errors.values()))


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("TFSHIP_TRAIN_ENGINE", "mpijob", "Received: engine='mpijob'. Expected one of jobset, trainjob, tfjob"),
    ("TFSHIP_GPU_QUEUE", "Team A", "Received: queue='Team A'"),
])
def test_bad_engine_or_queue_is_an_import_error(monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    bag = DagBag(dag_folder=str(DAGS))
    assert message in next(iter(bag.import_errors.values()))


@pytest.mark.parametrize("mode", ["local", "kubernetes"])
def test_task_graph_is_the_chain(monkeypatch, mode):
    dag = load_dag(monkeypatch, mode)
    jobs = [s.name for s in chain.job_steps()]
    assert set(dag.task_ids) == {"plan", "train_needed", "first_version", "rollout_enabled", *jobs}
    # plan -> train_needed -> {train -> export, export} -> validate -> push -> first_version ->
    # {canary, promote}; canary -> rollout_enabled -> {rollout -> promote, promote}
    assert dag.get_task("train_needed").downstream_task_ids == {"train", "export"}
    assert dag.get_task("export").trigger_rule == "none_failed_min_one_success"  # train may be skipped
    line = ["train", "export", "validate", "push", "first_version"]
    for before, after in zip(line, line[1:]):
        assert dag.get_task(before).downstream_task_ids == {after}, before
    assert dag.get_task("first_version").downstream_task_ids == {"canary", "promote"}
    assert dag.get_task("canary").downstream_task_ids == {"rollout_enabled"}
    assert dag.get_task("rollout_enabled").downstream_task_ids == {"rollout", "promote"}
    assert dag.get_task("rollout").downstream_task_ids == {"promote"}
    assert dag.get_task("promote").trigger_rule == "none_failed_min_one_success"
    assert dag.get_task("train").retries == chain.STEPS["train"].retries
    for name in ("export", "validate", "canary", "rollout", "promote"):
        assert dag.get_task(name).retries == 0, name


def test_branches_choose_the_rollout_only_when_the_run_turns_it_on(plan_doc, rollout_plan_doc):
    module = tfship_airflow
    assert module.next_task(plan_doc, ["canary", "promote"]) == "promote"  # the first version
    assert module.next_task(rollout_plan_doc, ["canary", "promote"]) == "promote"
    with_stable = {**rollout_plan_doc, "plan": {**rollout_plan_doc["plan"], "stable": 1, "version": 2}}
    assert module.next_task(with_stable, ["canary", "promote"]) == "canary"
    assert module.next_task(with_stable, ["rollout", "promote"]) == "rollout"
    without = {**with_stable, "config": plan_doc["config"]}
    assert module.next_task(without, ["rollout", "promote"]) == "promote"
    assert module.next_task(plan_doc, ["train", "export"]) == "train"
    imported = {**plan_doc, "config": {**plan_doc["config"], "saved_model": "/models/keras/1"}}
    assert module.next_task(imported, ["train", "export"]) == "export"


def test_the_plan_task_passes_the_saved_model_param_and_the_run_skips_train(monkeypatch):
    dag = load_dag(monkeypatch, "kubernetes")
    params = {name: dag.params[name] for name in dag.params}

    trained = planned_chain(dag, params)
    assert trained.saved_model == "" and chain.enabled(chain.STEPS["train"], trained)
    imported = planned_chain(dag, {**params, "saved_model": "gs://m/keras/1"})
    assert imported.saved_model == "gs://m/keras/1"
    assert not chain.enabled(chain.STEPS["train"], imported)


def _plan_doc(work: Path, tfship_cli: str, *extra: str) -> dict:
    """A real plan: `tfship run --plan-only` (the image env's CLI) on the demo data."""
    done = subprocess.run(
        [tfship_cli, "run", "--plan-only", "--run-dir", str(work), "--run-id", "r1",
         "--target", chain.DEFAULT_SERVING_TARGET, *extra],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def plan_doc(tmp_path_factory, tfship_cli) -> dict:
    return _plan_doc(tmp_path_factory.mktemp("plan"), tfship_cli)


@pytest.fixture(scope="module")
def rollout_plan_doc(tmp_path_factory, tfship_cli) -> dict:
    return _plan_doc(tmp_path_factory.mktemp("plan"), tfship_cli, "--rollout-steps", "20,100",
                     "--prometheus", "http://prometheus.monitoring:9090", "--rollout-interval", "5m")


class _PlanXCom:
    """The one piece of a task instance that templates read: the plan task's XCom."""

    def __init__(self, doc: dict) -> None:
        self.doc = doc

    def xcom_pull(self, task_ids: str):
        assert task_ids == "plan"
        return self.doc


def built_pods(dag, plan_doc: dict, tmp_path: Path) -> dict[str, k8s.V1Pod]:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(DUMMY_KUBECONFIG)
    params = {k: v for k, v in dag.params.dump().items()}
    params["gpu_type"] = "nvidia-l4"
    pods = {}
    for task in dag.tasks:
        if not hasattr(task, "build_pod_request_obj"):
            continue
        task.config_file = str(kubeconfig)
        context = {"params": params, "ti": _PlanXCom(plan_doc), "task_instance": _PlanXCom(plan_doc),
                   "run_id": "manual__2025-01-02T03:04:05+00:00"}
        task.render_template_fields(context)
        pods[task.task_id] = task.build_pod_request_obj()
    return pods


def test_kubernetes_pods_carry_the_chain_arguments_and_gpu_placement(monkeypatch, rollout_plan_doc,
                                                                     tmp_path):
    plan_doc = rollout_plan_doc
    dag = load_dag(monkeypatch, "kubernetes")
    pods = built_pods(dag, plan_doc, tmp_path)
    assert set(pods) == {"plan", *plan_doc["args"]}
    assert "rollout" in pods
    rollout = pods["rollout"].spec.containers[0].args
    assert rollout[:1] == ["rollout"] and rollout[rollout.index("--steps") + 1] == "20,100"
    assert rollout[rollout.index("--target") + 1] == chain.DEFAULT_SERVING_TARGET
    for name, pod in pods.items():
        container = pod.spec.containers[0]
        # Every step's history entries name the DAG run (the run id as Airflow spells it).
        assert {e.name: e.value for e in container.env}[chain.RUN_ID_ENV] == \
            "manual__2025-01-02T03:04:05+00:00", name
        resources = container.resources
        step = chain.STEPS.get(name)
        if step is not None:
            assert container.args == plan_doc["args"][name], name
            # (native template rendering turns "4" into 4: the same quantity to Kubernetes)
            assert {k: str(v) for k, v in resources.requests.items()} == {
                "cpu": step.cpu, "memory": step.memory}, name
        if name == "train":
            assert container.image == chain.DEFAULT_GPU_IMAGE
            assert str(resources.limits["nvidia.com/gpu"]) == "1"
            assert pod.spec.node_selector["cloud.google.com/gke-accelerator"] == "nvidia-l4"
            assert pod.spec.node_selector["cloud.google.com/gke-spot"] == "true"
            assert any(t.key == "nvidia.com/gpu" and t.effect == "NoSchedule"
                       for t in pod.spec.tolerations)
        else:
            assert container.image == chain.DEFAULT_IMAGE, name
            assert "nvidia.com/gpu" not in (resources.limits or {}), name
            assert not pod.spec.node_selector, name
            assert not pod.spec.tolerations, name
        # What the provider would send is a valid Pod for the Kubernetes API.
        kubernetes_validate.validate(ApiClient().sanitize_for_serialization(pod), "1.33", strict=True)
    plan_args = pods["plan"].spec.containers[0].args
    assert plan_args[:2] == ["run", "--plan-only"]
    assert plan_args[plan_args.index("--run-id") + 1] == "manual__2025-01-02T03-04-05-00-00"
    assert plan_args[-2:] == ["--plan-out", "/airflow/xcom/return.json"]


def test_the_gpu_pod_carries_the_kueue_queue_label(monkeypatch, plan_doc, tmp_path):
    monkeypatch.setenv("TFSHIP_GPU_QUEUE", "team-a-gpus")
    pods = built_pods(load_dag(monkeypatch, "kubernetes"), plan_doc, tmp_path)
    assert pods["train"].metadata.labels[chain.KUEUE_QUEUE_LABEL] == "team-a-gpus"
    for name in set(pods) - {"train"}:  # only GPU workloads are queued
        assert chain.KUEUE_QUEUE_LABEL not in pods[name].metadata.labels, name


def _finished_pod(exit_code: int | None) -> k8s.V1Pod:
    """What the cluster reports for a finished (or lost) step pod."""
    state = (k8s.V1ContainerState(terminated=k8s.V1ContainerStateTerminated(exit_code=exit_code))
             if exit_code is not None else k8s.V1ContainerState())
    status = k8s.V1ContainerStatus(name="base", image="i", image_id="", ready=False,
                                   restart_count=0, state=state)
    return k8s.V1Pod(status=k8s.V1PodStatus(phase="Failed", container_statuses=[status]))


@pytest.mark.parametrize(
    ("step", "exit_code", "raised"),
    [
        ("train", 143, AirflowException),      # preempted: Airflow retries it
        ("train", None, AirflowException),     # the spot node vanished with the pod
        ("train", 2, AirflowFailException),    # bad input: fail fast
        ("validate", 1, AirflowFailException),
        ("canary", 1, AirflowFailException),   # FAIL: no retry, no promotion
        ("export", 143, AirflowFailException),
    ],
)
def test_only_retryable_exit_codes_are_retried(monkeypatch, step, exit_code, raised):
    code = tfship_airflow.container_exit_code(_finished_pod(exit_code))
    assert code == exit_code
    with pytest.raises(raised) as info:
        tfship_airflow.fail_or_retry(chain.STEPS[step], code)
    assert info.type is raised


def _dag_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("tfship_retrain_dag", DAGS / "tfship_retrain.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------
# The local mode, end to end: `airflow dags test` runs the whole chain with SQLite.


def dags_test(env: dict, work: Path, conf: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [env["AIRFLOW_BIN"], "dags", "test", DAG_ID, "-c", json.dumps(conf)],
        env={**env, "TFSHIP_DAG_MODE": "local"}, capture_output=True, text=True, timeout=600,
        cwd=work,
    )


def task_states(env: dict) -> dict[str, dict[str, str]]:
    with sqlite3.connect(Path(env["AIRFLOW_HOME"], "airflow.db")) as db:
        rows = db.execute("SELECT run_id, task_id, state FROM task_instance").fetchall()
    runs: dict[str, dict[str, str]] = {}
    for run_id, task_id, state in rows:
        runs.setdefault(run_id, {})[task_id] = state
    return runs


def in_python(python: str, code: str, *args: str) -> Any:
    """The JSON value that `code` prints when `python` (another environment's) runs it with `args`."""
    done = subprocess.run([python, "-c", code, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def stable_version(python: str, repo: Path, name: str) -> int | None:
    return in_python(python, "import sys, json; from tfship import models_config as mc; print(json.dumps("
                             "mc.version_labels(mc.read_models_config(sys.argv[1]), sys.argv[2]).get('stable')))",
                     str(repo), name)


def history_run_ids(python: str, repo: Path, name: str) -> list[str]:
    """The run id of every entry of the model's label history."""
    return in_python(python, "import sys, json; from tfship.history import read_history; "
                             "print(json.dumps([e['run_id'] for e in read_history(sys.argv[1], sys.argv[2])]))",
                     str(repo), name)


@pytest.mark.slow
def test_airflow_dags_test_runs_the_whole_chain_locally(airflow_home, tfship_python, tmp_path):
    write = subprocess.run(
        [tfship_python, "-c",
         "import sys; from tfship.demo import write_demo; print(write_demo(sys.argv[1]))",
         str(tmp_path / "data")],
        capture_output=True, text=True, timeout=60)
    assert write.returncode == 0, write.stderr
    conf = {
        "data": str(tmp_path / "data" / "penguins.csv"),
        "schema": str(tmp_path / "data" / "schema.yaml"),
        "contract": str(tmp_path / "data" / "contract.yaml"),
        "runs_root": str(tmp_path / "ws" / "runs"),
        "repo": str(tmp_path / "repo"),
        "steps": 60,
    }
    # First run: no stable version, so the canary is skipped and version 1 is promoted.
    first = dags_test(airflow_home, tmp_path, conf)
    assert first.returncode == 0, (first.stdout + first.stderr)[-6000:]
    assert stable_version(tfship_python, tmp_path / "repo", "penguins") == 1
    # Second run: version 2 is canaried against version 1 on a local server, then promoted.
    second = dags_test(airflow_home, tmp_path, conf)
    assert second.returncode == 0, (second.stdout + second.stderr)[-6000:]
    assert stable_version(tfship_python, tmp_path / "repo", "penguins") == 2
    runs = task_states(airflow_home)
    assert len(runs) == 2
    first_states, second_states = (runs[k] for k in sorted(runs))
    assert first_states["canary"] == "skipped" and first_states["promote"] == "success"
    assert all(state == "success" or task == "rollout" for task, state in second_states.items()), second_states
    assert second_states["rollout"] == "skipped"  # no rollout_steps: the canary PASS promoted
    assert (tmp_path / "repo" / "penguins" / "2" / "saved_model.pb").exists()
    # Every label move names the DAG run that made it (TFSHIP_RUN_ID = Airflow's run id).
    entries = history_run_ids(tfship_python, tmp_path / "repo", "penguins")
    assert entries and set(entries) == set(runs), entries


@pytest.mark.parametrize("engine", ["jobset", "trainjob", "tfjob"])
def test_multi_worker_train_submits_the_engine_object(monkeypatch, plan_doc, engine):
    monkeypatch.setenv("TFSHIP_TRAIN_WORKERS", "3")
    monkeypatch.setenv("TFSHIP_TRAIN_ENGINE", engine)
    monkeypatch.setenv("TFSHIP_GPU_QUEUE", "team-a-gpus")
    dag = load_dag(monkeypatch, "kubernetes")
    train = dag.get_task("train")
    assert not hasattr(train, "build_pod_request_obj")  # a TaskFlow task that submits the object
    config = _dag_module().PROJECT.chain
    body = tfship_airflow.workers_for(config, plan_doc, "tfship-gpu:0.1.0", "nvidia-l4", "tfship")
    assert body["kind"] == {"jobset": "JobSet", "trainjob": "TrainJob", "tfjob": "TFJob"}[engine]
    assert body["metadata"]["labels"][chain.KUEUE_QUEUE_LABEL] == "team-a-gpus"
    if engine != "tfjob":  # no published TFJob model: its pod template is checked below
        engine_schemas.validate(body)
    if engine == "jobset":
        job = body["spec"]["replicatedJobs"][0]["template"]["spec"]
        assert job["parallelism"] == 3
        pod_template = job["template"]
        engine_schemas.validate_pod_template(pod_template)
        args = pod_template["spec"]["containers"][0]["args"]
        assert args[:len(plan_doc["args"]["train"])] == plan_doc["args"]["train"]
        assert pod_template["spec"]["nodeSelector"]["cloud.google.com/gke-accelerator"] == "nvidia-l4"
    if engine == "tfjob":
        engine_schemas.validate_pod_template(body["spec"]["tfReplicaSpecs"]["Worker"]["template"])


def test_a_retried_train_task_waits_on_the_jobset_it_created(monkeypatch, plan_doc):
    """The cluster is mocked (FakeCluster stands in for the hook's CustomObjectsApi)."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
    from kubernetes.client.exceptions import ApiException

    monkeypatch.setenv("TFSHIP_TRAIN_WORKERS", "2")
    dag = load_dag(monkeypatch, "kubernetes")
    train = dag.get_task("train")
    assert train.retries == 2  # the submit task, not the workers: the JobSet restarts those
    # First try: the JobSet is created, then the API server fails while the task waits.
    cluster = FakeCluster([ApiException(status=503, reason="ServiceUnavailable")])
    monkeypatch.setattr(KubernetesHook, "custom_object_client", property(lambda _: cluster))
    params = {"gpu_image": "tfship-gpu:0.1.0", "gpu_type": "nvidia-l4"}
    with pytest.raises(ApiException):  # not an AirflowFailException: Airflow retries the task
        train.python_callable(plan_doc, params=params)
    # The retry renders the same name, gets 409, and waits for the JobSet's own `Completed`.
    cluster.polls = [[], ["Completed"]]
    monkeypatch.setattr("time.sleep", lambda _: None)
    assert train.python_callable(plan_doc, params=params) == "Succeeded"
    assert cluster.creates == 2 and len(cluster.objects) == 1
    [(group, version, namespace, plural, name)] = cluster.objects
    assert (group, version, plural) == ("jobset.x-k8s.io", "v1alpha2", "jobsets")
    # A JobSet that ran out of restarts fails the task for good (no retry can help).
    cluster.polls = [["Failed"]]
    with pytest.raises(AirflowFailException, match=f"JobSet {name}"):
        train.python_callable(plan_doc, params=params)


# ---------------------------------------------------------------------------------------------
# dags/tfship_models.py: a DAG per tfship.yaml of a folder (tfship.airflow.retrain_dags).


def write_model(folder: Path, team: str, document: dict) -> Path:
    import yaml

    path = folder / team / "tfship.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(document))
    return path


def test_a_dag_per_model_file_and_a_broken_file_is_an_import_error_of_its_own(monkeypatch, rollout_plan_doc,
                                                                               tmp_path):
    plan_doc = rollout_plan_doc  # every job step's arguments, the rollout's too
    models = tmp_path / "models"
    base = {"data": "gs://team-data/rows.csv", "schema": "gs://team-data/schema.yaml",
            "repo": "gs://team-models/repo"}
    write_model(models, "a", {
        **base, "name": "churn", "train": {"steps": 40, "retries": 5},
        "placement": {"accelerator": "nvidia-l4", "gpu_count": 2, "spot": False,
                      "node_selector": {"pool": "team-a"},
                      "tolerations": [{"key": "team", "operator": "Equal", "value": "a",
                                       "effect": "NoSchedule"}]},
        "tasks": {"train": {"cpu": "8", "memory": "32Gi"}, "push": {"retries": 4}},
        "schedule": {"cron": "0 5 * * *", "asset": "gs://team-data/churn/"},
        "images": {"cpu": "team-a/churn:1", "gpu": "team-a/churn-gpu:1"},
    })
    write_model(models, "b", {**base, "name": "ranker", "schedule": {"cron": "30 1 * * *"},
                              "placement": {"accelerator": "nvidia-tesla-a100", "gpu_count": 4,
                                            "workers": 2, "engine": "tfjob"}})
    broken = write_model(models, "c", {**base, "name": "fraud", "train": {"steps": -1}})
    monkeypatch.setenv("TFSHIP_MODELS_DIR", str(models))
    monkeypatch.setenv("TFSHIP_DAG_MODE", "kubernetes")
    bag = DagBag(dag_folder=str(DAGS / "tfship_models.py"))
    assert set(bag.dags) == {"tfship_retrain_churn", "tfship_retrain_ranker"}
    [(path, error)] = bag.import_errors.items()
    assert path.endswith("tfship_models.py")
    assert f"{broken}: train.steps: -1 is not an integer >= 1" in error
    churn, ranker = bag.dags["tfship_retrain_churn"], bag.dags["tfship_retrain_ranker"]
    # Each its own schedule, Asset and params.
    assert churn.timetable.timetable.expression == "0 5 * * *"
    assert [a.uri for a in churn.timetable.asset_condition.objects] == ["gs://team-data/churn"]  # normalized
    assert ranker.timetable.expression == "30 1 * * *"  # no Asset: the cron alone
    assert churn.params["steps"] == 40 and churn.params["name"] == "churn"
    assert "workers" not in churn.params  # placement is the file's, not a run's
    # The GPU placement, retries and resources of the file, in the pods the provider would send.
    pods = built_pods(churn, plan_doc, tmp_path)
    train = pods["train"]
    assert train.spec.containers[0].image == "team-a/churn-gpu:1"
    assert {k: str(v) for k, v in train.spec.containers[0].resources.requests.items()} == {
        "cpu": "8", "memory": "32Gi"}
    assert str(train.spec.containers[0].resources.limits["nvidia.com/gpu"]) == "2"
    assert train.spec.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-l4", "pool": "team-a"}
    assert {(t.key, t.value) for t in train.spec.tolerations} == {("nvidia.com/gpu", None), ("team", "a")}
    assert churn.get_task("train").retries == 5 and churn.get_task("push").retries == 4
    assert pods["export"].spec.containers[0].image == "team-a/churn:1"
    for pod in pods.values():
        kubernetes_validate.validate(ApiClient().sanitize_for_serialization(pod), "1.33", strict=True)
    # Multi-worker: the TFJob the train task submits carries the file's placement on every worker.
    assert not hasattr(ranker.get_task("train"), "build_pod_request_obj")
    config = load_project(str(models / "b" / "tfship.yaml")).chain
    body = tfship_airflow.workers_for(config, plan_doc, "team-b/gpu:1", "nvidia-tesla-a100", "tfship")
    workers = body["spec"]["tfReplicaSpecs"]["Worker"]
    assert body["kind"] == "TFJob" and workers["replicas"] == 2
    pod_spec = workers["template"]["spec"]
    assert pod_spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert pod_spec["nodeSelector"]["cloud.google.com/gke-accelerator"] == "nvidia-tesla-a100"
    engine_schemas.validate_pod_template(workers["template"])


def test_the_factory_names_a_bad_mode(tmp_path):
    with pytest.raises(ConfigError, match="Received: 'cloud'. Expected 'kubernetes' or 'local'"):
        tfship_airflow.retrain_dag(tmp_path / "tfship.yaml", mode="cloud")
