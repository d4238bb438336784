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
    "train": "tfship.steps.train.step",
    "TrainConfig": "tfship.steps.train.step",
    "TrainResult": "tfship.steps.train.step",
    "Schema": "tfship.schema",
    "load_schema": "tfship.schema",
    "push": "tfship.steps.push.step",
    "PushConfig": "tfship.steps.push.step",
    "PushResult": "tfship.steps.push.step",
    "promote": "tfship.steps.push.step",
    "rollback": "tfship.steps.push.step",
    "remove_label": "tfship.steps.push.step",
    "ChainConfig": "tfship.chain",
    "Project": "tfship.chain.project",
    "load_project": "tfship.chain.project",
    "init_project": "tfship.scaffold",
    "run_chain": "tfship.local_runner",
    "export": "tfship.steps.export.step",
    "ExportConfig": "tfship.steps.export.step",
    "ExportResult": "tfship.steps.export.step",
    "validate": "tfship.steps.validate.step",
    "ValidateConfig": "tfship.steps.validate.step",
    "ValidationReport": "tfship.steps.validate.step",
    "load_session_model": "tfship.saved_model.loader",
    "serve": "tfship.steps.serve.server",
    "ServeConfig": "tfship.steps.serve.config",
    "ServerHandle": "tfship.steps.serve.server",
    "canary": "tfship.steps.canary.runner",
    "CanaryConfig": "tfship.steps.canary.config",
    "CanaryResult": "tfship.steps.canary.runner",
    "JudgeConfig": "tfship.steps.canary.judge",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
