"""`tfship serve`'s Prometheus metrics, scraped from a real server over HTTP.

The server's metrics are one registry per process (as TF Serving's are), and other tests in this
process may have served requests before: every assertion is on the difference between two scrapes.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import pytest
import tensorflow as tf
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import classification_pb2, predict_pb2, prediction_service_pb2_grpc
from tests.canary.test_canary_e2e import make_repo  # the canary tests' repository: m 123..127

from tfship.steps.serve import Fault, serve

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tf_serving_testdata: Path):
    repo = make_repo(tmp_path_factory.mktemp("repo"), tf_serving_testdata)
    with serve(repo, grpc_port=0, rest_port=0, poll_seconds=0, faults=(Fault("m", 124, error_rate=0.5),)) as handle:
        yield handle


def scrape(server: Any) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """(Content-Type, {(sample name, sorted labels): value}) of one scrape."""
    with urllib.request.urlopen(f"{server.rest_url}/monitoring/prometheus/metrics", timeout=10) as response:
        content_type = response.headers["Content-Type"]
        text = response.read().decode("utf-8")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return content_type, samples


def delta(before: dict, after: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def rest_predict(server: Any, version: int) -> int:
    request = urllib.request.Request(
        f"{server.rest_url}/v1/models/m/versions/{version}:predict",
        data=json.dumps({"instances": [[1.0]]}).encode(), method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_requests_are_counted_per_version_api_and_status_over_both_transports(server: Any) -> None:
    _, before = scrape(server)
    rest_statuses = [rest_predict(server, 124) for _ in range(40)] + [rest_predict(server, 123) for _ in range(10)]
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(server.grpc_address))
    predict = predict_pb2.PredictRequest()
    predict.model_spec.name = "m"
    predict.model_spec.version.value = 123
    predict.inputs["x"].CopyFrom(tf.make_tensor_proto([[1.0]], dtype=tf.float32))
    for _ in range(5):
        stub.Predict(predict, timeout=10)
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = "m"
    classify.model_spec.version.value = 123
    classify.model_spec.signature_name = "classify_x_to_y"
    example = classify.input.example_list.examples.add()
    example.features.feature["x"].float_list.value.append(2.0)
    stub.Classify(classify, timeout=10)
    content_type, after = scrape(server)

    assert content_type.startswith("text/plain")
    failed = rest_statuses.count(500)
    assert 5 <= failed <= 35 and rest_statuses.count(200) == 50 - failed  # the injected fault, seeded
    count = "tfship_serving_request_count_total"
    assert delta(before, after, count, model_name="m", version="124", API="Predict", status="INTERNAL") == failed
    assert delta(before, after, count, model_name="m", version="124", API="Predict", status="OK") == 40 - failed
    assert delta(before, after, count, model_name="m", version="123", API="Predict", status="OK") == 15
    assert delta(before, after, count, model_name="m", version="123", API="Classify", status="OK") == 1
    # TF Serving's own names, as its exporter writes them (no `_total`, `/` -> `:`)
    assert delta(before, after, ":tensorflow:serving:request_count", model_name="m", status="OK") == 56 - failed
    assert delta(before, after, ":tensorflow:serving:request_count", model_name="m", status="INTERNAL") == failed
    assert delta(before, after, ":tensorflow:serving:request_latency_count",
                 model_name="m", API="Predict", entrypoint="") == 55
    # the per-version latency histogram: every request in the +Inf bucket, and in _count
    latency = "tfship_serving_request_latency_seconds"
    assert delta(before, after, f"{latency}_count", model_name="m", version="123", API="Predict") == 15
    assert delta(before, after, f"{latency}_bucket", model_name="m", version="123", API="Predict", le="+Inf") == 15
    assert 0 < delta(before, after, f"{latency}_sum", model_name="m", version="123", API="Predict") < 15


def test_other_paths_are_still_answered_as_tf_serving_does(server: Any) -> None:
    request = urllib.request.Request(f"{server.rest_url}/monitoring/prometheus/other")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=10)
    assert raised.value.code == 404
