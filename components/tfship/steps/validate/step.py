"""`tfship validate`: the gate between export and push. Nothing ships that clients cannot call.

Checks a SavedModel version directory (any SavedModel, not only tfship's) and reports every
failure, not only the first:

1. contract: each contracted signature exists with exactly the contracted inputs and outputs
   (names, dtypes, shapes; extra outputs only with `allow_extra_outputs`) - `tfship.steps.validate.contract`;
2. baseline (`--baseline`, the version serving now): no breaking change, reported as a diff;
3. the model loads as TF Serving loads it (session-based loader, tag "serve"), every contracted
   signature runs on the golden rows (or generated inputs), outputs have the contracted shapes,
   are finite, probabilities are probabilities, every numeric input changes some output (a model
   that ignores an input it declares fails), and the warm-up file replays.

All of it runs in one fresh process (`tfship.steps.validate.worker`); this module reads the inputs,
starts that process and writes the report, and never imports TensorFlow itself.

The result is a `ValidationReport`, written as JSON for orchestrators (default: beside the model,
`<version-dir>.validation.json`). `passed` is the gate; the CLI exits 1 when it is false.
A model that is not a SavedModel at all, or a bad contract or examples file, is a user error
(one line, exit 2) rather than a failed gate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from tfship import storage
from tfship.steps.validate import golden_examples
from tfship.steps.validate.contract import CHECKS, Change, Violation, load_contract
from tfship.errors import ConfigError, ModelError
from tfship.saved_model.loader import saved_model_file
from tfship.steps.export.step import METADATA_FILE
from tfship.schema import Schema

REPORT_FORMAT = "tfship-validation/1"
REPORT_SUFFIX = ".validation.json"
DEFAULT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class ValidateConfig:
    """What `tfship validate` needs. Checked when built.

    Args:
        model: the SavedModel version directory to check (local or gs://).
        contract: the signature contract YAML (local or gs://).
        baseline: the version serving now; its signatures must survive (optional).
        examples: golden rows, CSV or JSONL (optional; default: inputs generated from the contract).
        report: where to write the JSON report; default `<model>.validation.json`.
        timeout_s: limit for the fresh process that loads and runs the model.
        seed: seed of the generated inputs.
    """

    model: str
    contract: str
    baseline: str | None = None
    examples: str | None = None
    report: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("model", "contract"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ConfigError(f"Invalid value for `{name}`: {value!r}. Expected a path.")
            storage.check_uri(value, f"--{name}")
        for name in ("baseline", "examples", "report"):
            value = getattr(self, name)
            if value is not None:
                storage.check_uri(value, f"--{name}")
        if isinstance(self.timeout_s, bool) or not isinstance(self.timeout_s, (int, float)) or self.timeout_s <= 0:
            raise ConfigError(
                f"Invalid value for `timeout_s`: {self.timeout_s!r}. Expected a positive number of seconds."
            )

    @property
    def report_path(self) -> str:
        return self.report or self.model.rstrip("/") + REPORT_SUFFIX


@dataclass(frozen=True)
class ValidationReport:
    """The outcome. `passed` is the gate; `violations` says why not, each on one line."""

    passed: bool
    model: str
    contract: str
    baseline: str | None
    examples: str | None
    violations: list[Violation]
    baseline_changes: list[Change]
    signatures: dict[str, Any] = field(repr=False)  # name -> {method_name, inputs, outputs}
    runtime: dict[str, Any] = field(repr=False)
    duration_s: float = 0.0
    report_path: str = ""

    def check_status(self) -> dict[str, str]:
        """Each check: passed, failed or skipped."""
        failed = {v.check for v in self.violations}
        skipped = set()
        if self.baseline is None:
            skipped.add("baseline")
        if not self.runtime.get("loaded"):
            skipped |= {"run", "outputs", "warmup"}
        if self.runtime.get("warmup", {}).get("records") == 0:
            skipped.add("warmup")
        return {c: "failed" if c in failed else "skipped" if c in skipped else "passed" for c in CHECKS}

    def diff_text(self) -> str:
        return "\n".join(line for change in self.baseline_changes for line in change.diff_lines())

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "passed": self.passed,
            "model": self.model,
            "contract": self.contract,
            "baseline": self.baseline,
            "examples": self.examples,
            "checks": self.check_status(),
            "violations": [v.to_dict() for v in self.violations],
            "baseline_diff": {
                "breaking": [c.to_dict() for c in self.baseline_changes if c.breaking],
                "compatible": [c.to_dict() for c in self.baseline_changes if not c.breaking],
                "text": self.diff_text(),
            },
            "signatures": self.signatures,
            "runtime": self.runtime,
            "duration_s": round(self.duration_s, 3),
        }

    def summary_lines(self) -> list[str]:
        """What the CLI prints: the verdict, each violation, the baseline diff."""
        verdict = "PASS" if self.passed else f"FAIL ({len(self.violations)} violation(s))"
        lines = [f"validate {self.model}: {verdict}"]
        lines += [f"  {v}" for v in self.violations]
        if self.baseline_changes:
            lines.append(f"changes against the baseline {self.baseline}:")
            for change in self.baseline_changes:
                tag = "BREAKING" if change.breaking else "compatible"
                lines.append(f"  {tag}: {change.where}: {change.reason}")
                lines += [f"    {line}" for line in change.diff_lines()]
        lines.append(f"report: {self.report_path}")
        return lines


def validate(model: str, contract: str, **options: Any) -> ValidationReport:
    """Validate the SavedModel version directory `model` against the contract YAML `contract`.

    Options are `ValidateConfig`'s (`baseline`, `examples`, `report`, `timeout_s`, `seed`)::

        report = tfship.validate("export/3", "contract.yaml", baseline="repo/penguins/2")
        report.passed
    """
    return run_validation(ValidateConfig(model=model, contract=contract, **options))


def _check_inputs_can_be_generated(model_dir: str, model: str) -> None:
    """Refuse to validate a tfship export with image or vector features on generated inputs.

    Random strings are no image (every run would fail to decode them: a verdict on garbage), and
    generated tf.Examples hold one value per feature where a vector needs n. The schema comes from
    the export's metadata; models tfship did not write are not checked here.
    """

    path = os.path.join(model_dir, METADATA_FILE)
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as handle:
        recorded = json.load(handle).get("schema")
    if not recorded:
        return
    schema = Schema.from_dict(recorded)
    media = [*schema.image_features, *schema.vector_features]
    if media:
        raise ConfigError(f"--model {model} takes image or vector feature(s) {media}, which validate cannot "
                          "generate: pass --examples with real rows (JSONL, images as {\"b64\": \"...\"}).")


def run_validation(config: ValidateConfig) -> ValidationReport:
    """Run every check on `config.model`; write and return the report (see the module docstring).

    Raises ConfigError / DataError / ModelError (exit 2) when an input is unusable: a contract
    that is not valid YAML or names an unknown dtype, unreadable examples, a model or baseline
    path that is not a SavedModel or whose saved_model.pb is corrupt.
    """
    started = time.monotonic()
    contract = load_contract(config.contract)
    rows = golden_examples.read_rows(config.examples) if config.examples else None
    model_dir = _local_model(config.model, "--model")
    if rows is None:
        _check_inputs_can_be_generated(model_dir, config.model)
    baseline_dir = _local_model(config.baseline, "--baseline") if config.baseline else None
    result = run_in_fresh_process(
        {"model": model_dir, "baseline": baseline_dir, "contract": contract.to_dict(), "rows": rows,
         "rows_source": config.examples, "seed": config.seed},
        config.timeout_s,
    )
    if result.get("input_error"):
        raise ModelError(result["input_error"])
    violations = [Violation(**v) for v in result["violations"]]
    changes = [Change(**c) for c in result.get("baseline_changes", [])]
    signatures, runtime = result.get("signatures", {}), result["runtime"]
    report = ValidationReport(
        passed=not violations,
        model=config.model,
        contract=config.contract,
        baseline=config.baseline,
        examples=config.examples,
        violations=violations,
        baseline_changes=changes,
        signatures=signatures,
        runtime=runtime,
        duration_s=time.monotonic() - started,
        report_path=config.report_path,
    )
    storage.write_text(config.report_path, json.dumps(report.to_dict(), indent=2) + "\n")
    return report


def _local_model(uri: str, flag: str) -> str:
    """A local SavedModel directory: `uri`, or a cached copy of a gs:// version."""
    if storage.is_gcs(uri):
        local = storage.local_cache_dir(uri, "models")
        storage.download_tree(uri, local)
        uri = local
    try:
        saved_model_file(uri)  # cheap: no TensorFlow, no process for a path that is not a model
    except ModelError as error:
        raise ModelError(f"{flag}: {error}") from None
    return os.path.abspath(uri)


def run_in_fresh_process(plan: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run `tfship.steps.validate.worker` on `plan` in a new interpreter; its result document.

    The one place validate starts a process. A crash, a timeout or a missing result becomes a
    `load` violation carrying the last line the process printed, never a traceback of this one.
    A Python exception in the checking code itself is a bug in tfship, not a verdict on the
    model: it is raised here as `ValidatorBug` with the process's traceback (the CLI exits 70).
    """
    with tempfile.TemporaryDirectory(prefix="tfship-validate-") as work:
        plan_path, result_path = os.path.join(work, "plan.json"), os.path.join(work, "result.json")
        with open(plan_path, "w", encoding="utf-8") as handle:
            json.dump(plan, handle)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        command = [sys.executable, "-m", "tfship.steps.validate.worker", plan_path, result_path]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env)
        except subprocess.TimeoutExpired:
            return _process_failure(f"loading and running the model took more than {timeout_s:g} s")
        if done.returncode == 0 and os.path.exists(result_path):
            with open(result_path, encoding="utf-8") as handle:
                result = json.load(handle)
            if result.get("internal_error"):
                raise ValidatorBug(f"the checking process failed:\n{result['internal_error']}")
            return result
        lines = [line for line in (done.stderr or "").splitlines() if line.strip()]
        last = lines[-1].strip() if lines else "no output"
        return _process_failure(f"the checking process exited with code {done.returncode}: {last}")


class ValidatorBug(RuntimeError):
    """The fresh process's checking code raised: a bug in tfship, reported as such (exit 70)."""


def _process_failure(message: str) -> dict[str, Any]:
    return {"input_error": None, "violations": [Violation("load", "model", message).to_dict()],
            "runtime": {"loaded": False, "runs": [], "warmup": {"records": None}}}
