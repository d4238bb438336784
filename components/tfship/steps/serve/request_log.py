"""Request logging: sampled requests and responses as `PredictionLog` TFRecords, as TF Serving logs them.

TF Serving configures request logging per model in models.config::

    config {
      name: "m" base_path: "/models/m"
      logging_config {
        log_collector_config { type: "tfrecord" filename_prefix: "/var/log/tfship/m" }
        sampling_config { sampling_rate: 0.1 }
      }
    }

and writes each sampled, successful request with its response as one `PredictionLog` (the record
type of warm-up files), so logged traffic can be replayed by the canary and turned into warm-up
records. tfship's collector writes TFRecord files named `<prefix>-<UTC time>-<pid>-<seq>.tfrecord`.

A reader never sees a half-written file: records go to a hidden temporary name (`.<name>.inprogress`
in the same directory) that is renamed to its final name when the file reaches its size limit and
when the server stops. `glob("<prefix>-*.tfrecord")` therefore matches finished files only. A
server killed with SIGKILL leaves its last temporary file behind; it is never picked up as traffic.

Thread-safe: request threads share one `RequestLogger` per filename prefix.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tfship import storage
from tfship.errors import ConfigError, DataError

log = logging.getLogger("tfship.serve")

COLLECTOR_TYPE = "tfrecord"
LOG_SUFFIX = ".tfrecord"
IN_PROGRESS_SUFFIX = ".inprogress"
DEFAULT_RATE = 0.1
DEFAULT_MAX_FILE_BYTES = 64 * 2**20
_RECORD_FRAMING_BYTES = 16  # TFRecord: length (8) + length CRC (4) + data CRC (4)


@dataclass(frozen=True)
class LogSettings:
    """Where and how often one model's requests are logged.

    Attributes:
        filename_prefix: local path prefix of the log files (`<prefix>-...tfrecord`).
        sampling_rate: share of successful requests logged, 0-1.
    """

    filename_prefix: str
    sampling_rate: float

    def __post_init__(self) -> None:
        if not self.filename_prefix:
            raise ConfigError("Invalid request logging: `filename_prefix` is empty. Expected a local path prefix.")
        if storage.is_gcs(self.filename_prefix):
            raise ConfigError(
                f"Invalid request logging: filename_prefix={self.filename_prefix!r}. tfship serve writes "
                "request logs to local files only; expected a local path prefix (copy finished files to gs:// "
                "with your log shipper)."
            )
        if not 0 <= self.sampling_rate <= 1:
            raise ConfigError(
                f"Invalid request logging for {self.filename_prefix!r}: sampling_rate={self.sampling_rate!r}. "
                "Expected 0-1."
            )


def settings_from_model_config(entry: Any) -> LogSettings | None:
    """The `logging_config` of one models.config entry, or None when it has none.

    A `log_collector_config.type` other than "" or "tfrecord" is refused: tfship has no other
    collector, and silently not logging would look like no traffic.
    """
    if not entry.HasField("logging_config"):
        return None
    collector = entry.logging_config.log_collector_config
    if collector.type not in ("", COLLECTOR_TYPE):
        raise ConfigError(
            f"models.config: model {entry.name} has log_collector_config type {collector.type!r}. "
            f'tfship serve only writes TFRecord files: expected type: "{COLLECTOR_TYPE}".'
        )
    if not collector.filename_prefix:
        raise ConfigError(
            f"models.config: model {entry.name} has logging_config without log_collector_config "
            '{ filename_prefix: "..." }. Expected a local path prefix for its log files.'
        )
    return LogSettings(collector.filename_prefix, entry.logging_config.sampling_config.sampling_rate)


def finished_files(prefix: str) -> list[str]:
    """The finished log files of `prefix`, oldest first (their names sort by time)."""
    import glob

    return sorted(glob.glob(glob.escape(prefix) + "-*" + LOG_SUFFIX))


def traffic_glob(prefix: str) -> str | None:
    """The glob of the finished log files of `prefix` (what `tfship canary --traffic` takes), or None.

    None when there are none yet. The canary reads the newest files first.
    """
    import glob

    return glob.escape(prefix) + "-*" + LOG_SUFFIX if finished_files(prefix) else None


class RequestLogger:
    """Writes sampled PredictionLog records for one filename prefix, rotating files by size.

    Args:
        settings: prefix and sampling rate.
        max_file_bytes: a file is finished (renamed) once it holds at least this many bytes.
        seed: seeds the sampling draw (tests; None draws from the OS).
    """

    def __init__(self, settings: LogSettings, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, seed: int | None = None):
        self.settings = settings
        self._max_file_bytes = max_file_bytes
        self._random = random.Random(seed)
        self._lock = threading.Lock()  # guards the writer, its names and its size
        self._writer: Any = None
        self._temporary = ""
        self._final = ""
        self._bytes = 0
        self._sequence = 0
        self._closed = False
        self._last_error = ""
        directory = os.path.dirname(settings.filename_prefix)
        if directory:
            os.makedirs(directory, exist_ok=True)

    def sampled(self) -> bool:
        """Whether to log this request (draw once per request, before building its record)."""
        rate = self.settings.sampling_rate
        return rate >= 1 or (rate > 0 and self._random.random() < rate)

    def _open(self) -> None:
        import tensorflow as tf

        self._sequence += 1
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self._final = f"{self.settings.filename_prefix}-{stamp}-{os.getpid()}-{self._sequence:06d}{LOG_SUFFIX}"
        directory, name = os.path.split(self._final)
        self._temporary = os.path.join(directory, f".{name}{IN_PROGRESS_SUFFIX}")
        self._writer = tf.io.TFRecordWriter(self._temporary)
        self._bytes = 0

    def _finish(self) -> None:
        """Close the current file and give it its final name (atomic on a local file system)."""
        if self._writer is None:
            return
        self._writer.close()
        self._writer = None
        os.replace(self._temporary, self._final)
        log.info("request log %s finished (%d bytes)", self._final, self._bytes)

    def write(self, record: Any) -> None:
        """Append one PredictionLog; finish the file when it reaches the size limit.

        A log that cannot be written (disk full, directory gone) never fails the request it
        records: the error is logged once per distinct message and the record dropped.
        """
        import tensorflow as tf

        data = record.SerializeToString()
        with self._lock:
            if self._closed:
                return  # a request that ends while the server stops is not logged
            try:
                if self._writer is None:
                    self._open()
                self._writer.write(data)
                self._bytes += len(data) + _RECORD_FRAMING_BYTES
                if self._bytes >= self._max_file_bytes:
                    self._finish()
            except (OSError, tf.errors.OpError) as error:
                self._writer = None
                if str(error) != self._last_error:
                    log.error("request log %s: record dropped: %s", self.settings.filename_prefix, error)
                    self._last_error = str(error)

    def close(self) -> None:
        """Finish the current file; later writes are dropped. Idempotent."""
        with self._lock:
            self._closed = True
            self._finish()


class RequestLogs:
    """The server's request loggers: one per filename prefix, chosen per model.

    A model's own `logging_config` in models.config wins; otherwise `--request-log-dir` logs it to
    `<dir>/<model name>` at `--request-log-rate`.
    """

    def __init__(self, default_dir: str | None, default_rate: float, max_file_bytes: int) -> None:
        self._default_dir = default_dir
        self._default_rate = default_rate
        self._max_file_bytes = max_file_bytes
        self._loggers: dict[LogSettings, RequestLogger] = {}
        self._lock = threading.Lock()

    def settings_for(self, name: str, configured: LogSettings | None) -> LogSettings | None:
        """Model `name`'s own settings, else the `--request-log-dir` shortcut's, else None."""
        if configured is not None:
            return configured
        if self._default_dir:
            return LogSettings(os.path.join(self._default_dir, name), self._default_rate)
        return None

    def logger_for(self, name: str, configured: LogSettings | None) -> RequestLogger | None:
        """The logger for model `name` (None: not logged, or logged at rate 0)."""
        settings = self.settings_for(name, configured)
        if settings is None or settings.sampling_rate == 0:
            return None
        with self._lock:
            if settings not in self._loggers:
                self._loggers[settings] = RequestLogger(settings, self._max_file_bytes)
            return self._loggers[settings]

    def close(self) -> None:
        """Finish every open log file (the server's shutdown)."""
        with self._lock:
            loggers = list(self._loggers.values())
        for logger in loggers:
            logger.close()


# ---- records -----------------------------------------------------------------------------------


def read_records(path: str) -> Iterator[tuple[str, Any]]:
    """(`path, record N`, PredictionLog) for each record of a TFRecord file, N from 1.

    A record that is not a PredictionLog, or a file that is not a readable TFRecord (truncated,
    corrupt), is a DataError naming the file and the record number.
    """
    import tensorflow as tf
    from google.protobuf.message import DecodeError
    from tensorflow_serving.apis import prediction_log_pb2

    number = 0
    try:
        for number, data in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator(), start=1):
            try:
                yield f"{path}, record {number}", prediction_log_pb2.PredictionLog.FromString(data)
            except DecodeError as error:
                raise DataError(f"{path}, record {number}: not a PredictionLog ({error}).") from None
    except tf.errors.OpError as error:
        raise DataError(
            f"{path}, record {number + 1}: not a readable TFRecord ({error.message.splitlines()[0]}). "
            "Expected PredictionLog TFRecords, or JSON lines in a file ending .jsonl."
        ) from None


def _metadata(record: Any, name: str, version: int, signature: str, rate: float) -> None:
    metadata = record.log_metadata
    metadata.model_spec.name = name
    metadata.model_spec.version.value = version
    metadata.model_spec.signature_name = signature
    metadata.sampling_config.sampling_rate = rate
    metadata.timestamp_secs = int(time.time())


def predict_record(
    name: str, version: int, signature: str, rate: float,
    inputs: Mapping[str, Any], outputs: Mapping[str, Any], output_filter: Sequence[str] = (),
) -> Any:
    """A PredictionLog of one Predict call (numpy inputs and outputs, as both transports have them)."""
    from tensorflow_serving.apis import prediction_log_pb2

    from tfship.steps.serve.tensors import from_numpy

    record = prediction_log_pb2.PredictionLog()
    _metadata(record, name, version, signature, rate)
    request = record.predict_log.request
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    request.output_filter.extend(output_filter)
    for alias, array in inputs.items():
        request.inputs[alias].CopyFrom(from_numpy(array))
    response = record.predict_log.response
    response.model_spec.CopyFrom(request.model_spec)
    response.model_spec.version.value = version
    for alias, array in outputs.items():
        response.outputs[alias].CopyFrom(from_numpy(array))
    return record


def example_record(kind: str, name: str, version: int, rate: float, request: Any, response: Any) -> Any:
    """A PredictionLog of one Classify (`kind` "classify_log") or Regress ("regress_log") call."""
    from tensorflow_serving.apis import prediction_log_pb2

    record = prediction_log_pb2.PredictionLog()
    _metadata(record, name, version, response.model_spec.signature_name, rate)
    entry = getattr(record, kind)
    entry.request.CopyFrom(request)
    entry.response.CopyFrom(response)
    return record
