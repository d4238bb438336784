"""SIGTERM handling: a spot node being reclaimed (GKE gives about 15 s) becomes a flag the
training loop checks after each step, so it can save a checkpoint at the current step and exit
with `EXIT_PREEMPTED` (143), which orchestrators retry against the same job directory."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class PreemptionWatcher:
    """Records that SIGTERM arrived; the handler only sets an event (async-signal safe)."""

    def __init__(self) -> None:
        self.event = threading.Event()

    @property
    def preempted(self) -> bool:
        return self.event.is_set()

    def _handle(self, signum: int, frame: object) -> None:
        self.event.set()


@contextmanager
def watch_sigterm() -> Iterator[PreemptionWatcher]:
    """Install the SIGTERM handler for the duration of training (main thread only)."""
    watcher = PreemptionWatcher()
    if threading.current_thread() is not threading.main_thread():
        yield watcher  # signal handlers can only be set from the main thread
        return
    previous = signal.signal(signal.SIGTERM, watcher._handle)
    try:
        yield watcher
    finally:
        signal.signal(signal.SIGTERM, previous)
