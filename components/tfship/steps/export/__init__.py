"""`tfship export`: a job's latest checkpoint -> a versioned SavedModel TF Serving loads.

Modules: `step` (export, ExportConfig, ExportResult), `signatures` (the serving signatures: raw
features in, named predictions out). Warm-up records are the SavedModel format's
(`tfship.saved_model.warmup`).
"""

from __future__ import annotations

from tfship.lazy import lazy_exports

# module -> the public names it defines
_EXPORTS = {
    "tfship.steps.export.step": ("export", "ExportConfig", "ExportResult"),
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
