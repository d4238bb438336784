"""Checkpoints that survive preemption: written locally, committed atomically, mirrored to gs://.

What is saved: the step counter, every model and optimizer variable, and the tf.data iterator's
position, so a resumed run continues on exactly the batch it would have read (Keras'
BackupAndRestore resumes at epoch granularity; this resumes at the step).

Keras 3 variables are checkpointed through their backing `tf.Variable` (`v.value`): a
`tf.train.Checkpoint` holding a Keras model breaks on the second async save, and the backing
variables restore into the Keras ones (see REFERENCE.md).

Atomicity: `tf.train.CheckpointManager` writes a checkpoint's files first and the `checkpoint`
state file last, by an atomic rename, so a crash mid-write leaves the pointer on the previous
complete checkpoint. On gs:// the same order holds: the checkpoint's files are uploaded first,
then the state file (one object write, atomic on GCS) which is the commit marker; a resume reads
the remote state file and downloads only what it names. Restoring falls back to older
checkpoints if the newest cannot be read.
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


def variables_of(keras_object) -> list[tf.Variable]:
    """The backing tf.Variables of a Keras 3 model or optimizer, in a stable order."""
    return [v.value if hasattr(v, "value") else v for v in keras_object.variables]


class CheckpointStore:
    """A `tf.train.CheckpointManager` over a local directory, mirrored to `remote_dir` when given.

    Every worker restores from the job's checkpoints; only the chief writes them. The other
    MultiWorkerMirroredStrategy workers must still take part in each save (its collectives), so
    they save into a private scratch directory that nobody reads.
    """

    def __init__(
        self,
        checkpoint: tf.train.Checkpoint,
        local_dir: str,
        remote_dir: str | None = None,
        max_to_keep: int = 3,
        is_chief: bool = True,
    ) -> None:
        self.checkpoint = checkpoint
        self.remote_dir = remote_dir
        self.local_dir = local_dir
        self.max_to_keep = max_to_keep
        self.is_chief = is_chief
        os.makedirs(local_dir, exist_ok=True)
        self.manager = self._manager(local_dir)
        self.writer = self.manager if is_chief else self._manager(tempfile.mkdtemp(prefix="tfship-worker-ckpt-"))

    def _manager(self, directory: str) -> tf.train.CheckpointManager:
        return tf.train.CheckpointManager(
            self.checkpoint, directory=directory, max_to_keep=self.max_to_keep, checkpoint_name=PREFIX
        )

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
        files = [f for f in storage.list_files(self.remote_dir) if f.startswith(f"{name}.")]
        # The checkpoint's files first, the state file (the commit marker) last, as on upload.
        # Older checkpoints it names stay remote: restore falls back to them only if needed.
        storage.download_tree(self.remote_dir, self.local_dir, [*files, STATE_FILE])
        self.manager = self._manager(self.local_dir)
        if self.is_chief:
            self.writer = self.manager

    def restore_latest(self, partial: bool = False) -> str | None:
        """Restore the newest readable checkpoint; returns its path, or None for a fresh start.

        `partial=True` restores what this checkpoint object tracks (export needs only the model
        weights) and ignores the rest of the saved state.
        """
        self.pull()
        for path in reversed(self.manager.checkpoints):
            try:
                status = self.checkpoint.restore(path)
                status.expect_partial() if partial else status.assert_existing_objects_matched()
                return path
            except (tf.errors.OpError, ValueError, AssertionError, IndexError) as error:
                log.warning("checkpoint %s is unreadable (%s); trying an older one", path, error)
        return None

    @property
    def latest(self) -> str | None:
        return self.manager.latest_checkpoint

    def save(self, step: int) -> str:
        """Write a checkpoint for `step` and commit it (locally, then remotely, by the chief)."""
        before = set(self.writer.checkpoints)
        path = self.writer.save(checkpoint_number=step)
        if self.is_chief and self.remote_dir:
            self._push(path, removed=before - set(self.writer.checkpoints))
        return path

    def _push(self, path: str, removed: set[str]) -> None:
        name = os.path.basename(path)
        files = [f for f in os.listdir(self.local_dir) if f.startswith(f"{name}.")]
        storage.upload_tree(self.local_dir, self.remote_dir, files)
        # The state file last: it is the commit marker a resume reads.
        storage.upload_file(os.path.join(self.local_dir, STATE_FILE), storage.join(self.remote_dir, STATE_FILE))
        remote_files = storage.list_files(self.remote_dir)
        for old in removed:
            prefix = f"{os.path.basename(old)}."
            for stale in (f for f in remote_files if f.startswith(prefix)):
                storage.delete(storage.join(self.remote_dir, stale))
