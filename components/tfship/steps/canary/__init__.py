"""`tfship canary`: candidate vs baseline through TF Serving's API, a statistical verdict, promote or roll back.

    import tfship
    result = tfship.canary("grpc://127.0.0.1:8500", "penguins", "examples.jsonl", report_dir="/tmp/c")

Modules, one job each: `config` (CanaryConfig), `examples` (rows in, fitted to the signature),
`client` (gRPC and REST clients for any TF Serving), `collect` (paired, concurrent requests),
`stats` and `metrics` (estimates and intervals, pure), `judge` (classification and verdict, pure),
`report` (JSON, Markdown, HTML), `runner` (the run, and the label moves).
Names are resolved lazily: importing this package does not import gRPC, scipy or TensorFlow.
"""

from __future__ import annotations

from tfship.lazy import lazy_exports

_EXPORTS = {
    "canary": "tfship.steps.canary.runner",
    "run_canary": "tfship.steps.canary.runner",
    "CanaryResult": "tfship.steps.canary.runner",
    "CanaryConfig": "tfship.steps.canary.config",
    "JudgeConfig": "tfship.steps.canary.judge",
    "MetricConfig": "tfship.steps.canary.judge",
    "load_judge_config": "tfship.steps.canary.judge",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
