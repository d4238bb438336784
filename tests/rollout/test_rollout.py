"""`tfship rollout`: the rendered traffic split, and whole rollouts against a real Prometheus.

No Kubernetes cluster exists here: the manifests are checked against their schemas
(`tfship.steps.rollout.manifests.SCHEMAS`), and server-side apply (`--apply`) goes to a MOCK Kubernetes
API server on 127.0.0.1 (`FakeKubernetesApi`: discovery and the apply PATCH, recording what it
receives; nothing is reconciled). In the end-to-end tests no mesh routes by those weights
either, so the load generator sends the same rate to both versions at every step; what is tested
is the judging, the early stops, the rollback, and what is written and applied.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.live_util import Load, prometheus, tfship_cli, tfship_serve
from tests.canary.test_canary_e2e import make_repo

from tests.conftest import free_port
from tfship import storage
from tfship import models_config
from tfship.cli import main as cli_main
from tfship.errors import ConfigError, EndpointError
from tfship.history import read_history
from tfship.steps.rollout import manifests
from tfship.steps.rollout.apply import ClusterApplier, parse_kinds
from tfship.steps.rollout import parse_steps

pytestmark = pytest.mark.timeout(240)


# ---- manifests (pure) -------------------------------------------------------------------------


def test_each_manifest_splits_the_traffic_and_fits_its_schema() -> None:
    target = manifests.SplitTarget("my_model", namespace="ml", storage_uri="gs://models/my_model")
    rendered = manifests.render(target, 25)
    for kind, manifest in rendered.items():
        manifests.validate(kind, manifest)
    route = rendered["virtualservice"]["spec"]["http"][0]["route"]
    assert [(r["destination"]["host"], r["weight"]) for r in route] == [("my-model-stable", 75), ("my-model-canary", 25)]
    backends = rendered["httproute"]["spec"]["rules"][0]["backendRefs"]
    assert [(b["name"], b["weight"]) for b in backends] == [("my-model-stable", 75), ("my-model-canary", 25)]
    predictor = rendered["inferenceservice"]["spec"]["predictor"]
    assert predictor == {"canaryTrafficPercent": 25,
                         "model": {"modelFormat": {"name": "tensorflow"}, "storageUri": "gs://models/my_model"}}
    assert {m["metadata"]["name"] for m in rendered.values()} == {"my-model"}


CRDS = Path(__file__).parents[1] / "data" / "crds"  # published CRD schemas, see SOURCES.md there


def strict(schema: Any) -> Any:
    """A CRD's OpenAPI schema with unknown fields refused, as `kubectl apply --validate=strict`
    refuses them (the API server would otherwise prune them silently), except where the CRD keeps
    unknown fields on purpose (`x-kubernetes-preserve-unknown-fields`)."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {key: strict(value) for key, value in schema.items()}
    if "properties" in schema and "additionalProperties" not in schema \
            and not schema.get("x-kubernetes-preserve-unknown-fields"):
        closed["additionalProperties"] = False
    return closed


@pytest.fixture(scope="module")
def published() -> dict[str, Any]:
    """kind -> a validator of its published schema, strict, with the fields every object has (the
    API server adds `apiVersion`, `kind` and `metadata` to every CRD's root; Istio's omit them)."""
    import gzip

    import jsonschema

    validators = {}
    for kind in manifests.KINDS:
        schema = strict(json.loads(gzip.decompress((CRDS / f"{kind}.schema.json.gz").read_bytes())))
        schema["properties"] = {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                "metadata": {"type": "object"}, **schema["properties"]}
        validators[kind] = jsonschema.Draft7Validator(schema)
    return validators


@pytest.mark.parametrize("percent", [0, 5, 100])
@pytest.mark.parametrize("target", [
    manifests.SplitTarget("m"),
    manifests.SplitTarget("my_model", namespace="ml", host="models.example.com", baseline_service="tfs-a",
                          candidate_service="tfs-b", port=8500, gateway="edge", storage_uri="gs://models/my_model/7"),
], ids=["defaults", "every-option"])
def test_rendered_manifests_fit_the_published_crd_schemas(published: dict, target: Any, percent: int) -> None:
    """What the subset in SCHEMAS accepts, the projects' own CRD schemas accept too (the CEL rules
    some CRDs add, `x-kubernetes-validations`, are the API server's and are not evaluated here)."""
    for kind, manifest in manifests.render(target, percent).items():
        errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in published[kind].iter_errors(manifest)]
        assert not errors, (kind, errors)


def test_the_published_schemas_catch_what_a_cluster_would_refuse(published: dict) -> None:
    """The check above can fail: a misspelled field, a weight out of range, a missing required key."""
    rendered = manifests.render(manifests.SplitTarget("m"), 5)
    vs = json.loads(json.dumps(rendered["virtualservice"]))
    vs["spec"]["http"][0]["route"][0]["wieght"] = vs["spec"]["http"][0]["route"][0].pop("weight")
    assert any("wieght" in e.message for e in published["virtualservice"].iter_errors(vs))
    route = json.loads(json.dumps(rendered["httproute"]))
    route["spec"]["rules"][0]["backendRefs"][0]["weight"] = 2_000_000
    assert any(list(e.absolute_path)[-1] == "weight" for e in published["httproute"].iter_errors(route))
    isvc = json.loads(json.dumps(rendered["inferenceservice"]))
    del isvc["spec"]["predictor"]["model"]["modelFormat"]["name"]
    assert list(published["inferenceservice"].iter_errors(isvc))


@pytest.mark.parametrize("kind, path, value, message", [
    ("httproute", ["spec", "rules", 0, "backendRefs", 0, "weight"], -1, r"spec\.rules\.0\.backendRefs\.0\.weight: -1 is less"),
    ("inferenceservice", ["spec", "predictor", "canaryTrafficPercent"], 101, r"canaryTrafficPercent: 101 is greater"),
    ("virtualservice", ["spec", "http", 0, "route", 0, "weigth"], 5, r"spec\.http\.0\.route\.0: Additional properties"),
    ("virtualservice", ["metadata", "name"], "Bad_Name", r"metadata\.name: 'Bad_Name' does not match"),
])
def test_a_manifest_that_breaks_its_schema_is_named(kind: str, path: list, value: Any, message: str) -> None:
    manifest = manifests.render(manifests.SplitTarget("m"), 25)[kind]
    node = manifest
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ConfigError, match=message):
        manifests.validate(kind, manifest)


@pytest.mark.parametrize("text", ["5,25,50", "50,25,100", "0,100", "5,,100", "five", "5,5,100"])
def test_bad_steps_are_named(text: str) -> None:
    with pytest.raises(ConfigError, match=r"`--steps`\. Received: .*Expected increasing percentages ending at 100"):
        parse_steps(text)


def test_steps() -> None:
    assert parse_steps("5,25,50,100") == (5, 25, 50, 100) and parse_steps("100") == (100,)


# ---- whole rollouts on live traffic -----------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, tf_serving_testdata: Path) -> Any:
    """(REST URL, Prometheus URL, repo) with load on versions 123 (stable), 124 (canary, healthy), 127 (20 % errors)."""
    root = tmp_path_factory.mktemp("rollout")
    repo = make_repo(root / "repo", tf_serving_testdata, {"flaky": 127})
    with tfship_serve(repo, root, ["m/127:error_rate=0.2"]) as rest_url:
        with prometheus(root, [rest_url.removeprefix("http://")]) as prometheus_url:
            with Load(rest_url, "m", [123, 124, 127]):
                time.sleep(2)  # the first scrapes, before any step starts
                yield rest_url, prometheus_url, repo


def rollout(live: Any, out_dir: Path, candidate: str, *extra: str) -> int:
    return cli_main(["rollout", "--target", live[0], "--name", "m", "--prometheus", live[1],
                     "--candidate", candidate, "--steps", "50,100", "--interval", "20s", "--check-every", "1s",
                     "--out-dir", str(out_dir), *extra])


def weights(out_dir: Path) -> tuple[int, int, int]:
    """(candidate % in the VirtualService, in the HTTPRoute, KServe's canaryTrafficPercent)."""
    virtual = yaml.safe_load((out_dir / "virtualservice.yaml").read_text())
    route = yaml.safe_load((out_dir / "httproute.yaml").read_text())
    kserve = yaml.safe_load((out_dir / "inferenceservice.yaml").read_text())
    return (virtual["spec"]["http"][0]["route"][1]["weight"], route["spec"]["rules"][0]["backendRefs"][1]["weight"],
            kserve["spec"]["predictor"]["canaryTrafficPercent"])


def test_a_healthy_candidate_is_rolled_out_step_by_step(live: Any, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    started = time.monotonic()
    recorded = len(read_history(live[2], "m"))
    code = rollout(live, tmp_path, "canary", "--repo", live[2])
    out = capsys.readouterr().out
    record = json.loads((tmp_path / "rollout.json").read_text())
    assert (code, record["status"]) == (0, "PROMOTED"), out
    entries = read_history(live[2], "m")[recorded:]  # each step in the label history, before it was published
    assert [(e["action"], e["traffic"]["percent"], e["verdict"]) for e in entries] == [
        ("rollout-step", 50, None), ("rollout-step", 100, "PASS")]
    assert all(e["report"] == str(tmp_path / "rollout.json") and e["traffic"]["candidate_version"] == 124
               and e["moves"] == {} for e in entries)
    assert [(s["percent"], s["verdict"]) for s in record["steps"]] == [(50, "PASS"), (100, "PASS")]
    assert all(s["decided_by"] == "sequential" and s["ended"] - s["started"] < 20 for s in record["steps"]), out
    assert time.monotonic() - started < 40  # both steps stopped early on clear evidence
    assert weights(tmp_path) == (100, 100, 100)
    assert (record["baseline_version"], record["candidate_version"]) == (123, 124)


def test_a_failing_candidate_is_rolled_back_with_the_reason(live: Any, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    recorded = len(read_history(live[2], "m"))
    code = rollout(live, tmp_path, "flaky", "--repo", live[2])
    out = capsys.readouterr().out
    record = json.loads((tmp_path / "rollout.json").read_text())
    assert (code, record["status"]) == (1, "ROLLED_BACK"), out
    entries = read_history(live[2], "m")[recorded:]
    assert [(e["action"], e["traffic"]["percent"], e["verdict"]) for e in entries] == [
        ("rollout-step", 50, None), ("rollout-rollback", 0, "FAIL")]
    assert entries[-1]["reason"] == record["reason"]
    assert [(s["percent"], s["verdict"], s["decided_by"]) for s in record["steps"]] == [(50, "FAIL", "sequential")]
    assert record["reason"].startswith("step 50% FAIL (sequential): error_rate")
    assert weights(tmp_path) == (0, 0, 0)  # the weights are back on the baseline
    assert out.startswith("rollout ROLLED_BACK")


def test_without_sequential_analysis_a_step_lasts_its_interval(live: Any, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = cli_main(["rollout", "--target", live[0], "--name", "m", "--prometheus", live[1], "--candidate", "flaky",
                     "--steps", "100", "--interval", "4s", "--no-sequential", "--out-dir", str(tmp_path)])
    record = json.loads((tmp_path / "rollout.json").read_text())
    step = record["steps"][0]
    assert (code, step["verdict"], step["decided_by"]) == (1, "FAIL", "window"), capsys.readouterr().out
    assert step["ended"] - step["started"] >= 4


# ---- server-side apply, to a mock Kubernetes API ----------------------------------------------

# The groups the mock cluster serves: Istio and Gateway API, no KServe.
API_GROUPS = {
    "networking.istio.io": ("v1", "virtualservices", "VirtualService"),
    "gateway.networking.k8s.io": ("v1", "httproutes", "HTTPRoute"),
}


class FakeKubernetesApi(ThreadingHTTPServer):
    """A MOCK of the Kubernetes API (no cluster exists here): discovery, and the server-side apply
    PATCH, answered with the applied object. `applied` records (path, query, content type, body)."""

    daemon_threads = True

    def __init__(self) -> None:
        self.applied: list[tuple[str, dict, str, dict]] = []
        self.authorizations: list[str | None] = []  # the Authorization header of each apply
        super().__init__(("127.0.0.1", 0), _handler(self))


def _handler(api: FakeKubernetesApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _json(self, document: dict, status: int = 200) -> None:
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            path = urllib.parse.urlsplit(self.path).path.rstrip("/")
            if path == "/version":
                return self._json({"major": "1", "minor": "30", "gitVersion": "v1.30.0"})
            if path == "/apis":
                return self._json({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                    {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                     "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v}}
                    for g, (v, _, _) in API_GROUPS.items()]})
            if path == "/api/v1":
                return self._json({"kind": "APIResourceList", "groupVersion": "v1", "resources": []})
            parts = path.split("/")
            if len(parts) == 4 and parts[2] in API_GROUPS:
                version, plural, kind = API_GROUPS[parts[2]]
                return self._json({"kind": "APIResourceList", "groupVersion": f"{parts[2]}/{version}", "resources": [
                    {"name": plural, "singularName": kind.lower(), "namespaced": True, "kind": kind,
                     "verbs": ["get", "list", "patch", "create", "update", "delete"]}]})
            return self._json({"kind": "Status", "code": 404}, 404)

        def do_PATCH(self) -> None:  # noqa: N802
            split = urllib.parse.urlsplit(self.path)
            body = yaml.safe_load(self.rfile.read(int(self.headers["Content-Length"])))
            api.applied.append((split.path, dict(urllib.parse.parse_qsl(split.query)), self.headers["Content-Type"], body))
            api.authorizations.append(self.headers.get("Authorization"))
            self._json(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def cluster(tmp_path: Path) -> Any:
    """(the mock API server, a kubeconfig pointing at it)."""
    api = FakeKubernetesApi()
    thread = threading.Thread(target=api.serve_forever, daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "mock",
        "clusters": [{"name": "mock", "cluster": {"server": f"http://127.0.0.1:{api.server_address[1]}"}}],
        "users": [{"name": "mock", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "mock", "context": {"cluster": "mock", "user": "mock"}}],
    }))
    yield api, str(kubeconfig)
    api.shutdown()
    api.server_close()


def test_apply_is_server_side_with_tfship_as_field_manager(cluster: Any) -> None:
    api, kubeconfig = cluster
    rendered = manifests.render(manifests.SplitTarget("m", namespace="ml"), 25)
    ClusterApplier(parse_kinds("virtualservice,httproute"), kubeconfig).apply(rendered)
    assert [(path, query, content_type) for path, query, content_type, _ in api.applied] == [
        ("/apis/networking.istio.io/v1/namespaces/ml/virtualservices/m", {"fieldManager": "tfship", "force": "True"},
         "application/apply-patch+yaml"),
        ("/apis/gateway.networking.k8s.io/v1/namespaces/ml/httproutes/m", {"fieldManager": "tfship", "force": "True"},
         "application/apply-patch+yaml"),
    ]
    assert [body for *_, body in api.applied] == [rendered["virtualservice"], rendered["httproute"]]


def test_a_kind_the_cluster_lacks_is_named(cluster: Any) -> None:
    _, kubeconfig = cluster
    with pytest.raises(EndpointError, match=r"--apply inferenceservice: the cluster has no serving\.kserve\.io/v1beta1 "
                                            r"InferenceService \(is its CRD installed\?\)"):
        ClusterApplier(["inferenceservice"], kubeconfig).apply(manifests.render(manifests.SplitTarget("m"), 5))


def test_in_a_pod_apply_uses_the_service_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rollout task's pod: no kubeconfig, KUBERNETES_SERVICE_HOST/PORT set by the kubelet, the
    service account's token and CA mounted. Here the API server (the MOCK, over TLS with a
    self-signed certificate) and the mount (files in tmp_path) stand in for the cluster's."""
    from kubernetes.config import incluster_config

    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "ca.crt")], check=True, capture_output=True)
    (tmp_path / "token").write_text("pod-service-account-token")
    api = FakeKubernetesApi()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "ca.crt", tmp_path / "key.pem")
    api.socket = context.wrap_socket(api.socket, server_side=True)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(api.server_address[1]))
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config to fall back on
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(tmp_path / "ca.crt"))
    try:
        ClusterApplier(["virtualservice"]).apply(manifests.render(manifests.SplitTarget("m", namespace="ml"), 5))
        assert [path for path, *_ in api.applied] == ["/apis/networking.istio.io/v1/namespaces/ml/virtualservices/m"]
        assert [header.split(" ", 1) for header in api.authorizations] == [["bearer", "pod-service-account-token"]]
        monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "no-token"))
        with pytest.raises(ConfigError, match=r"^--apply in a pod: its service account cannot be used: "):
            ClusterApplier(["virtualservice"])
    finally:
        api.shutdown()
        api.server_close()


def test_an_unreachable_cluster_and_bad_kinds_are_named(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "gone",
        "clusters": [{"name": "gone", "cluster": {"server": f"http://127.0.0.1:{free_port()}"}}],
        "users": [{"name": "gone", "user": {}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "gone"}}],
    }))
    with pytest.raises(EndpointError, match="--apply virtualservice: the cluster does not answer"):
        ClusterApplier(["virtualservice"], str(kubeconfig)).apply(manifests.render(manifests.SplitTarget("m"), 5))
    with pytest.raises(ConfigError, match=r"`--apply`\. Received: 'virtualservice,deployment'"):
        parse_kinds("virtualservice,deployment")
    with pytest.raises(ConfigError, match="--kubeconfig .*missing: cannot use it"):
        ClusterApplier(["virtualservice"], str(tmp_path / "missing"))


def test_a_rollback_applies_the_weights_back(live: Any, cluster: Any, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    api, kubeconfig = cluster
    code = rollout(live, tmp_path, "flaky", "--apply", "virtualservice,httproute", "--kubeconfig", kubeconfig)
    assert code == 1, capsys.readouterr().out
    applied = [(path.rsplit("/", 2)[-2], body["spec"]) for path, _, _, body in api.applied]
    candidate_weights = [spec["http"][0]["route"][1]["weight"] if kind == "virtualservices"
                         else spec["rules"][0]["backendRefs"][1]["weight"] for kind, spec in applied]
    assert [kind for kind, _ in applied] == ["virtualservices", "httproutes"] * 2
    assert candidate_weights == [50, 50, 0, 0]  # step 50 %, then the rollback


# ---- the labels follow the outcome (`--promote`); last in the module: it moves the shared labels ----


def labels(repo: str) -> dict[str, int]:
    return models_config.version_labels(models_config.read_models_config(repo), "m")


def test_with_promote_the_labels_follow_the_outcome(live: Any, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert rollout(live, tmp_path / "norepo", "canary", "--promote") == 2
    assert "--promote needs --repo" in capsys.readouterr().err
    assert rollout(live, tmp_path / "pass", "canary", "--repo", live[2], "--promote") == 0, capsys.readouterr().out
    assert labels(live[2])["stable"] == 124
    promoted = read_history(live[2], "m")[-1]
    assert (promoted["action"], promoted["verdict"], promoted["report"]) == (
        "promote", "PASS", str(tmp_path / "pass" / "rollout.json"))
    # A rolled-back candidate loses its label, as after a canary FAIL; stable stays.
    assert rollout(live, tmp_path / "fail", "flaky", "--repo", live[2], "--promote") == 1, capsys.readouterr().out
    after = labels(live[2])
    assert "flaky" not in after and after["stable"] == 124
    removed = read_history(live[2], "m")[-1]
    assert (removed["action"], removed["verdict"], removed["moves"]) == ("remove-label", "FAIL", {"flaky": [127, None]})


# ---- the chain's rollout step (`tfship run --rollout-steps`) ----------------------------------


@pytest.mark.slow
def test_the_chain_rolls_out_after_the_canary_and_a_rollout_fail_is_a_verdict(tmp_path: Path,
                                                                              tf_serving_testdata: Path) -> None:
    """No traffic reaches the new version during the rollout: NODATA, so the chain rolls back.

    The canary before it PASSes (the same model again) and, with a rollout step, promotes nothing:
    `stable` stays on version 1; the rollout's FAIL exits 1 (a verdict, not a crash), removes the
    `canary` label, and every history entry of the run names it (TFSHIP_RUN_ID).
    """
    model = tf_serving_testdata / "saved_model_half_plus_two_cpu" / "00000123"
    repo = str(tmp_path / "repo")  # version 1 serves as `stable`, as a first run leaves it
    shutil.copytree(model, tmp_path / "repo" / "hp" / "1")
    config = models_config.with_version(models_config.ModelServerConfig(), "hp", str(tmp_path / "repo" / "hp"), 1)
    storage.write_text(models_config.config_uri(repo),
                       models_config.format_models_config(models_config.with_label(config, "hp", "stable", 1)))
    run = [*tfship_cli(), "run", "--run-dir", str(tmp_path), "--name", "hp", "--saved-model", str(model)]
    with tfship_serve(repo, tmp_path) as rest_url, prometheus(tmp_path, [rest_url.removeprefix("http://")]) as prom:
        second = subprocess.run(
            [*run, "--run-id", "r2", "--target", rest_url, "--prometheus", prom, "--rollout-steps", "100",
             "--rollout-interval", "3s", "--rollout-check-every", "1s"],
            capture_output=True, text=True, timeout=300)
    assert second.returncode == 1, second.stdout[-4000:] + second.stderr[-4000:]
    assert "verdict:  PASS" in second.stdout and "rollout:  FAIL" in second.stdout
    assert "canary PASS, rollout FAIL: version 1 stays stable" in second.stdout
    assert models_config.version_labels(models_config.read_models_config(repo), "hp") == {"stable": 1}
    record = json.loads((tmp_path / "runs" / "r2" / "reports" / "rollout" / "rollout.json").read_text())
    assert record["status"] == "ROLLED_BACK" and record["candidate_version"] == 2
    entries = read_history(repo, "hp")
    assert {e["run_id"] for e in entries} == {"r2"}
    second_run = [(e["action"], e["verdict"]) for e in entries]
    assert ("promote", "PASS") not in second_run  # the canary PASS left the promotion to the rollout
    assert second_run[-2:] == [("rollout-rollback", record["steps"][0]["verdict"]),
                               ("remove-label", record["steps"][0]["verdict"])]
