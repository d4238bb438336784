"""ChainConfig: everything a user sets for one run of the chain, checked when built.

The defaults the orchestrators share (images, serving target, GPU type) are stated here once.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tfship.errors import ConfigError
from tfship.steps.rollout import DEFAULT_INTERVAL as DEFAULT_ROLLOUT_INTERVAL
from tfship.steps.rollout import parse_steps as parse_rollout_steps
from tfship.text import parse_duration
from tfship.tfserving import MODEL_NAME_RE


# A GKE accelerator type (`cloud.google.com/gke-accelerator`): letters, digits, '_', '-', '.'.
_GPU_TYPE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

# Every step process of an orchestrated run gets the run's id here, so the label history
# (`tfship.history`) names the Airflow DAG run or the KFP pipeline job that moved a label.
RUN_ID_ENV = "TFSHIP_RUN_ID"

# The tfship image every step runs in; the GPU variant holds TensorFlow's CUDA build.
DEFAULT_IMAGE = "ghcr.io/tfship/tfship:0.1.0"
DEFAULT_GPU_IMAGE = "ghcr.io/tfship/tfship-gpu:0.1.0"
# The TF Serving Service of images/tf-serving.yaml: the chain's canary target on a cluster.
DEFAULT_SERVING_TARGET = "grpc://tfship-serving.tfship.svc.cluster.local:8500"
DEFAULT_GPU_TYPE = "nvidia-tesla-t4"
# The GPU counts a GKE node offers per accelerator type (the machine types that carry them): a pod
# asking for another count never schedules. Accelerators not listed here are not checked.
GPU_COUNTS: dict[str, tuple[int, ...]] = {
    "nvidia-l4": (1, 2, 4, 8),
    "nvidia-tesla-t4": (1, 2, 4),
    "nvidia-tesla-a100": (1, 2, 4, 8, 16),
    "nvidia-a100-80gb": (1, 2, 4, 8),
    "nvidia-h100-80gb": (1, 2, 4, 8),
}
# ChainConfig's integer fields that must be >= 1, and those that must be >= 0.
POSITIVE_FIELDS = ("steps", "checkpoint_every", "batch_size", "canary_requests", "canary_concurrency",
                   "gpu_count", "workers")
NON_NEGATIVE_FIELDS = ("seed", "train_retries")
# The multi-worker training engines, the default first (see `render_workers`).
ENGINES = ("jobset", "trainjob", "tfjob")
# Kueue admits a workload into the LocalQueue this label names (GPU quota shared by teams).
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class ChainConfig:
    """Everything a user can set for one run of the chain; checked when built.

    The CLI (`tfship run`), the DAG's params and the pipeline's parameters only build this object.

    Args:
        data: training data (CSV/TFRecord path or glob, local or gs://); not read with `saved_model`.
        schema: the schema YAML (local or gs://); not read with `saved_model`.
        saved_model: a SavedModel trained elsewhere (a version directory): the run has no train,
            export imports it once TF Serving's loader loads and runs it (`tfship export
            --saved-model`), then validate, push, canary and promote as usual; the contract and the
            examples come from its signatures. "" = train on `data`.
        runs_root: folder that holds one sub-folder per run (local or gs://).
        repo: the TF Serving model repository root (local or gs://), shared by runs.
        name: the model name in the repository (TF Serving rules: no `/`, no `..`).
        model: the model family or `module:function` for `tfship train --model`.
        steps, checkpoint_every, batch_size, seed: training hyper-parameters.
        mixed_precision, jit_compile, input_fn: `tfship train --mixed-precision`, `--jit` and
            `--input module:function` (a team's own input pipeline; the module must be installed
            in the training image).
        contract: signature contract YAML for `tfship validate`; "" = `<run>/contract.yaml`, which
            the runner writes from the schema before validating.
        examples: rows the canary (and validate) send; "" = `<run>/examples.jsonl`, written from the
            first rows of the data.
        canary_requests, canary_concurrency: the canary's load.
        canary_traffic: a glob of logged requests (`tfship serve --request-log-dir`) the canary
            replays instead of `examples`; "" = the examples (or the repository's request logs).
        canary_thresholds: a YAML file overriding the canary judge's thresholds (`--judge-config`).
        gpu_type, gpu_count, spot: train's placement on a GKE GPU node pool; `gpu_count` must be a
            count the accelerator's nodes offer (`GPU_COUNTS`).
        node_selector, tolerations: extra node labels and tolerations of the GPU pods (a team's
            own node pool), on top of the accelerator's and spot's.
        step_settings: per step name, what differs from `CHAIN`: `cpu`, `memory` (Kubernetes
            quantities), `retries` (of its retryable exits) and `cache` (KFP may reuse its result);
            train's retries are `train_retries`.
        queue: a Kueue LocalQueue name: every GPU workload (train's pod, JobSet, TrainJob, TFJob)
            carries the `kueue.x-k8s.io/queue-name` label, so Kueue admits it against the team's
            GPU quota; "" = no label (no Kueue).
        workers: train workers; more than one runs train on `engine` (MultiWorkerMirroredStrategy).
        engine: the multi-worker engine: `jobset` (JobSet, the default), `trainjob` (Kubeflow
            Trainer v2) or `tfjob` (Kubeflow Training Operator v1, deprecated upstream).
        train_retries: retries of train after a preemption (exit 143); other steps fail fast. For a
            multi-worker engine: how often the whole set of workers is restarted.
        rollout_steps: the candidate's share of live traffic per step of a progressive rollout after
            the canary PASS (`tfship rollout --steps`, e.g. (5, 25, 50, 100)); () = no rollout step:
            the canary PASS promotes at once.
        rollout_interval, rollout_check_every: `tfship rollout --interval` / `--check-every`.
        prometheus: Prometheus' URL, which scrapes the serving endpoint (needed by the rollout).
        rollout_apply: the kinds the rollout server-side applies to the cluster at every step
            (`tfship rollout --apply`, e.g. "virtualservice"); "" = manifests written only.
    """

    data: str
    schema: str
    runs_root: str
    repo: str
    name: str = "model"
    model: str = "mlp"
    steps: int = 300
    checkpoint_every: int = 100
    batch_size: int = 32
    seed: int = 0
    mixed_precision: bool = False
    jit_compile: bool = False
    input_fn: str = ""
    contract: str = ""
    examples: str = ""
    canary_requests: int = 200
    canary_concurrency: int = 4
    canary_traffic: str = ""
    canary_thresholds: str = ""
    gpu_type: str = DEFAULT_GPU_TYPE
    gpu_count: int = 1
    spot: bool = True
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, str], ...] = ()
    step_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    queue: str = ""
    workers: int = 1
    engine: str = ENGINES[0]
    train_retries: int = 3
    rollout_steps: tuple[int, ...] = ()
    rollout_interval: str = DEFAULT_ROLLOUT_INTERVAL
    rollout_check_every: str = ""
    prometheus: str = ""
    rollout_apply: str = ""
    saved_model: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.saved_model, str):
            raise ConfigError(
                f"Invalid value for argument `saved_model`. Received: saved_model={self.saved_model!r}. "
                "Expected the path of a SavedModel version directory, or '' to train on `data`."
            )
        # A model trained elsewhere needs no data nor schema (nothing is trained).
        required = ("runs_root", "repo") if self.saved_model else ("data", "schema", "runs_root", "repo")
        for arg in required:
            value = getattr(self, arg)
            if not isinstance(value, str) or not value:
                raise ConfigError(
                    f"Invalid value for argument `{arg}`. Received: {arg}={value!r}. "
                    "Expected a local path or a gs://bucket/prefix URI."
                )
        if not MODEL_NAME_RE.fullmatch(self.name) or ".." in self.name:
            raise ConfigError(
                f"Invalid value for argument `name`. Received: name={self.name!r}. Expected letters, "
                "digits, `_`, `-` or `.`, at most 128 (a TF Serving model name: no `/`, no `..`)."
            )
        for arg in POSITIVE_FIELDS:
            value = getattr(self, arg)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(
                    f"Invalid value for argument `{arg}`. Received: {arg}={value!r}. "
                    "Expected an integer >= 1."
                )
        for arg in NON_NEGATIVE_FIELDS:
            value = getattr(self, arg)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(
                    f"Invalid value for argument `{arg}`. Received: {arg}={value!r}. "
                    "Expected an integer >= 0."
                )
        for arg in ("mixed_precision", "jit_compile"):
            value = getattr(self, arg)
            if not isinstance(value, bool):
                raise ConfigError(
                    f"Invalid value for argument `{arg}`. Received: {arg}={value!r}. Expected true or false."
                )
        if self.input_fn and ":" not in self.input_fn:
            raise ConfigError(
                f"Invalid value for argument `input_fn`. Received: input_fn={self.input_fn!r}. "
                "Expected 'package.module:function' or ''."
            )
        if not self.gpu_type or not _GPU_TYPE_RE.match(self.gpu_type):
            raise ConfigError(
                f"Invalid value for argument `gpu_type`. Received: gpu_type={self.gpu_type!r}. "
                "Expected a GKE accelerator name such as 'nvidia-tesla-t4' or 'nvidia-l4'."
            )
        allowed = GPU_COUNTS.get(self.gpu_type)
        if allowed and self.gpu_count not in allowed:
            raise ConfigError(
                f"Invalid value for argument `gpu_count`. Received: gpu_count={self.gpu_count!r}. "
                f"Expected one of {', '.join(map(str, allowed))}: the GPU counts of a {self.gpu_type} node."
            )
        # JSON (a plan document) brings the tolerations back as a list.
        object.__setattr__(self, "tolerations", tuple(dict(t) for t in self.tolerations))
        # The step table reads ChainConfig, so it is imported here, not at the top.
        from tfship.chain.step_table import step_for

        for name, settings in self.step_settings.items():
            if name == "train" and "retries" in settings:
                raise ConfigError("Invalid `step_settings` of step 'train': set its retries with "
                                  "`train_retries`.")
            step_for(name, self)  # checks the step name, the setting names and the quantities
        if self.queue and (len(self.queue) > 63 or not _DNS_LABEL_RE.match(self.queue)):
            raise ConfigError(
                f"Invalid value for argument `queue`. Received: queue={self.queue!r}. Expected a "
                "Kueue LocalQueue name (lower-case letters, digits and `-`, at most 63) or ''."
            )
        if self.engine not in ENGINES:
            raise ConfigError(
                f"Invalid value for argument `engine`. Received: engine={self.engine!r}. "
                f"Expected one of {', '.join(ENGINES)}."
            )
        if not isinstance(self.rollout_steps, tuple):
            raise ConfigError(
                f"Invalid value for argument `rollout_steps`. Received: rollout_steps={self.rollout_steps!r}. "
                "Expected a tuple of percentages such as (5, 25, 50, 100), or () for no rollout."
            )
        if self.rollout_steps:
            parse_rollout_steps(",".join(map(str, self.rollout_steps)))
            if not self.prometheus:
                raise ConfigError(
                    f"Invalid value for argument `prometheus`. Received: prometheus=''. The rollout "
                    f"(rollout_steps={self.rollout_steps!r}) judges live traffic: expected the URL of the "
                    "Prometheus that scrapes the serving endpoint, e.g. http://prometheus:9090."
                )
        # Checked here, not only when the rollout starts: a bad duration in tfship.yaml or a DAG
        # param is refused before anything trains.
        parse_duration(self.rollout_interval, "rollout_interval")
        if self.rollout_check_every:
            parse_duration(self.rollout_check_every, "rollout_check_every")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> ChainConfig:
        """Build from DAG params / pipeline parameters; unknown keys are an error, not ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(mapping) - names)
        if unknown:
            raise ConfigError(
                f"Unknown chain parameter(s) {unknown}. Expected some of {sorted(names)}."
            )
        values = dict(mapping)
        steps = values.get("rollout_steps")
        if isinstance(steps, str):  # a DAG param or pipeline parameter: "5,25,50,100", "" = none
            values["rollout_steps"] = parse_rollout_steps(steps) if steps else ()
        elif isinstance(steps, list):  # a JSON round trip of to_dict()
            values["rollout_steps"] = tuple(steps)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
