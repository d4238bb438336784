"""Progress on a terminal (a redrawn bar) and structured log lines everywhere else.

`ProgressBar` counts bytes of long transfers; `StepProgress` reports training steps.

In a container or CI log a redrawn line is noise (every redraw becomes a line), so the bar is off
unless the stream is a TTY; the step logs its phases either way. Thread-safe: transfer workers
call `advance` concurrently.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import TextIO


def bar(share: float, width: int = 24) -> str:
    """`[#####.....]` for a share in [0, 1]."""
    filled = int(min(max(share, 0.0), 1.0) * width)
    return f"[{'#' * filled}{'.' * (width - filled)}]"


class ProgressBar:
    """`label [#####.....]  42%  84.0/200.0 MB  61.2 MB/s`, redrawn at most 10 times a second.

    Args:
        total: bytes expected.
        label: what is moving, e.g. "upload".
        stream: where to draw (default stderr).
        enabled: draw or not; None (default) draws only when `stream` is a terminal.
    """

    def __init__(self, total: int, label: str, stream: TextIO | None = None, enabled: bool | None = None):
        self.total = max(int(total), 1)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", lambda: False)
        self.enabled = bool(isatty()) if enabled is None else enabled
        self.done = 0
        self._start = time.monotonic()
        self._drawn = 0.0
        self._lock = threading.Lock()

    def advance(self, n: int) -> None:
        """Count `n` more bytes done; redraw if the last draw is old enough."""
        with self._lock:
            self.done += int(n)
            now = time.monotonic()
            if self.enabled and (now - self._drawn >= 0.1 or self.done >= self.total):
                self._drawn = now
                self.stream.write("\r" + self.render(now - self._start))
                self.stream.flush()

    def render(self, elapsed: float) -> str:
        """The bar's text for `elapsed` seconds (pure: tests call it directly)."""
        share = min(self.done / self.total, 1.0)
        rate = self.done / elapsed / 1e6 if elapsed > 0 else 0.0
        return (
            f"{self.label} {bar(share)} {share:4.0%} "
            f"{self.done / 1e6:.1f}/{self.total / 1e6:.1f} MB {rate:.1f} MB/s"
        )

    def close(self) -> None:
        """End the line, so the next log line starts on its own."""
        if self.enabled and self.done:
            self.stream.write("\n")
            self.stream.flush()


class StepProgress:
    """Training progress: a redrawn bar on a TTY, one JSON line every `every` steps otherwise.

    `event(name, **fields)` writes one JSON line for what happens once (start, checkpoint,
    preempted, done) in both cases, so logs stay machine-readable.
    """

    def __init__(self, total: int, every: int = 50, stream: TextIO | None = None) -> None:
        self.total = total
        self.every = max(1, every)
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, step: int, **values: float) -> None:
        if self.tty:
            detail = " ".join(f"{k} {v:.4g}" for k, v in values.items())
            end = "\n" if step == self.total else ""
            self.stream.write(f"\r{bar(step / max(1, self.total), 30)} {step}/{self.total} {detail}  {end}")
            self.stream.flush()
        elif step % self.every == 0 or step == self.total:
            self.event("progress", step=step, total=self.total, **values)

    def event(self, name: str, **fields: object) -> None:
        line = json.dumps({"event": name, **fields}, default=str)
        self.stream.write(("\n" if self.tty else "") + line + "\n")
        self.stream.flush()
