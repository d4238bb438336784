"""The distribution strategy, chosen from the environment the orchestrator gives the process.

- TF_CONFIG naming several tasks (a JobSet or TrainJob worker, which builds it at start with
  `tfship train --tf-config-from jobset`; a Kubeflow TFJob, whose operator sets it; or two local
  processes in the tests): MultiWorkerMirroredStrategy; the chief (task `chief`, or worker 0 when
  there is none) writes.
- several local GPUs: MirroredStrategy.
- otherwise TensorFlow's default strategy (one device).

TensorFlow is imported only where a strategy is made: the train command's flags come from here,
and `tfship --help` must stay fast.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tfship.errors import ConfigError

if TYPE_CHECKING:
    import tensorflow as tf

# The Indexed Job sets JOB_COMPLETION_INDEX (the pod's index); the others come from the JobSet's
# pod labels through the downward API (`tfship.k8s.workers.jobset_env`).
JOBSET_VARIABLES = ("JOBSET_NAME", "REPLICATED_JOB_NAME", "JOB_INDEX", "JOB_COMPLETION_INDEX")
DEFAULT_TF_PORT = 2222


@dataclass(frozen=True)
class ClusterRole:
    """Where this process stands in a TF_CONFIG cluster."""

    num_workers: int
    task_type: str
    task_index: int
    has_chief: bool = False

    @property
    def is_chief(self) -> bool:
        """The chief task, or worker 0 when the cluster names no chief."""
        if self.task_type == "chief":
            return True
        return self.task_type == "worker" and self.task_index == 0 and not self.has_chief


def cluster_role(environ: dict[str, str] | None = None) -> ClusterRole:
    """Parse TF_CONFIG (absent: a single worker that is the chief)."""
    raw = (environ if environ is not None else os.environ).get("TF_CONFIG", "")
    if not raw:
        return ClusterRole(1, "worker", 0)
    try:
        config = json.loads(raw)
        cluster = config.get("cluster", {})
        task = config.get("task", {})
        has_chief = bool(cluster.get("chief"))
        count = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
        return ClusterRole(count, str(task.get("type", "worker")), int(task.get("index", 0)), has_chief)
    except (ValueError, TypeError, AttributeError) as error:
        raise ConfigError(f"Invalid TF_CONFIG: {raw!r} is not a cluster description ({error}).") from error


def _index(environ: Mapping[str, str], variable: str) -> int:
    value = environ[variable]
    if not value.isdigit():
        raise ConfigError(f"Invalid environment variable {variable}={value!r}: expected an integer >= 0.")
    return int(value)


def jobset_tf_config(environ: Mapping[str, str], workers: int, port: int = DEFAULT_TF_PORT,
                     addresses: Mapping[str, str] | None = None) -> dict:
    """TF_CONFIG for worker JOB_COMPLETION_INDEX of a JobSet's Indexed Job of `workers` pods.

    Every worker is named by its stable JobSet host name,
    `<JOBSET_NAME>-<REPLICATED_JOB_NAME>-<JOB_INDEX>-<pod index>.<JOBSET_NAME>` (the JobSet's
    default subdomain is its name), at `port`; worker 0 is the chief. `addresses` maps some of
    those host names to another `host:port` (the tests map them to loopback ports, as editing
    /etc/hosts is not allowed there); a name that no worker has is an error, not ignored.
    """
    missing = [name for name in JOBSET_VARIABLES if not environ.get(name)]
    if missing:
        raise ConfigError(
            f"--tf-config-from jobset: environment variable(s) {', '.join(missing)} not set. A JobSet "
            "pod gets them from its labels (see tfship.k8s.workers.jobset_env) and its Indexed Job."
        )
    if workers < 1:
        raise ConfigError(f"Invalid value for --workers. Received: {workers}. Expected an integer >= 1.")
    name, job = environ["JOBSET_NAME"], environ["REPLICATED_JOB_NAME"]
    job_index, pod_index = _index(environ, "JOB_INDEX"), _index(environ, "JOB_COMPLETION_INDEX")
    if pod_index >= workers:
        raise ConfigError(
            f"JOB_COMPLETION_INDEX={pod_index} but --workers {workers}: the pod is not one of the workers."
        )
    hosts = [f"{name}-{job}-{job_index}-{index}.{name}" for index in range(workers)]
    overrides = dict(addresses or {})
    unknown = sorted(set(overrides) - set(hosts))
    if unknown:
        raise ConfigError(f"--tf-address names {unknown}, which are not workers; the workers are {hosts}.")
    cluster = [overrides.get(host, f"{host}:{port}") for host in hosts]
    return {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": pod_index}}


def _address(text: str) -> tuple[str, str]:
    host, sep, address = text.partition("=")
    if not sep or not host or ":" not in address:
        raise argparse.ArgumentTypeError(f"expected HOST=ADDRESS:PORT, got {text!r}")
    return host, address


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags with which a JobSet worker builds its own TF_CONFIG (see `set_tf_config`)."""
    parser.add_argument("--tf-config-from", choices=("env", "jobset"), default="env",
                        help="env: use TF_CONFIG as given (default); jobset: build it from the JobSet "
                             "pod's env (JOBSET_NAME, REPLICATED_JOB_NAME, JOB_INDEX, JOB_COMPLETION_INDEX)")
    parser.add_argument("--workers", type=int, default=1, help="with --tf-config-from jobset: the worker count")
    parser.add_argument("--tf-port", type=int, default=DEFAULT_TF_PORT,
                        help=f"with --tf-config-from jobset: the workers' port (default {DEFAULT_TF_PORT})")
    parser.add_argument("--tf-address", type=_address, action="append", default=[], metavar="HOST=ADDRESS:PORT",
                        help="with --tf-config-from jobset: reach worker HOST at ADDRESS:PORT instead (repeatable)")


def set_tf_config(args: argparse.Namespace, environ: dict[str, str] | None = None) -> None:
    """With `--tf-config-from jobset`, put this worker's TF_CONFIG in the environment TensorFlow reads."""
    if args.tf_config_from != "jobset":
        return
    target = os.environ if environ is None else environ
    target["TF_CONFIG"] = json.dumps(
        jobset_tf_config(target, args.workers, args.tf_port, dict(args.tf_address)))


def strategy_from_environment(role: ClusterRole) -> tf.distribute.Strategy:
    """Create the strategy; must run before any other TensorFlow op in a multi-worker process."""
    import tensorflow as tf

    if role.num_workers > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
