"""The step table: each step's resources, retries and caching, and its `tfship <step>` arguments."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass

from tfship.chain.config import DEFAULT_SERVING_TARGET, ChainConfig
from tfship.chain.plan import RunPlan, contract_path, examples_path, stable_model_dir
from tfship.errors import EXIT_PREEMPTED, ConcurrentUpdateError, ConfigError

EXIT_CONCURRENT_UPDATE = ConcurrentUpdateError.exit_code
QUANTITY_RE = re.compile(r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti)?$")
# What `step_settings` may change of a step, and the `Step` field each setting sets.
STEP_SETTINGS = {"cpu": "cpu", "memory": "memory", "retries": "retries", "cache": "cacheable"}

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
            if not QUANTITY_RE.match(value):
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




def plan_document(config: ChainConfig, plan: RunPlan, target: str) -> dict:
    """The plan, the serving target ("" = a local server) and the arguments of every job step the
    config turns on, as the orchestrators read it (`tfship run --plan-only`, the KFP plan task's
    output, the Airflow plan task's XCom; `tfship.local_runner.run_planned_step` runs one)."""
    args = {step.name: step_args(step.name, config, plan, target=target) for step in job_steps()
            if enabled(step, config) and not (step.uses and not target)}
    return {"plan": plan.to_dict(), "config": config.to_dict(), "target": target, "args": args}
