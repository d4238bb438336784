"""Airflow DAG `tfship_retrain_$name`: the chain of ../tfship.yaml, scheduled and triggered by its Asset.

Put this project folder where Airflow parses DAGs (or point dags/tfship_models.py's TFSHIP_MODELS_DIR at
the folder that holds it, and leave this file out: one of the two, not both). TFSHIP_DAG_MODE=local runs
the steps as local processes (`airflow dags test tfship_retrain_$name`).
"""

import os
from pathlib import Path

from tfship.airflow import retrain_dag

dag = retrain_dag(Path(__file__).resolve().parents[1] / "tfship.yaml",
                  mode=os.environ.get("TFSHIP_DAG_MODE", "kubernetes"))
