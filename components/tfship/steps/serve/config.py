"""What `tfship serve` is asked to do: `ServeConfig`, and `Fault`, its test-only fault injection."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tfship import storage
from tfship.errors import ConfigError
from tfship.steps.serve.request_log import DEFAULT_MAX_FILE_BYTES, DEFAULT_RATE, LogSettings

# TF Serving's defaults: gRPC on 8500, REST on 8501.
DEFAULT_GRPC_PORT = 8500
DEFAULT_REST_PORT = 8501
DEFAULT_REST_MAX_BODY_BYTES = 64 * 2**20
DEFAULT_REST_TIMEOUT_S = 30


def _check_port(name: str, value: int, allow_off: bool = False) -> None:
    low = -1 if allow_off else 0
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= 65535:
        off = " or -1 (no REST server)" if allow_off else ""
        raise ConfigError(
            f"Invalid value for argument `{name}`. Received: {name}={value!r}. "
            f"Expected a port number 1-65535, 0 (pick a free port){off}."
        )


@dataclass(frozen=True)
class Fault:
    """A fault the server injects into one model version's inference calls. For tests only.

    The canary's own tests need a candidate that is slow or that fails some requests, and a real
    model that does either on demand does not exist. Status and metadata calls are not affected.

    Attributes:
        model: the model name.
        version: the version the fault applies to.
        latency_s: extra seconds before every Predict/Classify/Regress (bounded by the request's
            deadline, after which the call ends DEADLINE_EXCEEDED as TF Serving's would).
        error_rate: share of those calls (0-1) that fail with INTERNAL "injected fault".
    """

    model: str
    version: int
    latency_s: float = 0.0
    error_rate: float = 0.0

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("Invalid fault: `model` is empty. Expected a model name.")
        if not isinstance(self.version, int) or self.version < 0:
            raise ConfigError(f"Invalid fault: version={self.version!r}. Expected an integer >= 0.")
        if not 0 <= self.latency_s <= 3600:
            raise ConfigError(f"Invalid fault: latency_s={self.latency_s!r}. Expected 0-3600 seconds.")
        if not 0 <= self.error_rate <= 1:
            raise ConfigError(f"Invalid fault: error_rate={self.error_rate!r}. Expected 0-1.")

    @classmethod
    def parse(cls, text: str) -> Fault:
        """`MODEL/VERSION:latency=0.05,error_rate=0.1` (the `--inject-fault` flag's syntax)."""
        match = re.fullmatch(r"([^/:]+)/(\d+):(.+)", text.strip())
        if not match:
            raise ConfigError(
                f"Invalid value for argument `--inject-fault`. Received: {text!r}. "
                "Expected MODEL/VERSION:latency=SECONDS,error_rate=SHARE, e.g. default/124:latency=0.05."
            )
        values: dict[str, float] = {}
        for item in match.group(3).split(","):
            key, _, value = item.partition("=")
            if key.strip() not in ("latency", "error_rate"):
                raise ConfigError(
                    f"Invalid value for argument `--inject-fault`. Received: {text!r}. Unknown key "
                    f"{key.strip()!r}; expected latency= and/or error_rate=."
                )
            try:
                values[key.strip()] = float(value)
            except ValueError as error:
                raise ConfigError(
                    f"Invalid value for argument `--inject-fault`. Received: {text!r}. "
                    f"{key.strip()}={value!r} is not a number."
                ) from error
        return cls(
            model=match.group(1),
            version=int(match.group(2)),
            latency_s=values.get("latency", 0.0),
            error_rate=values.get("error_rate", 0.0),
        )


@dataclass(frozen=True)
class ServeConfig:
    """How to serve a model repository over TF Serving's gRPC and REST API.

    Attributes:
        repo: the model repository (local path or gs://); its `models.config` names the models,
            versions and labels to serve. An absent config serves nothing until one appears; a
            config that names no model (a 0-byte file) is refused while versions are served.
        host: the interface to listen on (default loopback: the server has no authentication).
        grpc_port: gRPC port; 0 picks a free one (the handle reports it). Default 8500.
        rest_port: REST port; 0 picks a free one, -1 starts no REST server. Default 8501.
        poll_seconds: how often models.config and the version directories are re-read; 0 reads
            them once (TF Serving's `--model_config_file_poll_wait_seconds`). Default 1.
        warmup: replay `assets.extra/tf_serving_warmup_requests` before a version serves
            (TF Serving's `--enable_model_warmup`, default on).
        workers: threads answering gRPC requests, and as many answering REST requests (REST
            connections wait in one I/O thread until a whole request has arrived).
        rest_max_body_bytes: the largest REST request body accepted; a larger one answers 413
            before it is read into memory. Default 64 MiB.
        rest_timeout_s: a REST connection idle (or stalled mid-request) this many seconds is
            closed. Default 30.
        cache_dir: where gs:// versions are downloaded (default: tfship's local cache).
        request_log_dir: log sampled requests of every model without its own `logging_config` to
            `<dir>/<model>-*.tfrecord` (PredictionLog records, see `tfship.steps.serve.request_log`).
        request_log_rate: the share of successful requests logged under `request_log_dir`.
        request_log_max_bytes: a request log file is finished and a new one begun at this size.
        faults: test-only fault injection, see `Fault`.
    """

    repo: str
    host: str = "127.0.0.1"
    grpc_port: int = DEFAULT_GRPC_PORT
    rest_port: int = DEFAULT_REST_PORT
    poll_seconds: float = 1.0
    warmup: bool = True
    workers: int = 32
    rest_max_body_bytes: int = DEFAULT_REST_MAX_BODY_BYTES
    rest_timeout_s: int = DEFAULT_REST_TIMEOUT_S
    cache_dir: str | None = None
    request_log_dir: str | None = None
    request_log_rate: float = DEFAULT_RATE
    request_log_max_bytes: int = DEFAULT_MAX_FILE_BYTES
    faults: tuple[Fault, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.repo:
            raise ConfigError("Invalid value for argument `repo`: it is empty. Expected a local path or gs:// URI.")
        storage.check_uri(self.repo, "repo")
        if not self.host:
            raise ConfigError("Invalid value for argument `host`: it is empty. Expected e.g. 127.0.0.1.")
        _check_port("grpc_port", self.grpc_port)
        _check_port("rest_port", self.rest_port, allow_off=True)
        if not 0 <= self.poll_seconds <= 86400:
            raise ConfigError(
                f"Invalid value for argument `poll_seconds`. Received: poll_seconds={self.poll_seconds!r}. "
                "Expected 0 (read once) to 86400 seconds."
            )
        if not isinstance(self.workers, int) or not 1 <= self.workers <= 1024:
            raise ConfigError(
                f"Invalid value for argument `workers`. Received: workers={self.workers!r}. Expected 1-1024."
            )
        if not isinstance(self.rest_max_body_bytes, int) or self.rest_max_body_bytes < 1:
            raise ConfigError(
                "Invalid value for argument `rest_max_body_bytes`. Received: "
                f"rest_max_body_bytes={self.rest_max_body_bytes!r}. Expected a positive number of bytes."
            )
        if not isinstance(self.rest_timeout_s, int) or not 1 <= self.rest_timeout_s <= 86400:
            raise ConfigError(
                f"Invalid value for argument `rest_timeout_s`. Received: rest_timeout_s={self.rest_timeout_s!r}. "
                "Expected 1-86400 seconds."
            )
        if not 0 <= self.request_log_rate <= 1:
            raise ConfigError(
                f"Invalid value for argument `request_log_rate`. Received: request_log_rate={self.request_log_rate!r}. "
                "Expected a share of requests, 0-1."
            )
        if self.request_log_dir:
            LogSettings(self.request_log_dir, self.request_log_rate)  # refuses a gs:// directory
        if not isinstance(self.request_log_max_bytes, int) or self.request_log_max_bytes < 1:
            raise ConfigError(
                "Invalid value for argument `request_log_max_bytes`. Received: "
                f"request_log_max_bytes={self.request_log_max_bytes!r}. Expected a positive number of bytes."
            )
        if not isinstance(self.faults, tuple):
            object.__setattr__(self, "faults", tuple(self.faults))

    def fault_for(self, model: str, version: int) -> Fault | None:
        """The fault injected into `model` version `version`, if any."""
        for fault in self.faults:
            if fault.model == model and fault.version == version:
                return fault
        return None
