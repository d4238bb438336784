"""The chain, defined once: train -> export -> validate -> push -> serve -> canary -> promote.

`tfship run`, the Airflow DAG (`dags/tfship_retrain.py`) and the KFP pipeline
(`pipelines/tfship_retrain.py`) are derived from `CHAIN` and the functions here, so they cannot
drift apart: each adapter asks this module for the steps in order, the exact `tfship <step> ...`
arguments of each, which one needs a GPU, its CPU/memory requests, how often and on which exit
codes it is retried, whether its result may be cached, and whether the promotion gate opens.
Adding or swapping a step is one edit of `CHAIN` (and of `step_args`).

Modules: `config` (ChainConfig), `plan` (RunPlan, the run's folders), `step_table` (`CHAIN`, each
step's resources, retries, caching and arguments), `gate` (the promotion decision), `project`
(`tfship.yaml`). Their public names are re-exported here. The Kubernetes objects built from them
(pod placement, multi-worker workloads) are `tfship.k8s`.

Pure Python on purpose: no TensorFlow, no orchestrator, no I/O (the one helper that reads the
model repository, `plan_run`, is given the listing). Airflow parses this module every few seconds.

A run lays its files out under one per-run folder, keyed on the run (so a retried task resumes
the same checkpoints instead of starting in a fresh artifact path)::

    <runs_root>/<run_id>/job/                 train's checkpoints, TensorBoard logs, metrics.json
    <runs_root>/<run_id>/export/<version>/    the SavedModel
    <runs_root>/<run_id>/reports/             validate.json, canary/ (JSON + Markdown)
    <repo>/<name>/<version>/, <repo>/models.config   the TF Serving repository (shared by runs)

Example::

    from tfship.chain import ChainConfig, plan_run, step_args
    config = ChainConfig(data="rows.csv", schema="schema.yaml", runs_root="runs", repo="repo")
    plan = plan_run(config, run_id="r1", versions=[], stable=None)
    step_args("train", config, plan)   # ['train', '--data', 'rows.csv', ...]
"""

from __future__ import annotations

from tfship.chain.config import (
    ChainConfig,
    DEFAULT_GPU_IMAGE,
    DEFAULT_GPU_TYPE,
    DEFAULT_IMAGE,
    DEFAULT_SERVING_TARGET,
    ENGINES,
    GPU_COUNTS,
    KUEUE_QUEUE_LABEL,
    NON_NEGATIVE_FIELDS,
    POSITIVE_FIELDS,
    RUN_ID_ENV,
)
from tfship.chain.plan import (
    RunPlan,
    contract_path,
    examples_path,
    next_version,
    plan_run,
    safe_run_id,
    stable_model_dir,
)
from tfship.chain.step_table import (
    QUANTITY_RE,
    CHAIN,
    EXIT_CONCURRENT_UPDATE,
    STEPS,
    STEP_SETTINGS,
    Step,
    enabled,
    get_step,
    job_steps,
    plan_document,
    step_args,
    step_for,
    steps_for,
    train_step,
)
from tfship.chain.gate import (
    Decision,
    FAIL,
    PASS,
    promotion_decision,
    verdict_from_exit_code,
)

__all__ = [
    "CHAIN",
    "ChainConfig",
    "DEFAULT_GPU_IMAGE",
    "DEFAULT_GPU_TYPE",
    "DEFAULT_IMAGE",
    "DEFAULT_SERVING_TARGET",
    "Decision",
    "ENGINES",
    "EXIT_CONCURRENT_UPDATE",
    "FAIL",
    "GPU_COUNTS",
    "KUEUE_QUEUE_LABEL",
    "NON_NEGATIVE_FIELDS",
    "PASS",
    "QUANTITY_RE",
    "POSITIVE_FIELDS",
    "RUN_ID_ENV",
    "RunPlan",
    "STEPS",
    "STEP_SETTINGS",
    "Step",
    "contract_path",
    "enabled",
    "examples_path",
    "get_step",
    "job_steps",
    "next_version",
    "plan_document",
    "plan_run",
    "promotion_decision",
    "safe_run_id",
    "stable_model_dir",
    "step_args",
    "step_for",
    "steps_for",
    "train_step",
    "verdict_from_exit_code",
]
