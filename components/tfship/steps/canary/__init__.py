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

# module -> the public names it defines
_EXPORTS = {
    "tfship.steps.canary.runner": ("canary", "run_canary", "CanaryResult"),
    "tfship.steps.canary.config": ("CanaryConfig",),
    "tfship.steps.canary.judge": ("JudgeConfig", "MetricConfig", "load_judge_config"),
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
