"""Time for the live judge to reach a verdict: sequential analysis (mSPRT) vs a fixed window.

The real stack of tests/canary/test_canary_live.py: `tfship serve` (its own process) with injected faults,
Debian's Prometheus scraping it every second, a bounded load generator (`--rate` requests/s per
sender, two senders per version). Every candidate is judged twice on the same traffic, in parallel:
a rollout step with sequential looks every second (`judge_step`, stops as soon as the evidence is
clear) and the same step without them (the fixed window: the verdict comes at `--window`).

    .venv/bin/python benchmarks/live_judge.py                 # 30 s window
    .venv/bin/python benchmarks/live_judge.py --window 60 --rate 20
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

CANDIDATES = {  # version -> the fault injected into it (baseline: version 123, no fault)
    124: ("none", ""),
    125: ("+10 ms latency", "m/125:latency=0.01"),
    126: ("5 % errors", "m/126:error_rate=0.05"),
    127: ("20 % errors", "m/127:error_rate=0.2"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=30.0, help="fixed window = longest step, seconds (default 30)")
    parser.add_argument("--rate", type=float, default=40.0, help="requests/s per sender, 2 senders per version (default 40)")
    args = parser.parse_args()

    from live_util import Load, prometheus, tfship_serve
    from test_canary_e2e import make_repo

    from tfship.steps.canary.live import PrometheusClient
    from tfship.steps.rollout.manifests import SplitTarget
    from tfship.steps.rollout.runner import RolloutConfig, judge_step

    root = Path(tempfile.mkdtemp(prefix="tfship-bench-live-"))
    repo = make_repo(root / "repo", ROOT / "tests" / "data" / "tf_serving")
    faults = [fault for _, fault in CANDIDATES.values() if fault]
    rows: dict[tuple[int, str], tuple] = {}
    with tfship_serve(repo, root, faults) as rest_url, prometheus(root, [rest_url.removeprefix("http://")]) as prom:
        with Load(rest_url, "m", [123, *CANDIDATES], rate=args.rate):
            time.sleep(2)

            def run(version: int, sequential: bool) -> None:
                config = RolloutConfig(
                    target=rest_url, name="m", prometheus=prom, out_dir=str(root / "unused"), split=SplitTarget("m"),
                    steps=(100,), interval_s=args.window, check_every_s=1.0, candidate=str(version),
                    baseline="123", sequential=sequential,
                )
                started = time.time()
                verdict, decided_by, _, _, candidate = judge_step(config, PrometheusClient(prom), (123, version), started)
                rows[(version, "sequential" if sequential else "fixed window")] = (
                    verdict, decided_by, time.time() - started, candidate.requests)

            threads = [threading.Thread(target=run, args=(v, s)) for v in CANDIDATES for s in (True, False)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    print(f"window {args.window:g} s, {2 * args.rate:g} requests/s per version, looks every 1 s")
    print(f"{'candidate fault':<16} {'method':<13} {'verdict':<8} {'decided by':<11} {'s to verdict':>12} {'requests':>9}")
    for version, (fault, _) in CANDIDATES.items():
        for method in ("sequential", "fixed window"):
            verdict, decided_by, seconds, requests = rows[(version, method)]
            print(f"{fault:<16} {method:<13} {verdict:<8} {decided_by:<11} {seconds:>12.1f} {requests:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
