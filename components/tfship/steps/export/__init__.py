"""`tfship export`: a job's latest checkpoint -> a versioned SavedModel TF Serving loads.

Modules: `step` (export, ExportConfig, ExportResult), `signatures` (the serving signatures: raw
features in, named predictions out). Warm-up records are the SavedModel format's
(`tfship.saved_model.warmup`).
"""

from __future__ import annotations

from tfship.lazy import lazy_exports

_EXPORTS = {
    "export": "tfship.steps.export.step",
    "ExportConfig": "tfship.steps.export.step",
    "ExportResult": "tfship.steps.export.step",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
