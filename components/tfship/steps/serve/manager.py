"""The model manager: which versions are loaded, what the labels point at, and their states.

It follows the repository's models.config the way TF Serving's ServerCore does: poll the config
(and, for `latest`/`all` policies, the version directories), load new versions (downloading gs://
ones to a local cache first, then replaying their warm-up records), only then move labels onto
them, and finally unload the versions that left the config, after their in-flight requests end.
A version that fails to load ends in state END with its error, and is retried only when the
config changes (TF Serving gives up after its retries too). A config that cannot be read keeps
the previous one serving; so does one that names no model while versions are served (TF Serving
would unload everything, but a 0-byte or truncated models.config is far likelier an accident than
an order: the refusal is logged, and a restart is how to really serve nothing).

Thread-safe: requests resolve servables from any thread while one poll thread reconciles.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tfship import storage
from tfship.errors import ConfigError, TfshipError
from tfship.steps.serve.config import ServeConfig
from tfship.steps.serve.inference import replay_warmup
from tfship.steps.serve.plan import ModelPlan, model_plans, next_labels, version_directories, wanted_versions
from tfship.steps.serve.request_log import LogSettings, RequestLogs
from tfship.steps.serve.servable import Servable
from tfship.steps.serve.status import ServingStatus, invalid_argument, not_found
from tfship.models_config import is_empty, read_models_config
from tfship.saved_model.loader import MAX_WARMUP_RECORDS, load_session_model, read_warmup_requests

log = logging.getLogger("tfship.serve")

_COMPLETE_MARKER = ".tfship-download-complete"


@dataclass(frozen=True)
class VersionState:
    """A version's ModelVersionStatus: state START/LOADING/AVAILABLE/UNLOADING/END and its status."""

    state: str
    error_code: str = "OK"
    error_message: str = ""


class ModelManager:
    """Loads, labels and unloads model versions as the repository's models.config says.

    Args:
        config: the server's configuration (repo, warm-up, faults, cache).
        read_config: returns the current ModelServerConfig (default: tfship.models_config's reader).
        load_model: loads a version directory (default: tfship.saved_model.loader.load_session_model).
    """

    def __init__(
        self,
        config: ServeConfig,
        read_config: Callable[[str], Any] | None = None,
        load_model: Callable[[str], Any] | None = None,
    ) -> None:

        self._config = config
        self._read_config = read_config or read_models_config
        self._load_model = load_model or load_session_model
        self._lock = threading.Lock()  # guards the four maps below
        self._servables: dict[str, dict[int, Servable]] = {}
        self._labels: dict[str, dict[str, int]] = {}
        self._states: dict[str, dict[int, VersionState]] = {}
        self._failed: dict[tuple[str, int], str] = {}  # (model, version) -> path that failed
        self._reconcile_lock = threading.Lock()
        self._last_config: bytes | None = None
        self._last_error: str | None = None
        self._missing_reported: set[tuple[str, int]] = set()
        self._request_logs = RequestLogs(config.request_log_dir, config.request_log_rate, config.request_log_max_bytes)

    # ---- requests --------------------------------------------------------------------------

    def acquire(self, model_spec: Any) -> Servable:
        """The servable a ModelSpec names, leased (call `release` after); TF Serving's errors.

        A version label resolves through the current labels; no version means the latest
        available version.
        """
        name = model_spec.name
        if not name:
            raise invalid_argument("ModelSpec has no name specified.")
        choice = model_spec.WhichOneof("version_choice")
        with self._lock:
            versions = self._servables.get(name, {})
            if choice == "version_label":
                label = model_spec.version_label
                version = self._labels.get(name, {}).get(label)
                if version is None:
                    raise invalid_argument(f"Unrecognized servable version label: {label}")
                request = f"Specific({name}, {version})"
            elif choice == "version":
                version = model_spec.version.value
                request = f"Specific({name}, {version})"
            else:
                version = max(versions) if versions else None
                request = f"Latest({name})"
            servable = versions.get(version) if version is not None else None
            if servable is None:
                raise not_found(f"Servable not found for request: {request}")
            servable.acquire()
            return servable

    def version_states(self, name: str, version: int | None) -> list[tuple[int, VersionState]]:
        """GetModelStatus: one version's state, or all versions of the model, sorted."""
        with self._lock:
            states = dict(self._states.get(name, {}))
        if version is not None:
            if version not in states:
                raise not_found(f"Could not find version {version} of model {name}")
            return [(version, states[version])]
        if not states:
            raise not_found(f"Could not find any versions of model {name}")
        return sorted(states.items())

    def labels(self, name: str) -> dict[str, int]:
        """The labels served now for model `name`."""
        with self._lock:
            return dict(self._labels.get(name, {}))

    def loaded(self) -> dict[str, list[int]]:
        """model -> versions available now."""
        with self._lock:
            return {name: sorted(v) for name, v in self._servables.items() if v}

    # ---- reconciling -----------------------------------------------------------------------

    def reconcile(self, strict: bool = False) -> None:
        """Bring the served versions and labels in line with models.config, once.

        Args:
            strict: raise (instead of logging) when the config cannot be read or a version fails
                to load: the server's first load, which must not start half-broken.
        """

        with self._reconcile_lock:
            try:
                server_config = self._read_config(self._config.repo)
                plans = model_plans(server_config)
                served = self.loaded()
                if is_empty(server_config) and served:
                    raise ConfigError(
                        f"it names no model, but versions are being served ({served}); an emptied or "
                        "truncated file is not taken as an order to unload everything. Restore the "
                        "file, or restart the server to serve nothing"
                    )
            except (TfshipError, OSError) as error:
                if strict:
                    raise
                if str(error) != self._last_error:  # once per distinct problem, not every poll
                    log.error("models.config of %s not applied, keeping the current one: %s", self._config.repo, error)
                    self._last_error = str(error)
                return
            self._last_error = None
            serialized = server_config.SerializeToString(deterministic=True)
            if serialized != self._last_config:
                if self._last_config is not None:
                    log.info("models.config changed; applying it")
                self._failed.clear()  # a new config retries failed versions
                self._last_config = serialized
            failures = []
            wanted_by_model = {}
            for plan in plans.values():
                wanted_by_model[plan.name], errors = self._load_wanted(plan)
                failures.extend(errors)
            self._switch_labels(plans, wanted_by_model)
            self._unload_unwanted(wanted_by_model)
            if strict and failures:
                raise failures[0]

    def _listing(self, base_path: str) -> dict[int, str]:
        """version -> directory URI of the integer-named directories under `base_path`."""
        return {v: storage.join(base_path, n) for v, n in version_directories(storage.list_dirs(base_path)).items()}

    def _load_wanted(self, plan: ModelPlan) -> tuple[set[int], list[TfshipError]]:
        """Load the versions the plan wants and lacks; returns (wanted versions, load errors).

        The base path is listed at most once (a list request on gs://, a real cost per poll): for
        `latest`/`all` on every poll, for `specific` only when a version is still to be loaded.
        """
        directories = None if plan.policy == "specific" else self._listing(plan.base_path)
        wanted = wanted_versions(plan, directories)
        with self._lock:
            loaded = set(self._servables.get(plan.name, {}))
        missing = {v for v in wanted - loaded if (plan.name, v) not in self._failed}
        if not missing:
            return wanted, []
        if directories is None:
            directories = self._listing(plan.base_path)
        failures = []
        for version in sorted(missing):
            uri = directories.get(version)
            if uri is None:
                if (plan.name, version) not in self._missing_reported:
                    log.warning("%s version %d: no directory for it under %s yet", plan.name, version, plan.base_path)
                    self._missing_reported.add((plan.name, version))
                continue
            self._missing_reported.discard((plan.name, version))
            error = self._load(plan.name, version, uri, plan.request_log)
            if error is not None:
                failures.append(error)
        return wanted, failures

    def _set_state(self, name: str, version: int, state: VersionState) -> None:
        with self._lock:
            self._states.setdefault(name, {})[version] = state

    def _local_copy(self, uri: str) -> str:
        """A local directory holding version `uri` (gs:// versions are downloaded once)."""
        if not storage.is_gcs(uri):
            return uri
        if self._config.cache_dir:
            import hashlib

            local = os.path.join(self._config.cache_dir, hashlib.sha256(uri.encode()).hexdigest()[:16])
            os.makedirs(local, exist_ok=True)
        else:
            local = storage.local_cache_dir(uri, "serve")
        marker = os.path.join(local, _COMPLETE_MARKER)
        if not os.path.exists(marker):
            storage.download_tree(uri, local)
            with open(marker, "w") as handle:
                handle.write(uri)
        return local

    def _load(self, name: str, version: int, uri: str, log_settings: LogSettings | None) -> TfshipError | None:
        """Load (and warm up) one version; it serves only if all of that succeeds.

        Its request logger is attached after warm-up: warm-up records are not user traffic (TF
        Serving does not log them either). The logging settings are those of the config that
        loaded the version.
        """
        self._set_state(name, version, VersionState("LOADING"))
        log.info("loading %s version %d from %s", name, version, uri)
        model = None
        try:
            local = self._local_copy(uri)
            model = self._load_model(local)
            servable = Servable(name, version, local, model, self._config.fault_for(name, version))
            if self._config.warmup:
                self._warm_up(servable)
            servable.request_log = self._request_logs.logger_for(name, log_settings)
        except Exception as error:  # any failure ends this version, never the server
            if model is not None:
                model.close()
            if not isinstance(error, (TfshipError, ServingStatus, OSError)):
                log.exception("%s version %d: unexpected error while loading", name, version)
            message = error.message if isinstance(error, ServingStatus) else str(error)
            code = "NOT_FOUND" if isinstance(error, FileNotFoundError) else "UNKNOWN"
            self._set_state(name, version, VersionState("END", code, message))
            self._failed[(name, version)] = uri
            log.error("%s version %d failed to load: %s", name, version, message)
            return error if isinstance(error, TfshipError) else TfshipError(f"{name} version {version}: {message}")
        with self._lock:
            self._servables.setdefault(name, {})[version] = servable
            self._states.setdefault(name, {})[version] = VersionState("AVAILABLE")
        log.info("%s version %d is AVAILABLE", name, version)
        return None

    def _warm_up(self, servable: Servable) -> None:

        records = read_warmup_requests(servable.path)
        if len(records) > MAX_WARMUP_RECORDS:
            raise ServingStatus(
                "INVALID_ARGUMENT",
                f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {servable.path}",
            )
        for index, record in enumerate(records):
            try:
                replay_warmup(servable, record)
            except ServingStatus as error:
                raise ServingStatus(error.code, f"warm-up record {index} failed: {error.message}") from error
        if records:
            log.info("%s version %d: replayed %d warm-up records", servable.name, servable.version, len(records))

    def _switch_labels(self, plans: dict[str, ModelPlan], wanted: dict[str, set[int]]) -> None:
        with self._lock:
            for name in list(self._labels):
                if name not in plans:
                    del self._labels[name]
            for plan in plans.values():
                loaded = set(self._servables.get(plan.name, {}))
                labels, warnings = next_labels(plan.labels, self._labels.get(plan.name, {}), loaded & wanted[plan.name])
                if labels != self._labels.get(plan.name, {}):
                    log.info("%s labels: %s", plan.name, labels)
                for warning in warnings:
                    log.warning("%s: %s", plan.name, warning)
                self._labels[plan.name] = labels

    def _unload_unwanted(self, wanted: dict[str, set[int]]) -> None:
        retiring = []
        with self._lock:
            for name, versions in self._servables.items():
                keep = wanted.get(name, set())
                for version in sorted(set(versions) - keep):
                    retiring.append(versions.pop(version))
                    self._states[name][version] = VersionState("UNLOADING")
        for servable in retiring:
            log.info("unloading %s version %d", servable.name, servable.version)
            servable.retire()
            self._set_state(servable.name, servable.version, VersionState("END"))

    def close(self) -> None:
        """Unload everything (waiting for in-flight requests), then finish the request log files."""
        with self._reconcile_lock:
            self._unload_unwanted({})
            with self._lock:
                self._labels.clear()
            self._request_logs.close()
