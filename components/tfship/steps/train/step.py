"""The train step: stream the data, train, checkpoint every K steps, resume exactly.

A run is keyed on its job directory: re-running with the same `job_dir` (a retry after
preemption, a new machine, `kfp set_retry`, Airflow retries) restores the latest valid checkpoint
and continues at the next step with the same batches, so with a fixed seed a killed-and-resumed
run ends with the same weights as an uninterrupted one (op determinism is on).

    import tfship
    result = tfship.train(data="rows.csv", schema="schema.yaml", job_dir="/tmp/job", steps=500)
    result.metrics["heldout_accuracy"]
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from tfship import __version__, storage
from tfship.steps.train import job
from tfship.errors import ConfigError, DataError, Preempted

# Settings that must not change when a job directory is resumed.
# Each changes the numbers or the data order, so the checkpointed state would not continue the run.
_RESUME_KEYS = ("model", "hparams", "batch_size", "learning_rate", "seed", "holdout_every", "shuffle_buffer",
                "mixed_precision", "jit_compile", "input_fn")


def _positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"Invalid value for `{name}`: {value!r}. Expected an integer >= 1.")


@dataclass(frozen=True)
class TrainConfig:
    """Everything `tfship train` needs; invalid values are rejected when the object is built.

    Args:
        data: CSV or TFRecord file, directory or glob; local or gs://.
        schema: the schema YAML (see `tfship.schema`).
        job_dir: where checkpoints, logs and metrics go; local or gs://. The run's identity:
            the same job_dir resumes.
        model: `mlp`, `linear`, or `package.module:function` (see `tfship.steps.train.model_families`).
        steps: total optimizer steps (a resumed run counts the steps already done).
        checkpoint_every: save every K steps (and at the last step, and on SIGTERM).
        keep_checkpoints: how many recent checkpoints to keep.
        batch_size: global batch size (split across replicas).
        learning_rate: Adam's learning rate.
        seed: seeds shuffling and initialisation; same seed, same weights.
        hparams: model hyper-parameters, e.g. {"hidden_units": [64, 32], "dropout": 0.1}.
        holdout_every: every N-th row of each file is held out for evaluation.
        shuffle_buffer: rows in the shuffle buffer (memory and checkpoint size grow with it).
        log_every: steps between progress lines and TensorBoard scalars.
        async_checkpoints: write the weights in the background (the input position is always
            written synchronously); False blocks training until each checkpoint is on disk.
        mixed_precision: compute in half precision with float32 variables (Keras' `mixed_float16`
            with dynamic loss scaling on a GPU, `mixed_bfloat16` on a CPU); the loss and the
            exported SavedModel stay float32.
        jit_compile: compile each training step with XLA (`tf.function(jit_compile=True)`).
        input_fn: `package.module:function`, a team's own input pipeline producing the examples
            of each split (see `tfship.steps.train.input_pipeline`); "" = tfship's CSV/TFRecord reader.
    """

    data: str
    schema: str
    job_dir: str
    model: str = "mlp"
    steps: int = 1000
    checkpoint_every: int = 100
    keep_checkpoints: int = 3
    batch_size: int = 64
    learning_rate: float = 1e-3
    seed: int = 0
    hparams: Mapping[str, Any] = field(default_factory=dict)
    holdout_every: int = 5
    shuffle_buffer: int = 10_000
    log_every: int = 50
    async_checkpoints: bool = True
    mixed_precision: bool = False
    jit_compile: bool = False
    input_fn: str = ""

    def __post_init__(self) -> None:
        storage.check_uri(self.data, "--data")
        storage.check_uri(self.schema, "--schema")
        storage.check_uri(self.job_dir, "--job-dir")
        for name in ("steps", "checkpoint_every", "keep_checkpoints", "batch_size", "shuffle_buffer", "log_every"):
            _positive(name, getattr(self, name))
        if not isinstance(self.holdout_every, int) or self.holdout_every < 2:
            raise ConfigError(f"Invalid value for `holdout_every`: {self.holdout_every!r}. Expected an integer >= 2.")
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            raise ConfigError(f"Invalid value for `learning_rate`: {self.learning_rate!r}. Expected a number > 0.")
        if not isinstance(self.seed, int):
            raise ConfigError(f"Invalid value for `seed`: {self.seed!r}. Expected an integer.")
        for name in ("async_checkpoints", "mixed_precision", "jit_compile"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"Invalid value for `{name}`: {getattr(self, name)!r}. Expected True or False.")
        if self.input_fn and ":" not in self.input_fn:
            raise ConfigError(f"Invalid value for `input_fn`: {self.input_fn!r}. Expected 'package.module:function'.")
        object.__setattr__(self, "hparams", dict(self.hparams))


@dataclass(frozen=True)
class TrainResult:
    """What a finished run reports; `metrics` is also in `<job_dir>/metrics.json`."""

    job_dir: str
    step: int
    resumed_from: int | None
    checkpoint: str
    metrics: dict[str, Any]


def train(data: str, schema: str, job_dir: str, **options: Any) -> TrainResult:
    """Train a model (see `TrainConfig` for the options); resumes if `job_dir` holds a run."""
    return run_training(TrainConfig(data=data, schema=schema, job_dir=job_dir, **options))


def _code_fingerprint(model_spec: str) -> str:
    from tfship.steps.train.model_families import resolve_model_fn

    digest = hashlib.sha256(f"tfship {__version__}\n".encode())
    function = resolve_model_fn(model_spec)
    try:
        import inspect

        digest.update(inspect.getsource(function).encode())
    except (OSError, TypeError):
        digest.update(model_spec.encode())
    return digest.hexdigest()


def settings_warnings(config: TrainConfig, train_rows: int, heldout_rows: int) -> list[str]:
    """Settings that contradict the data: legal, but slow or surprising (pure; one line each)."""
    warnings = []
    if config.batch_size > train_rows:
        warnings.append(
            f"--batch-size {config.batch_size} is larger than the {train_rows} training row(s): each batch "
            "repeats rows, so every step costs more than a whole pass over the data."
        )
    if config.checkpoint_every > config.steps:
        warnings.append(
            f"--checkpoint-every {config.checkpoint_every} is more than --steps {config.steps}: "
            "only the last step is checkpointed."
        )
    if heldout_rows == 0:
        warnings.append(
            f"No row is held out (each file has fewer than --holdout-every {config.holdout_every} rows): "
            "the held-out metrics will be empty."
        )
    return warnings


def _prepare_job(config: TrainConfig, is_chief: bool) -> tuple[Any, Any, Any, dict[str, str], dict | None]:
    """Load or create the job description: schema, data files, statistics, vocabulary files.

    Every start analyses the data (validating every row). A new job returns the description to
    record (written by `_record_job` once the model is built, so a model that cannot be built
    leaves no job behind that would refuse the corrected settings); a resumed job must see the
    same data (the iterator position in its checkpoint refers to it) and reuses the recorded
    statistics.
    """
    import tempfile

    from tfship.steps.train.data import FeatureStats, analyze, resolve_files
    from tfship.steps.train.input_pipeline import load_input_fn
    from tfship.steps.train.model_families import model_source_digest
    from tfship.steps.train.preprocessing import write_vocabularies
    from tfship.schema import Schema, load_schema

    schema = load_schema(config.schema)
    code_fingerprint = _code_fingerprint(config.model)  # also fails early on a --model that won't import
    if config.input_fn:
        load_input_fn(config.input_fn)  # likewise for an --input that won't import
    model_source = model_source_digest(config.model)
    files = resolve_files(config.data, schema=schema)
    # Every start validates every row, so bad data fails here, before any checkpoint is touched.
    stats = analyze(files, schema, config.holdout_every)
    existing = job.read_job_file(config.job_dir)
    wanted = {k: v for k, v in asdict(config).items() if k in _RESUME_KEYS}
    if existing is not None:
        # A job recorded before a setting existed ran with that setting's default.
        defaults = {f.name: f.default for f in fields(TrainConfig)}
        recorded = {k: existing["config"].get(k, defaults[k]) for k in _RESUME_KEYS}
        changed = [f"{k}: {recorded[k]!r} -> {wanted[k]!r}" for k in _RESUME_KEYS if recorded[k] != wanted[k]]
        if Schema.from_dict(existing["schema"]) != schema:
            changed.append("the schema")
        if existing["fingerprints"]["data"] != stats.fingerprint:
            changed.append("the data (its content fingerprint differs)")
        if changed:
            raise ConfigError(
                f"--job-dir {config.job_dir} holds a run with other settings ({'; '.join(changed)}). "
                "Use a new --job-dir, or the original settings to resume."
            )
        # The recorded statistics, so the rebuilt model is exactly the one checkpointed.
        stats = FeatureStats.from_dict(existing["stats"])
        return schema, files, stats, job.fetch_vocabularies(config.job_dir, existing), None
    local = job.local_mirror(config.job_dir) if is_chief else tempfile.mkdtemp(prefix="tfship-worker-")
    if os.path.exists(local) and not os.path.isdir(local):
        raise ConfigError(f"--job-dir {config.job_dir} is a file; expected a directory (new, or a tfship job's).")
    vocabulary_files = write_vocabularies(stats, os.path.join(local, job.VOCABULARY_DIR))
    description = {
        "tfship_version": __version__,
        "config": {**asdict(config), "hparams": dict(config.hparams)},
        "schema": schema.to_dict(),
        "stats": stats.to_dict(),
        "fingerprints": {"data": stats.fingerprint, "code": code_fingerprint, "model_source": model_source},
    }
    return schema, files, stats, vocabulary_files, description if is_chief else None


def _record_job(config: TrainConfig, description: dict[str, Any]) -> None:
    """Write the new job's description, the commit mark of its statistics and vocabularies."""
    local = job.local_mirror(config.job_dir)
    if storage.is_gcs(config.job_dir):
        storage.upload_tree(os.path.join(local, job.VOCABULARY_DIR), storage.join(config.job_dir, job.VOCABULARY_DIR))
    # Written last: its presence means the job's statistics and vocabularies are complete.
    storage.write_text(storage.join(config.job_dir, job.JOB_FILE), json.dumps(description, indent=2))


def run_training(config: TrainConfig) -> TrainResult:
    """Run (or resume) training as configured; raises `Preempted` after a SIGTERM checkpoint."""
    import keras
    import tensorflow as tf

    from tfship.steps.train.checkpointing import CheckpointStore, variables_of
    from tfship.steps.train.distribute import cluster_role, strategy_from_environment
    from tfship.steps.train.preprocessing import Preprocessor
    from tfship.progress import StepProgress

    role = cluster_role()
    strategy = strategy_from_environment(role)  # first: MultiWorkerMirroredStrategy must precede other ops
    tf.config.experimental.enable_op_determinism()
    progress = StepProgress(config.steps, config.log_every)

    schema, files, stats, vocabulary_files, new_job = _prepare_job(config, role.is_chief)
    for warning in settings_warnings(config, stats.train_rows, stats.heldout_rows):
        progress.event("warning", message=warning)
    preprocessor = Preprocessor(schema, stats, vocabulary_files)
    classification = schema.task == "classification"

    model, optimizer, step_counter = _build_model(config, schema, preprocessor, strategy)
    # Built (and an `--input` function's output checked) before the job is recorded, so a
    # refused pipeline leaves no job behind that would hold on to the settings.
    train_ds = _training_input(config, files, schema, preprocessor, role)
    # The input position is checkpointed with the iterator where TensorFlow can save it (one
    # worker, no Python in the pipeline). MultiWorkerMirroredStrategy's distributed iterator is
    # not saveable, nor is a pipeline running Python: there the position is a function of the
    # step, and the deterministic stream is skipped to it on resume.
    save_iterator = role.num_workers == 1 and _iterator_saveable(config, train_ds, files, schema, progress)
    if new_job is not None:
        _record_job(config, new_job)
    weights = tf.train.Checkpoint(step=step_counter, model=variables_of(model), optimizer=variables_of(optimizer))
    position = None
    if save_iterator:
        iterator = iter(strategy.experimental_distribute_dataset(train_ds))
        position = tf.train.Checkpoint(iterator=iterator)
    mirror = job.local_mirror(config.job_dir)
    store = CheckpointStore(
        weights,
        os.path.join(mirror, job.CHECKPOINT_DIR),
        storage.join(config.job_dir, job.CHECKPOINT_DIR) if storage.is_gcs(config.job_dir) else None,
        max_to_keep=config.keep_checkpoints,
        is_chief=role.is_chief,
        position=position,
        async_write=config.async_checkpoints,
    )
    restored = store.restore_latest()
    start = int(step_counter.numpy())
    if not save_iterator:
        iterator = iter(strategy.experimental_distribute_dataset(train_ds.skip(start)))
    resumed_from = start if restored else None
    progress.event("start", job_dir=config.job_dir, steps=config.steps, resumed_from=resumed_from,
                   replicas=strategy.num_replicas_in_sync, workers=role.num_workers,
                   precision=model.dtype_policy.name, jit_compile=config.jit_compile)

    loss_object = (
        keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
        if classification
        else keras.losses.MeanSquaredError(reduction=None)
    )
    train_step = _train_step_function(model, optimizer, strategy, loss_object, classification, config.batch_size,
                                      config.jit_compile)

    writer = (
        tf.summary.create_file_writer(os.path.join(mirror, job.LOG_DIR))
        if role.is_chief
        else tf.summary.create_noop_writer()
    )
    last_path, elapsed = _run_steps(config, role, progress, store, step_counter, writer, train_step, iterator,
                                    start, restored)

    metrics = _evaluate(model, preprocessor, files, schema, config, loss_object, classification)
    metrics.update(
        step=config.steps,
        train_rows=stats.train_rows,
        heldout_rows=stats.heldout_rows,
        steps_per_sec=round((config.steps - start) / elapsed, 3) if config.steps > start and elapsed > 0 else None,
    )
    if role.is_chief:
        with writer.as_default():
            for name, value in metrics.items():
                if name.startswith("heldout_") and isinstance(value, float):
                    tf.summary.scalar(name, value, step=config.steps)
        writer.flush()
        _upload_logs(config.job_dir)
        storage.write_text(storage.join(config.job_dir, job.METRICS_FILE), json.dumps(metrics, indent=2))
    progress.event("done", **metrics)
    return TrainResult(config.job_dir, config.steps, resumed_from, last_path, metrics)


def _run_steps(config: TrainConfig, role: Any, progress: Any, store: Any, step_counter: Any, writer: Any,
               train_step: Callable[[Any], Any], iterator: Any, start: int, restored: str | None
               ) -> tuple[str, float]:
    """Steps `start + 1 .. config.steps`: log, checkpoint every K steps, and on SIGTERM checkpoint
    and raise `Preempted`. Returns the last checkpoint's path and the seconds the steps took."""
    import tensorflow as tf

    from tfship.steps.train.checkpoint_policy import FixedIntervalPolicy
    from tfship.steps.train.preemption import watch_sigterm

    policy = FixedIntervalPolicy(config.checkpoint_every, config.steps)

    def announce(path: str | None) -> str | None:
        """Report a checkpoint once it is durable (on gs://: uploaded)."""
        if path:
            progress.event("checkpoint", step=int(path.rsplit("-", 1)[1]), path=path)
        return path

    def save(step: int, wait: bool = False) -> str:
        """Start the checkpoint of `step` (weights async); with `wait`, return once it is durable."""
        began = time.monotonic()
        step_counter.assign(step)
        writer.flush()
        announce(store.sync())
        path = store.save(step)
        progress.event("save", step=step, blocked_seconds=round(time.monotonic() - began, 3))
        if wait:
            announce(store.sync())
        if role.is_chief:
            _upload_logs(config.job_dir)
        return path

    last_path = restored or ""
    began = time.monotonic()
    with watch_sigterm() as watcher:
        for step in range(start + 1, config.steps + 1):
            try:
                loss = train_step(iterator)
            except tf.errors.InvalidArgumentError as error:
                raise DataError(f"Reading --data {config.data} failed at step {step}: "
                                f"{error.message.splitlines()[0]}") from error
            except tf.errors.UnimplementedError as error:
                refusal = _jit_refusal(config, error.message)
                if refusal is None:
                    raise
                raise ConfigError(refusal) from error
            if step % config.log_every == 0 or step == config.steps:
                value = float(loss)
                with writer.as_default():
                    tf.summary.scalar("loss", value, step=step)
                elapsed = time.monotonic() - began
                progress.update(step, loss=value, steps_per_sec=(step - start) / elapsed, elapsed=elapsed)
            announce(store.poll())
            if policy.should_save(step):
                last_path = save(step)
            if watcher.preempted:
                if policy.should_save(step):  # saved just now: wait until it is durable
                    last_path = announce(store.sync()) or last_path
                else:
                    last_path = save(step, wait=True)
                progress.event("preempted", step=step, checkpoint=last_path)
                if role.num_workers == 1 or role.is_chief:
                    raise Preempted(
                        f"SIGTERM at step {step}: checkpoint {last_path} saved; re-run with the same "
                        f"--job-dir {config.job_dir} to resume."
                    )
                raise Preempted(f"SIGTERM at step {step}; the chief's checkpoint is the one to resume.")
        announce(store.sync())
    elapsed = time.monotonic() - began
    if start >= config.steps and not last_path:
        last_path = store.latest or ""
    return last_path, elapsed


def _upload_logs(job_dir: str) -> None:
    """Mirror the TensorBoard logs to a gs:// job dir (a local job dir writes them in place)."""
    if storage.is_gcs(job_dir):
        storage.upload_tree(os.path.join(job.local_mirror(job_dir), job.LOGS_ROOT),
                            storage.join(job_dir, job.LOGS_ROOT))


def mixed_precision_policy(enabled: bool, gpus: int) -> str:
    """The Keras dtype policy for `--mixed-precision` on this machine (pure).

    float16 is the fast half type of NVIDIA GPUs but needs loss scaling; CPUs have no fast
    float16 and compute bfloat16 (same exponent range as float32, so no loss scaling).
    """
    if not enabled:
        return "float32"
    return "mixed_float16" if gpus else "mixed_bfloat16"


def _build_model(config: TrainConfig, schema: Any, preprocessor: Any, strategy: Any) -> tuple[Any, Any, Any]:
    """The model, its built optimizer and the step counter, created under the strategy.

    With mixed precision the model's layers are built under the mixed policy (a layer keeps the
    policy it was built with; the process-wide policy is restored afterwards, so a notebook's
    next model is not affected). Variables stay float32 either way, so the checkpoint is the same
    shape and `tfship export` rebuilds the model in float32 for serving. Under `mixed_float16`
    the optimizer is wrapped in a `LossScaleOptimizer`, as `Model.compile` does.
    """
    import keras
    import tensorflow as tf

    from tfship.steps.train.model_families import ModelContext, build_model

    policy = mixed_precision_policy(config.mixed_precision, len(tf.config.list_physical_devices("GPU")))
    previous = keras.mixed_precision.global_policy()
    # Seeded right before the model is built: storage clients and retries may draw from Python's
    # global random generator, and initial weights must not depend on where the data lives.
    keras.utils.set_random_seed(config.seed)
    keras.mixed_precision.set_global_policy(policy)
    try:
        with strategy.scope():
            ctx = ModelContext(schema, preprocessor.vocabulary_sizes, preprocessor.num_outputs, config.hparams)
            model = build_model(config.model, ctx)
            optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
            if policy == "mixed_float16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            optimizer.build(model.trainable_variables)
            step_counter = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return model, optimizer, step_counter


def _raw_batches(config: TrainConfig, files: Any, schema: Any, split: str, batch_size: int) -> Any:
    """Batches of (raw feature dict, raw label) of `split`: tfship's reader, or the `--input` function's."""
    from tfship.steps.train import input_pipeline
    from tfship.steps.train.data import make_dataset

    if not config.input_fn:
        return make_dataset(files, schema, batch_size, config.holdout_every, split, config.seed, config.shuffle_buffer)
    return input_pipeline.batches(_input_examples(config, files, schema, split), schema, batch_size, split,
                                  config.seed, config.shuffle_buffer)


def _input_examples(config: TrainConfig, files: Any, schema: Any, split: str) -> Any:
    """The `--input` function's checked examples of `split`."""
    from tfship.steps.train import input_pipeline

    context = input_pipeline.InputContext(schema, split, config.seed, files.paths, config.holdout_every)
    return input_pipeline.examples(config.input_fn, context)


def _iterator_saveable(config: TrainConfig, train_ds: Any, files: Any, schema: Any, progress: Any) -> bool:
    """Whether the training iterator's position can be checkpointed; for an `--input` pipeline
    that TensorFlow cannot save, says so in one line, or refuses one that is not deterministic."""
    from tfship.steps.train import input_pipeline

    reason = input_pipeline.unsaveable_reason(config.input_fn, train_ds) if config.input_fn else None
    if reason is None:
        return True
    if not input_pipeline.repeats_itself(lambda: _input_examples(config, files, schema, "train")):
        raise ConfigError(
            f"--input {config.input_fn!r}: its dataset cannot be checkpointed ({reason}) and two datasets it "
            "makes give different examples, so no resume could be exact. Seed its randomness with ctx.seed, or build "
            "it from tf.data operations only."
        )
    progress.event("warning", message=(
        f"--input {config.input_fn!r}: its dataset cannot be checkpointed ({reason}); a resume re-reads it "
        "from the start and skips the batches already trained on (exact: two datasets it made gave the same examples)."))
    return False


def _training_input(config: TrainConfig, files: Any, schema: Any, preprocessor: Any, role: Any) -> Any:
    """The endless, shuffled stream of preprocessed training batches."""
    import tensorflow as tf

    def encode(features: dict[str, tf.Tensor], label: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        return preprocessor(features), preprocessor.encode_label(label)

    batches = _raw_batches(config, files, schema, "train", config.batch_size).map(
        encode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if role.num_workers > 1:
        # Every worker reads the whole stream and keeps its share of each global batch.
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        batches = batches.with_options(options)
    return batches


def _train_step_function(model: Any, optimizer: Any, strategy: Any, loss_object: Any, classification: bool,
                         global_batch_size: int, jit_compile: bool = False) -> Any:
    """One optimizer step on the next batch of an iterator, across the strategy's replicas.

    With `jit_compile` the replica's step (forward, gradients, update) is compiled by XLA, as
    `Model.compile(jit_compile=True)` does; reading the iterator stays outside, since XLA cannot
    compile tf.data's ops. The outputs are cast to float32 before the loss: under mixed precision
    a model whose last layer computes in half precision still gets a float32 softmax and loss
    (Keras' guide), and for float32 models the cast is a no-op. The loss is scaled and the
    gradients unscaled by a `LossScaleOptimizer` (`scale_loss` is the identity otherwise).
    """
    import tensorflow as tf

    def replica_step(features: dict[str, tf.Tensor], labels: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            outputs = tf.cast(model(features, training=True), tf.float32)
            targets = labels if classification else tf.reshape(labels, [-1, 1])
            loss = tf.nn.compute_average_loss(loss_object(targets, outputs), global_batch_size=global_batch_size)
            scaled = optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    if jit_compile:
        replica_step = tf.function(replica_step, jit_compile=True)

    @tf.function
    def train_step(batches: Any) -> tf.Tensor:
        features, labels = next(batches)
        per_replica = strategy.run(replica_step, args=(features, labels))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return train_step


def _jit_refusal(config: TrainConfig, message: str) -> str | None:
    """The one-line refusal for a step XLA cannot compile deterministically (None: another error).

    tfship keeps TensorFlow's op determinism on (exact resume needs it), and XLA has no
    deterministic kernel for some gradients (max pooling's, in TF 2.21): such a model cannot
    train with `--jit`.
    """
    reason = next((line.strip() for line in message.splitlines() if "deterministic XLA" in line), None)
    if not config.jit_compile or reason is None:
        return None
    return (f"--jit cannot compile this model's training step with op determinism on, which exact resume "
            f"needs: {reason} Train it without --jit (in a new --job-dir: this one records --jit).")


def _evaluate(model, preprocessor, files, schema, config, loss_object, classification) -> dict[str, Any]:
    """Loss and the task's metric on the held-out rows (accuracy, or MAE and RMSE)."""
    import tensorflow as tf

    heldout = _raw_batches(config, files, schema, "heldout", 256)
    total = count = correct = abs_error = sq_error = 0.0
    for features, labels in heldout:
        outputs = tf.cast(model(preprocessor(features), training=False), tf.float32)
        targets = preprocessor.encode_label(labels)
        if classification:
            total += float(tf.reduce_sum(loss_object(targets, outputs)))
            correct += float(tf.reduce_sum(tf.cast(tf.equal(tf.argmax(outputs, -1), targets), tf.float32)))
        else:
            error = tf.reshape(outputs, [-1]) - targets
            total += float(tf.reduce_sum(tf.square(error)))
            abs_error += float(tf.reduce_sum(tf.abs(error)))
            sq_error += float(tf.reduce_sum(tf.square(error)))
        count += float(tf.shape(labels)[0])
    if count == 0:
        return {"heldout_loss": None}
    metrics: dict[str, Any] = {"heldout_loss": total / count}
    if classification:
        metrics["heldout_accuracy"] = correct / count
    else:
        metrics["heldout_mae"] = abs_error / count
        metrics["heldout_rmse"] = (sq_error / count) ** 0.5
    return metrics
