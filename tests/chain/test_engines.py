"""Multi-worker train engines: JobSet (the default), Kubeflow Trainer v2 TrainJob, legacy TFJob.

Every rendered object is checked against its engine's published API models (engine_schemas.py) and
its pod parts against the Kubernetes schema; the GPU placement and the Kueue queue are asserted in
it. Only the GKE cluster is mocked (`fake_cluster.FakeCluster`, a stand-in for kubernetes'
CustomObjectsApi): nothing here can reach one. The JobSet-style TF_CONFIG is run for real with two worker processes.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import yaml

from tests import engine_schemas
from tests.fake_cluster import FakeCluster
from tfship import chain, local_runner
from tfship.k8s import pods
from tfship.k8s import workers as k8s_workers
from tfship.steps.train import distribute
from tfship.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "images" / "tfship-training-runtime.yaml"
AIRFLOW_RUN_ID = "manual__2025-01-02T03-04-05-00-00"


def config_for(**overrides) -> chain.ChainConfig:
    base = dict(data="gs://b/d.csv", schema="gs://b/s.yaml", runs_root="gs://b/runs", repo="gs://m/repo",
                workers=4, gpu_type="nvidia-l4", gpu_count=2, queue="team-a-gpus")
    return chain.ChainConfig(**{**base, **overrides})


def render(engine: str, run_id: str = AIRFLOW_RUN_ID, **overrides) -> tuple[chain.ChainConfig, chain.RunPlan, dict]:
    config = config_for(engine=engine, **overrides)
    run_plan = chain.plan_run(config, run_id, [1], 1)
    return config, run_plan, k8s_workers.render_workers(config, run_plan, image="tfship-gpu:0.1.0")


def assert_gpu_placement(pod_spec: dict, *, gpu_type: str = "nvidia-l4", spot: bool = True) -> None:
    assert pod_spec["nodeSelector"]["cloud.google.com/gke-accelerator"] == gpu_type
    assert (pod_spec["nodeSelector"].get("cloud.google.com/gke-spot") == "true") == spot
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod_spec["tolerations"]
    spot_toleration = {"key": "cloud.google.com/gke-spot", "operator": "Equal", "value": "true",
                       "effect": "NoSchedule"}
    assert (spot_toleration in pod_spec["tolerations"]) == spot


def test_jobset_is_the_default_engine_and_validates():
    assert chain.ChainConfig(data="d", schema="s", runs_root="r", repo="p").engine == "jobset"
    config, run_plan, jobset = render("jobset")
    engine_schemas.validate(jobset)
    assert (jobset["apiVersion"], jobset["kind"]) == ("jobset.x-k8s.io/v1alpha2", "JobSet")
    assert jobset["metadata"]["labels"][chain.KUEUE_QUEUE_LABEL] == "team-a-gpus"
    spec = jobset["spec"]
    assert spec["network"]["enableDNSHostnames"] is True
    # A preemption restarts the whole set, a bounded number of times.
    assert spec["failurePolicy"]["maxRestarts"] == config.train_retries
    [workers] = spec["replicatedJobs"]
    assert workers["name"] == k8s_workers.WORKERS_JOB and workers["replicas"] == 1
    job = workers["template"]["spec"]
    engine_schemas.validate_job_template(job)
    assert job["parallelism"] == job["completions"] == 4 and job["completionMode"] == "Indexed"
    assert job["backoffLimit"] == 0
    pod = job["template"]["spec"]
    assert_gpu_placement(pod)
    [container] = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert container["args"][:len(chain.step_args("train", config, run_plan))] == chain.step_args(
        "train", config, run_plan)
    parsed = pytest.importorskip("tfship.cli").build_parser("train").parse_args(container["args"])
    assert (parsed.tf_config_from, parsed.workers, parsed.tf_port) == ("jobset", 4, k8s_workers.TF_PORT)
    # The env `--tf-config-from jobset` reads comes from the labels JobSet sets on its pods.
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert set(env) | {"JOB_COMPLETION_INDEX"} == set(distribute.JOBSET_VARIABLES)
    assert env["JOBSET_NAME"] == "metadata.labels['jobset.sigs.k8s.io/jobset-name']"


def test_jobset_fails_at_once_on_a_non_retryable_exit():
    _, _, jobset = render("jobset")
    job = jobset["spec"]["replicatedJobs"][0]["template"]["spec"]
    # Exit 143 (preempted) and a lost pod fail the Job by its backoff limit: the set restarts.
    # Any other exit fails the Job by its pod failure policy, and that fails the whole set.
    assert job["podFailurePolicy"]["rules"] == [
        {"action": "FailJob", "onExitCodes": {"operator": "NotIn", "values": [143]}}]
    assert jobset["spec"]["failurePolicy"]["rules"][0]["action"] == "FailJobSet"
    assert jobset["spec"]["failurePolicy"]["rules"][0]["onJobFailureReasons"] == ["PodFailurePolicy"]


def test_trainjob_validates_and_carries_the_placement():
    config, run_plan, trainjob = render("trainjob", spot=False)
    engine_schemas.validate(trainjob)
    assert trainjob["metadata"]["labels"][chain.KUEUE_QUEUE_LABEL] == "team-a-gpus"
    spec = trainjob["spec"]
    assert spec["runtimeRef"] == {"name": k8s_workers.TRAINING_RUNTIME, "apiGroup": "trainer.kubeflow.org",
                                  "kind": "ClusterTrainingRuntime"}
    trainer = spec["trainer"]
    assert trainer["numNodes"] == 4 and trainer["args"] == k8s_workers.jobset_worker_args(config, run_plan)
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "2"
    [patch] = spec["runtimePatches"]
    [node] = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert node["name"] == k8s_workers.TRAINER_NODE
    assert_gpu_placement(node["template"]["spec"]["template"]["spec"], spot=False)


def test_training_runtime_manifest_validates_and_matches_the_trainjob():
    runtime = yaml.safe_load(RUNTIME.read_text())
    engine_schemas.validate(runtime)
    assert runtime["metadata"]["name"] == k8s_workers.TRAINING_RUNTIME
    spec = runtime["spec"]
    # The plain-ML runtime: no framework policy (Trainer v2 has none for TensorFlow).
    assert set(spec["mlPolicy"]) == {"numNodes"}
    jobset = spec["template"]["spec"]
    _, _, rendered = render("jobset")
    # The same network and failure handling as the JobSet engine.
    assert jobset["network"] == rendered["spec"]["network"]
    assert jobset["failurePolicy"]["rules"] == rendered["spec"]["failurePolicy"]["rules"]
    [node] = jobset["replicatedJobs"]
    assert node["name"] == k8s_workers.TRAINER_NODE
    job = node["template"]["spec"]
    engine_schemas.validate_job_template(job)
    assert job["podFailurePolicy"] == k8s_workers.worker_pod_failure_policy(chain.STEPS["train"])
    [container] = job["template"]["spec"]["containers"]
    assert container["name"] == k8s_workers.TRAINER_NODE
    assert container["env"] == k8s_workers.jobset_env()


def test_tfjob_is_kept_as_the_legacy_engine():
    config, run_plan, tfjob = render("tfjob")
    assert (tfjob["apiVersion"], tfjob["kind"]) == ("kubeflow.org/v1", "TFJob")
    assert tfjob["metadata"]["labels"][chain.KUEUE_QUEUE_LABEL] == "team-a-gpus"
    workers = tfjob["spec"]["tfReplicaSpecs"]["Worker"]
    engine_schemas.validate_pod_template(workers["template"])
    assert workers["replicas"] == 4
    assert workers["template"]["spec"]["containers"][0]["args"] == chain.step_args("train", config, run_plan)
    assert_gpu_placement(workers["template"]["spec"])


def test_no_queue_no_kueue_label():
    for engine in chain.ENGINES:
        _, _, body = render(engine, queue="")
        assert chain.KUEUE_QUEUE_LABEL not in body["metadata"]["labels"], engine
    assert pods.placement(chain.STEPS["train"], config_for(queue="")).labels == {}
    assert pods.placement(chain.STEPS["train"], config_for()).labels == {chain.KUEUE_QUEUE_LABEL: "team-a-gpus"}
    assert pods.placement(chain.STEPS["export"], config_for()).labels == {}  # only GPU workloads


def test_the_schema_check_rejects_what_the_api_would():
    """The strict check can fail: a misplaced field, a wrong type, a missing required field."""
    _, _, jobset = render("jobset")
    jobset["spec"]["maxRestarts"] = 3  # belongs under failurePolicy
    with pytest.raises(engine_schemas.SchemaError, match=r"JobSet\.spec\.maxRestarts: not in the API"):
        engine_schemas.validate(jobset)
    _, _, trainjob = render("trainjob")
    trainjob["spec"]["trainer"]["numNodes"] = "4"
    with pytest.raises(engine_schemas.SchemaError, match="numNodes"):
        engine_schemas.validate(trainjob)
    _, _, trainjob = render("trainjob")
    del trainjob["spec"]["runtimeRef"]
    with pytest.raises(engine_schemas.SchemaError, match="runtimeRef"):
        engine_schemas.validate(trainjob)


@pytest.mark.parametrize("run_id", ["r1", AIRFLOW_RUN_ID, "scheduled__2025-01-06T03:00:00+00:00-" + "x" * 80,
                                    "b8a1f0c2-55e3-4d6f-9c1e-2f0a7b6d9e41"])
def test_workload_names_fit_jobset_pod_names_and_are_stable(run_id):
    plan_ = chain.plan_run(config_for(), chain.safe_run_id(run_id), [], None)
    name = k8s_workers.workload_name(plan_)
    assert name == k8s_workers.workload_name(plan_)  # a retried task asks for the same object
    assert len(name) <= 40 and name[0].isalpha()
    # JobSet's webhook: <jobset>-<rjob>-<job index>-<pod index>-<5 random> within 63 characters.
    assert len(f"{name}-{k8s_workers.WORKERS_JOB}-0-99-abcde") <= 63
    assert len(f"{name}-{k8s_workers.TRAINER_NODE}-0-99-abcde") <= 63


def test_long_run_ids_sharing_a_prefix_get_two_names():
    long_a, long_b = "a" * 60 + "-1", "a" * 60 + "-2"
    names = {k8s_workers.workload_name(chain.plan_run(config_for(), r, [], None)) for r in (long_a, long_b)}
    assert len(names) == 2


def test_config_checks_engine_and_queue():
    with pytest.raises(ConfigError, match=r"Received: engine='mpijob'. Expected one of jobset, trainjob, tfjob"):
        config_for(engine="mpijob")
    with pytest.raises(ConfigError, match=r"Received: queue='Team A'"):
        config_for(queue="Team A")


# ---------------------------------------------------------------------------------------------
# TF_CONFIG from the JobSet's stable host names

JOBSET_POD = {"JOBSET_NAME": "tfship-r1", "REPLICATED_JOB_NAME": "workers", "JOB_INDEX": "0",
              "JOB_COMPLETION_INDEX": "1"}


def test_jobset_tf_config_names_the_stable_hosts_and_worker_0_is_chief():
    tf_config = distribute.jobset_tf_config(JOBSET_POD, workers=3, port=2222)
    assert tf_config == {
        "cluster": {"worker": ["tfship-r1-workers-0-0.tfship-r1:2222", "tfship-r1-workers-0-1.tfship-r1:2222",
                               "tfship-r1-workers-0-2.tfship-r1:2222"]},
        "task": {"type": "worker", "index": 1},
    }
    env = {**JOBSET_POD, "TF_CONFIG": json.dumps(tf_config)}
    assert not distribute.cluster_role(env).is_chief
    env["TF_CONFIG"] = json.dumps(distribute.jobset_tf_config({**JOBSET_POD, "JOB_COMPLETION_INDEX": "0"}, 3))
    assert distribute.cluster_role(env).is_chief


@pytest.mark.parametrize(
    ("environ", "addresses", "match"),
    [
        ({k: v for k, v in JOBSET_POD.items() if k != "JOB_INDEX"}, {}, "JOB_INDEX not set"),
        ({**JOBSET_POD, "JOB_COMPLETION_INDEX": "5"}, {}, "JOB_COMPLETION_INDEX=5 but --workers 2"),
        ({**JOBSET_POD, "JOB_INDEX": "x"}, {}, r"JOB_INDEX='x': expected an integer"),
        (JOBSET_POD, {"tfship-r1-workers-0-7.tfship-r1": "127.0.0.1:1"}, r"--tf-address names \['tfship-r1-"),
    ],
)
def test_jobset_tf_config_rejects_a_pod_it_cannot_place(environ, addresses, match):
    with pytest.raises(ConfigError, match=match):
        distribute.jobset_tf_config(environ, workers=2, addresses=addresses)


def test_train_with_jobset_env_missing_exits_2_naming_the_variable(tmp_path):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "tfship.cli", "train", "--data", "d.csv", "--schema", "s.yaml",
         "--job-dir", str(tmp_path), "--tf-config-from", "jobset", "--workers", "2"],
        capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 2, done.stderr
    assert "JOBSET_NAME, REPLICATED_JOB_NAME, JOB_INDEX, JOB_COMPLETION_INDEX not set" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------
# Submitting and waiting, against a mocked cluster


@pytest.mark.parametrize(("engine", "done"), [("jobset", "Completed"), ("trainjob", "Complete"),
                                              ("tfjob", "Succeeded")])
def test_a_retried_submit_finds_its_object_and_waits_on_its_conditions(engine, done):
    _, _, body = render(engine)
    cluster = FakeCluster([[], ["Suspended"], []])  # admitted by Kueue after a while, then runs
    with pytest.raises(local_runner.StepFailed):  # the first try times out while it still runs
        local_runner.run_workload(cluster, body, poll_s=0, timeout_s=0, echo=lambda _: None)
    cluster.polls = [["StartupPolicyCompleted"], [done]]
    lines: list[str] = []
    assert local_runner.run_workload(cluster, body, poll_s=0, echo=lines.append) == "Succeeded"
    assert cluster.creates == 2 and len(cluster.objects) == 1  # the retry created no second object
    assert "exists (a retried task): waiting on it" in lines[0]
    api = k8s_workers.ENGINE_APIS[engine]
    assert next(iter(cluster.objects))[:4] == (api.group, api.version, "tfship", api.plural)


@pytest.mark.parametrize("engine", chain.ENGINES)
def test_a_failed_engine_object_fails_train(engine):
    _, _, body = render(engine)
    cluster = FakeCluster([[], ["Failed"]])
    with pytest.raises(local_runner.StepFailed, match="step `train` failed"):
        local_runner.run_workload(cluster, body, poll_s=0, echo=lambda _: None)


def test_state_reads_only_the_engines_own_conditions():
    _, _, jobset = render("jobset")
    # `Succeeded` is not a JobSet condition: a JobSet is done only when `Completed`.
    assert k8s_workers.workload_state({**jobset, "status": {"conditions": [
        {"type": "Succeeded", "status": "True"}]}}) == "Running"
    assert k8s_workers.workload_state({**jobset, "status": {"conditions": [
        {"type": "Completed", "status": "False"}]}}) == "Running"
    with pytest.raises(ConfigError, match="Not a training engine's object"):
        k8s_workers.workload_state({"apiVersion": "batch/v1", "kind": "Job"})


# ---------------------------------------------------------------------------------------------
# The JobSet-style TF_CONFIG, for real: two workers on loopback, killed, resumed exactly


def _jobset_workers(demo_data, job_dir: str, ports: list[int], **flags) -> list:
    """Start the two workers of JobSet `tfship-r1` as its pods would run, with their stable host
    names mapped to loopback ports (`--tf-address`)."""
    from tests.train.test_train import cli_args, start

    hosts = [f"tfship-r1-workers-0-{i}.tfship-r1" for i in range(2)]
    mapping = [a for host, port in zip(hosts, ports) for a in ("--tf-address", f"{host}=127.0.0.1:{port}")]
    return [
        start([*cli_args(*demo_data, job_dir, **flags), "--tf-config-from", "jobset", "--workers", "2", *mapping],
              JOBSET_NAME="tfship-r1", REPLICATED_JOB_NAME="workers", JOB_INDEX="0",
              JOB_COMPLETION_INDEX=str(index), TF_CONFIG="")
        for index in range(2)
    ]


def _finish(workers: list) -> list[str]:
    outputs = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs[1][1][-3000:] + outputs[0][1][-3000:]
    return [err for _, err in outputs]


@pytest.mark.slow
def test_jobset_workers_train_are_killed_and_resume_exactly(demo_data, tmp_path):
    from tests.conftest import free_port
    from tests.train.test_train import assert_same_weights, wait_for_event

    flags = {"steps": 30, "checkpoint_every": 10}
    reference = str(tmp_path / "reference")
    stderrs = _finish(_jobset_workers(demo_data, reference, [free_port(), free_port()], **flags))
    start_event = next(json.loads(l) for l in stderrs[0].splitlines() if '"event": "start"' in l)
    assert start_event["workers"] == 2

    # The same set, preempted after its checkpoint at step 10: JobSet restarts every worker.
    job_dir = str(tmp_path / "job")
    workers = _jobset_workers(demo_data, job_dir, [free_port(), free_port()], **flags)
    wait_for_event(workers[0], lambda e: e["event"] == "checkpoint" and e["step"] == 10)
    wait_for_event(workers[0], lambda e: e["event"] == "progress" and e["step"] >= 13)
    for worker in workers:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    stderrs = _finish(_jobset_workers(demo_data, job_dir, [free_port(), free_port()], **flags))
    resumed = next(json.loads(l) for l in stderrs[0].splitlines() if '"event": "start"' in l)
    assert resumed["resumed_from"] == 10
    assert_same_weights(f"{reference}/checkpoints/ckpt-30", f"{job_dir}/checkpoints/ckpt-30")
