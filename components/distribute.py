"""The distribution strategy, chosen from the environment the orchestrator gives the process.

- TF_CONFIG naming several tasks (a Kubeflow TFJob, or two local processes in the tests):
  MultiWorkerMirroredStrategy; the chief (task `chief`, or worker 0 when there is none) writes.
- several local GPUs: MirroredStrategy.
- otherwise TensorFlow's default strategy (one device).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import tensorflow as tf

from tfship.errors import ConfigError


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


def strategy_from_environment(role: ClusterRole) -> tf.distribute.Strategy:
    """Create the strategy; must run before any other TensorFlow op in a multi-worker process."""
    if role.num_workers > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
