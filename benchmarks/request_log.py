"""Request-logging overhead of `tfship serve`: requests/s and p50/p99 at log rate 0, 0.1 and 1.0.

Starts one `tfship serve` process per rate over TF Serving's half_plus_two (each logging to its own
directory with `--request-log-dir`), then for each transport and concurrency runs the same
closed-loop clients as `benchmarks/serve.py` against the three servers in turn, so the rates are
measured side by side in one run under the same machine load. Rate 0 is the baseline: its logger
is never created. Also reports how many records and bytes each server wrote.

    .venv/bin/python benchmarks/request_log.py                     # 3 s per cell
    .venv/bin/python benchmarks/request_log.py --seconds 5 --concurrency 1 8
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import make_repo, run_cell, start_server  # noqa: E402 (the serve benchmark's own helpers)

RATES = (0.0, 0.1, 1.0)


def logged(directory: Path) -> tuple[int, int]:
    """(records, bytes) in the finished log files under `directory`."""
    import tensorflow as tf

    files = sorted(str(path) for path in directory.glob("*.tfrecord"))
    records = sum(1 for path in files for _ in tf.data.TFRecordDataset(path))
    return records, sum(os.path.getsize(path) for path in files)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each cell (default 3)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp) / "repo")
        servers = {}
        try:
            for rate in RATES:
                log_dir = Path(tmp) / f"logs-{rate}"
                servers[rate] = (*start_server(repo, "--request-log-dir", str(log_dir),
                                               "--request-log-rate", str(rate)), log_dir)
            rows = []
            for transport, index in (("gRPC", 1), ("REST", 2)):
                for concurrency in args.concurrency:
                    for rate in RATES:
                        cell = run_cell(servers[rate][index], concurrency, args.seconds)
                        rows.append({"transport": transport, "concurrency": concurrency, "rate": rate, **cell})
                        print(f"{transport:<5} c={concurrency:<3} rate={rate:<4} {cell['requests_per_s']:8.0f} req/s  "
                              f"p50 {cell['p50_ms']:7.2f} ms  p99 {cell['p99_ms']:7.2f} ms  errors {cell['errors']}",
                              flush=True)
        finally:
            for process, *_ in servers.values():
                process.terminate()
                process.wait(timeout=30)
        written = {rate: logged(servers[rate][3]) for rate in RATES}
    print()
    print("| transport | concurrency | " + " | ".join(f"rate {r}: req/s, p50, p99 ms" for r in RATES) + " |")
    print("|---|---|" + "---|" * len(RATES))
    for transport in ("gRPC", "REST"):
        for concurrency in args.concurrency:
            cells = [row for row in rows if row["transport"] == transport and row["concurrency"] == concurrency]
            print(f"| {transport} | {concurrency} | " + " | ".join(
                f"{c['requests_per_s']:.0f}, {c['p50_ms']:.2f}, {c['p99_ms']:.2f}" for c in cells) + " |")
    print()
    for rate, (records, size) in written.items():
        sent = sum(row["requests"] for row in rows if row["rate"] == rate)
        print(f"rate {rate}: {records} records logged of {sent} requests timed (plus warm-up calls), {size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
