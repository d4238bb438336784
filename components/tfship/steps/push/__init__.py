"""`tfship push`, `promote`, `rollback`: publish a SavedModel into a TF Serving repository and move labels.

Modules: `step` (push, promote, rollback, remove_label: atomic, checksummed, recorded in the
label history), `version_wait` (until a TF Serving target reports a version AVAILABLE).
TF Serving's models.config is `tfship.models_config`; the audit trail is `tfship.history`.
"""

from __future__ import annotations

from tfship.lazy import lazy_exports

_EXPORTS = {
    "push": "tfship.steps.push.step",
    "PushConfig": "tfship.steps.push.step",
    "PushResult": "tfship.steps.push.step",
    "promote": "tfship.steps.push.step",
    "rollback": "tfship.steps.push.step",
    "remove_label": "tfship.steps.push.step",
    "used_versions": "tfship.steps.push.step",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
