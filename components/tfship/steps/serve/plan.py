"""What the server should serve, decided from models.config and the version directories. Pure.

TF Serving's rules, which these functions reproduce:
- A version directory has an integer name ("123", or zero-padded "00000123"); others are skipped.
- `model_version_policy`: `specific { versions }` serves exactly those; `latest { num_versions }`
  (the default, 1) the highest N on disk; `all` every one.
- A version label may only name a version that is loaded. tfship's server loads first and moves
  labels after, so a config that adds a version and labels it at once still works; a label whose
  version cannot be served keeps its previous version while that one stays loaded.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tfship.errors import ConfigError
from tfship.steps.serve.request_log import LogSettings, settings_from_model_config

PLATFORM = "tensorflow"


@dataclass(frozen=True)
class ModelPlan:
    """One model of the config, as the server needs it.

    Attributes:
        name: the model name clients use.
        base_path: where its version directories are (absolute local path or gs:// URI).
        policy: "specific", "latest" or "all".
        versions: the `specific` versions (empty for the other policies).
        num_latest: how many versions `latest` keeps.
        labels: label -> version.
        request_log: its `logging_config`, or None (then `--request-log-dir` decides).
    """

    name: str
    base_path: str
    policy: str
    versions: frozenset[int] = frozenset()
    num_latest: int = 1
    labels: Mapping[str, int] = field(default_factory=dict)
    request_log: LogSettings | None = None


def model_plans(config: Any) -> dict[str, ModelPlan]:
    """The models of a `ModelServerConfig`; ConfigError for what TF Serving would refuse."""
    if config.WhichOneof("config") == "custom_model_config":
        raise ConfigError(
            "models.config uses custom_model_config, which tfship serve does not support. "
            "Expected model_config_list { config { ... } }."
        )
    plans: dict[str, ModelPlan] = {}
    for entry in config.model_config_list.config:
        if not entry.name:
            raise ConfigError("models.config lists a model with no name. Expected name: \"...\".")
        if entry.name in plans:
            raise ConfigError(f"Illegal to list model {entry.name} multiple times in config list")
        base = entry.base_path
        if not (base.startswith("gs://") or posixpath.isabs(base)):
            raise ConfigError(
                f"Expected model {entry.name} to have an absolute path or URI; got base_path()={base}"
            )
        if entry.model_platform not in ("", PLATFORM):
            raise ConfigError(
                f"Model {entry.name} has model_platform {entry.model_platform!r}; tfship serve serves "
                f"only {PLATFORM!r} models."
            )
        policy = entry.model_version_policy.WhichOneof("policy_choice") or "latest"
        versions: frozenset[int] = frozenset()
        num_latest = 1
        if policy == "specific":
            versions = frozenset(int(v) for v in entry.model_version_policy.specific.versions)
        elif policy == "latest":
            num_latest = entry.model_version_policy.latest.num_versions or 1
        plans[entry.name] = ModelPlan(
            name=entry.name,
            base_path=base,
            policy=policy,
            versions=versions,
            num_latest=num_latest,
            labels=dict(entry.version_labels),
            request_log=settings_from_model_config(entry),
        )
    return plans


def version_directories(names: Iterable[str]) -> dict[int, str]:
    """Integer-named entries of a base path: version -> directory name (others are skipped).

    Two names for one version ("123" and "0123") keep the first in sorted order, so the choice is
    stable between polls.
    """
    found: dict[int, str] = {}
    for name in sorted(set(names)):
        if name.isdigit():
            found.setdefault(int(name), name)
    return found


def wanted_versions(plan: ModelPlan, on_disk: Iterable[int] | None) -> set[int]:
    """The versions the policy serves. `on_disk` may be None for `specific` (no listing needed)."""
    if plan.policy == "specific":
        return set(plan.versions)
    disk = sorted(set(on_disk or ()))
    if plan.policy == "all":
        return set(disk)
    return set(disk[-plan.num_latest :]) if disk else set()


def next_labels(
    requested: Mapping[str, int],
    current: Mapping[str, int],
    available: set[int],
) -> tuple[dict[str, int], list[str]]:
    """The label map to switch to, and a warning for each label that could not follow the config.

    Args:
        requested: label -> version from the config.
        current: the labels served now.
        available: the versions that will be loaded once this update is done.
    """
    labels: dict[str, int] = {}
    warnings = []
    for label, version in sorted(requested.items()):
        if version in available:
            labels[label] = version
            continue
        previous = current.get(label)
        if previous is not None and previous in available:
            labels[label] = previous
            warnings.append(
                f"label {label!r} -> version {version} is not available; it keeps version {previous}"
            )
        else:
            warnings.append(f"label {label!r} -> version {version} is not available; label not served")
    return labels, warnings
