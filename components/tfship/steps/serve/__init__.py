"""`tfship serve`: a local server that speaks TF Serving's gRPC and REST API over a model repository.

Production runs TF Serving itself; this server answers the same API over the same repository for
the embedded chain, development and tests (see docs/serve-canary.md)::

    from tfship.steps.serve import serve
    with serve("/models", grpc_port=0, rest_port=0) as server:
        print(server.grpc_address, server.rest_url)

Modules, one job each: `config` (ServeConfig, Fault), `plan` (what to serve, pure), `manager`
(load / label / unload), `inference` (Predict, Classify, Regress, metadata), `request_log`
(sampled PredictionLog files), `tensors` and
`rest_json` (wire formats), `grpc_api` and `rest_api` (transports), `server` (start and stop).
Names are resolved lazily: importing this package does not import gRPC or TensorFlow.
"""

from __future__ import annotations

from tfship.lazy import lazy_exports

# module -> the public names it defines
_EXPORTS = {
    "tfship.steps.serve.server": ("serve", "start_server", "ServerHandle"),
    "tfship.steps.serve.config": ("ServeConfig", "Fault"),
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
