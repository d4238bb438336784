"""RunPlan: what one run will do, decided before train starts, and where its files go."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tfship.chain.config import ChainConfig
from tfship.errors import ConfigError

_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

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


def safe_run_id(run_id: str) -> str:
    """An orchestrator's run id made safe for folder names and Kubernetes labels.

    Airflow's `manual__2025-01-02T03:04:05+00:00` becomes `manual__2025-01-02T03-04-05-00-00`.
    """
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", run_id).strip("-._")
    if not cleaned:
        raise ConfigError(f"Invalid run id: {run_id!r}. Expected letters, digits, `_`, `-` or `.`.")
    return cleaned
