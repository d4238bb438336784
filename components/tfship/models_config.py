"""models.config: the ModelServerConfig text proto a TF Serving server follows, and its label moves.

The repository root holds one `models.config` listing every model with a `specific` version policy
(exactly the versions the server loads) and `version_labels` (`stable`, `canary`, `previous`).
It is parsed and written with TF Serving's own protos (`tensorflow_serving.config`), never by
string pasting; importing them does not import TensorFlow.

The transitions (`with_version`, `with_label`, `with_labels`, `without_label`, `promoted`,
`rolled_back`) are pure functions from one config to the next, so the label rules are tested
without any I/O. Writers go through `update_models_config`, a read-modify-write that the storage
layer makes safe against concurrent writers (a generation precondition on gs://, a lock and an
atomic rename locally); label moves through `tfship.history.recorded_update`, which records them.

Rules that keep every config a real TF Serving accepts (`ServerCore::UpdateModelVersionLabelMap`):
a label may only name a version in the model's `specific` versions, and a push adds a version in
one update and labels it in a later one. The previous stable version keeps the `previous` label,
so it stays loaded and a rollback is one config update; a version loses its place in `specific`
only when the last label naming it moves away.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from google.protobuf import text_format
from tensorflow_serving.config.model_server_config_pb2 import ModelConfig, ModelServerConfig

from tfship import storage
from tfship.errors import ConfigError, LabelError
from tfship.tfserving import MODEL_NAME_RE

CONFIG_FILE = "models.config"
PLATFORM = "tensorflow"
STABLE = "stable"
CANARY = "canary"
# The stable version before the last promote: kept loaded and labelled so rollback is one update.
PREVIOUS = "previous"
RESERVED_LABELS = frozenset({PREVIOUS})

# TF Serving's own rule for label names.
_LABEL_RE = re.compile(r"[A-Za-z0-9_]+")

__all__ = [
    "CANARY",
    "CONFIG_FILE",
    "PREVIOUS",
    "STABLE",
    "check_can_add",
    "check_label",
    "check_model_name",
    "config_uri",
    "find_model",
    "format_models_config",
    "is_empty",
    "model_base_path",
    "parse_models_config",
    "promoted",
    "read_models_config",
    "rolled_back",
    "served_versions",
    "update_models_config",
    "version_labels",
    "with_label",
    "with_labels",
    "with_version",
    "without_label",
]


def check_model_name(name: str) -> str:
    """Return `name` if TF Serving can serve it and it is one safe path segment, else raise."""
    if not isinstance(name, str) or not MODEL_NAME_RE.fullmatch(name) or ".." in name:
        raise ConfigError(
            f"Invalid value for argument `name`. Received: name={name!r}. Expected 1-128 characters "
            "from [A-Za-z0-9_.-], starting with a letter or digit, with no '/' and no '..' "
            "(TF Serving serves it as /v1/models/<name>). Fix: pass e.g. --name my_model."
        )
    if name == CONFIG_FILE:
        raise ConfigError(
            f"Invalid value for argument `name`. Received: name={name!r}, which is the repository's "
            f"own {CONFIG_FILE} file (the model's base path would be that file). Expected another "
            "name. Fix: pass e.g. --name my_model."
        )
    return name


def check_label(label: str, *, allow_reserved: bool = False) -> str:
    """Return `label` if TF Serving accepts it (`[A-Za-z0-9_]+`) and tfship does not manage it."""
    if not isinstance(label, str) or not _LABEL_RE.fullmatch(label):
        raise ConfigError(
            f"Invalid value for argument `label`. Received: label={label!r}. Expected letters, "
            "digits and '_' only (TF Serving's rule for version labels), e.g. canary or stable."
        )
    if label in RESERVED_LABELS and not allow_reserved:
        raise ConfigError(
            f"Invalid value for argument `label`. Received: label={label!r}. This label is managed "
            "by `tfship promote` and `tfship rollback`. Expected another label, e.g. canary."
        )
    return label


def config_uri(repo: str) -> str:
    """`<repo>/models.config`."""
    return storage.join(storage.check_uri(repo, "repo"), CONFIG_FILE)


def model_base_path(repo: str, name: str) -> str:
    """The `base_path` TF Serving needs for a model: the gs:// URI, or an absolute local path."""
    repo = storage.check_uri(repo, "repo")
    path = storage.join(repo, check_model_name(name))
    return path if storage.is_gcs(path) else os.path.abspath(path)


def parse_models_config(text: str) -> ModelServerConfig:
    """Parse a ModelServerConfig text proto; a syntax error is a `ConfigError` naming the line."""
    config = ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise ConfigError(
            f"Invalid models.config: {error}. Expected a ModelServerConfig text proto "
            "(model_config_list { config { name: ... base_path: ... } })."
        ) from error
    return config


def format_models_config(config: ModelServerConfig) -> str:
    """The text proto TF Serving reads (`--model_config_file`); deterministic for equal configs."""
    return text_format.MessageToString(config)


def read_models_config(repo: str) -> ModelServerConfig:
    """The repository's models.config; an empty config when the file does not exist yet."""
    uri = config_uri(repo)
    if not storage.exists(uri):
        return ModelServerConfig()
    return parse_models_config(storage.read_text(uri))


def update_models_config(
    repo: str, change: Callable[[ModelServerConfig], ModelServerConfig], *, replace_empty: bool = False
) -> tuple[ModelServerConfig, bool]:
    """Apply `change` to the current models.config as one atomic, concurrency-safe update.

    `change` may run more than once (after another writer won the race it sees their config), so
    it must be a pure function of the config it gets. Returns the config now stored and whether
    this call wrote it; an unchanged config is not rewritten (TF Serving re-reads only changes).

    A models.config that exists but names no model (a 0-byte or truncated file) is not a fresh
    start: building on it would drop every label the repository had. It is refused with
    `ConfigError` unless `replace_empty` (the caller knows the repository holds no pushed
    version, or the user passed `--force`). The check runs inside the atomic update, so a file
    emptied while a push runs is caught too.
    """
    outcome: dict[str, object] = {"changed": False}
    uri = config_uri(repo)

    def update(current: bytes | None) -> bytes | None:
        old = parse_models_config(current.decode("utf-8")) if current else ModelServerConfig()
        if current is not None and is_empty(old) and not replace_empty:
            raise ConfigError(empty_config_message(uri, len(current)))
        new = change(old)
        outcome["config"] = new
        if new == old and current is not None:
            outcome["changed"] = False
            return None
        outcome["changed"] = True
        return format_models_config(new).encode("utf-8")

    storage.update_bytes(uri, update)
    return outcome["config"], bool(outcome["changed"])  # type: ignore[return-value]


def empty_config_message(uri: str, size: int, pushed: str = "") -> str:
    """The one line refusing to build on an existing models.config that names no model."""
    held = f" holds pushed versions ({pushed})" if pushed else " may hold pushed versions"
    return (
        f"models.config at {uri} names no model ({size} bytes), but the repository{held}: writing "
        "it would start from nothing and drop their labels (stable, canary, previous). Nothing was "
        "changed. Fix: restore models.config (an emptied or truncated file?), or push with "
        "`tfship push --force` to start over with only that model."
    )


# ---- views --------------------------------------------------------------------------------------


def is_empty(config: ModelServerConfig) -> bool:
    """True when the config names no model (what a 0-byte models.config parses to)."""
    return not config.model_config_list.config and not config.HasField("custom_model_config")


def find_model(config: ModelServerConfig, name: str) -> ModelConfig | None:
    """The entry for model `name`, or None."""
    for entry in config.model_config_list.config:
        if entry.name == name:
            return entry
    return None


def served_versions(config: ModelServerConfig, name: str) -> tuple[int, ...]:
    """The versions of `name` in its `specific` policy, sorted; empty if the model is absent."""
    entry = find_model(config, name)
    if entry is None:
        return ()
    return tuple(sorted(entry.model_version_policy.specific.versions))


def version_labels(config: ModelServerConfig, name: str) -> dict[str, int]:
    """`{label: version}` of model `name`; empty if the model is absent."""
    entry = find_model(config, name)
    return {} if entry is None else dict(entry.version_labels)


# ---- pure transitions ---------------------------------------------------------------------------


def _copy(config: ModelServerConfig) -> ModelServerConfig:
    new = ModelServerConfig()
    new.CopyFrom(config)
    return new


def _managed_entry(config: ModelServerConfig, name: str) -> ModelConfig:
    entry = find_model(config, name)
    if entry is None:
        raise LabelError(
            f"Model {name!r} is not in models.config. Expected a model pushed with `tfship push "
            f"--name {name}`; the models there are: {[c.name for c in config.model_config_list.config]}."
        )
    policy = entry.model_version_policy.WhichOneof("policy_choice")
    if policy not in (None, "specific") or (policy is None and entry.version_labels):
        raise ConfigError(
            f"Model {name!r} in models.config uses the {policy or 'default (latest)'} version policy. "
            "tfship manages only a `specific` policy (labels need their versions pinned). Fix: "
            "list the served versions under model_version_policy { specific { versions: N } }."
        )
    return entry


def _set_labels(entry: ModelConfig, labels: dict[str, int]) -> None:
    """Replace the labels; a version that lost its last label leaves `specific` (is unloaded)."""
    released = set(entry.version_labels.values()) - set(labels.values())
    versions = sorted(set(entry.model_version_policy.specific.versions) - released)
    entry.version_labels.clear()
    entry.version_labels.update(labels)
    del entry.model_version_policy.specific.versions[:]
    entry.model_version_policy.specific.versions.extend(versions)


def with_version(config: ModelServerConfig, name: str, base_path: str, version: int) -> ModelServerConfig:
    """Add `version` to model `name`'s served versions (the model too, if new); labels unchanged.

    This is the first of a push's two updates: the server loads the version, and only then may a
    label name it.
    """
    if version < 0:
        raise ConfigError(f"Invalid version {version}: expected an integer >= 0.")
    new = _copy(config)
    check_can_add(new, name, base_path)
    entry = find_model(new, name)
    if entry is None:
        entry = new.model_config_list.config.add(name=name, base_path=base_path, model_platform=PLATFORM)
        entry.model_version_policy.specific.SetInParent()
    versions = set(entry.model_version_policy.specific.versions) | {version}
    del entry.model_version_policy.specific.versions[:]
    entry.model_version_policy.specific.versions.extend(sorted(versions))
    return new


def check_can_add(config: ModelServerConfig, name: str, base_path: str) -> None:
    """Raise unless a version of model `name` at `base_path` can be added to `config`.

    A push checks this before it uploads anything (and `with_version` again inside the update):
    the entry of that name must be tfship's (`specific` policy) with the same base path, and no
    other entry may load from the same base path (its versions would be this model's).
    """
    entry = find_model(config, name)
    if entry is not None:
        _managed_entry(config, name)
        if entry.base_path != base_path:
            raise ConfigError(
                f"Model {name!r} in models.config has base_path {entry.base_path!r}, but this push "
                f"writes to {base_path!r}. Expected the same repository. Fix: push to the repository "
                "the config names, or give the model another --name."
            )
    for other in config.model_config_list.config:
        if other.name != name and other.base_path.rstrip("/") == base_path.rstrip("/"):
            raise ConfigError(
                f"Model {name!r} would be written to {base_path!r}, the base_path of model "
                f"{other.name!r} in models.config: both would serve the same versions. Expected a "
                f"directory no other model loads from. Fix: give the model another --name."
            )


def with_label(config: ModelServerConfig, name: str, label: str, version: int) -> ModelServerConfig:
    """Point `label` at `version`, which must already be a served version of model `name`.

    Moving `stable` keeps the stable version it replaces under `previous` (for rollback). A
    version no label names any more leaves `specific`. Same label, same version: unchanged.
    """
    check_label(label, allow_reserved=True)
    new = _copy(config)
    entry = _managed_entry(new, name)
    if version not in entry.model_version_policy.specific.versions:
        raise LabelError(
            f"Cannot label version {version} of model {name!r} {label!r}: it is not a served version "
            f"(served: {sorted(entry.model_version_policy.specific.versions)}). TF Serving accepts a "
            "label only on a loaded version. Fix: push that version first."
        )
    labels = dict(entry.version_labels)
    if labels.get(label) == version:
        return new
    if label == STABLE and STABLE in labels:
        labels[PREVIOUS] = labels[STABLE]
    labels[label] = version
    _set_labels(entry, labels)
    return new


def with_labels(config: ModelServerConfig, name: str, labels: dict[str, int]) -> ModelServerConfig:
    """Replace model `name`'s labels with `labels` (a restore from its history); unchanged if equal.

    Every version named must still be served: TF Serving accepts a label only on a loaded version.
    """
    new = _copy(config)
    entry = _managed_entry(new, name)
    served = set(entry.model_version_policy.specific.versions)
    unserved = sorted({version for version in labels.values() if version not in served})
    if unserved:
        raise LabelError(
            f"Cannot restore labels {labels} of model {name!r}: version(s) {unserved} are no longer served "
            f"(served: {sorted(served)}), and TF Serving accepts a label only on a loaded version. Fix: "
            "push that version again (`tfship push --version N --label ''`), then restore."
        )
    for label in labels:
        check_label(label, allow_reserved=True)
    if dict(entry.version_labels) != labels:
        _set_labels(entry, labels)
    return new


def without_label(config: ModelServerConfig, name: str, label: str) -> ModelServerConfig:
    """Drop `label` from model `name` (e.g. `canary` after a failed canary); absent: unchanged."""
    new = _copy(config)
    entry = _managed_entry(new, name)
    labels = dict(entry.version_labels)
    if labels.pop(label, None) is not None:
        _set_labels(entry, labels)
    return new


def promoted(
    config: ModelServerConfig, name: str, version: int | None = None
) -> tuple[ModelServerConfig, int]:
    """Move `stable` to `version` (default: the `canary` version); returns (config, version)."""
    labels = version_labels(config, name)
    if version is None:
        if CANARY not in labels:
            _managed_entry(config, name)
            raise LabelError(
                f"Cannot promote model {name!r}: it has no {CANARY!r} label (labels: {labels}). "
                "Expected a canary pushed with `tfship push --label canary`. Fix: push one, or "
                "pass --version N."
            )
        version = labels[CANARY]
    return with_label(config, name, STABLE, version), version


def rolled_back(config: ModelServerConfig, name: str) -> tuple[ModelServerConfig, int]:
    """Move `stable` back to the `previous` version; returns (config, version).

    The `previous` label is consumed: one rollback per promote (a second one has nothing to
    return to, and says so).
    """
    new = _copy(config)
    entry = _managed_entry(new, name)
    labels = dict(entry.version_labels)
    if PREVIOUS not in labels:
        raise LabelError(
            f"Cannot roll back model {name!r}: no previous stable version is recorded (labels: "
            f"{labels}). Expected a model promoted at least once since its last rollback. Fix: "
            f"promote the version you want with `tfship promote --name {name} --version N`."
        )
    version = labels.pop(PREVIOUS)
    labels[STABLE] = version
    _set_labels(entry, labels)
    return new, version
