"""The chain, defined once: train -> export -> validate -> push -> serve -> canary -> promote.

`tfship run`, the Airflow DAG (`dags/tfship_retrain.py`) and the KFP pipeline
(`pipelines/tfship_retrain.py`) are derived from `CHAIN` and the functions here, so they cannot
drift apart: each adapter asks this module for the steps in order, the exact `tfship <step> ...`
arguments of each, which one needs a GPU, its CPU/memory requests, how often and on which exit
codes it is retried, whether its result may be cached, and whether the promotion gate opens.
Adding or swapping a step is one edit of `CHAIN` (and of `step_args`).

Pure Python on purpose: no TensorFlow, no orchestrator, no I/O (the one helper that reads the
model repository, `plan_run`, is given the listing). Airflow parses this module every few seconds.

A run lays its files out under one per-run folder, keyed on the run (so a retried task resumes
the same checkpoints instead of starting in a fresh artifact path)::

    <runs_root>/<run_id>/job/                 train's checkpoints, TensorBoard logs, metrics.json
    <runs_root>/<run_id>/export/<version>/    the SavedModel
    <runs_root>/<run_id>/reports/             validate.json, canary/ (JSON + Markdown)
    <repo>/<name>/<version>/, <repo>/models.config   the TF Serving repository (shared by runs)

Example::

    from tfship.chain import ChainConfig, plan_run, step_args
    config = ChainConfig(data="rows.csv", schema="schema.yaml", runs_root="runs", repo="repo")
    plan = plan_run(config, run_id="r1", versions=[], stable=None)
    step_args("train", config, plan)   # ['train', '--data', 'rows.csv', ...]
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tfship.errors import EXIT_PREEMPTED, ConcurrentUpdateError, ConfigError
from tfship.tfserving import MODEL_NAME_RE
from tfship.rollout import DEFAULT_INTERVAL as DEFAULT_ROLLOUT_INTERVAL
from tfship.rollout import parse_steps as parse_rollout_steps
from tfship.text import parse_duration

EXIT_CONCURRENT_UPDATE = ConcurrentUpdateError.exit_code

# TF Serving's model names and labels: letters, digits, underscore (and '-' '.' in names).
_GPU_TYPE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_QUANTITY_RE = re.compile(r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti)?$")

PASS = "PASS"
FAIL = "FAIL"
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
# What `step_settings` may change of a step, and the `Step` field each setting sets.
STEP_SETTINGS = {"cpu": "cpu", "memory": "memory", "retries": "retries", "cache": "cacheable"}
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


def _join(base: str, *parts: str) -> str:
    # The same rule as tfship.storage.join, without importing it (gs:// URIs always use '/').
    return "/".join([base.rstrip("/"), *parts])


@dataclass(frozen=True)
class RunPlan:
    """What one run of the chain will do, decided before train starts.

    `version` is the version this run exports and pushes (the next integer above every version
    in the repository, as TF Serving expects increasing integers); `stable` is the version that
    serves now (None on the first run: then there is nothing to canary against, and the chain
    promotes the first version once it has validated).
    """

    run_id: str
    run_dir: str
    version: int
    stable: int | None

    def __post_init__(self) -> None:
        if not _RUN_ID_RE.match(self.run_id):
            raise ConfigError(
                f"Invalid run id: {self.run_id!r}. Expected letters, digits, `_`, `-` or `.`."
            )
        if self.version < 1:
            raise ConfigError(f"Invalid version: {self.version!r}. Expected an integer >= 1.")

    @property
    def first_version(self) -> bool:
        return self.stable is None

    @property
    def job_dir(self) -> str:
        return _join(self.run_dir, "job")

    @property
    def export_dir(self) -> str:
        return _join(self.run_dir, "export")

    @property
    def model_dir(self) -> str:
        return _join(self.export_dir, str(self.version))

    @property
    def reports_dir(self) -> str:
        return _join(self.run_dir, "reports")

    @property
    def validate_report(self) -> str:
        return _join(self.reports_dir, "validate.json")

    @property
    def canary_report_dir(self) -> str:
        return _join(self.reports_dir, "canary")

    @property
    def rollout_dir(self) -> str:
        return _join(self.reports_dir, "rollout")

    @property
    def default_contract(self) -> str:
        return _join(self.run_dir, "contract.yaml")

    @property
    def default_examples(self) -> str:
        return _join(self.run_dir, "examples.jsonl")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any]) -> RunPlan:
        stable = mapping.get("stable")
        return cls(
            run_id=str(mapping["run_id"]),
            run_dir=str(mapping["run_dir"]),
            version=int(mapping["version"]),
            stable=None if stable in (None, "", "None") else int(stable),
        )


def next_version(versions: Iterable[int]) -> int:
    """The next free version: one above the highest in the repository (1 when there is none)."""
    return max((int(v) for v in versions), default=0) + 1


def plan_run(config: ChainConfig, run_id: str, versions: Iterable[int], stable: int | None) -> RunPlan:
    """Decide the run's version and folder from the repository's listing (pure: no I/O)."""
    return RunPlan(
        run_id=run_id,
        run_dir=_join(config.runs_root, run_id),
        version=next_version(versions),
        stable=stable,
    )


def stable_model_dir(config: ChainConfig, plan: RunPlan) -> str:
    """The SavedModel of the version serving now (TF Serving's layout: <repo>/<name>/<version>)."""
    if plan.stable is None:
        raise ConfigError("There is no stable version yet: nothing to compare with.")
    return _join(config.repo, config.name, str(plan.stable))


def contract_path(config: ChainConfig, plan: RunPlan) -> str:
    return config.contract or plan.default_contract


def examples_path(config: ChainConfig, plan: RunPlan) -> str:
    return config.examples or plan.default_examples


# ----------------------------------------------------------------------------------------------
# The steps


@dataclass(frozen=True)
class Step:
    """One step of the chain, as every orchestrator needs to know it.

    Args:
        name: the step's name, and its `tfship <name>` sub-command.
        gpu: runs on the GPU node pool (node selector, toleration, `nvidia.com/gpu` limit).
        retries: how many times an orchestrator re-runs it after a retryable exit.
        retry_exit_codes: the exit codes worth a retry (143: preempted after a checkpoint);
            any other non-zero exit fails the chain at once.
        cacheable: its result depends only on its inputs and it has no side effect, so KFP may
            reuse a cached result.
        cpu, memory: Kubernetes requests (and the memory limit).
        service: a long-running server (not a job): locally the runner starts it on free loopback
            ports for the steps that `uses` it and stops it after; on a cluster it is the TF Serving
            Deployment of images/tf-serving.yaml.
        uses: the service this step talks to.
        after_canary_only: skipped on a first run, when there is no stable version to compare with.
        enabled_by: the `ChainConfig` field that turns this optional step on (runs only when it is
            set); "" = always part of the chain.
        skipped_by: the `ChainConfig` field that makes this step unnecessary (skipped when it is
            set: train, when `saved_model` names a model trained elsewhere).
    """

    name: str
    gpu: bool = False
    retries: int = 0
    retry_exit_codes: frozenset[int] = frozenset()
    cacheable: bool = False
    cpu: str = "1"
    memory: str = "2Gi"
    service: bool = False
    uses: str = ""
    after_canary_only: bool = False
    enabled_by: str = ""
    skipped_by: str = ""

    def __post_init__(self) -> None:
        for arg in ("cpu", "memory"):
            value = getattr(self, arg)
            if not _QUANTITY_RE.match(value):
                raise ConfigError(
                    f"Invalid value for argument `{arg}` of step {self.name!r}. Received: "
                    f"{value!r}. Expected a Kubernetes quantity such as '500m' or '2Gi'."
                )

    def is_retryable(self, exit_code: int | None) -> bool:
        """True when an orchestrator should run the step again after `exit_code`.

        None means the process or pod vanished without an exit code (a spot node reclaimed
        before the container could exit): retryable for a step that has retries at all.
        """
        if self.retries <= 0:
            return False
        return exit_code is None or exit_code in self.retry_exit_codes


CHAIN: tuple[Step, ...] = (
    Step("train", gpu=True, retries=3, retry_exit_codes=frozenset({EXIT_PREEMPTED}),
         cpu="4", memory="16Gi", skipped_by="saved_model"),
    Step("export", cpu="2", memory="8Gi"),
    Step("validate", cacheable=True, cpu="2", memory="8Gi"),
    # 75: another push changed models.config first (ConcurrentUpdateError): re-running is safe.
    Step("push", retries=2, retry_exit_codes=frozenset({EXIT_CONCURRENT_UPDATE}), cpu="1",
         memory="2Gi"),
    Step("serve", service=True, cpu="2", memory="4Gi", after_canary_only=True),
    Step("canary", uses="serve", cpu="1", memory="2Gi", after_canary_only=True),
    # After a canary PASS: live traffic in steps, judged from Prometheus; promotes or rolls back.
    Step("rollout", uses="serve", cpu="500m", memory="1Gi", after_canary_only=True,
         enabled_by="rollout_steps"),
    Step("promote", cpu="500m", memory="512Mi"),
)

STEPS: dict[str, Step] = {step.name: step for step in CHAIN}


def get_step(name: str) -> Step:
    try:
        return STEPS[name]
    except KeyError:
        raise ConfigError(
            f"Unknown step {name!r}. Expected one of {', '.join(STEPS)}."
        ) from None


def job_steps() -> list[Step]:
    """The steps an orchestrator runs as tasks, in order (the service is not a task)."""
    return [step for step in CHAIN if not step.service]


def enabled(step: Step, config: ChainConfig) -> bool:
    """Whether `config` runs `step`: an optional one only when its `enabled_by` field is set, one
    that can be skipped only when its `skipped_by` field is not (any other step always runs)."""
    if step.skipped_by and getattr(config, step.skipped_by):
        return False
    return not step.enabled_by or bool(getattr(config, step.enabled_by))


def steps_for(plan: RunPlan, config: ChainConfig) -> list[Step]:
    """The steps this run executes: a first run skips serve, canary and rollout (nothing to compare);
    an optional step runs only when `config` turns it on."""
    return [s for s in CHAIN if not (plan.first_version and s.after_canary_only) and enabled(s, config)]


def step_for(name: str, config: ChainConfig) -> Step:
    """Step `name` as `config` runs it: `CHAIN`'s defaults with the config's `step_settings` (and
    train's `train_retries`). Every orchestrator asks this, so a setting reaches every pod."""
    step = get_step(name)
    if name == "train":
        step = dataclasses.replace(step, retries=config.train_retries)
    settings = config.step_settings.get(name, {})
    unknown = sorted(set(settings) - set(STEP_SETTINGS))
    if unknown:
        raise ConfigError(
            f"Unknown setting(s) {unknown} of step {name!r}. Expected some of {sorted(STEP_SETTINGS)}."
        )
    return dataclasses.replace(step, **{STEP_SETTINGS[key]: value for key, value in settings.items()})


def train_step(config: ChainConfig) -> Step:
    """`train` with the retries and settings the user asked for (the defaults live in `CHAIN`)."""
    return step_for("train", config)


def step_args(
    name: str,
    config: ChainConfig,
    plan: RunPlan,
    *,
    target: str = "",
    grpc_port: int = 8500,
    rest_port: int = 8501,
) -> list[str]:
    """The `tfship` arguments of step `name` (without the leading `tfship`).

    Args:
        target: the serving endpoint (`grpc://host:port`): required for canary; push waits until it
            has loaded the new version before moving the `canary` label (omitted locally, where
            `tfship serve` starts only for the canary and loads a version before labelling it).
        grpc_port, rest_port: the ports `serve` listens on.
    """
    builders: dict[str, Callable[[], list[str]]] = {
        "train": lambda: [
            "train",
            "--data", config.data,
            "--schema", config.schema,
            "--job-dir", plan.job_dir,
            "--steps", str(config.steps),
            "--checkpoint-every", str(config.checkpoint_every),
            "--batch-size", str(config.batch_size),
            "--seed", str(config.seed),
            "--model", config.model,
            *(["--mixed-precision"] if config.mixed_precision else []),
            *(["--jit"] if config.jit_compile else []),
            *(["--input", config.input_fn] if config.input_fn else []),
        ],
        "export": lambda: [
            "export",
            # A model trained elsewhere is imported (checked with TF Serving's loader), else the
            # run's job dir is exported.
            *(["--saved-model", config.saved_model] if config.saved_model else ["--job-dir", plan.job_dir]),
            "--export-dir", plan.export_dir,
            "--version", str(plan.version),
        ],
        "validate": lambda: [
            "validate",
            "--model", plan.model_dir,
            "--contract", contract_path(config, plan),
            "--examples", examples_path(config, plan),
            "--report", plan.validate_report,
            # No breaking change against the version serving now.
            *(["--baseline", stable_model_dir(config, plan)] if plan.stable is not None else []),
        ],
        "push": lambda: [
            "push",
            "--model", plan.model_dir,
            "--repo", config.repo,
            "--name", config.name,
            "--label", "canary",
            "--version", str(plan.version),
            # A real TF Serving accepts the label only on a loaded version: push waits for it.
            *(["--serving-target", target.removeprefix("grpc://")] if target else []),
        ],
        "serve": lambda: [
            "serve",
            "--repo", config.repo,
            "--grpc-port", str(grpc_port),
            "--rest-port", str(rest_port),
        ],
        "canary": lambda: _canary_args(config, plan, target),
        "rollout": lambda: _rollout_args(config, plan, target),
        "promote": lambda: ["promote", "--repo", config.repo, "--name", config.name],
    }
    get_step(name)
    return builders[name]()


def _needs_target(step: str, target: str) -> None:
    if not target:
        raise ConfigError(
            f"The {step} step needs `target` (grpc://host:port of the serving endpoint). Locally the "
            "runner starts `tfship serve` for the canary (a rollout needs a server that Prometheus "
            f"scrapes: pass it); on a cluster pass the TF Serving Service, e.g. {DEFAULT_SERVING_TARGET!r}."
        )


def _canary_args(config: ChainConfig, plan: RunPlan, target: str) -> list[str]:
    _needs_target("canary", target)
    return [
        "canary",
        "--target", target,
        "--name", config.name,
        "--candidate", "canary",
        "--baseline", "stable",
        *(["--traffic", config.canary_traffic] if config.canary_traffic
          else ["--examples", examples_path(config, plan)]),
        *(["--judge-config", config.canary_thresholds] if config.canary_thresholds else []),
        "--requests", str(config.canary_requests),
        "--concurrency", str(config.canary_concurrency),
        "--report-dir", plan.canary_report_dir,
        # The canary moves the labels with its verdict: PASS -> `stable`, FAIL -> the `canary`
        # label is removed (automatic rollback). The promote step after a PASS is then a no-op
        # that the orchestrators show as the promotion. Before a rollout, a PASS moves nothing:
        # the rollout promotes once live traffic passed too.
        "--rollback-on-fail" if config.rollout_steps else "--promote", "--repo", config.repo,
    ]


def _rollout_args(config: ChainConfig, plan: RunPlan, target: str) -> list[str]:
    _needs_target("rollout", target)
    if not config.rollout_steps:
        raise ConfigError("The rollout step is off: `rollout_steps` is empty.")
    return [
        "rollout",
        "--target", target,
        "--name", config.name,
        "--prometheus", config.prometheus,
        "--steps", ",".join(map(str, config.rollout_steps)),
        "--interval", config.rollout_interval,
        *(["--check-every", config.rollout_check_every] if config.rollout_check_every else []),
        *(["--apply", config.rollout_apply] if config.rollout_apply else []),
        "--out-dir", plan.rollout_dir,
        # Each traffic step and the outcome in the label history; PROMOTED -> `stable`,
        # ROLLED_BACK -> the `canary` label removed (the promote step after it is a no-op).
        "--repo", config.repo, "--promote",
    ]


# ----------------------------------------------------------------------------------------------
# The gate before promotion


@dataclass(frozen=True)
class Decision:
    """Whether to promote the run's version to `stable`, and why (shown in summaries)."""

    promote: bool
    reason: str


def promotion_decision(plan: RunPlan, verdict: str | None, rollout: str | None = None) -> Decision:
    """The PASS gate: promote on a canary PASS, or on the first version (nothing to compare).

    `verdict` is the canary's verdict (`PASS`, `FAIL`, or None when the canary did not run);
    `rollout` the rollout's (None when the chain has no rollout step): with one, both must PASS.
    """
    if plan.first_version:
        return Decision(
            True,
            f"first version: no stable model yet, promoting version {plan.version} after validation",
        )
    if verdict == PASS and rollout not in (None, PASS):
        return Decision(False, f"canary PASS, rollout {rollout}: version {plan.stable} stays stable")
    if verdict == PASS:
        passed = "canary PASS" if rollout is None else "canary and rollout PASS"
        return Decision(True, f"{passed}: promoting version {plan.version} over {plan.stable}")
    if verdict is None:
        return Decision(False, "the canary did not run: nothing is promoted")
    return Decision(False, f"canary {verdict}: version {plan.stable} stays stable")


def verdict_from_exit_code(exit_code: int) -> str:
    """The canary's verdict from its exit code (0 PASS, 1 FAIL); other codes are errors."""
    if exit_code == 0:
        return PASS
    if exit_code == 1:
        return FAIL
    raise ConfigError(
        f"The canary exited with {exit_code}: an error, not a verdict (0 = PASS, 1 = FAIL). "
        "See its log line above."
    )


# ----------------------------------------------------------------------------------------------
# Kubernetes: one placement for the Airflow pods, the KFP tasks and the multi-worker engines


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


def safe_run_id(run_id: str) -> str:
    """An orchestrator's run id made safe for folder names and Kubernetes labels.

    Airflow's `manual__2025-01-02T03:04:05+00:00` becomes `manual__2025-01-02T03-04-05-00-00`.
    """
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", run_id).strip("-._")
    if not cleaned:
        raise ConfigError(f"Invalid run id: {run_id!r}. Expected letters, digits, `_`, `-` or `.`.")
    return cleaned


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
# <jobset>-<WORKERS_JOB>-<job index>-<pod index>.<jobset> (see tfship.distribute.jobset_tf_config).
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


def plan_document(config: ChainConfig, plan: RunPlan, target: str) -> dict:
    """The plan, the serving target ("" = a local server) and the arguments of every job step the
    config turns on, as the orchestrators read it (`tfship run --plan-only`, the KFP plan task's
    output, the Airflow plan task's XCom; `tfship.local_runner.run_planned_step` runs one)."""
    args = {step.name: step_args(step.name, config, plan, target=target) for step in job_steps()
            if enabled(step, config) and not (step.uses and not target)}
    return {"plan": plan.to_dict(), "config": config.to_dict(), "target": target, "args": args}
