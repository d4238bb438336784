"""`tfship validate`: the gate between export and push; nothing ships that clients cannot call.

Modules: `step` (validate, ValidateConfig, ValidationReport), `worker` (the checks that need
TensorFlow, in a fresh process), `contract` (the signature contract and the baseline diff, pure),
`golden_examples` (rows with expected answers).
"""

from __future__ import annotations

from tfship.lazy import lazy_exports

_EXPORTS = {
    "validate": "tfship.steps.validate.step",
    "ValidateConfig": "tfship.steps.validate.step",
    "ValidationReport": "tfship.steps.validate.step",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
