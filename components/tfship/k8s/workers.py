"""Multi-worker training on a cluster: JobSet (default), Kubeflow Trainer v2 TrainJob, or TFJob.

The object of `config.engine` for a run, and its state read back from its status conditions.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tfship.chain.config import ChainConfig
from tfship.chain.plan import RunPlan
from tfship.chain.step_table import Step, step_args, train_step
from tfship.errors import ConfigError
from tfship.k8s.pods import placement

@dataclass(frozen=True)
class EngineApi:
    """Where an engine's custom resource lives and which status conditions end it."""

    group: str
    version: str
    plural: str
    kind: str
    succeeded: str  # the condition type that means done
    failed: str = "Failed"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


ENGINE_APIS: dict[str, EngineApi] = {
    "jobset": EngineApi("jobset.x-k8s.io", "v1alpha2", "jobsets", "JobSet", succeeded="Completed"),
    "trainjob": EngineApi("trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob",
                          succeeded="Complete"),
    "tfjob": EngineApi("kubeflow.org", "v1", "tfjobs", "TFJob", succeeded="Succeeded"),
}
# The JobSet's one replicated job; a worker's stable host name is
# <jobset>-<WORKERS_JOB>-<job index>-<pod index>.<jobset> (see tfship.steps.train.distribute.jobset_tf_config).
WORKERS_JOB = "workers"
# images/tfship-training-runtime.yaml: the ClusterTrainingRuntime a TrainJob runs on; Trainer v2
# names its replicated job, and the container in it, `node`.
TRAINING_RUNTIME = "tfship-tensorflow"
TRAINER_NODE = "node"
# Where MultiWorkerMirroredStrategy's workers listen (TF_CONFIG's ports).
TF_PORT = 2222
# JobSet bounds pod names (<jobset>-<rjob>-<job>-<pod>-<5 random>) to 63 characters: a name of
# at most 40 leaves room for `workers` and 99 workers.
_WORKLOAD_NAME_MAX = 40
# The pod labels JobSet sets, read back through the downward API: with the Indexed Job's own
# JOB_COMPLETION_INDEX they give each worker its stable host name and its place in TF_CONFIG.
JOBSET_ENV = {
    "JOBSET_NAME": "jobset.sigs.k8s.io/jobset-name",
    "REPLICATED_JOB_NAME": "jobset.sigs.k8s.io/replicatedjob-name",
    "JOB_INDEX": "jobset.sigs.k8s.io/job-index",
}


def workload_name(plan: RunPlan) -> str:
    """The multi-worker object's name, a pure function of the run id: a retried submit task asks
    for the same name and finds the object it created before (HTTP 409) instead of a second one.

    A DNS-1035 label of at most 40 characters; a truncated run id gets a hash of the full one,
    so two long run ids that share a prefix still get two names.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", plan.run_id.lower()).strip("-")
    name = f"tfship-{slug}"
    if len(name) > _WORKLOAD_NAME_MAX:
        digest = hashlib.sha256(plan.run_id.encode()).hexdigest()[:8]
        name = f"{name[:_WORKLOAD_NAME_MAX - 9].rstrip('-')}-{digest}"
    return name


def jobset_worker_args(config: ChainConfig, plan: RunPlan) -> list[str]:
    """`tfship train` arguments of every worker of a JobSet or a TrainJob (which runs a JobSet).

    Each worker builds its own TF_CONFIG at start from the JobSet's pod labels
    (`--tf-config-from jobset`); the TFJob operator, by contrast, sets TF_CONFIG itself.
    """
    return [*step_args("train", config, plan), "--tf-config-from", "jobset",
            "--workers", str(config.workers), "--tf-port", str(TF_PORT)]


def jobset_env() -> list[dict[str, Any]]:
    """The env that `--tf-config-from jobset` reads, from the labels JobSet puts on each pod."""
    return [{"name": name, "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{label}']"}}}
            for name, label in JOBSET_ENV.items()]


def worker_pod_failure_policy(step: Step) -> dict[str, Any]:
    """A Job podFailurePolicy that fails the Job for good on a non-retryable exit code.

    Together with the JobSet failure policy of `render_jobset` (a Job failed by this policy fails
    the whole JobSet) a bad input (exit 2) is not restarted `maxRestarts` times, while a preempted
    worker (exit 143, or a pod lost with its node) restarts the whole set from its last checkpoint.
    """
    return {"rules": [{"action": "FailJob", "onExitCodes": {
        "operator": "NotIn", "values": sorted(step.retry_exit_codes)}}]}


def _engine_object(engine: str, config: ChainConfig, plan: RunPlan, namespace: str,
                   spec: dict[str, Any]) -> dict[str, Any]:
    """The engine's object around `spec`: its API, the run's name and labels (and Kueue queue)."""
    api = ENGINE_APIS[engine]
    name = workload_name(plan)
    labels = {"app.kubernetes.io/name": "tfship", "tfship/run": name,
              **placement(train_step(config), config).labels}
    return {
        "apiVersion": api.api_version,
        "kind": api.kind,
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": spec,
    }


def _worker_pod_spec(config: ChainConfig, *, image: str, container: str, args: list[str],
                     env: list[dict[str, Any]]) -> dict[str, Any]:
    place = placement(train_step(config), config)
    worker: dict[str, Any] = {
        "name": container,
        "image": image,
        "args": args,
        "resources": {"requests": dict(place.requests), "limits": dict(place.limits)},
    }
    if env:
        worker["env"] = env
        worker["ports"] = [{"name": "tf", "containerPort": TF_PORT}]
    return {
        "containers": [worker],
        "nodeSelector": dict(place.node_selector),
        "tolerations": [dict(t) for t in place.tolerations],
    }


def render_jobset(config: ChainConfig, plan: RunPlan, *, image: str, namespace: str = "tfship") -> dict:
    """A JobSet (jobset.x-k8s.io/v1alpha2) that runs train on `config.workers` GPU workers.

    One replicated job of one Indexed Job with `workers` pods: pod i is worker i, reachable at its
    stable host name (`enableDNSHostnames`), and builds its TF_CONFIG at start from the JobSet's
    pod labels (`tfship train --tf-config-from jobset`); worker 0 is the chief and alone writes the
    job dir. Each pod gets train's GPU placement. `backoffLimit: 0` fails the Job at the first lost
    or preempted worker, and the failure policy then recreates the whole set, up to
    `train_retries` times: every worker restarts and resumes the run's last checkpoint. A
    non-retryable exit fails the set at once (`worker_pod_failure_policy`).
    """
    step = train_step(config)
    pod_spec = _worker_pod_spec(config, image=image, container="tfship",
                                args=jobset_worker_args(config, plan), env=jobset_env())
    pod_spec["restartPolicy"] = "Never"  # a podFailurePolicy requires it; JobSet restarts the set
    return _engine_object("jobset", config, plan, namespace, {
        "network": {"enableDNSHostnames": True, "publishNotReadyAddresses": True},
        "failurePolicy": {
            "maxRestarts": step.retries,
            "rules": [{"name": "fail-on-a-non-retryable-exit", "action": "FailJobSet",
                       "onJobFailureReasons": ["PodFailurePolicy"]}],
        },
        "replicatedJobs": [{
            "name": WORKERS_JOB,
            "replicas": 1,
            "template": {"spec": {
                "parallelism": config.workers,
                "completions": config.workers,
                "completionMode": "Indexed",
                "backoffLimit": 0,
                "podFailurePolicy": worker_pod_failure_policy(step),
                "template": {"spec": pod_spec},
            }},
        }],
    })


def render_trainjob(config: ChainConfig, plan: RunPlan, *, image: str, namespace: str = "tfship") -> dict:
    """A Kubeflow Trainer v2 TrainJob (trainer.kubeflow.org/v1alpha1) on `config.workers` GPU nodes.

    It runs on the ClusterTrainingRuntime `tfship-tensorflow` (images/tfship-training-runtime.yaml,
    the plain-ML runtime: no framework policy), whose JobSet sets the same JobSet env and failure
    policy as `render_jobset`. The TrainJob brings the image, the worker arguments, the node count
    and resources, and train's node selector and tolerations as a runtime patch.
    """
    place = placement(train_step(config), config)
    node_patch = {"nodeSelector": dict(place.node_selector),
                  "tolerations": [dict(t) for t in place.tolerations]}
    return _engine_object("trainjob", config, plan, namespace, {
        "runtimeRef": {"name": TRAINING_RUNTIME, "apiGroup": ENGINE_APIS["trainjob"].group,
                       "kind": "ClusterTrainingRuntime"},
        "trainer": {
            "image": image,
            "args": jobset_worker_args(config, plan),
            "numNodes": config.workers,
            "resourcesPerNode": {"requests": dict(place.requests), "limits": dict(place.limits)},
        },
        "runtimePatches": [{
            "manager": "tfship",
            "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [{
                "name": TRAINER_NODE,
                "template": {"spec": {"template": {"spec": node_patch}}},
            }]}}},
        }],
    })


def render_tfjob(config: ChainConfig, plan: RunPlan, *, image: str, namespace: str = "tfship") -> dict:
    """A Kubeflow TFJob (kubeflow.org/v1): the legacy engine (Training Operator v1, deprecated).

    The training operator sets TF_CONFIG in each worker, so `tfship train` picks
    MultiWorkerMirroredStrategy; worker 0 is the chief and the only writer. Every worker gets
    train's placement and the same arguments (one job dir, keyed on the run: a restarted worker
    resumes the run's checkpoints). `restartPolicy: ExitCode` restarts a worker on the retryable
    codes (128-255: 143 = preempted) and fails the job on the others.
    """
    step = train_step(config)
    # The training operator looks for this container name.
    pod_spec = _worker_pod_spec(config, image=image, container="tensorflow",
                                args=step_args("train", config, plan), env=[])
    return _engine_object("tfjob", config, plan, namespace, {
        "runPolicy": {"backoffLimit": step.retries, "cleanPodPolicy": "Running"},
        "tfReplicaSpecs": {
            "Worker": {
                "replicas": config.workers,
                "restartPolicy": "ExitCode",
                "template": {"spec": pod_spec},
            },
        },
    })


_RENDERERS: dict[str, Callable[..., dict]] = {
    "jobset": render_jobset, "trainjob": render_trainjob, "tfjob": render_tfjob}


def render_workers(config: ChainConfig, plan: RunPlan, *, image: str, namespace: str = "tfship") -> dict:
    """The object of `config.engine` that runs this run's train on `config.workers` GPU workers."""
    return _RENDERERS[config.engine](config, plan, image=image, namespace=namespace)


def engine_api(body: Mapping[str, Any]) -> EngineApi:
    """The engine of a rendered (or read back) object, from its apiVersion and kind."""
    for api in ENGINE_APIS.values():
        if body.get("apiVersion") == api.api_version and body.get("kind") == api.kind:
            return api
    raise ConfigError(
        f"Not a training engine's object: apiVersion={body.get('apiVersion')!r}, "
        f"kind={body.get('kind')!r}. Expected one of "
        f"{', '.join(f'{a.api_version} {a.kind}' for a in ENGINE_APIS.values())}."
    )


def workload_state(body: Mapping[str, Any]) -> str:
    """`Succeeded`, `Failed` or `Running`, from the engine's own status conditions.

    JobSet ends `Completed` or `Failed`, TrainJob `Complete` or `Failed`, TFJob `Succeeded` or
    `Failed`; the last true one of these decides. Anything else (created, suspended by Kueue,
    restarting after a preemption) is still running.
    """
    api = engine_api(body)
    conditions = (body.get("status") or {}).get("conditions") or []
    for condition in reversed(conditions):
        if str(condition.get("status")) != "True":
            continue
        if condition.get("type") == api.succeeded:
            return "Succeeded"
        if condition.get("type") == api.failed:
            return "Failed"
    return "Running"
