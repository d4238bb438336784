"""Check a rendered training object against its engine's published API models, strictly.

The models are Kubeflow Trainer's (`kubeflow-trainer-api` on PyPI, generated from the Trainer and
JobSet OpenAPI specs): JobSet (jobset.x-k8s.io/v1alpha2), TrainJob and ClusterTrainingRuntime
(trainer.kubeflow.org/v1alpha1). Parsing checks every field's type and the required ones; the
generated `from_dict` silently drops a field the API does not have, so the object must also come
back unchanged from a round trip: a misspelt or misplaced field is reported by its path.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
from kubeflow_trainer_api import models

K8S_VERSION = "1.33"
MODELS = {
    ("jobset.x-k8s.io/v1alpha2", "JobSet"): models.JobsetV1alpha2JobSet,
    ("trainer.kubeflow.org/v1alpha1", "TrainJob"): models.TrainerV1alpha1TrainJob,
    ("trainer.kubeflow.org/v1alpha1", "ClusterTrainingRuntime"): models.TrainerV1alpha1ClusterTrainingRuntime,
}


class SchemaError(AssertionError):
    """The object is not what the engine's API accepts."""


def _differences(given: Any, parsed: Any, path: str) -> list[str]:
    if isinstance(given, dict) and isinstance(parsed, dict):
        found = [f"{path}.{key}: not in the API" for key in given if key not in parsed]
        for key in given.keys() & parsed.keys():
            found += _differences(given[key], parsed[key], f"{path}.{key}")
        return found
    if isinstance(given, list) and isinstance(parsed, list) and len(given) == len(parsed):
        return [d for i, (a, b) in enumerate(zip(given, parsed)) for d in _differences(a, b, f"{path}[{i}]")]
    return [] if given == parsed else [f"{path}: {given!r} read back as {parsed!r}"]


def validate(body: dict) -> None:
    """Raise SchemaError unless `body` parses into its engine's model and round-trips unchanged."""
    model = MODELS.get((body.get("apiVersion"), body.get("kind")))
    if model is None:
        raise SchemaError(f"no published model for {body.get('apiVersion')} {body.get('kind')}")
    try:
        parsed = model.from_dict(body)
    except ValueError as error:  # pydantic's ValidationError
        raise SchemaError(str(error)) from error
    differences = _differences(body, parsed.to_dict(), body["kind"])
    if differences:
        raise SchemaError("; ".join(differences))


def validate_job_template(job_spec: dict) -> None:
    """A replicated job's Job spec, against the Kubernetes batch/v1 Job schema (strict)."""
    kubernetes_validate.validate(
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "worker"}, "spec": job_spec},
        K8S_VERSION, strict=True)


def validate_pod_template(template: dict) -> None:
    """A pod template, against the Kubernetes core/v1 PodTemplate schema (strict)."""
    kubernetes_validate.validate(
        {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "worker"}, "template": template},
        K8S_VERSION, strict=True)
