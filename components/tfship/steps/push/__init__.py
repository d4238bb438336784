"""`tfship push`, `promote`, `rollback`: publish a SavedModel into a TF Serving repository and move labels.

Modules: `step` (push, promote, rollback, remove_label: atomic, checksummed, recorded in the
label history), `version_wait` (until a TF Serving target reports a version AVAILABLE).
TF Serving's models.config is `tfship.models_config`; the audit trail is `tfship.history`.
"""

from __future__ import annotations

from tfship.lazy import lazy_exports

# module -> the public names it defines
_EXPORTS = {
    "tfship.steps.push.step": (
        "push", "PushConfig", "PushResult", "promote", "rollback", "remove_label", "used_versions",
    ),
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
