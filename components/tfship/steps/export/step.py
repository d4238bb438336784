"""`tfship export`: the latest checkpoint of a job -> a versioned, servable SavedModel.

Writes `<export-dir>/<version>/`:
```
saved_model.pb, variables/, fingerprint.pb      tf.saved_model.save of a ServingModule
assets/<feature>.txt                            the vocabularies (read by the lookup tables)
assets.extra/tf_serving_warmup_requests         PredictionLog records TF Serving replays at load
assets.extra/tfship_metadata.json               schema, metrics, fingerprints, checkpoint step
```
The write is atomic for readers such as TF Serving, which polls the export directory and loads
any integer-named directory it finds (a half-written one fails at inference, tensorflow/serving
#1086). Locally, everything is written and verified in a hidden sibling `.tmp-<version>-<id>/`
(not integer-named, so TF Serving skips it) that is renamed to `<version>` in one `rename(2)`.
On gs://, which has no rename, the version is staged and verified locally, then uploaded with
`saved_model.pb` last: without it the directory is not a SavedModel, so its upload marks the
version complete (`tfship push` is the way to publish into a serving repository).

Before finalizing, the staged model is loaded the way TF Serving loads it and its warm-up
records are replayed: an export that would not serve never appears.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tfship import storage
from tfship.errors import ConfigError, ModelError

METADATA_FILE = os.path.join("assets.extra", "tfship_metadata.json")
METADATA_FORMAT = "tfship-export/1"
DEFAULT_WARMUP_ROWS = 8
STAGING_PREFIX = ".tmp-"


@dataclass(frozen=True)
class ExportConfig:
    """What `tfship export` needs. Checked when built.

    Args:
        job_dir: a job directory written by `tfship train` (local or gs://).
        export_dir: where version directories go (local or gs://); created if absent.
        version: the version to write; default (None) the next integer above the existing ones.
        warmup_rows: held-out rows turned into warm-up requests (0 = no warm-up file).
        warmup_traffic: instead, a glob of `tfship serve` request logs: up to 1000 logged requests
            (TF Serving's limit) become the warm-up records (`tfship.saved_model.warmup.records_from_traffic`).
        allow_model_change: run the job's `--model` even if its source file changed since
            training (by default export refuses: a job directory names code that export runs).
    """

    job_dir: str
    export_dir: str
    version: int | None = None
    warmup_rows: int = DEFAULT_WARMUP_ROWS
    warmup_traffic: str = ""
    allow_model_change: bool = False

    def __post_init__(self) -> None:
        storage.check_uri(self.job_dir, "--job-dir")
        storage.check_uri(self.export_dir, "--export-dir")
        if self.version is not None and (
            isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1
        ):
            raise ConfigError(
                f"Invalid value for `version`: {self.version!r}. Expected a positive integer "
                "(TF Serving loads only integer-named versions) or None for the next one."
            )
        if isinstance(self.warmup_rows, bool) or not isinstance(self.warmup_rows, int) or not (
            0 <= self.warmup_rows <= 1000
        ):
            raise ConfigError(
                f"Invalid value for `warmup_rows`: {self.warmup_rows!r}. Expected an integer in [0, 1000]."
            )


@dataclass(frozen=True)
class ExportResult:
    """Where the version went and what it holds."""

    version: int
    path: str
    signatures: dict[str, str]  # name -> method_name
    warmup_records: int
    metadata: dict[str, Any] = field(repr=False)
    duration_s: float = 0.0


def next_version(names: Iterable[str]) -> int:
    """The next version after the integer-named entries of `names` (1 if there is none).

    Non-integer names (staging directories, reports) are ignored, as TF Serving ignores them.
    """
    versions = [int(n) for n in names if n.isdigit()]
    return max(versions, default=0) + 1


def existing_versions(export_dir: str) -> list[str]:
    """The integer-named entries directly below `export_dir`."""
    if storage.is_gcs(export_dir):
        names = {path.split("/", 1)[0] for path in storage.list_files(export_dir)}
    else:
        names = set(os.listdir(export_dir)) if os.path.isdir(export_dir) else set()
    return sorted((n for n in names if n.isdigit()), key=int)


def export(job_dir: str, export_dir: str, **options: Any) -> ExportResult:
    """Export the latest valid checkpoint of `job_dir` as `<export_dir>/<version>/`.

    Options are `ExportConfig`'s (`version`, `warmup_rows`, `allow_model_change`)::

        result = tfship.export("/tmp/job", "/tmp/export")   # -> /tmp/export/1
    """
    return run_export(ExportConfig(job_dir=job_dir, export_dir=export_dir, **options))


def run_export(config: ExportConfig) -> ExportResult:
    """Export the latest valid checkpoint of `config.job_dir`; see the module docstring."""
    from tfship.steps.train.job import load_trained_job

    return export_job(load_trained_job(config.job_dir, config.allow_model_change), config)


def export_job(job: Any, config: ExportConfig) -> ExportResult:
    """Export an already loaded `TrainedJob` (or any object with the same attributes)."""
    started = time.monotonic()
    version = _free_version(config.export_dir, config.version)
    target = storage.join(config.export_dir, str(version))
    staging = _staging_dir(config.export_dir, version)
    try:
        signatures, records = _write_savedmodel(job, staging, config.warmup_rows, config.warmup_traffic)
        metadata = _metadata(job, version, signatures, records)
        storage.write_text(os.path.join(staging, METADATA_FILE), json.dumps(metadata, indent=2, sort_keys=True))
        _finalize(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(version, target, signatures, records, metadata, time.monotonic() - started)


def import_saved_model(source: str, export_dir: str, version: int | None = None) -> ExportResult:
    """Take a SavedModel trained elsewhere as `<export_dir>/<version>/`, unchanged, if it would serve.

    The `export` of `tfship run --saved-model`: there is no job to export, so the model's own files
    are copied, byte for byte, after the same check as an export's: it loads the way TF Serving
    loads it (a naive Keras 3 `tf.saved_model.save` does not, and is refused with the loader's
    reason) and replays its own warm-up records, if it has any. `source` and `export_dir` may be
    local or gs:// (a gs:// model is downloaded first: the loader reads local files, and the
    orchestrators' `saved_model` parameter names models in buckets).

    Raises:
        ModelError: `source` is not a SavedModel, or TF Serving could not load or warm it up.
        ConfigError: `version` is taken.
    """
    from tfship.saved_model.loader import read_warmup_requests

    started = time.monotonic()
    with _local_copy(source) as local:
        records = read_warmup_requests(local) if os.path.isdir(local) else []
        signatures = _check_serves(local, records, smoke_run=True)
        version = _free_version(export_dir, version)
        target = storage.join(export_dir, str(version))
        staging = _staging_dir(export_dir, version)  # exists already when export_dir is on gs://
        try:
            shutil.copytree(local, staging, dirs_exist_ok=True)
            _finalize(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    origin = source if storage.is_gcs(source) else os.path.abspath(source)
    metadata = {"source": origin, "signatures": signatures, "warmup_records": len(records)}
    return ExportResult(version, target, signatures, len(records), metadata, time.monotonic() - started)


@contextlib.contextmanager
def _local_copy(source: str) -> Iterator[str]:
    """`source` itself when local; a gs:// SavedModel downloaded to a temporary directory, removed after."""
    if not storage.is_gcs(source):
        yield source
        return
    with tempfile.TemporaryDirectory(prefix="tfship-import-") as local:
        storage.download_tree(source, local)
        yield local


def _free_version(export_dir: str, version: int | None) -> int:
    """`version`, or the next one above the versions in `export_dir`; ConfigError if it is taken."""
    existing = existing_versions(export_dir)
    chosen = version if version is not None else next_version(existing)
    if any(int(n) == chosen for n in existing):
        raise ConfigError(
            f"Invalid value for `version`: {chosen} already exists in {export_dir}. "
            "Pick another --version or omit it to take the next one."
        )
    return chosen


def _check_serves(path: str, records: list, smoke_run: bool = False) -> dict[str, str]:
    """Load `path` as TF Serving does and replay its warm-up `records`; its signatures' methods.

    `smoke_run` also runs `serving_default` (what validate and the canary send to) once on generated
    values, unless it takes strings: a model can load and still fail its first request (a naive
    Keras 3 save finds no variables only then). Other signatures are left to validate: TF Serving
    serves a model whose other signatures fail (its own half_plus_three declares a float input to
    a string tensor).
    Raises ModelError with the loader's reason, or naming the first record or signature that fails.
    """
    import numpy as np

    from tfship.saved_model import warmup
    from tfship.saved_model.loader import explain_run_error, load_session_model
    from tfship.steps.export.signatures import SERVING_DEFAULT
    from tfship.steps.validate.worker import concrete_shape, generate_values

    with load_session_model(path) as model:
        for index, record in enumerate(records):
            try:
                warmup.replay(model, record)
            except Exception as error:
                raise ModelError(f"The model at {path} fails warm-up record {index}: {error}") from error
        runnable = [sig for name, sig in model.signatures.items() if smoke_run and name == SERVING_DEFAULT
                    and all(spec.dtype != "string" for spec in sig.inputs.values())]
        rng = np.random.default_rng(0)
        for sig in runnable:
            feeds = {name: generate_values(spec.dtype, concrete_shape(spec.shape, 1), rng)
                     for name, spec in sig.inputs.items()}
            try:
                model.run(sig.name, feeds)
            except Exception as error:
                raise ModelError(f"The model at {path} fails its first request to {sig.name} the way "
                                 f"TF Serving runs it: {explain_run_error(error)}") from error
        return {name: sig.method_name for name, sig in model.signatures.items()}


def _staging_dir(export_dir: str, version: int) -> str:
    prefix = f"{STAGING_PREFIX}{version}-"
    if storage.is_gcs(export_dir):
        return tempfile.mkdtemp(prefix=f"tfship-export{prefix}")
    os.makedirs(export_dir, exist_ok=True)
    return os.path.join(export_dir, prefix + uuid.uuid4().hex[:12])


def _write_savedmodel(job: Any, staging: str, warmup_rows: int, warmup_traffic: str) -> tuple[dict[str, str], int]:
    """Save, fix method names, write warm-up records, then load and replay as TF Serving would."""
    import tensorflow as tf
    from tfship.saved_model import warmup
    from tfship.schema import graph_name
    from tfship.steps.export.signatures import SERVING_DEFAULT, ServingModule, example_method, example_signature_name

    schema = job.schema
    module = ServingModule(job.preprocessor, job.model, schema.raw_dtypes, schema.task, job.class_names,
                           {name: schema.raw_shape(name) for name in schema.vector_features})
    tf.saved_model.save(module, staging, signatures=module.signatures())
    input_names = {graph_name(name): name for name in schema.features if graph_name(name) != name}
    set_signature_names(staging, module.method_names(), {SERVING_DEFAULT: input_names})
    records = []
    if warmup_traffic:
        records = warmup.records_from_traffic(warmup_traffic)
        warmup.write_warmup_file(staging, records)
    elif warmup_rows:
        rows = job.heldout_rows(warmup_rows)
        if rows:
            records = warmup.build_records(
                rows, schema.raw_dtypes, example_signature_name(schema.task), example_method(schema.task)
            )
            warmup.write_warmup_file(staging, records)
    return _check_serves(staging, records), len(records)


def set_signature_names(saved_model_dir: str, method_names: dict[str, str],
                        input_names: dict[str, dict[str, str]] | None = None) -> None:
    """Rewrite signature method names and input keys in saved_model.pb.

    tf.saved_model.save writes method predict only, and TF Serving's Classify and Regress APIs
    refuse a signature whose method_name is not classify/regress. It also keys inputs by their
    placeholder names, which must be graph names: `input_names` ({signature: {graph name: feature
    name}}) gives clients the feature names back (`île`, not `ile_2ba3c877`). fingerprint.pb
    hashes saved_model.pb, so it is rewritten to match.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    path = os.path.join(saved_model_dir, "saved_model.pb")
    proto = saved_model_pb2.SavedModel()
    with open(path, "rb") as handle:
        proto.ParseFromString(handle.read())
    for meta_graph in proto.meta_graphs:
        for name, method in method_names.items():
            meta_graph.signature_def[name].method_name = method
        for name, renames in (input_names or {}).items():
            inputs = meta_graph.signature_def[name].inputs
            for internal, feature in renames.items():
                inputs[feature].CopyFrom(inputs[internal])
                del inputs[internal]
    with open(path, "wb") as handle:
        handle.write(proto.SerializeToString())
    fingerprint = os.path.join(saved_model_dir, "fingerprint.pb")
    try:
        from tensorflow.python.saved_model.pywrap_saved_model import fingerprinting

        data = fingerprinting.CreateFingerprintDef(saved_model_dir)
    except Exception:  # a private API: without it, drop the (optional) stale fingerprint
        if os.path.exists(fingerprint):
            os.remove(fingerprint)
        return
    with open(fingerprint, "wb") as handle:
        handle.write(data)


def _metadata(job: Any, version: int, signatures: dict[str, str], records: int) -> dict[str, Any]:
    import tensorflow as tf
    import tfship

    return {
        "format": METADATA_FORMAT,
        "version": version,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "tfship_version": tfship.__version__,
        "tensorflow_version": tf.__version__,
        "job_dir": job.job_dir,
        "checkpoint_step": int(job.step),
        "schema": job.schema.to_dict(),
        "class_names": list(job.class_names) if job.class_names is not None else None,
        "metrics": job.metrics,
        "fingerprints": job.fingerprints,
        "signatures": signatures,
        "warmup_records": records,
    }


def _finalize(staging: str, target: str) -> None:
    """Make the staged version visible in one step (see the module docstring for gs://)."""
    if storage.is_gcs(target):
        if storage.list_files(target):
            raise ConfigError(f"Invalid value for `version`: {target} already holds files.")
        files = storage.list_files(staging)
        last = [f for f in files if f == "saved_model.pb"]
        storage.upload_tree(staging, target, [f for f in files if f not in last])
        storage.upload_tree(staging, target, last)
        return
    try:
        os.rename(staging, target)  # atomic; fails if `target` appeared meanwhile and is not empty
    except OSError as error:
        raise ConfigError(
            f"Cannot create version {target}: {error.strerror}. Another export may have taken it; "
            "run again without --version to take the next one."
        ) from error
    fd = os.open(os.path.dirname(target) or ".", os.O_RDONLY)
    try:
        os.fsync(fd)  # make the rename durable
    finally:
        os.close(fd)
