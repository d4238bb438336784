"""What a folder of tfship.yaml files costs the Airflow scheduler, which parses DAG files every 30 s.

    .venv-airflow/bin/python benchmarks/dag_factory.py [--models 1,10,50] [--repeat 3]

For each folder size, the best of `--repeat` parses of dags/tfship_models.py (a fresh DagBag, as the
DAG processor does), in kubernetes mode (the pods are built at parse time), next to the parse of the
one-model dags/tfship_retrain.py in the same run: the per-model cost and its ratio to that one DAG.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import yaml
from airflow.dag_processing.dagbag import DagBag

DAGS = Path(__file__).resolve().parents[1] / "dags"


def parse_seconds(path: Path, repeat: int) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        bag = DagBag(dag_folder=str(path))
        best = min(best, time.perf_counter() - start)
        assert not bag.import_errors, bag.import_errors
        count = len(bag.dags)
    return best, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="1,10,50")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ["TFSHIP_DAG_MODE"] = "kubernetes"
    single, _ = parse_seconds(DAGS / "tfship_retrain.py", args.repeat)
    print(f"{'models':>7} {'DAGs':>5} {'parse s':>8} {'ms/model':>9} {'x one DAG':>10}")
    print(f"{'env':>7} {1:>5} {single:>8.3f} {single * 1000:>9.1f} {1.0:>10.2f}")
    for count in [int(n) for n in args.models.split(",")]:
        with tempfile.TemporaryDirectory() as folder:
            for index in range(count):
                model = Path(folder, f"team{index}", "tfship.yaml")
                model.parent.mkdir()
                model.write_text(yaml.safe_dump({
                    "name": f"model{index}", "data": "gs://d/rows.csv", "schema": "gs://d/schema.yaml",
                    "repo": "gs://m/repo", "placement": {"accelerator": "nvidia-l4", "gpu_count": 2},
                    "schedule": {"cron": "0 3 * * 1", "asset": f"gs://d/model{index}/"}}))
            os.environ["TFSHIP_MODELS_DIR"] = folder
            seconds, dags = parse_seconds(DAGS / "tfship_models.py", args.repeat)
        per_model = seconds / count
        print(f"{count:>7} {dags:>5} {seconds:>8.3f} {per_model * 1000:>9.1f} {per_model / single:>10.2f}")


if __name__ == "__main__":
    main()
