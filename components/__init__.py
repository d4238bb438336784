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

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "train": "tfship.training",
    "TrainConfig": "tfship.training",
    "TrainResult": "tfship.training",
    "Schema": "tfship.schema",
    "load_schema": "tfship.schema",
    "push": "tfship.pushing",
    "PushConfig": "tfship.pushing",
    "PushResult": "tfship.pushing",
    "promote": "tfship.pushing",
    "rollback": "tfship.pushing",
    "remove_label": "tfship.pushing",
    "ChainConfig": "tfship.chain",
    "Project": "tfship.project",
    "load_project": "tfship.project",
    "init_project": "tfship.scaffold",
    "run_chain": "tfship.local_runner",
    "export": "tfship.exporting",
    "ExportConfig": "tfship.exporting",
    "ExportResult": "tfship.exporting",
    "validate": "tfship.validation",
    "ValidateConfig": "tfship.validation",
    "ValidationReport": "tfship.validation",
    "load_session_model": "tfship.savedmodel",
    "serve": "tfship.serving.server",
    "ServeConfig": "tfship.serving.config",
    "ServerHandle": "tfship.serving.server",
    "canary": "tfship.canary_analysis.runner",
    "CanaryConfig": "tfship.canary_analysis.config",
    "CanaryResult": "tfship.canary_analysis.runner",
    "JudgeConfig": "tfship.canary_analysis.judge",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
