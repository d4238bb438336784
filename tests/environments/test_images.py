"""Images and manifests, checked statically (they cannot be built or applied on these machines).

The Kubernetes objects are validated against the Kubernetes 1.33 JSON schema, strictly (unknown
fields rejected), with kubernetes-validate's bundled, offline schemas.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.locks_util import pins
from tfship import chain
from tfship.k8s import workers
from tfship.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
K8S_VERSION = "1.33"


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    lines, current = [], ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            keyword, _, rest = current.strip().partition(" ")
            lines.append((keyword.upper(), rest.strip()))
            current = ""
    return lines


@pytest.mark.parametrize("name", ["Dockerfile.cpu", "Dockerfile.gpu"])
def test_dockerfile_pinned_non_root_entrypoint_tfship(name):
    instructions = _instructions(IMAGES / name)
    froms = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert froms, "no FROM"
    for base in froms:
        image = base.split()[0]
        tag = image.rsplit(":", 1)[-1] if ":" in image.split("/")[-1] else ""
        assert "@sha256:" in image or re.match(r"^\d+\.\d+\.\d+", tag), f"unpinned base {image}"
        assert tag != "latest"
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image must end as a non-root user"
    entrypoints = [rest for keyword, rest in instructions if keyword == "ENTRYPOINT"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert yaml.safe_load(entrypoints[-1]) == ["tfship"] and "tfship" in scripts
    # What it installs is checked in test_image_env.py (the lock, through images/install-env.sh).


def test_gpu_image_installs_cuda_build():
    runs = " ".join(r for k, r in _instructions(IMAGES / "Dockerfile.gpu") if k == "RUN")
    assert "locks/image-gpu.txt" in runs
    gpu = pins("image-gpu")  # tensorflow[and-cuda]: CUDA and cuDNN wheels matched to TensorFlow
    assert gpu["tensorflow"].startswith("2.21.") and "nvidia-cudnn-cu12" in gpu and "nvidia-cublas-cu12" in gpu


def test_serving_manifest_validates_and_reads_the_pushed_config():
    documents = list(yaml.safe_load_all((IMAGES / "tf-serving.yaml").read_text()))
    for document in documents:
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)
    kinds = {d["kind"]: d for d in documents}
    deployment = kinds["Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert re.match(r"^tensorflow/serving:\d+\.\d+\.\d+$", container["image"])
    args = container["args"]
    assert any(a.startswith("--model_config_file=") and a.endswith("/models.config") for a in args)
    assert any(a.startswith("--model_config_file_poll_wait_seconds=") for a in args)
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    # The chain's canary target on a cluster is this Service's gRPC port.
    service = kinds["Service"]
    host = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local"
    grpc = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc")
    assert chain.DEFAULT_SERVING_TARGET == f"grpc://{host}:{grpc}"


def test_the_schema_check_catches_a_broken_manifest():
    """The validator really rejects what a cluster would (so the test above can fail)."""
    deployment = next(d for d in yaml.safe_load_all((IMAGES / "tf-serving.yaml").read_text())
                      if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "8500"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_tfjob_for_multi_worker_train():
    config = chain.ChainConfig(data="gs://b/d.csv", schema="gs://b/s.yaml", runs_root="gs://b/runs",
                               repo="gs://m/repo", workers=4, gpu_type="nvidia-l4")
    run_plan = chain.plan_run(config, "manual__2025-01-02T03-04-05", [1], 1)
    job = workers.render_tfjob(config, run_plan, image="tfship-gpu:0.1.0")
    assert job["apiVersion"] == "kubeflow.org/v1" and job["kind"] == "TFJob"
    assert re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", job["metadata"]["name"])
    assert len(job["metadata"]["name"]) <= 63
    worker_spec = job["spec"]["tfReplicaSpecs"]["Worker"]
    assert worker_spec["replicas"] == 4
    assert worker_spec["restartPolicy"] in ("Always", "OnFailure", "Never", "ExitCode")
    assert job["spec"]["runPolicy"]["cleanPodPolicy"] in ("All", "Running", "None")
    # The worker's pod template is a real Kubernetes PodTemplateSpec.
    kubernetes_validate.validate(
        {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "worker"},
         "template": worker_spec["template"]},
        K8S_VERSION, strict=True)
    pod = worker_spec["template"]["spec"]
    container = pod["containers"][0]
    assert container["name"] == "tensorflow"
    assert container["args"] == chain.step_args("train", config, run_plan)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"]["cloud.google.com/gke-accelerator"] == "nvidia-l4"
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])


def test_cli_lists_every_chain_step():
    for step in chain.CHAIN:
        assert step.name in COMMANDS
