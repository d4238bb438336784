"""`tfship serve` throughput and latency over gRPC and REST, and its overhead over an in-process call.

Starts `tfship serve` as its own process (so the load generator does not share its GIL) over TF
Serving's half_plus_two, then for each transport and concurrency (1, 8, 32) runs closed-loop
clients for `--seconds`: every client thread sends batch-1 Predict requests back to back through
the canary's own clients (gRPC: tensorflow-serving-api stub; REST: keep-alive HTTP/1.1). Reports
requests/s, p50 and p99 latency. Then the overhead: median batch-1 latency at concurrency 1 minus
the median of calling the same loaded signature in-process (`SessionModel.run`), target < 1 ms.

    .venv/bin/python benchmarks/serve.py                 # 3 s per cell
    .venv/bin/python benchmarks/serve.py --seconds 10 --out runs/bench/serve.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "tests" / "data" / "tf_serving" / "saved_model_half_plus_two_cpu" / "00000123"


def make_repo(root: Path) -> str:
    from tfship import storage
    from tfship import models_config

    (root / "default").mkdir(parents=True)
    os.symlink(MODEL, root / "default" / "123")
    config = models_config.with_version(models_config.ModelServerConfig(), "default", str(root / "default"), 123)
    config = models_config.with_label(config, "default", "stable", 123)
    storage.write_text(models_config.config_uri(str(root)), models_config.format_models_config(config))
    return str(root)


def start_server(repo: str, *options: str) -> tuple[subprocess.Popen, str, str]:
    """Start `tfship serve` (plus `options`) on free ports; returns (process, gRPC target, REST URL)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tfship.cli", "serve", "--repo", repo, "--grpc-port", "0", "--rest-port", "0",
         "--poll-seconds", "0", *options],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    line = process.stdout.readline()
    if not line.startswith("tfship serve: serving"):
        process.kill()
        raise SystemExit(f"tfship serve did not start: {line!r}")
    grpc_address = line.split("gRPC ", 1)[1].split(",", 1)[0].strip()
    rest_url = line.rsplit("REST ", 1)[1].strip()
    return process, f"grpc://{grpc_address}", rest_url


def run_cell(target: str, concurrency: int, seconds: float) -> dict[str, float]:
    from tfship.steps.canary.client import make_client
    from tfship.steps.canary.config import Target, VersionRef

    client = make_client(Target.parse(target))
    request = client.prepare("default", VersionRef(label="stable"), "serving_default",
                             {"x": np.array([2.0], np.float32)}, {"y": "float32"})
    for _ in range(50):  # warm the connection and the session
        client.send(request, 10.0)
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    start = threading.Barrier(concurrency + 1)
    stop_at = [0.0]

    def worker(k: int) -> None:
        start.wait()
        while time.perf_counter() < stop_at[0]:
            observation = client.send(request, 10.0)
            if observation.ok:
                latencies[k].append(observation.latency_s)
            else:
                errors[k] += 1

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    client.close()
    values = np.array([v for series in latencies for v in series])
    return {
        "requests_per_s": values.size / elapsed,
        "p50_ms": 1000 * float(np.percentile(values, 50)),
        "p99_ms": 1000 * float(np.percentile(values, 99)),
        "errors": sum(errors),
        "requests": int(values.size),
    }


def in_process_median_ms(samples: int = 2000) -> float:
    from tfship.saved_model.loader import load_session_model

    model = load_session_model(str(MODEL))
    feeds = {"x": np.array([[2.0]], np.float32)}
    for _ in range(100):
        model.run("serving_default", feeds)
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        model.run("serving_default", feeds)
        times.append(time.perf_counter() - started)
    model.close()
    return 1000 * statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each cell (default 3)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--out", default="", help="also write the results as JSON here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp) / "repo")
        process, grpc_target, rest_target = start_server(repo)
        try:
            rows = []
            for name, target in (("gRPC", grpc_target), ("REST", rest_target)):
                for concurrency in args.concurrency:
                    cell = run_cell(target, concurrency, args.seconds)
                    rows.append({"transport": name, "concurrency": concurrency, **cell})
                    print(f"{name:<5} c={concurrency:<3} {cell['requests_per_s']:8.0f} req/s  "
                          f"p50 {cell['p50_ms']:7.2f} ms  p99 {cell['p99_ms']:7.2f} ms  errors {cell['errors']}",
                          flush=True)
        finally:
            process.terminate()
            process.wait(timeout=30)
    in_process = in_process_median_ms()
    overhead = {
        row["transport"]: row["p50_ms"] - in_process for row in rows if row["concurrency"] == 1
    }
    print()
    print("| transport | concurrency | requests/s | p50 ms | p99 ms |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['transport']} | {row['concurrency']} | {row['requests_per_s']:.0f} | "
              f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} |")
    print()
    print(f"in-process SessionModel.run, batch 1: median {in_process:.3f} ms")
    for transport, value in overhead.items():
        verdict = "meets" if value < 1.0 else "misses"
        print(f"{transport} overhead at batch 1 (median, concurrency 1): {value:.3f} ms ({verdict} the 1 ms target)")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"cells": rows, "in_process_ms": in_process, "overhead_ms": overhead},
                                             indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
