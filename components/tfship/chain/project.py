"""`tfship.yaml`: one file per model that the CLI, the Airflow DAG factory and the KFP pipeline
factory all read.

The chain's settings are `ChainConfig`'s fields: this module does not repeat them. It places each
field at a key of the file (`_FIELD_KEYS`: `steps` is `train.steps`, `gpu_type` is
`placement.accelerator`; a field not listed there, such as one added to ChainConfig later, sits
at the top level under its own name), derives the JSON Schema of the file from the fields' types
and defaults and from chain's rules (`POSITIVE_FIELDS`, `GPU_COUNTS`, ...), and adds the few
orchestrator settings that are not the chain's (`schedule`, `images`, `serving`).
`tfship.schema.json`, shipped beside this module for editors, is `json_schema()` written out
(`python -m tfship.chain.project` rewrites it; a test fails when it is stale).

A file is checked when loaded: first against the schema (unknown keys, wrong types, missing
required keys, out-of-range values), then by `ChainConfig` itself; either way the error is one
line naming the file and the key::

    tfship.yaml: train.steps: -1 is not an integer >= 1

Relative local paths in the file are relative to the file's folder, so a DAG folder of
`tfship.yaml` files means the same wherever the scheduler runs.

Example::

    from tfship.chain.project import load_project
    project = load_project("tfship.yaml")
    project.chain          # the ChainConfig every runner builds
    project.schedule       # the DAG's cron
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


from tfship import chain, storage
from tfship.errors import ConfigError
from tfship.text import parse_yaml
from tfship.tfserving import MODEL_NAME_RE
from tfship.steps.canary.judge import JudgeConfig

FILE_NAME = "tfship.yaml"
SCHEMA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tfship.schema.json")

# Where a ChainConfig field sits in tfship.yaml when it is not a top-level key of its own name.
_FIELD_KEYS: dict[str, tuple[str, ...]] = {
    "steps": ("train", "steps"),
    "checkpoint_every": ("train", "checkpoint_every"),
    "batch_size": ("train", "batch_size"),
    "seed": ("train", "seed"),
    "train_retries": ("train", "retries"),
    "mixed_precision": ("train", "mixed_precision"),
    "jit_compile": ("train", "jit"),
    "input_fn": ("input",),
    "examples": ("canary", "examples"),
    "canary_traffic": ("canary", "traffic"),
    "canary_thresholds": ("canary", "thresholds"),
    "canary_requests": ("canary", "requests"),
    "canary_concurrency": ("canary", "concurrency"),
    "gpu_type": ("placement", "accelerator"),
    "gpu_count": ("placement", "gpu_count"),
    "spot": ("placement", "spot"),
    "node_selector": ("placement", "node_selector"),
    "tolerations": ("placement", "tolerations"),
    "queue": ("placement", "queue"),
    "workers": ("placement", "workers"),
    "engine": ("placement", "engine"),
    "step_settings": ("tasks",),
    "rollout_steps": ("rollout", "steps"),
    "rollout_interval": ("rollout", "interval"),
    "rollout_check_every": ("rollout", "check_every"),
    "rollout_apply": ("rollout", "apply"),
    "prometheus": ("rollout", "prometheus"),
}
# ChainConfig fields that hold a local path or gs:// URI: a relative local path is taken from the
# file's folder.
_PATH_FIELDS = ("data", "schema", "saved_model", "runs_root", "repo", "contract", "examples",
                "canary_traffic", "canary_thresholds")
# ChainConfig's fields that a file with `saved_model` (nothing trained) leaves out.
_TRAINING_INPUTS = ("data", "schema")
# ChainConfig's required fields that the file may leave out: where they go by default, under the
# file's folder.
_DEFAULT_PATHS = {"runs_root": "runs/runs", "repo": "runs/repo"}

# The orchestrators' own settings: (key path, JSON Schema, default).
_ORCHESTRATOR_KEYS: dict[str, tuple[tuple[str, ...], dict[str, Any], Any]] = {
    "schedule": (("schedule", "cron"), {"type": "string", "minLength": 1}, "0 3 * * 1"),
    "data_asset": (("schedule", "asset"), {"type": "string"}, ""),
    "image": (("images", "cpu"), {"type": "string", "minLength": 1}, chain.DEFAULT_IMAGE),
    "gpu_image": (("images", "gpu"), {"type": "string", "minLength": 1}, chain.DEFAULT_GPU_IMAGE),
    "serving_target": (("serving", "target"), {"type": "string", "minLength": 1},
                       chain.DEFAULT_SERVING_TARGET),
    "namespace": (("serving", "namespace"), {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                  "tfship"),
}

_STEP_SETTINGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "propertyNames": {"enum": [step.name for step in chain.CHAIN]},
    "additionalProperties": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "cpu": {"type": "string", "pattern": chain.QUANTITY_RE.pattern},
            "memory": {"type": "string", "pattern": chain.QUANTITY_RE.pattern},
            "retries": {"type": "integer", "minimum": 0},
            "cache": {"type": "boolean"},
        },
    },
}
# JSON Schema of a field beyond its type, from chain's own rules.
_FIELD_RULES: dict[str, dict[str, Any]] = {
    **{name: {"minimum": 1} for name in chain.POSITIVE_FIELDS},
    **{name: {"minimum": 0} for name in chain.NON_NEGATIVE_FIELDS},
    "name": {"pattern": f"^{MODEL_NAME_RE.pattern}$", "not": {"pattern": r"\.\."}},
    "engine": {"enum": list(chain.ENGINES)},
    "queue": {"pattern": r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
    "node_selector": {"additionalProperties": {"type": "string"}},
    "tolerations": {"items": {"type": "object", "additionalProperties": {"type": "string"},
                              "required": ["key", "effect"]}},
    "step_settings": _STEP_SETTINGS_SCHEMA,
    "rollout_steps": {"items": {"type": "integer", "minimum": 1, "maximum": 100}},
}
_JSON_TYPES = {str: "string", int: "integer", bool: "boolean", float: "number", dict: "object",
               tuple: "array", list: "array"}


@dataclass(frozen=True)
class Project:
    """One model's `tfship.yaml`, loaded and checked: the chain and its orchestrator settings.

    Args:
        path: the file it was loaded from (named in every error).
        chain: the chain's config, the object `tfship run`, the DAG and the pipeline build.
        schedule: the DAG's cron (UTC).
        data_asset: the URI of the Airflow Asset whose updates trigger a run ("" = schedule only).
        image, gpu_image: the CPU and GPU images of the steps (a team's image built on tfship's).
        serving_target: the TF Serving Service the canary talks to on a cluster.
        namespace: the Kubernetes namespace of the pods and training objects.
    """

    path: str
    chain: chain.ChainConfig
    schedule: str = _ORCHESTRATOR_KEYS["schedule"][2]
    data_asset: str = ""
    image: str = chain.DEFAULT_IMAGE
    gpu_image: str = chain.DEFAULT_GPU_IMAGE
    serving_target: str = chain.DEFAULT_SERVING_TARGET
    namespace: str = "tfship"

    @property
    def dag_id(self) -> str:
        """The Airflow DAG id and KFP pipeline name of this model: `tfship_retrain_<name>`."""
        return f"tfship_retrain_{self.chain.name}"


def _field_key(name: str) -> tuple[str, ...]:
    return _FIELD_KEYS.get(name, (name,))


def _json_type(annotation: Any) -> str:
    """The JSON type of a ChainConfig annotation (`str`, `int`, `dict[str, str]`, ...)."""
    hint = typing.get_origin(annotation) or annotation
    if isinstance(annotation, types.UnionType) or hint is typing.Union:
        hint = next(a for a in typing.get_args(annotation) if a is not type(None))
        hint = typing.get_origin(hint) or hint
    return _JSON_TYPES[hint]


def json_schema() -> dict[str, Any]:
    """The JSON Schema of tfship.yaml, derived from ChainConfig's fields and chain's rules."""
    hints = typing.get_type_hints(chain.ChainConfig)
    root: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {},
                            "required": []}

    def place(path: tuple[str, ...], schema: dict[str, Any], required: bool) -> None:
        node = root
        for section in path[:-1]:
            node = node["properties"].setdefault(
                section, {"type": "object", "additionalProperties": False, "properties": {}})
        node["properties"][path[-1]] = schema
        if required:
            node.setdefault("required", []).append(path[-1])

    for field in dataclasses.fields(chain.ChainConfig):
        schema: dict[str, Any] = {"type": _json_type(hints[field.name]), **_FIELD_RULES.get(field.name, {})}
        if field.default is not dataclasses.MISSING:
            default = field.default
            schema["default"] = list(default) if isinstance(default, tuple) else default
        elif field.default_factory is not dataclasses.MISSING:
            schema["default"] = field.default_factory()
        elif field.name in _DEFAULT_PATHS:
            schema["default"] = _DEFAULT_PATHS[field.name]
        required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING \
            and field.name not in _DEFAULT_PATHS and field.name not in _TRAINING_INPUTS
        place(_field_key(field.name), schema, required)
    # The training data and schema are required unless the model to ship was trained elsewhere.
    root["if"] = {"not": {"required": [_field_key("saved_model")[0]]}}
    root["then"] = {"required": [_field_key(name)[0] for name in _TRAINING_INPUTS]}
    for path, schema, default in _ORCHESTRATOR_KEYS.values():
        place(path, {**schema, "default": default}, required=False)
    # A GPU count the accelerator's nodes cannot have.
    accelerator, count = _field_key("gpu_type"), _field_key("gpu_count")
    placement = root["properties"][accelerator[0]]
    placement["allOf"] = [
        {"if": {"properties": {accelerator[1]: {"const": gpu}}, "required": [accelerator[1]]},
         "then": {"properties": {count[1]: {"enum": list(counts)}}}}
        for gpu, counts in chain.GPU_COUNTS.items()
    ]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/tfship/tfship/tfship.schema.json",
        "title": "tfship.yaml",
        "description": "One model's chain: data, model, contract, training, canary, schedule, images "
                       "and GPU placement (`tfship validate-config` checks a file).",
        **root,
    }


def _describe(error: Any, document: Mapping[str, Any]) -> tuple[str, str]:
    """(key, message) of a jsonschema error, in the words of the file's author."""
    key = ".".join(str(part) for part in error.absolute_path)
    instance, value = error.instance, error.validator_value
    if error.validator == "enum" and key == ".".join(_field_key("gpu_count")):
        section, accelerator = _field_key("gpu_type")
        gpu = document[section][accelerator]
        return key, f"{instance!r} GPUs: a {gpu} node has {', '.join(map(str, value))}"
    if error.validator == "additionalProperties":
        unknown = sorted(set(instance) - set(error.schema.get("properties", {})))
        known = ", ".join(sorted(error.schema.get("properties", {})))
        return ".".join(filter(None, [key, str(unknown[0])])), f"unknown key (expected one of {known})"
    if error.validator == "required":
        missing = next(name for name in value if name not in instance)
        return ".".join(filter(None, [key, missing])), "missing (a required key)"
    if error.validator == "minimum":
        return key, f"{instance!r} is not an integer >= {value}"
    if error.validator == "type":
        return key, f"{instance!r} is not of type {value!r}"
    if error.validator == "enum":
        return key, f"{instance!r} is not one of {', '.join(map(repr, value))}"
    if error.validator == "propertyNames":
        return key, f"{instance!r} is not a step (expected one of {', '.join(value['enum'])})"
    if error.validator in ("pattern", "not") and key == "name":
        return key, (f"{instance!r} is not a model name TF Serving accepts (letters, digits, `_`, `-` or `.`, "
                     "no `/`, no `..`)")
    return key, error.message


@functools.cache
def _validator() -> Any:
    """Built once per process: a DAG folder of many model files checks them all with it."""
    import jsonschema  # a base dependency; imported here so that loading tfship.chain.project stays light

    return jsonschema.Draft202012Validator(json_schema())


def _chain_mapping(document: Mapping[str, Any], folder: str) -> dict[str, Any]:
    """ChainConfig's keyword arguments from a checked document (relative paths from `folder`)."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(chain.ChainConfig):
        node: Any = document
        for part in _field_key(field.name):
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is None:
            node = _DEFAULT_PATHS.get(field.name)
            if node is None:
                continue
        if field.name in _PATH_FIELDS and node and not storage.is_gcs(node) and not os.path.isabs(node):
            node = os.path.normpath(os.path.join(folder, node))
        if field.name in ("tolerations", "rollout_steps"):
            node = tuple(node)
        values[field.name] = node
    for name in _TRAINING_INPUTS:  # ChainConfig has no default for them; "" with a saved_model
        values.setdefault(name, "")
    return values


def _check_canary_sample(config: chain.ChainConfig, name: str) -> None:
    """Fewer canary requests than the judge's minimum sample make every canary NODATA, which never
    promotes: a file that can never ship a second version. (A thresholds file may lower the minimum.)"""

    minimum = JudgeConfig().min_samples
    if not config.canary_thresholds and config.canary_requests < minimum:
        raise ConfigError(
            f"{name}: {'.'.join(_field_key('canary_requests'))}: {config.canary_requests} is below the canary "
            f"judge's min_samples ({minimum}): every canary would be NODATA and no version after the first "
            "would be promoted. Send at least that many, or lower min_samples in canary.thresholds."
        )


def project_from_mapping(document: Any, path: str = FILE_NAME) -> Project:
    """Check `document` (a parsed tfship.yaml) and build its Project; `path` names it in errors."""
    name = os.path.basename(path) if os.path.dirname(path) == "" else path
    if not isinstance(document, Mapping):
        raise ConfigError(f"{name}: expected a mapping of keys (see tfship.schema.json), got "
                          f"{type(document).__name__}.")
    errors = sorted(_validator().iter_errors(document), key=lambda e: (list(map(str, e.absolute_path)), e.validator))
    if errors:
        key, message = _describe(errors[0], document)
        raise ConfigError(f"{name}: {key or '(top level)'}: {message}")
    folder = os.path.dirname(os.path.abspath(path))
    try:
        config = chain.ChainConfig(**_chain_mapping(document, folder))
    except ConfigError as error:
        # ChainConfig names its fields; the file's author knows them by their keys.
        message = str(error)
        for field_name, key in _FIELD_KEYS.items():
            message = message.replace(f"`{field_name}`", f"`{'.'.join(key)}`")
        raise ConfigError(f"{name}: {message}") from None
    _check_canary_sample(config, name)
    settings: dict[str, Any] = {}
    for attribute, (keys, _, default) in _ORCHESTRATOR_KEYS.items():
        node: Any = document
        for part in keys:
            node = node.get(part) if isinstance(node, Mapping) else None
        settings[attribute] = default if node is None else node
    return Project(path=os.path.abspath(path), chain=config, **settings)


def load_project(path: str) -> Project:
    """Read and check a tfship.yaml; raise ConfigError (one line naming the file and key) when bad."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read it ({error.strerror or error}).") from None
    document = parse_yaml(text, path, ConfigError)
    return project_from_mapping(document, path)


def schema_text() -> str:
    """tfship.schema.json's exact text."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    with open(SCHEMA_FILE, "w", encoding="utf-8") as handle:
        handle.write(schema_text())
    print(SCHEMA_FILE)
