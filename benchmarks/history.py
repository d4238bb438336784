"""What the label history costs: a recorded label move vs a bare models.config update, and reading it.

Moves `canary` back and forth between two served versions `--moves` times, once with a bare
`update_models_config` (no history, as before) and once through `history.recorded_update` (list
the entries, create the pending entry, update models.config, rewrite the entry as done), on a fresh
local repository and on a fresh bucket of fake-gcs-server (started here on 127.0.0.1, like the
tests). Then `read_history` of all the entries (one listing, one read per entry).

    .venv/bin/python benchmarks/history.py              # 50 moves
    .venv/bin/python benchmarks/history.py --moves 200
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from push import emulated_gcs  # benchmarks/push.py, beside this script

from tfship import history
from tfship import models_config as mc


def serving_two_versions(repo: str) -> None:
    base = mc.model_base_path(repo, "m")
    for version in (1, 2):
        mc.update_models_config(repo, lambda c, v=version: mc.with_version(c, "m", base, v))
    mc.update_models_config(repo, lambda c: mc.with_label(c, "m", "stable", 1))
    mc.update_models_config(repo, lambda c: mc.with_label(c, "m", "pinned", 2))  # keeps 2 served


def per_move_ms(repo: str, moves: int, recorded: bool) -> float:
    started = time.perf_counter()
    for move in range(moves):
        change = lambda c, v=1 + move % 2: mc.with_label(c, "m", "canary", v)  # noqa: E731
        if recorded:
            history.recorded_update(repo, "m", "push", change)
        else:
            mc.update_models_config(repo, change)
    return (time.perf_counter() - started) / moves * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--moves", type=int, default=50)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tfship-bench-history-"))
    try:
        with emulated_gcs(work / "gcs"):
            from tfship.storage import gcs_client

            bucket = f"bench-{uuid.uuid4().hex[:12]}"
            gcs_client().create_bucket(bucket)
            print(f"{'repository':<22} {'bare move ms':>13} {'recorded move ms':>17} {'read entries':>13} {'read ms':>9}")
            for kind, repo in (("local", str(work / "repo")), ("gs:// (fake-gcs)", f"gs://{bucket}/models")):
                serving_two_versions(repo)
                bare = per_move_ms(repo, args.moves, recorded=False)
                recorded = per_move_ms(repo, args.moves, recorded=True)
                started = time.perf_counter()
                entries = history.read_history(repo, "m")
                read_ms = (time.perf_counter() - started) * 1000
                print(f"{kind:<22} {bare:>13.1f} {recorded:>17.1f} {len(entries):>13} {read_ms:>9.0f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
