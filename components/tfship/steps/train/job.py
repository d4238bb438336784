"""The job directory that `tfship train` writes and `tfship export` reads.

```
<job-dir>/
  tfship_job.json        what the run was: config, schema, learned statistics, fingerprints
  vocabularies/*.txt     one vocabulary per categorical feature, `_label.txt` for the classes
  checkpoints/           tf.train.CheckpointManager files; `checkpoint` is the commit pointer
  logs/train/            TensorBoard event files
  metrics.json           final metrics (written when training completes)
```
A gs:// job directory is mirrored in a local cache directory (see `local_mirror`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from tfship import storage
from tfship.errors import ModelError
from tfship.schema import graph_name

JOB_FILE = "tfship_job.json"
METRICS_FILE = "metrics.json"
VOCABULARY_DIR = "vocabularies"
CHECKPOINT_DIR = "checkpoints"
LOGS_ROOT = "logs"  # uploaded to a gs:// job dir as a whole
LOG_DIR = os.path.join(LOGS_ROOT, "train")
LABEL_VOCABULARY = "_label"  # the classes' vocabulary; no feature's graph name starts with "_"


def vocabulary_file_name(name: str) -> str:
    """The vocabulary file of a feature (or of the label's classes): a safe file name for any column."""
    return f"{name if name == LABEL_VOCABULARY else graph_name(name)}.txt"


def local_mirror(job_dir: str) -> str:
    """The local directory where a job's files are written first (the job dir itself if local)."""
    return storage.local_cache_dir(job_dir, "jobs") if storage.is_gcs(job_dir) else job_dir


def read_job_file(job_dir: str) -> dict[str, Any] | None:
    """The job's description, or None if the job directory has not been started."""
    uri = storage.join(job_dir, JOB_FILE)
    if not storage.exists(uri):
        return None
    try:
        return json.loads(storage.read_bytes(uri))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelError(f"{uri} is not a readable tfship job description ({error}); "
                         "the job directory is damaged: train again in a new --job-dir.") from None


def fetch_vocabularies(job_dir: str, job: dict[str, Any]) -> dict[str, str]:
    """Local paths of the job's vocabulary files (downloaded from gs:// when needed)."""
    local = os.path.join(local_mirror(job_dir), VOCABULARY_DIR)
    names = [*job["stats"]["vocabularies"], *([LABEL_VOCABULARY] if job["stats"]["classes"] is not None else [])]
    paths = {name: os.path.join(local, vocabulary_file_name(name)) for name in names}
    missing = [os.path.basename(p) for p in paths.values() if not os.path.exists(p)]
    if missing:
        storage.download_tree(storage.join(job_dir, VOCABULARY_DIR), local, missing)
    return paths


@dataclass
class TrainedJob:
    """A trained job, ready to export: preprocessing and model with restored weights."""

    job_dir: str
    schema: Any  # tfship.schema.Schema
    preprocessor: Any  # tfship.steps.train.preprocessing.Preprocessor
    model: Any  # keras.Model
    class_names: list[str] | None
    step: int
    metrics: dict[str, Any]
    fingerprints: dict[str, str]
    data: str

    def heldout_rows(self, n: int) -> list[dict[str, Any]]:
        """Up to `n` raw held-out rows (feature name -> value), e.g. for warm-up requests."""
        from tfship.steps.train.data import read_rows, resolve_files

        files = resolve_files(self.data, schema=self.schema)
        job = read_job_file(self.job_dir) or {}
        rows = read_rows(files, self.schema, job["config"]["holdout_every"], "heldout", n)
        return [{k: v for k, v in row.items() if k != self.schema.label} for row in rows]


def check_model_source(job_dir: str, job: dict[str, Any], allow_model_change: bool) -> None:
    """Refuse to run a `--model` whose code is not the code the job was trained with.

    A job directory is code: its `tfship_job.json` names a `module:function` that export imports
    and calls. The module's source digest is recorded at train start and compared here, before
    the module is imported; `allow_model_change` accepts a deliberate change.
    """
    from tfship.steps.train.model_families import model_source_digest

    spec = job["config"]["model"]
    recorded = job["fingerprints"].get("model_source")
    if allow_model_change or recorded == model_source_digest(spec):
        return
    was = f"its source was {recorded}" if recorded else "its source was not recorded"
    raise ModelError(
        f"--job-dir {job_dir}: --model {spec!r} is not the code the job was trained with ({was} at train "
        "start); export imports and runs it. Check the change, then pass --allow-model-change."
    )


def load_trained_job(job_dir: str, allow_model_change: bool = False) -> TrainedJob:
    """Rebuild the model of `job_dir` and restore the latest valid checkpoint's weights.

    Refuses (ModelError) a model function whose source changed since training, unless
    `allow_model_change` (see `check_model_source`).
    """
    import tensorflow as tf

    from tfship.steps.train.checkpointing import CheckpointStore, variables_of
    from tfship.steps.train.data import FeatureStats
    from tfship.steps.train.model_families import ModelContext, build_model
    from tfship.steps.train.preprocessing import Preprocessor
    from tfship.schema import Schema

    storage.check_uri(job_dir, "--job-dir")
    job = read_job_file(job_dir)
    if job is None:
        raise ModelError(f"{job_dir} is not a tfship job directory: it has no {JOB_FILE} (run `tfship train`).")
    check_model_source(job_dir, job, allow_model_change)
    schema = Schema.from_dict(job["schema"])
    stats = FeatureStats.from_dict(job["stats"])
    preprocessor = Preprocessor(schema, stats, fetch_vocabularies(job_dir, job))
    config = job["config"]
    ctx = ModelContext(schema, preprocessor.vocabulary_sizes, preprocessor.num_outputs, config["hparams"])
    model = build_model(config["model"], ctx)
    checkpoint = tf.train.Checkpoint(step=tf.Variable(0, dtype=tf.int64), model=variables_of(model))
    store = CheckpointStore(
        checkpoint,
        os.path.join(local_mirror(job_dir), CHECKPOINT_DIR),
        storage.join(job_dir, CHECKPOINT_DIR) if storage.is_gcs(job_dir) else None,
    )
    if store.restore_latest(partial=True) is None:
        raise ModelError(f"{job_dir} has no readable checkpoint to export.")
    metrics = read_metrics(job_dir) if storage.exists(storage.join(job_dir, METRICS_FILE)) else {}
    return TrainedJob(
        job_dir=job_dir,
        schema=schema,
        preprocessor=preprocessor,
        model=model,
        class_names=stats.classes,
        step=int(checkpoint.step.numpy()),
        metrics=metrics,
        fingerprints=job["fingerprints"],
        data=config["data"],
    )


def read_metrics(job_dir: str) -> dict[str, Any]:
    """The final metrics a completed training run wrote (`<job_dir>/metrics.json`)."""
    return json.loads(storage.read_text(storage.join(job_dir, METRICS_FILE)))


def numeric_metrics(job_dir: str) -> dict[str, float]:
    """`read_metrics` less what is not a number (what a KFP `Metrics` artifact can log)."""
    return {key: float(value) for key, value in read_metrics(job_dir).items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}
