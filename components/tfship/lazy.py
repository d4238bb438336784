"""Lazy public names for a package: `import tfship` must not import TensorFlow, gRPC or scipy.

The CLI's `--help` and Airflow's DAG parser import tfship often; the names they do not use are
resolved from their modules on first access.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, Iterable[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """`__getattr__`, `__dir__` and `__all__` for `package`, resolving each name of `exports`
    (module -> the names it defines) from its module on first access.

        __getattr__, __dir__, __all__ = lazy_exports(__name__, {"tfship.steps.train.step": ("train",)})
    """
    module_of = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        return sorted(module_of)

    return __getattr__, __dir__, sorted(module_of)
