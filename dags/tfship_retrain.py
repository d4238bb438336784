"""`tfship_retrain`: the retraining DAG of one model configured by TFSHIP_* environment variables.

A thin caller of `tfship.airflow.retrain_dag` (see its docstring for the graph and the two modes):
this file only turns the environment into a `tfship.chain.project.Project`. Teams with a `tfship.yaml`
use dags/tfship_models.py (a DAG per file of a folder) or call `retrain_dag(path)` themselves.

    TFSHIP_DAG_MODE          kubernetes (default) or local
    TFSHIP_DATA, TFSHIP_SCHEMA, TFSHIP_CONTRACT, TFSHIP_REPO, TFSHIP_MODEL_NAME, TFSHIP_STEPS,
    TFSHIP_CANARY_REQUESTS   the chain's defaults (each also a param of a run)
    TFSHIP_WORKSPACE         runs land under <workspace>/runs/<run id>/
    TFSHIP_SCHEDULE, TFSHIP_DATA_ASSET   the cron (UTC) and the Asset whose updates trigger a run
    TFSHIP_IMAGE, TFSHIP_GPU_IMAGE, TFSHIP_SERVING_TARGET, TFSHIP_NAMESPACE
    TFSHIP_GPU_TYPE, TFSHIP_GPU_COUNT, TFSHIP_GPU_SPOT, TFSHIP_GPU_QUEUE (a Kueue LocalQueue),
    TFSHIP_TRAIN_WORKERS, TFSHIP_TRAIN_ENGINE (jobset, trainjob, tfjob), TFSHIP_TRAIN_TIMEOUT_S
    TFSHIP_ROLLOUT_STEPS, TFSHIP_PROMETHEUS, TFSHIP_ROLLOUT_APPLY   the progressive rollout after the
                             canary PASS (e.g. 5,25,50,100; "" = promote at once)
    TFSHIP_SAVED_MODEL       a SavedModel trained elsewhere to ship ("" = train on the data)
"""

from __future__ import annotations

import os

from tfship import chain
from tfship.airflow import DEFAULT_TRAIN_TIMEOUT_S, retrain_dag
from tfship.chain.project import Project
from tfship.steps.rollout import parse_steps

_env = os.environ.get
_DEFAULTS = chain.ChainConfig(data="-", schema="-", runs_root="-", repo="-")

PROJECT = Project(
    path=__file__,
    chain=chain.ChainConfig(
        data=_env("TFSHIP_DATA", "gs://tfship-data/penguins/penguins.csv"),
        schema=_env("TFSHIP_SCHEMA", "gs://tfship-data/penguins/schema.yaml"),
        contract=_env("TFSHIP_CONTRACT", ""),
        runs_root=_env("TFSHIP_WORKSPACE", "gs://tfship-runs/retrain").rstrip("/") + "/runs",
        repo=_env("TFSHIP_REPO", "gs://tfship-models/repo"),
        name=_env("TFSHIP_MODEL_NAME", "penguins"),
        steps=int(_env("TFSHIP_STEPS", _DEFAULTS.steps)),
        canary_requests=int(_env("TFSHIP_CANARY_REQUESTS", _DEFAULTS.canary_requests)),
        gpu_type=_env("TFSHIP_GPU_TYPE", chain.DEFAULT_GPU_TYPE),
        gpu_count=int(_env("TFSHIP_GPU_COUNT", "1")),
        spot=_env("TFSHIP_GPU_SPOT", "true").lower() != "false",
        queue=_env("TFSHIP_GPU_QUEUE", ""),
        workers=int(_env("TFSHIP_TRAIN_WORKERS", "1")),
        engine=_env("TFSHIP_TRAIN_ENGINE", chain.ENGINES[0]),
        rollout_steps=parse_steps(_env("TFSHIP_ROLLOUT_STEPS")) if _env("TFSHIP_ROLLOUT_STEPS") else (),
        prometheus=_env("TFSHIP_PROMETHEUS", ""),
        saved_model=_env("TFSHIP_SAVED_MODEL", ""),
        rollout_apply=_env("TFSHIP_ROLLOUT_APPLY", ""),
    ),
    schedule=_env("TFSHIP_SCHEDULE", "0 3 * * 1"),
    data_asset=_env("TFSHIP_DATA_ASSET", "gs://tfship-data/penguins/"),
    image=_env("TFSHIP_IMAGE", chain.DEFAULT_IMAGE),
    gpu_image=_env("TFSHIP_GPU_IMAGE", chain.DEFAULT_GPU_IMAGE),
    serving_target=_env("TFSHIP_SERVING_TARGET", chain.DEFAULT_SERVING_TARGET),
    namespace=_env("TFSHIP_NAMESPACE", "tfship"),
)

dag = retrain_dag(PROJECT, mode=_env("TFSHIP_DAG_MODE", "kubernetes"), dag_id="tfship_retrain",
                  train_timeout_s=float(_env("TFSHIP_TRAIN_TIMEOUT_S", DEFAULT_TRAIN_TIMEOUT_S)))
