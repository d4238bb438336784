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
    "train": "tfship.train",
    "TrainConfig": "tfship.train",
    "TrainResult": "tfship.train",
    "Schema": "tfship.schema",
    "load_schema": "tfship.schema",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tfship' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
