"""Keep TensorFlow's known start-up noise off users' terminals, and everything else on them.

TensorFlow's C++ runtime writes straight to file descriptor 2, some lines at ERROR level that
`TF_CPP_MIN_LOG_LEVEL=2` does not hide (raising it to 3 would hide real errors too): on a CPU machine
the CUDA build reports `failed call to cuInit`, and tf.data in TF 2.21 logs `NodeDef mentions
attribute use_unbounded_threadpool` whenever a dataset graph is rebuilt. They read as failures and
bury tfship's own messages. `filter_stderr` puts a filter on descriptor 2 for the whole process that
drops exactly these lines (`STARTUP_NOISE`) and passes every other byte through in order.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading

# Each pattern is one known, harmless line; anything else, including other TensorFlow errors, passes.
STARTUP_NOISE = re.compile(
    r"(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|cudart_stub\.cc:\d+\] Could not find cuda drivers"
    r"|cuda_platform\.cc:\d+\] failed call to cuInit"
    r"|cuda_executor\.cc:\d+\] failed call to cuInit"
    r"|port\.cc:\d+\] oneDNN custom operations are on"
    r"|cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized"
    r"|To enable the following instructions: .* in other operations, rebuild TensorFlow"
    r"|node_def_util\.cc:\d+\] NodeDef mentions attribute use_unbounded_threadpool which is not in the"
    r" op definition)"
)
# How long the exit hook waits for the last lines to drain through the filter.
_DRAIN_TIMEOUT_S = 2.0


def is_noise(line: str) -> bool:
    return STARTUP_NOISE.search(line) is not None


def filter_stderr() -> None:
    """Route this process's descriptor 2 through a thread that drops `STARTUP_NOISE` lines.

    Child processes that inherit descriptor 2 write through the filter too (tfship's own children
    capture their output instead). At exit the original descriptor is put back and the filter drains.
    """
    sys.stderr.flush()
    terminal = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward() -> None:
        with os.fdopen(read_end, "rb", buffering=0) as source:
            pending = b""
            while chunk := source.read(65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                kept = [line for line in lines if not is_noise(line.decode("utf-8", "replace"))]
                if kept:
                    os.write(terminal, b"\n".join(kept) + b"\n")
            if pending and not is_noise(pending.decode("utf-8", "replace")):
                os.write(terminal, pending)

    thread = threading.Thread(target=forward, name="tfship-stderr-filter", daemon=True)
    thread.start()

    def restore() -> None:
        sys.stderr.flush()
        os.dup2(terminal, 2)  # closes the pipe's last write end in this process: the filter sees EOF
        thread.join(_DRAIN_TIMEOUT_S)

    atexit.register(restore)
