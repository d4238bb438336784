"""`tfship validate`: the gate between export and push; nothing ships that clients cannot call.

Modules: `step` (validate, ValidateConfig, ValidationReport), `worker` (the checks that need
TensorFlow, in a fresh process), `contract` (the signature contract and the baseline diff, pure),
`golden_examples` (rows with expected answers).
"""

from __future__ import annotations

from tfship.lazy import lazy_exports

# module -> the public names it defines
_EXPORTS = {
    "tfship.steps.validate.step": ("validate", "ValidateConfig", "ValidationReport"),
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
