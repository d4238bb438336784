"""One loaded model version, and the bookkeeping that lets it be unloaded safely.

A request holds a lease on the version it resolved; unloading takes the version out of the
serving map first (no new leases), then waits for the leases in flight to end before closing the
session, so no request ever runs on a closed session.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tfship.saved_model.loader import SessionModel
    from tfship.steps.serve.config import Fault
    from tfship.steps.serve.request_log import RequestLogger

log = logging.getLogger("tfship.serve")


class Servable:
    """A model version ready for inference.

    Thread-safe: `acquire`/`release` may be called from any request thread; `retire` once.

    Attributes:
        name, version: the servable id.
        path: the local directory it was loaded from.
        model: the session-loaded SavedModel.
        fault: test-only injected fault, or None.
        request_log: where its sampled requests are logged, or None.
    """

    def __init__(
        self,
        name: str,
        version: int,
        path: str,
        model: SessionModel,
        fault: Fault | None = None,
        request_log: RequestLogger | None = None,
    ):
        self.name = name
        self.version = version
        self.path = path
        self.model = model
        self.fault = fault
        self.request_log = request_log
        self._random = random.Random(f"{name}/{version}")
        self._leases = 0
        self._idle = threading.Condition()

    def acquire(self) -> None:
        with self._idle:
            self._leases += 1

    def release(self) -> None:
        with self._idle:
            self._leases -= 1
            if self._leases == 0:
                self._idle.notify_all()

    def retire(self, timeout_s: float = 60.0) -> None:
        """Wait for in-flight requests (up to `timeout_s`), then close the session."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._leases == 0, timeout=timeout_s):
                log.warning(
                    "unloading %s version %d with %d requests still running after %.0f s",
                    self.name, self.version, self._leases, timeout_s,
                )
        self.model.close()

    def draw_error(self) -> bool:
        """Whether the injected fault fails this call (seeded: runs are repeatable)."""
        if self.fault is None or self.fault.error_rate <= 0:
            return False
        with self._idle:
            return self._random.random() < self.fault.error_rate
