"""Checkpoints that survive preemption: written locally, committed atomically, mirrored to gs://.

What is saved: the step counter, every model and optimizer variable, and the tf.data iterator's
position, so a resumed run continues on exactly the batch it would have read (Keras'
BackupAndRestore resumes at epoch granularity; this resumes at the step).

Two checkpoints per step, because they need different writes:
- the weights (step, model, optimizer: large) are written asynchronously
  (`CheckpointOptions(enable_async=True)`), so training goes on while they reach the disk;
- the input position (the iterator: small) is written synchronously, into `input/`. Saved in
  the same checkpoint as async weights, TensorFlow changes the data order and resume is no
  longer exact (observed with TensorFlow 2.21); a separate synchronous save keeps
  it exact.
Restore takes the newest weights checkpoint whose input position of the same step exists.

Keras 3 variables are checkpointed through their backing `tf.Variable` (`v.value`): a
`tf.train.Checkpoint` holding a Keras model breaks on the second async save, and the backing
variables restore into the Keras ones.

Atomicity: `tf.train.CheckpointManager` writes a checkpoint's files first and the `checkpoint`
state file last, by an atomic rename (for async writes, from the write's completion callback),
so a crash mid-write leaves the pointer on the previous complete checkpoint. On gs:// the same
order holds: the files are uploaded once the write is complete, then the state file (one object
write, atomic on GCS) which is the commit marker; a resume reads the remote state file and
downloads only what it names. Restoring falls back to older checkpoints if the newest cannot be
read.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile

import tensorflow as tf

from tfship import storage

log = logging.getLogger(__name__)

STATE_FILE = "checkpoint"
PREFIX = "ckpt"
INPUT_DIR = "input"
INPUT_PREFIX = "input"


def variables_of(keras_object) -> list[tf.Variable]:
    """The backing tf.Variables of a Keras 3 model or optimizer, in a stable order."""
    return [v.value if hasattr(v, "value") else v for v in keras_object.variables]


def _step_of(path: str) -> int:
    return int(path.rsplit("-", 1)[1])


class CheckpointStore:
    """Weights (async) and input position (sync) checkpoints in a local dir, mirrored to `remote_dir`.

    Every worker restores from the job's checkpoints; only the chief writes them. The other
    MultiWorkerMirroredStrategy workers must still take part in each save (its collectives), so
    they save into a private scratch directory that nobody reads.

    Args:
        weights: a checkpoint of the step counter, model and optimizer variables.
        local_dir: where checkpoints are written first (the job dir's `checkpoints/` if local).
        remote_dir: the gs:// directory they are mirrored to, or None.
        max_to_keep: recent checkpoints kept, locally and remotely.
        is_chief: whether this process writes the job's checkpoints.
        position: a checkpoint of the input iterator, saved synchronously beside the weights.
        async_write: write the weights in the background (`enable_async`).
    """

    def __init__(
        self,
        weights: tf.train.Checkpoint,
        local_dir: str,
        remote_dir: str | None = None,
        max_to_keep: int = 3,
        is_chief: bool = True,
        position: tf.train.Checkpoint | None = None,
        async_write: bool = True,
    ) -> None:
        self.weights = weights
        self.position = position
        self.remote_dir = remote_dir
        self.local_dir = local_dir
        self.max_to_keep = max_to_keep
        self.is_chief = is_chief
        self.async_write = async_write
        self._pending: str | None = None
        self._scratch = None if is_chief else tempfile.mkdtemp(prefix="tfship-worker-ckpt-")
        os.makedirs(local_dir, exist_ok=True)
        self._open_managers()

    def _open_managers(self) -> None:
        root = self.local_dir if self.is_chief else self._scratch
        self.manager = self._manager(self.weights, self.local_dir, PREFIX, self.max_to_keep)
        self.writer = self._manager(self.weights, root, PREFIX, self.max_to_keep)
        if self.position is not None:
            # One more than the weights: the position of every kept weights step stays available.
            self.positions = self._manager(self.position, os.path.join(self.local_dir, INPUT_DIR), INPUT_PREFIX, self.max_to_keep + 1)
            self.position_writer = self._manager(self.position, os.path.join(root, INPUT_DIR), INPUT_PREFIX, self.max_to_keep + 1)

    @staticmethod
    def _manager(checkpoint: tf.train.Checkpoint, directory: str, prefix: str, keep: int) -> tf.train.CheckpointManager:
        return tf.train.CheckpointManager(checkpoint, directory=directory, max_to_keep=keep, checkpoint_name=prefix)

    def pull(self) -> None:
        """Make the local directory hold the remote's latest committed checkpoint (new machine)."""
        if not self.remote_dir or not storage.exists(storage.join(self.remote_dir, STATE_FILE)):
            return
        state = storage.read_text(storage.join(self.remote_dir, STATE_FILE))
        match = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', state, re.MULTILINE)
        if not match:
            return
        name = os.path.basename(match.group(1))
        local_state = tf.train.get_checkpoint_state(self.local_dir)
        if local_state and os.path.basename(local_state.model_checkpoint_path) == name:
            return
        position = f"{INPUT_DIR}/{INPUT_PREFIX}-{_step_of(name)}."
        files = [f for f in storage.list_files(self.remote_dir) if f.startswith((f"{name}.", position))]
        # Data files first, state files (the commit markers) last, as on upload. Older
        # checkpoints the state names stay remote: restore falls back to them only if needed.
        state_files = [f"{INPUT_DIR}/{STATE_FILE}"] if self.position is not None else []
        storage.download_tree(self.remote_dir, self.local_dir, [*files, *state_files, STATE_FILE])
        self._open_managers()

    def restore_latest(self, partial: bool = False) -> str | None:
        """Restore the newest readable checkpoint; returns its path, or None for a fresh start.

        `partial=True` restores what the weights checkpoint object tracks (export needs only the
        model) and ignores the rest of the saved state.
        """
        self.pull()
        positions = {_step_of(p): p for p in self.positions.checkpoints} if self.position is not None else {}
        for path in reversed(self.manager.checkpoints):
            if self.position is not None and _step_of(path) not in positions:
                continue  # its input position was never committed (killed in between)
            try:
                status = self.weights.restore(path)
                status.expect_partial() if partial else status.assert_existing_objects_matched()
                if self.position is not None:
                    self.position.restore(positions[_step_of(path)]).assert_existing_objects_matched()
                return path
            except (tf.errors.OpError, ValueError, AssertionError, IndexError) as error:
                log.warning("checkpoint %s is unreadable (%s); trying an older one", path, error)
        return None

    @property
    def latest(self) -> str | None:
        return self.manager.latest_checkpoint

    def save(self, step: int) -> str:
        """Start writing the checkpoint of `step`; the weights finish in the background."""
        self.sync()
        if self.position is not None:
            self.position_writer.save(checkpoint_number=step)
        options = tf.train.CheckpointOptions(enable_async=self.async_write)
        self._pending = self.writer.save(checkpoint_number=step, options=options)
        return self._pending

    def poll(self) -> str | None:
        """Without blocking: if the pending checkpoint has been written, commit it and return it."""
        if self._pending and self.writer.latest_checkpoint == self._pending:
            return self.sync()
        return None

    def sync(self) -> str | None:
        """Wait until the last checkpoint is durable (and uploaded, on gs://); returns its path."""
        self.weights.sync()
        done, self._pending = self._pending, None
        if done and self.is_chief and self.remote_dir:
            self._push(done)
        return done

    def _push(self, path: str) -> None:
        name = os.path.basename(path)
        position = f"{INPUT_DIR}/{INPUT_PREFIX}-{_step_of(name)}."
        local = storage.list_files(self.local_dir)
        files = [f for f in local if f.startswith((f"{name}.", position))]
        storage.upload_tree(self.local_dir, self.remote_dir, files)
        if self.position is not None:
            storage.upload_file(os.path.join(self.local_dir, INPUT_DIR, STATE_FILE),
                                storage.join(self.remote_dir, INPUT_DIR, STATE_FILE))
        # The weights' state file last: it is the commit marker a resume reads.
        storage.upload_file(os.path.join(self.local_dir, STATE_FILE), storage.join(self.remote_dir, STATE_FILE))
        # Mirror the local rotation: delete remote checkpoint files that no longer exist here.
        for stale in set(storage.list_files(self.remote_dir)) - set(local):
            if os.path.basename(stale) != STATE_FILE:
                storage.delete(storage.join(self.remote_dir, stale))
