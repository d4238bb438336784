"""tfship: ship TensorFlow models from training to a canaried TF Serving version.

The steps are plain functions a notebook can call; the CLI (`tfship <step>`), the Airflow DAG and
the KFP pipeline are thin layers over them::

    import tfship
    result = tfship.train(data="rows.csv", schema="schema.yaml", job_dir="/tmp/job", steps=500)

Names are resolved lazily so that `import tfship` stays cheap (no TensorFlow import) for the CLI's
`--help` and for Airflow's DAG parser.
"""

from __future__ import annotations

from tfship.lazy import lazy_exports

__version__ = "0.1.0"

# module -> the public names it defines
_EXPORTS = {
    "tfship.steps.train.step": ("train", "TrainConfig", "TrainResult"),
    "tfship.schema": ("Schema", "load_schema"),
    "tfship.steps.push.step": ("push", "PushConfig", "PushResult", "promote", "rollback", "remove_label"),
    "tfship.chain": ("ChainConfig",),
    "tfship.chain.project": ("Project", "load_project"),
    "tfship.scaffold": ("init_project",),
    "tfship.local_runner": ("run_chain",),
    "tfship.steps.export.step": ("export", "ExportConfig", "ExportResult"),
    "tfship.steps.validate.step": ("validate", "ValidateConfig", "ValidationReport"),
    "tfship.saved_model.loader": ("load_session_model",),
    "tfship.steps.serve.server": ("serve", "ServerHandle"),
    "tfship.steps.serve.config": ("ServeConfig",),
    "tfship.steps.canary.runner": ("canary", "CanaryResult"),
    "tfship.steps.canary.config": ("CanaryConfig",),
    "tfship.steps.canary.judge": ("JudgeConfig",),
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
