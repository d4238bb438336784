"""Prometheus metrics of `tfship serve`, at TF Serving's path `/monitoring/prometheus/metrics`.

TF Serving serves its metrics on the REST port when started with a monitoring config
(`prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }`); tfship serves them
there always. Two families keep TF Serving's own names (`tensorflow_serving/servables/tensorflow/
util.cc`), exposed the way its `prometheus_exporter.cc` writes them: every character of the
monitoring name that is not `[a-zA-Z0-9_]` becomes `:`, and counters carry no `_total` suffix:

    :tensorflow:serving:request_count{model_name, status}        requests, by canonical status
    :tensorflow:serving:request_latency{model_name, API, entrypoint}   histogram, microseconds,
                                                                  buckets 10 * 1.8**i (i < 33)

Dashboards and alerts written for TF Serving therefore work on tfship unchanged. TF Serving has no
per-version request metrics, and a canary judge needs them, so tfship adds:

    tfship_serving_request_count_total{model_name, version, API, status}
    tfship_serving_request_latency_seconds{model_name, version, API}   histogram (+ _sum, _count)

`API` is "Predict", "Classify" or "Regress"; `status` a canonical code ("OK", "INTERNAL", ...).
Requests are counted where both transports share the path (`tfship.steps.serve.inference`), once a
version is resolved: a request for an unknown model or a malformed body is answered but not
counted. `entrypoint` is empty because that shared path does not know the transport.

prometheus-client writes the exposition. Its text writer names a counter family `<name>_total`,
so the TF Serving counter is exposed with TYPE `untyped`: the sample name, which is what PromQL
matches, is TF Serving's. The metrics live in one registry per process, as TF Serving's do.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from tfship.steps.serve.status import ServingStatus

PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
CONTENT_TYPE = CONTENT_TYPE_LATEST

TF_REQUEST_COUNT = ":tensorflow:serving:request_count"
TF_REQUEST_LATENCY = ":tensorflow:serving:request_latency"
REQUEST_COUNT = "tfship_serving_request_count"  # exposed as ..._total
REQUEST_LATENCY = "tfship_serving_request_latency_seconds"

# TF Serving's `Buckets::Exponential(10, 1.8, 33)` in microseconds (about 10 us to 20 min).
TF_LATENCY_BUCKETS_US = tuple(10 * 1.8**i for i in range(33))
# Finer buckets for the judge (each 25 % wider than the last, 0.1 ms to about 3 min): quantiles
# interpolated inside a bucket are then within 25 % of the true value.
LATENCY_BUCKETS_S = tuple(1e-4 * 1.25**i for i in range(65))


class _TfServingRequestCount(Collector):
    """TF Serving's request counter, summed from the per-version counter at each scrape, with TF
    Serving's exact sample name (see the module docstring)."""

    def __init__(self, per_version: Counter) -> None:
        self._per_version = per_version

    def collect(self) -> Iterator[Metric]:
        totals: dict[tuple[str, str], float] = {}
        for family in self._per_version.collect():
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    key = (sample.labels["model_name"], sample.labels["status"])
                    totals[key] = totals.get(key, 0.0) + sample.value
        family = Metric(TF_REQUEST_COUNT, "The total number of requests.", "unknown")
        for (model_name, status), count in sorted(totals.items()):
            family.add_sample(TF_REQUEST_COUNT, {"model_name": model_name, "status": status}, count)
        yield family


class ServingMetrics:
    """The request metrics of one server process (thread-safe)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._tf_latency = Histogram(
            TF_REQUEST_LATENCY, "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            ["model_name", "API", "entrypoint"], buckets=TF_LATENCY_BUCKETS_US, registry=self.registry,
        )
        self._count = Counter(
            REQUEST_COUNT, "Requests per model version, API and canonical status.",
            ["model_name", "version", "API", "status"], registry=self.registry,
        )
        self._latency = Histogram(
            REQUEST_LATENCY, "Server-side wall time of requests per model version and API, in seconds.",
            ["model_name", "version", "API"], buckets=LATENCY_BUCKETS_S, registry=self.registry,
        )
        self.registry.register(_TfServingRequestCount(self._count))

    def observe(self, model_name: str, version: int, api: str, status: str, seconds: float) -> None:
        """Record one finished request."""
        self._tf_latency.labels(model_name, api, "").observe(seconds * 1e6)
        self._count.labels(model_name, str(version), api, status).inc()
        self._latency.labels(model_name, str(version), api).observe(seconds)

    def exposition(self) -> str:
        """The text exposition format (what GET /monitoring/prometheus/metrics answers)."""
        return generate_latest(self.registry).decode("utf-8")


# One per process, like TF Serving's monitoring registry: every server in the process reports here.
SERVING_METRICS = ServingMetrics()


@contextmanager
def record_request(model_name: str, version: int, api: str) -> Iterator[None]:
    """Count and time the request run inside, with the canonical status it ends with.

    A `ServingStatus` counts as its code; any other exception is a tfship bug, answered 500, and
    counts as INTERNAL.
    """
    started = time.perf_counter()
    status = "OK"
    try:
        yield
    except ServingStatus as error:
        status = error.code
        raise
    except Exception:
        status = "INTERNAL"
        raise
    finally:
        SERVING_METRICS.observe(model_name, version, api, status, time.perf_counter() - started)
