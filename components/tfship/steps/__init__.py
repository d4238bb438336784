"""The steps of the chain, a package each: `train`, `export`, `validate`, `push`, `serve`, `canary`, `rollout`.

Each package is readable end to end with the shared core (`tfship.storage`, `tfship.errors`,
`tfship.tfserving`, `tfship.schema`, `tfship.saved_model`): its `step` module holds the function a
notebook calls, its config and its result (re-exported by `tfship` itself: `tfship.train(...)`),
and its other modules are what that function needs. A step imports no orchestrator and no other
step's private files. The packages live under `steps` so that `tfship.train` stays the function.
"""
