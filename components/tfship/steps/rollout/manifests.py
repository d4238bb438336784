"""The traffic split of a rollout step, rendered for what teams run in front of TF Serving.

Three kinds, one file each, rewritten at every step (and on rollback):
- Istio `VirtualService` (networking.istio.io/v1): one HTTP route, two weighted destinations.
- Gateway API `HTTPRoute` (gateway.networking.k8s.io/v1): one rule, two weighted backendRefs.
- KServe `InferenceService` (serving.kserve.io/v1beta1): `spec.predictor.canaryTrafficPercent`
  (KServe sends that share to the latest revision, the rest to the previous ready one).

For Istio and Gateway API the two versions are two Kubernetes Services (by default `<name>-stable`
and `<name>-canary`, each in front of a TF Serving that serves one version).

Every manifest is checked against a JSON Schema before it is written. No maintained PyPI package
ships the published schemas of these kinds in a usable form (searched again in December 2026:
none for Gateway API; for Istio only `cloudcoil-models-istio`, whose models ignore unknown fields
and pull a Kubernetes client framework; KServe's SDK needs kubernetes>=37, a web server and pandas;
docs/rollout.md lists what was searched), so `SCHEMAS` holds, written from each project's API
reference, the part of each CRD's OpenAPI schema that covers the fields tfship writes: types,
required fields, ranges, and no unknown fields. The tests check the rendered manifests against
the published CRD schemas themselves (tests/data/crds/).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tfship.errors import ConfigError
from tfship import storage

ISTIO, GATEWAY_API, KSERVE = "virtualservice", "httproute", "inferenceservice"
KINDS = (ISTIO, GATEWAY_API, KSERVE)

_DNS_LABEL = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63}
_NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253}


def _object(properties: Mapping[str, Any], required: list[str], closed: bool = True) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": dict(properties), "required": required}
    if closed:
        schema["additionalProperties"] = False
    return schema


def _resource(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return _object({
        "apiVersion": {"const": api_version},
        "kind": {"const": kind},
        "metadata": _object({"name": _NAME, "namespace": _DNS_LABEL}, ["name"], closed=False),
        "spec": spec,
    }, ["apiVersion", "kind", "metadata", "spec"])


_PERCENT = {"type": "integer", "minimum": 0, "maximum": 100}

SCHEMAS: dict[str, dict[str, Any]] = {
    ISTIO: _resource("networking.istio.io/v1", "VirtualService", _object({
        "hosts": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
        "http": {"type": "array", "minItems": 1, "items": _object({
            "name": {"type": "string"},
            "route": {"type": "array", "minItems": 1, "items": _object({
                "destination": _object({"host": {"type": "string", "minLength": 1},
                                        "port": _object({"number": {"type": "integer", "minimum": 0,
                                                                    "maximum": 4294967295}}, ["number"])}, ["host"]),
                "weight": {"type": "integer", "minimum": 0, "maximum": 2147483647},
            }, ["destination"])},
        }, ["route"])},
    }, ["hosts", "http"])),
    GATEWAY_API: _resource("gateway.networking.k8s.io/v1", "HTTPRoute", _object({
        "parentRefs": {"type": "array", "minItems": 1, "maxItems": 32, "items": _object({
            "name": _NAME, "namespace": _DNS_LABEL}, ["name"])},
        "rules": {"type": "array", "minItems": 1, "maxItems": 16, "items": _object({
            "backendRefs": {"type": "array", "maxItems": 16, "items": _object({
                "name": _NAME,
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "weight": {"type": "integer", "minimum": 0, "maximum": 1000000},
            }, ["name", "port"])},
        }, ["backendRefs"])},
    }, ["parentRefs", "rules"])),
    KSERVE: _resource("serving.kserve.io/v1beta1", "InferenceService", _object({
        "predictor": _object({
            "canaryTrafficPercent": _PERCENT,
            "model": _object({
                "modelFormat": _object({"name": {"const": "tensorflow"}}, ["name"]),
                "storageUri": {"type": "string", "minLength": 1},
            }, ["modelFormat"]),
        }, ["model"]),
    }, ["predictor"])),
}


@dataclass(frozen=True)
class SplitTarget:
    """Where the traffic is split.

    Attributes:
        name: the model name, also the name of the VirtualService, HTTPRoute and InferenceService.
        namespace: their namespace.
        host: the host clients call (the VirtualService's `hosts`).
        baseline_service, candidate_service: the Services in front of each version.
        port: the Services' port (TF Serving's REST port, 8501).
        gateway: the Gateway the HTTPRoute attaches to.
        storage_uri: the candidate's model location, for the InferenceService ("" = not written).
    """

    name: str
    namespace: str = "default"
    host: str = ""
    baseline_service: str = ""
    candidate_service: str = ""
    port: int = 8501
    gateway: str = "tfship-gateway"
    storage_uri: str = ""

    def __post_init__(self) -> None:
        import re

        name = self.name.replace("_", "-").lower()
        if not re.fullmatch(_NAME["pattern"], name):
            raise ConfigError(f"Invalid value for argument `--name`. Received: {self.name!r}. Expected a name usable "
                              "as a Kubernetes object name (lower-case letters, digits, '-', '.').")
        if not 0 < self.port < 65536:
            raise ConfigError(f"Invalid value for argument `--service-port`. Received: {self.port!r}. Expected 1-65535.")

    @property
    def object_name(self) -> str:
        return self.name.replace("_", "-").lower()

    def service(self, which: str) -> str:
        chosen = self.baseline_service if which == "baseline" else self.candidate_service
        return chosen or f"{self.object_name}-{'stable' if which == 'baseline' else 'canary'}"


def render(target: SplitTarget, candidate_percent: int) -> dict[str, dict[str, Any]]:
    """kind -> manifest, sending `candidate_percent` of the traffic to the candidate."""
    if not 0 <= candidate_percent <= 100:
        raise ConfigError(f"Invalid traffic share {candidate_percent!r}: expected 0-100 percent.")
    metadata = {"name": target.object_name, "namespace": target.namespace,
                "labels": {"app.kubernetes.io/managed-by": "tfship"}}
    baseline_percent = 100 - candidate_percent
    model: dict[str, Any] = {"modelFormat": {"name": "tensorflow"}}
    if target.storage_uri:
        model["storageUri"] = target.storage_uri
    return {
        ISTIO: {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": metadata, "spec": {
            "hosts": [target.host or target.object_name],
            "http": [{"name": "tfship-rollout", "route": [
                {"destination": {"host": target.service("baseline"), "port": {"number": target.port}},
                 "weight": baseline_percent},
                {"destination": {"host": target.service("candidate"), "port": {"number": target.port}},
                 "weight": candidate_percent},
            ]}],
        }},
        GATEWAY_API: {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": metadata, "spec": {
            "parentRefs": [{"name": target.gateway}],
            "rules": [{"backendRefs": [
                {"name": target.service("baseline"), "port": target.port, "weight": baseline_percent},
                {"name": target.service("candidate"), "port": target.port, "weight": candidate_percent},
            ]}],
        }},
        KSERVE: {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "metadata": metadata, "spec": {
            "predictor": {"canaryTrafficPercent": candidate_percent, "model": model},
        }},
    }


def validate(kind: str, manifest: Mapping[str, Any]) -> None:
    """Raise ConfigError naming the field when `manifest` does not fit its schema."""
    import jsonschema

    errors = sorted(jsonschema.Draft202012Validator(SCHEMAS[kind]).iter_errors(manifest), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = ".".join(str(p) for p in first.absolute_path) or "(top)"
        raise ConfigError(f"Invalid {manifest.get('kind', kind)} manifest: {where}: {first.message}")


def write(manifests: Mapping[str, Mapping[str, Any]], out_dir: str) -> dict[str, str]:
    """Validate, then write every manifest as `<kind>.yaml` (each file replaced atomically); kind -> path."""
    import yaml

    for kind, manifest in manifests.items():
        validate(kind, manifest)
    paths = {}
    for kind, manifest in manifests.items():
        paths[kind] = storage.join(out_dir, f"{kind}.yaml")
        storage.write_text(paths[kind], yaml.safe_dump(dict(manifest), sort_keys=False))
    return paths
