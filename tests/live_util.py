"""Real parts for the live canary's tests: `tfship serve` in its own process, Debian's Prometheus
scraping it every second, and a bounded load generator.

`tfship serve` runs as a subprocess so its metrics registry (one per process) holds only the
traffic of the test. Prometheus comes from Debian's package, installed by `make prometheus`
(which `make test` runs); each test starts its own with its config and TSDB in a temp dir.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from tests.conftest import free_port

PROMETHEUS = "/usr/bin/prometheus"


def _wait_until(ready: Callable[[], bool], process: subprocess.Popen, what: str, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{what} did not start; its log:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


@contextmanager
def _process(command: list[str], log: Path, ready_url: str, what: str, timeout_s: float) -> Iterator[None]:
    with open(log, "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        try:
            _wait_until(lambda: _answers(ready_url), process, what, log, timeout_s)
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def tfship_serve(repo: str, root: Path, faults: Sequence[str] = ()) -> Iterator[str]:
    """`tfship serve` on 127.0.0.1 (free ports); yields its REST URL."""
    port = free_port()
    command = [*tfship_cli(), "serve", "--repo", repo, "--grpc-port", str(free_port()),
               "--rest-port", str(port), "--poll-seconds", "0.2"]
    for fault in faults:
        command += ["--inject-fault", fault]
    url = f"http://127.0.0.1:{port}"
    with _process(command, root / f"serve-{port}.log", f"{url}/monitoring/prometheus/metrics", "tfship serve", 90):
        yield url


@contextmanager
def prometheus(root: Path, targets: Sequence[str]) -> Iterator[str]:
    """Debian's Prometheus on 127.0.0.1, scraping `targets` (host:port) every second; yields its URL."""
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.fail(f"{PROMETHEUS} is missing: run `make prometheus` (make test does) to install Debian's package.")
    port = free_port()
    config = root / "prometheus.yml"
    config.write_text(json.dumps({  # JSON is YAML
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{
            "job_name": "tfship", "metrics_path": "/monitoring/prometheus/metrics",
            "static_configs": [{"targets": list(targets)}],
        }],
    }))
    url = f"http://127.0.0.1:{port}"
    command = [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={root / 'tsdb'}",
               f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    with _process(command, root / "prometheus.log", f"{url}/-/ready", "prometheus", 30):
        yield url


def wait_for_scrape(prometheus_url: str, after: float, timeout_s: float = 15.0) -> None:
    """Block until every target was scraped after unix time `after`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{prometheus_url}/api/v1/targets", timeout=5) as response:
            targets = json.loads(response.read())["data"]["activeTargets"]
        scraped = [t.get("lastScrape", "") for t in targets]
        if targets and all(t["health"] == "up" for t in targets) and all(_unix(s) > after for s in scraped):
            return
        time.sleep(0.2)
    raise AssertionError(f"Prometheus did not scrape every target after {after}")


def _unix(rfc3339: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")[:26] + "+00:00").timestamp()


class Load:
    """Bounded load: `threads` senders per model version, each at most `rate` requests/s, until stopped.

    Counts what each version answered, so a test can compare with what Prometheus saw.
    """

    def __init__(self, rest_url: str, model: str, versions: Sequence[int], rate: float = 40.0, threads: int = 2):
        self._url, self._model, self._rate = rest_url, model, rate
        self._stop = threading.Event()
        self.sent = {version: 0 for version in versions}
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._send, args=(v,), daemon=True)
                         for v in versions for _ in range(threads)]

    def _send(self, version: int) -> None:
        body = json.dumps({"instances": [[1.0]]}).encode()
        address = f"{self._url}/v1/models/{self._model}/versions/{version}:predict"
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                urllib.request.urlopen(urllib.request.Request(address, data=body, method="POST"), timeout=10).read()
            except urllib.error.HTTPError:
                pass  # an injected error: still an answered request
            with self._lock:
                self.sent[version] += 1
            self._stop.wait(max(0.0, 1 / self._rate - (time.monotonic() - started)))

    def wait_for(self, requests: int, timeout_s: float) -> None:
        """Block until every version answered at least `requests` (a busy machine sends fewer per second)."""
        deadline = time.monotonic() + timeout_s
        while min(self.sent.values()) < requests:
            if time.monotonic() > deadline:
                raise AssertionError(f"the load sent {self.sent} in {timeout_s} s, not {requests} per version")
            time.sleep(0.1)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)


def tfship_cli() -> list[str]:
    """The `tfship` command of this environment."""
    return [shutil.which("tfship") or os.path.join(os.path.dirname(sys.executable), "tfship")]
