"""TensorFlow's known start-up noise stays off the terminal; tfship's messages and real errors don't."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tfship.demo import write_demo

NODEDEF = "NodeDef mentions attribute use_unbounded_threadpool"
FILTERED = """
import os, sys
from tfship import native_log
native_log.filter_stderr()
os.write(2, b"E0000 00:00:1.0 1 node_def_util.cc:682] NodeDef mentions attribute use_unbounded_threadpool"
            b" which is not in the op definition: Op<name=MapDataset>\\n")
os.write(2, b"E0000 00:00:1.0 1 cuda_executor.cc:1228] failed call to cuInit: INTERNAL: CUDA error\\n")
os.write(2, b"E0000 00:00:1.0 1 some_kernel.cc:12] a real TensorFlow error\\n")
print("tfship train: error: a message of tfship's own", file=sys.stderr)
os.write(2, b"no newline at the end")
"""


def test_the_filter_drops_exactly_the_known_lines():
    done = subprocess.run([sys.executable, "-c", FILTERED], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stderr == ("E0000 00:00:1.0 1 some_kernel.cc:12] a real TensorFlow error\n"
                           "tfship train: error: a message of tfship's own\n"
                           "no newline at the end")


@pytest.mark.slow
def test_tfship_train_on_a_terminal_shows_no_startup_errors(tmp_path: Path):
    data, schema = write_demo(str(tmp_path / "data"))
    args = ["train", "--data", data, "--schema", schema, "--steps", "5", "--checkpoint-every", "5"]
    # The same step in-process without the filter prints the noise (so this test can fail) ...
    bare = subprocess.run([sys.executable, "-c", "import sys; from tfship.cli import main;"
                           " sys.exit(main(sys.argv[1:]))", *args, "--job-dir", str(tmp_path / "a")],
                          capture_output=True, text=True, timeout=300)
    assert bare.returncode == 0, bare.stderr[-2000:]
    assert NODEDEF in bare.stderr
    # ... and the `tfship` command, the images' ENTRYPOINT, does not.
    tfship = Path(sys.executable).with_name("tfship")
    done = subprocess.run([str(tfship), *args, "--job-dir", str(tmp_path / "b")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert NODEDEF not in done.stderr and "cuInit" not in done.stderr
    assert "trained 5 steps" in done.stdout + done.stderr
