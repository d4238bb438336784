"""One placement for the Airflow pods, the KFP tasks and the multi-worker engines (GKE node pools)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tfship.chain.config import KUEUE_QUEUE_LABEL, ChainConfig
from tfship.chain.step_table import Step

@dataclass(frozen=True)
class Placement:
    """Where a step's pod runs and what it requests.

    `labels` go on the workload Kueue admits (train's own pod, or the JobSet / TrainJob / TFJob
    object): the Kueue queue label when the config names a queue.
    """

    requests: dict[str, str]
    limits: dict[str, str]
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, str], ...] = ()
    labels: dict[str, str] = field(default_factory=dict)


def placement(step: Step, config: ChainConfig) -> Placement:
    """Requests, limits, node selector, tolerations and queue label of `step`'s pod on GKE."""
    requests = {"cpu": step.cpu, "memory": step.memory}
    limits = {"memory": step.memory}
    if not step.gpu:
        return Placement(requests=requests, limits=limits)
    limits["nvidia.com/gpu"] = str(config.gpu_count)
    selector = {"cloud.google.com/gke-accelerator": config.gpu_type}
    tolerations: list[dict[str, str]] = [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    if config.spot:
        selector["cloud.google.com/gke-spot"] = "true"
        tolerations.append(
            {"key": "cloud.google.com/gke-spot", "operator": "Equal", "value": "true",
             "effect": "NoSchedule"}
        )
    selector.update(config.node_selector)
    tolerations.extend(t for t in config.tolerations if t not in tolerations)
    labels = {KUEUE_QUEUE_LABEL: config.queue} if config.queue else {}
    return Placement(requests, limits, selector, tuple(tolerations), labels)


def image_for(step: Step, image: str, gpu_image: str) -> str:
    """GPU steps run the GPU image (TensorFlow's CUDA build); the others the CPU tools image."""
    return gpu_image if step.gpu else image
