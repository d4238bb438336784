"""Run the chain of `tfship.chain` on this machine: each step a `tfship <step>` process.

Used by `tfship run`, by the Airflow DAG in `local` mode and by the KFP pipeline's components, so
the three run the same commands with the same retries and the same promotion gate. Each step is a
separate process, exactly as in a container: the exit code is the contract (143 = preempted after a
checkpoint, retried on the same job dir; 1 = a gate said no; 2 = bad input; both fail at once).

Importing this module is cheap (no TensorFlow): the Airflow scheduler imports it with the DAG.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from tfship import chain, native_log, storage
from tfship.k8s import workers
from tfship.errors import ConfigError, DataError, TfshipError
from tfship.tfserving import SERVING_DEFAULT

Echo = Callable[[str], None]

# How many data rows become the canary's and validate's examples when the user gives none.
EXAMPLE_ROWS = 64
SERVER_START_TIMEOUT_S = 120.0
# Under the repository: production's `tfship serve --request-log-dir`, read by the chain's canary.
REQUEST_LOG_DIR = "request-logs"


class StepFailed(TfshipError):
    """A step exited non-zero and is not retried (or ran out of retries)."""

    def __init__(self, step: str, exit_code: int, attempts: int) -> None:
        self.step = step
        self.exit_code = exit_code
        self.attempts = attempts
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(f"step `{step}` failed with exit code {exit_code}{tries}")


def _print(line: str) -> None:
    print(line, flush=True)


def tfship_command() -> list[str]:
    """The `tfship` command: `$TFSHIP_CLI` (an Airflow environment points it at one with TensorFlow), else
    this interpreter's `python -m tfship.cli`."""
    override = os.environ.get("TFSHIP_CLI")
    if override:
        return shlex.split(override)
    return [sys.executable, "-m", "tfship.cli"]


def launch(args: Sequence[str], *, prefix: str = "", echo: Echo = _print,
           env: dict[str, str] | None = None) -> int:
    """Run `tfship <args>` to completion, streaming its output line by line; return its exit code.

    The one place tfship starts a step process (the server has its own, see `LocalServer`).
    """
    argv = [*tfship_command(), *args]
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    assert process.stdout is not None
    for line in process.stdout:
        if not native_log.is_noise(line):  # a `TFSHIP_CLI` without the filter
            echo(f"{prefix}{line.rstrip()}")
    return process.wait()


@dataclass
class StepResult:
    name: str
    exit_code: int
    attempts: int
    seconds: float


def run_step(step: chain.Step, args: Sequence[str], *, echo: Echo = _print,
             raise_on_failure: bool = True, retry: bool = True,
             env: dict[str, str] | None = None) -> StepResult:
    """Run one step, re-running it while its exit code is retryable (`Step.is_retryable`).

    `retry=False` runs it once: for an orchestrator (Airflow) that does the retrying itself.
    `env` is added to the process' environment (the run id, `run_env`).
    """
    start = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        code = launch(args, prefix=f"  [{step.name}] ", echo=echo, env=env)
        if code == 0 or not retry or not step.is_retryable(code) or attempt > step.retries:
            break
        echo(f"  [{step.name}] exited {code} (retryable): attempt {attempt + 1} of "
             f"{step.retries + 1} on the same directories")
    result = StepResult(step.name, code, attempt, time.monotonic() - start)
    if code != 0 and raise_on_failure:
        raise StepFailed(step.name, code, attempt)
    return result


# ----------------------------------------------------------------------------------------------
# Planning: read the repository, write the contract and examples the run uses


def repo_state(repo: str, name: str) -> tuple[list[int], int | None]:
    """Every version number model `name` has used in the repository, and its `stable` version.

    Versions that left models.config (unlabelled, unloaded) still count, and so do versions an
    unfinished push has claimed: a new run must never reuse a number.
    """
    from tfship import models_config
    from tfship.steps.push import step as push_step

    config = models_config.read_models_config(repo)
    versions = set(models_config.served_versions(config, name)) | push_step.used_versions(repo, name)
    return sorted(versions), models_config.version_labels(config, name).get("stable")


def new_run_id() -> str:
    """A run id that sorts by start time (UTC)."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def plan(config: chain.ChainConfig, run_id: str) -> chain.RunPlan:
    """Decide the run's version from the repository and write its default contract and examples.

    With `config.saved_model` (a model trained elsewhere) they come from its signatures, not from
    the data and schema. Pure of side effects on the repository: re-planning a run before its push
    decides the same.
    """
    saved_model = config.saved_model
    versions, stable = repo_state(config.repo, config.name)
    run_plan = chain.plan_run(config, run_id, versions, stable)
    if not config.examples:
        examples = examples_from_signatures(saved_model) if saved_model else \
            examples_from_data(config.data, config.schema)
        storage.write_text(run_plan.default_examples, examples)
    if not config.contract:
        if saved_model:
            from tfship.saved_model.inspect import contract_yaml

            from tfship.steps.export.signatures import SERVING_DEFAULT

            # The examples feed serving_default only; other signatures are checked by the baseline diff.
            contract = contract_yaml(saved_model, only=[SERVING_DEFAULT])
        else:
            contract = contract_from_schema(config.schema)
        storage.write_text(run_plan.default_contract, contract)
    return run_plan


def examples_from_signatures(saved_model: str, rows: int = EXAMPLE_ROWS, seed: int = 0) -> str:
    """JSONL of `rows` generated inputs of the SavedModel's `serving_default`, one object a line.

    For a model trained elsewhere there are no data rows: each input gets seeded random values of
    its declared dtype and per-example shape (unknown dimensions: 1), as validate generates them.
    Random strings mean nothing to a model (an image's bytes, a serialized tf.Example), so a string
    input is a ConfigError asking for --examples.
    """
    import numpy as np

    from tfship.saved_model.inspect import resolve_version_dir
    from tfship.saved_model.loader import read_signatures
    from tfship.steps.export.signatures import SERVING_DEFAULT
    from tfship.steps.validate.worker import generate_values

    signatures = read_signatures(resolve_version_dir(saved_model))  # a gs:// model: its graph, mirrored
    if SERVING_DEFAULT not in signatures:
        raise ConfigError(f"SavedModel {saved_model!r} has no {SERVING_DEFAULT!r} signature (it has "
                          f"{sorted(signatures)}): pass --examples with rows of the inputs the canary sends.")
    inputs = signatures[SERVING_DEFAULT].inputs
    for name, spec in inputs.items():
        if spec.dtype == "string":
            raise ConfigError(f"SavedModel {saved_model!r}: input {name!r} of {SERVING_DEFAULT} is a string; "
                              "random strings are no example of it: pass --examples with real rows.")
    rng = np.random.default_rng(seed)
    shapes = {name: () if spec.shape is None else tuple(1 if d is None else d for d in spec.shape[1:])
              for name, spec in inputs.items()}
    lines = [json.dumps({name: generate_values(spec.dtype, shapes[name], rng).tolist()
                         for name, spec in inputs.items()}) for _ in range(rows)]
    return "\n".join(lines) + "\n"


def _schema(schema_uri: str):
    from tfship.schema import load_schema

    return load_schema(schema_uri)


def examples_from_data(data: str, schema_uri: str, rows: int = EXAMPLE_ROWS) -> str:
    """JSONL of the first complete `rows` rows of the data: features only, one object a line.

    Images (TFRecord bytes, or the files a CSV names) are written as `{"b64": ...}`, the form
    TF Serving's REST API and `tfship validate --examples` read.
    """
    schema = _schema(schema_uri)
    files = storage.glob(data)
    if not files:
        raise DataError(f"No file matches --data {data!r}.")
    first = files[0]
    if not first.endswith(".csv") or schema.image_features:
        return _examples_from_records(data, schema, rows)
    # Locally the file is streamed (only the first rows are read); gs:// objects are fetched whole.
    handle = io.StringIO(storage.read_text(first)) if storage.is_gcs(first) else open(first, newline="")
    with handle:
        return _examples_jsonl(csv.DictReader(handle), schema, first, rows)


def _examples_from_records(data: str, schema, rows: int) -> str:
    """`examples_from_data` through the training data's own reader (TFRecord, or CSV naming images)."""
    import math

    from tfship.steps.train.data import read_rows, resolve_files
    from tfship.saved_model.signature_inputs import json_value

    # Every row counts as a training row here: the first rows, as for CSV.
    records = read_rows(resolve_files(data, schema=schema), schema, holdout_every=2**62, split="train", limit=rows * 4)
    lines = []
    for record in records:
        values = [record[name] for name in schema.features]
        if any(isinstance(v, float) and math.isnan(v) for v in values):
            continue  # a missing number: as for CSV, rows with missing cells add nothing to a canary
        lines.append(json.dumps({name: json_value(record[name]) for name in schema.features}))
        if len(lines) == rows:
            break
    if not lines:
        raise DataError(f"--data {data}: no complete row to use as an example.")
    return "\n".join(lines) + "\n"


def _examples_jsonl(reader: csv.DictReader, schema, source: str, rows: int) -> str:
    missing = [c for c in schema.features if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(f"{source}: the schema's column(s) {missing} are not in the header.")
    na = set(schema.na_values)
    lines = []
    for number, row in enumerate(reader, start=2):  # line 1 is the header
        values = [row[c] for c in schema.features]
        if any(v in na for v in values):
            continue  # the canary compares versions; rows with missing cells add nothing there
        # One value per example: the exported signature takes each feature with shape [-1].
        try:
            example = {
                c: row[c] if d == "string" else (float(row[c]) if d.startswith("float") else int(float(row[c])))
                for c, d in schema.raw_dtypes.items()
            }
        except (TypeError, ValueError) as error:
            raise DataError(f"{source}, line {number}: {error}. Pass --examples with clean rows.") from None
        lines.append(json.dumps(example))
        if len(lines) == rows:
            break
    if not lines:
        raise DataError(f"{source}: no complete row to use as an example.")
    return "\n".join(lines) + "\n"


def contract_from_schema(schema_uri: str) -> str:
    """The signature contract a model exported for this schema must keep (YAML).

    Inputs: the schema's features by name with the dtypes clients send, one value per example
    (shape [-1]; an image is its encoded bytes and text a string, both "string"), a vector [-1, n].
    Outputs: what `tfship export` writes for the task (class ids, names and probabilities; or the
    prediction); other outputs are allowed, and the baseline check catches a changed one.
    """
    import yaml

    schema = _schema(schema_uri)
    inputs = {name: {"dtype": dtype, "shape": [-1, *schema.raw_shape(name)]} for name, dtype in schema.raw_dtypes.items()}
    if schema.task == "classification":
        outputs = {
            "class_ids": {"dtype": "int64", "shape": [-1]},
            "classes": {"dtype": "string", "shape": [-1]},
            "probabilities": {"dtype": "float32", "shape": [-1, -1]},
        }
    else:
        outputs = {}
    contract = {
        "signatures": {
            SERVING_DEFAULT: {"inputs": inputs, "outputs": outputs, "allow_extra_outputs": True},
        }
    }
    return yaml.safe_dump(contract, sort_keys=False)


# ----------------------------------------------------------------------------------------------
# The local server the canary talks to


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LocalServer:
    """`tfship serve` on free loopback ports, as a child process; `stop()` ends it."""

    process: subprocess.Popen
    grpc_port: int
    rest_port: int
    log_path: str

    @property
    def target(self) -> str:
        return f"grpc://127.0.0.1:{self.grpc_port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _label_ready(rest_port: int, name: str, label: str) -> bool:
    """Whether the server resolves `label` of model `name` to a loaded version.

    Asks for the label's metadata: a status request ignores the label (as TF Serving's does),
    while metadata must resolve it to a servable, which exists only once it is loaded.
    """
    url = f"http://127.0.0.1:{rest_port}/v1/models/{name}/labels/{label}/metadata"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            body = json.loads(response.read() or b"{}")
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return "metadata" in body


@contextlib.contextmanager
def local_server(config: chain.ChainConfig, plan_: chain.RunPlan, *,
                 labels: Sequence[str] = ("stable", "canary"),
                 echo: Echo = _print) -> Iterator[LocalServer]:
    """Start `tfship serve` over the repository, wait until `labels` serve, stop it on exit."""
    grpc_port, rest_port = free_port(), free_port()
    args = chain.step_args("serve", config, plan_, grpc_port=grpc_port, rest_port=rest_port)
    log_path = storage.join(plan_.reports_dir, "serve.log") if not storage.is_gcs(plan_.reports_dir) \
        else os.path.join(storage.local_cache_dir(plan_.reports_dir, "serve"), "serve.log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    log = open(log_path, "wb")
    process = subprocess.Popen([*tfship_command(), *args], stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    server = LocalServer(process, grpc_port, rest_port, log_path)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not all(_label_ready(rest_port, config.name, label) for label in labels):
            if process.poll() is not None:
                raise StepFailed("serve", process.returncode, 1)
            if time.monotonic() > deadline:
                raise TfshipError(
                    f"`tfship serve` did not serve {config.name} {list(labels)} within "
                    f"{SERVER_START_TIMEOUT_S:.0f} s; see {log_path}"
                )
            time.sleep(0.2)
        echo(f"  [serve] {config.name} serving on {server.target} (REST :{rest_port}); log {log_path}")
        yield server
    finally:
        server.stop()
        log.close()


def request_log_prefix(config: chain.ChainConfig) -> str:
    """Where production's request logs of the model are looked for: `<repo>/request-logs/<name>`.

    That is what `tfship serve --request-log-dir <repo>/request-logs` writes. Request logs are
    local files, so a gs:// repository has none here.
    """
    return os.path.join(config.repo, REQUEST_LOG_DIR, config.name)


def canary_args(config: chain.ChainConfig, plan_: chain.RunPlan, target: str, echo: Echo = _print) -> list[str]:
    """The canary's arguments: the newest logged traffic of the model when there is any, else the data rows.

    The canary's report records which (`input`: "traffic <glob>" or "examples <file>").
    """
    from tfship.steps.serve.request_log import traffic_glob

    args = chain.step_args("canary", config, plan_, target=target)
    if config.canary_traffic:
        echo(f"  [canary] input: logged traffic {config.canary_traffic} (canary_traffic)")
        return args
    logged = None if storage.is_gcs(config.repo) else traffic_glob(request_log_prefix(config))
    if logged is None:
        echo(f"  [canary] input: data rows ({chain.examples_path(config, plan_)}); no request logs under "
             f"{request_log_prefix(config)}")
        return args
    at = args.index("--examples")
    echo(f"  [canary] input: logged traffic {logged}")
    return [*args[:at], "--traffic", logged, *args[at + 2:]]


def run_env(run_id: str) -> dict[str, str]:
    """The environment every step process of run `run_id` gets: the run id the label history records.

    An id the orchestrator already set (`TFSHIP_RUN_ID` in this process) wins over the chain's own.
    """
    return {chain.RUN_ID_ENV: os.environ.get(chain.RUN_ID_ENV) or run_id}


def run_planned_step(doc: dict[str, Any], step: str) -> int:
    """Run job step `step` of a plan document (`tfship run --plan-only`'s JSON, the KFP plan task's
    output) in this process, as the CLI would; its exit code.

    The plan's run id goes into this process's environment first, so the label history names the
    orchestrator run: the KFP plan task receives the pipeline job id as an input parameter, the
    placeholder form KFP's backend resolves since 2.4 (kubeflow/pipelines#11599) and kfp.local
    resolves; the other tasks take it from the plan instead of a placeholder of their own.
    """
    from tfship import cli

    os.environ.update(run_env(doc["plan"]["run_id"]))
    return cli.main(doc["args"][step])


def run_gate(step: chain.Step, args: Sequence[str], *, echo: Echo = _print,
             env: dict[str, str] | None = None) -> tuple[str, StepResult]:
    """Run a step whose exit code is a verdict (canary, rollout): 0 PASS, 1 FAIL, anything else fails."""
    result = run_step(step, args, echo=echo, raise_on_failure=False, env=env)
    if result.exit_code not in (0, 1):
        raise StepFailed(step.name, result.exit_code, result.attempts)
    return chain.verdict_from_exit_code(result.exit_code), result


def run_canary(config: chain.ChainConfig, plan_: chain.RunPlan, *, target: str = "",
               echo: Echo = _print, env: dict[str, str] | None = None) -> tuple[str, StepResult]:
    """The canary step: against `target`, or against a local server started for it."""
    step = chain.STEPS["canary"]
    if target:
        return run_gate(step, canary_args(config, plan_, target, echo), echo=echo, env=env)
    with local_server(config, plan_, echo=echo) as server:
        return run_gate(step, canary_args(config, plan_, server.target, echo), echo=echo, env=env)


# ----------------------------------------------------------------------------------------------
# Multi-worker train on a cluster: a JobSet, a Trainer v2 TrainJob or a Kubeflow TFJob


def run_workload(api: Any, body: dict, *, poll_s: float = 15.0, timeout_s: float = 6 * 3600,
                 echo: Echo = _print) -> str:
    """Create the engine object `body` (from `workers.render_workers`) and wait until it ends.

    `api` is a kubernetes `CustomObjectsApi` (the Airflow task passes its hook's, the KFP component
    the in-cluster one). Idempotent for a run: the object's name is a function of the run id, so a
    retried task finds the object it created (HTTP 409) and waits on it instead of creating a
    second one. The wait reads the engine's own status conditions (`workers.workload_state`) and is
    bounded by `timeout_s`. Raises `StepFailed` when the object fails or the wait times out.
    """
    engine = workers.engine_api(body)
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    where = (engine.group, engine.version, namespace, engine.plural)
    try:
        api.create_namespaced_custom_object(*where, body)
        echo(f"  [train] {engine.kind} {namespace}/{name} created")
    except Exception as error:  # the client's ApiException; 409 = this run's object already exists
        if getattr(error, "status", None) != 409:
            raise
        echo(f"  [train] {engine.kind} {namespace}/{name} exists (a retried task): waiting on it")
    deadline = time.monotonic() + timeout_s
    while True:
        state = workers.workload_state(api.get_namespaced_custom_object(*where, name))
        if state == "Succeeded":
            return state
        if state == "Failed":
            echo(f"  [train] {engine.kind} {namespace}/{name} failed (condition {engine.failed})")
            raise StepFailed("train", 1, 1)
        if time.monotonic() > deadline:
            echo(f"  [train] {engine.kind} {namespace}/{name} not done after {timeout_s:.0f} s")
            raise StepFailed("train", 1, 1)
        time.sleep(poll_s)


# ----------------------------------------------------------------------------------------------
# The whole chain


@dataclass
class ChainSummary:
    plan: chain.RunPlan
    steps: list[StepResult] = field(default_factory=list)
    verdict: str | None = None
    rollout: str | None = None
    decision: chain.Decision | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.plan.run_id,
            "run_dir": self.plan.run_dir,
            "version": self.plan.version,
            "previous_stable": self.plan.stable,
            "verdict": self.verdict,
            "rollout": self.rollout,
            "promoted": bool(self.decision and self.decision.promote),
            "decision": self.decision.reason if self.decision else None,
            "metrics": self.metrics,
            "steps": [vars(s) for s in self.steps],
            "seconds": round(self.seconds, 2),
            "reports": {
                "validate": self.plan.validate_report,
                "canary": self.plan.canary_report_dir,
                **({"rollout": self.plan.rollout_dir} if self.rollout is not None else {}),
            },
        }


def _read_metrics(plan_: chain.RunPlan) -> dict[str, Any]:
    from tfship.steps.train.job import read_metrics

    try:
        return read_metrics(plan_.job_dir)
    except (TfshipError, ValueError):
        return {}


def run_chain(config: chain.ChainConfig, run_id: str | None = None, *, serving_target: str = "",
              echo: Echo = _print) -> ChainSummary:
    """Run every step of `chain.CHAIN` for one run; raise `StepFailed` when a step fails.

    With `config.saved_model` (a SavedModel trained elsewhere) there is no train: export imports
    that model as the run's version (`tfship export --saved-model`), and the chain goes on from there.
    A canary or rollout FAIL is not an exception: the summary says FAIL and nothing is promoted.
    Each step process gets the run id in `TFSHIP_RUN_ID` (`run_env`). A rollout
    (`config.rollout_steps`) needs `serving_target`: a server that `config.prometheus` scrapes.
    """
    start = time.monotonic()
    if config.rollout_steps and not serving_target:
        raise ConfigError(
            f"The rollout (rollout_steps={config.rollout_steps!r}) judges live traffic that "
            f"{config.prometheus} scrapes: pass the serving endpoint it scrapes (--target grpc://host:port); "
            "a local server on free ports is scraped by no Prometheus."
        )
    run_plan = plan(config, run_id or new_run_id())
    env = run_env(run_plan.run_id)
    summary = ChainSummary(run_plan)
    echo(f"tfship run {run_plan.run_id}: version {run_plan.version} of {config.name!r} "
         f"into {config.repo} (run folder {run_plan.run_dir})")
    if run_plan.first_version:
        echo("  no stable version yet: this first version is promoted after validation, "
             "without a canary")
    steps = chain.steps_for(run_plan, config)
    for index, step in enumerate(steps, 1):
        if step.name == "train":
            step = chain.train_step(config)
        if step.service:
            continue  # started around the steps that use it
        if step.name == "rollout" and summary.verdict != chain.PASS:
            continue  # the canary failed: the gate below says so
        if step.name == "promote":
            summary.decision = chain.promotion_decision(run_plan, summary.verdict, summary.rollout)
            echo(f"[{index}/{len(steps)}] gate: {summary.decision.reason}")
            if not summary.decision.promote:
                break
        echo(f"[{index}/{len(steps)}] {step.name}")
        if step.name == "canary":
            summary.verdict, result = run_canary(config, run_plan, target=serving_target, echo=echo, env=env)
        elif step.name == "rollout":
            summary.rollout, result = run_gate(
                step, chain.step_args("rollout", config, run_plan, target=serving_target), echo=echo, env=env)
        else:
            result = run_step(step, chain.step_args(step.name, config, run_plan), echo=echo, env=env)
        summary.steps.append(result)
        echo(f"[{index}/{len(steps)}] {step.name} done in {result.seconds:.1f} s")
        if step.name == "train":
            summary.metrics = _read_metrics(run_plan)
    summary.seconds = time.monotonic() - start
    return summary


def format_summary(summary: ChainSummary) -> str:
    """The few lines `tfship run` ends with."""
    plan_ = summary.plan
    metrics = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in summary.metrics.items() if isinstance(v, (int, float))
    ) or "(none)"
    lines = [
        f"Summary of run {plan_.run_id} ({summary.seconds:.1f} s)",
        f"  metrics:  {metrics}",
        f"  pushed:   version {plan_.version}" + ("" if plan_.stable is None else f" (stable was {plan_.stable})"),
        f"  verdict:  {summary.verdict or 'no canary (first version)'}",
        *([f"  rollout:  {summary.rollout}"] if summary.rollout is not None else []),
        f"  decision: {summary.decision.reason if summary.decision else 'not reached'}",
        f"  reports:  {plan_.reports_dir}",
        "  steps:    " + ", ".join(f"{s.name} {s.seconds:.1f}s" for s in summary.steps),
    ]
    return "\n".join(lines)
