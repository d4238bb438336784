"""tfship: ship TensorFlow models from training to a canaried TF Serving version.

The steps are plain functions a notebook can call; the CLI (`tfship <step>`), the Airflow DAG and
the KFP pipeline are thin layers over them::

    import tfship
    result = tfship.train(data="rows.csv", schema="schema.yaml", job_dir="/tmp/job", steps=500)

Names are resolved lazily so that `import tfship` stays cheap (no TensorFlow import) for the CLI's
`--help` and for Airflow's DAG parser.
"""

from __future__ import annotations

import importlib
from typing import Any

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
    "run_chain": "tfship.local_runner",
    "export": "tfship.export",
    "ExportConfig": "tfship.export",
    "ExportResult": "tfship.export",
    "validate": "tfship.validate",
    "ValidateConfig": "tfship.validate",
    "ValidationReport": "tfship.validate",
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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tfship' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
