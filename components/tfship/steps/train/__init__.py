"""`tfship train`: stream the data, train, checkpoint every K steps, resume exactly after a kill.

    from tfship.steps.train import train
    result = train(data="rows.csv", schema="schema.yaml", job_dir="/tmp/job", steps=500)

Modules: `step` (the loop, TrainConfig, TrainResult), `data` (files, the analysis pass, tf.data),
`input_pipeline` (`--input`), `model_families` and `user_code` (`--model`), `preprocessing` and
`media` (in-graph decoding, tokenising, lookups), `checkpointing`, `checkpoint_policy` and
`preemption` (exact resume, SIGTERM), `distribute` (strategies), `job` (the job directory that
export reads). Names are resolved lazily: importing this package does not import TensorFlow.
"""

from __future__ import annotations

from tfship.lazy import lazy_exports

# module -> the public names it defines
_EXPORTS = {
    "tfship.steps.train.step": ("train", "TrainConfig", "TrainResult"),
    "tfship.steps.train.model_families": ("ModelContext",),
    "tfship.steps.train.input_pipeline": ("InputContext",),
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
