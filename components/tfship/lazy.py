"""Lazy public names for a package: `import tfship` must not import TensorFlow, gRPC or scipy.

The CLI's `--help` and Airflow's DAG parser import tfship often; the names they do not use are
resolved from their modules on first access.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, resolving `exports` (name -> module) on access.

        __getattr__, __dir__ = lazy_exports(__name__, {"train": "tfship.steps.train.step"})
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
