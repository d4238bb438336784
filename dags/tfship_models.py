"""A retraining DAG per model: one for every tfship.yaml in the folder `TFSHIP_MODELS_DIR`.

Each model's DAG (`tfship_retrain_<name>`) has its own schedule, data Asset, params and GPU
placement, all from its file (`tfship.airflow.retrain_dags`). A file that does not load is an
import error of this DAG file naming that file and key; the other models' DAGs still load.

    TFSHIP_MODELS_DIR   the folder of model files (default: `models/` beside this file); each
                        model is `<folder>/<team>/tfship.yaml` (what `tfship init` writes) or
                        `<folder>/<model>.tfship.yaml`
    TFSHIP_DAG_MODE     kubernetes (default) or local
"""

from __future__ import annotations

import os

from tfship.airflow import retrain_dags

MODELS_DIR = os.environ.get("TFSHIP_MODELS_DIR",
                            os.path.join(os.path.dirname(os.path.abspath(__file__)), "models"))

globals().update(retrain_dags(MODELS_DIR, mode=os.environ.get("TFSHIP_DAG_MODE", "kubernetes")))
