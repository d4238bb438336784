"""`tfship canary --prometheus`: the live judge against a real Prometheus scraping a real `tfship serve`.

One server process serves model m (TF Serving's half_plus_two): stable = 123, canary = 124 (the
same model), slow = 126 (+30 ms per request, injected), flaky = 127 (20 % INTERNAL, injected).
Prometheus (Debian's package) scrapes it every second while a bounded load generator sends
requests to all four versions for a few seconds; then each candidate is judged on that traffic.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from tests.live_util import Load, prometheus, tfship_serve, wait_for_scrape
from tests.canary.test_canary_e2e import make_repo

from tfship.cli import main as cli_main

pytestmark = pytest.mark.timeout(180)
# Enough answered requests per version for the judge's min_samples (100) with room to spare.
REQUESTS_PER_VERSION = 300


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, tf_serving_testdata: Path) -> Any:
    """(REST URL, Prometheus URL, requests sent per version) after one load phase."""
    root = tmp_path_factory.mktemp("live")
    repo = make_repo(root / "repo", tf_serving_testdata, {"slow": 126, "flaky": 127})
    faults = ["m/126:latency=0.03", "m/127:error_rate=0.2"]
    with tfship_serve(repo, root, faults) as rest_url:
        with prometheus(root, [rest_url.removeprefix("http://")]) as prometheus_url:
            with Load(rest_url, "m", [123, 124, 126, 127]) as load:
                load.wait_for(REQUESTS_PER_VERSION, timeout_s=90)
            wait_for_scrape(prometheus_url, after=time.time())
            yield rest_url, prometheus_url, dict(load.sent)


def judge(live: Any, candidate: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> tuple[int, dict, str]:
    rest_url, prometheus_url, _ = live
    code = cli_main(["canary", "--target", rest_url, "--name", "m", "--candidate", candidate,
                     "--prometheus", prometheus_url, "--window", "60s", "--report-dir", str(tmp_path)])
    return code, json.loads((tmp_path / "report.json").read_text()), capsys.readouterr().out


def test_prometheus_saw_every_request_the_load_sent(live: Any, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _, report, _ = judge(live, "canary", tmp_path, capsys)
    sent = live[2]
    assert report["baseline"]["requests"] == sent[123] and report["candidate"]["requests"] == sent[124]


def test_a_healthy_candidate_passes_on_live_traffic(live: Any, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, report, out = judge(live, "canary", tmp_path, capsys)
    assert (code, report["verdict"]) == (0, "PASS"), out
    classified = {m["name"]: m["classification"] for m in report["metrics"]}
    # The p99 difference rests on the ~4 slowest of ~300 requests per side: on a loaded machine its
    # interval may straddle the tolerance band (NODATA, "send more requests"). What a healthy
    # candidate must never get is a HIGH/LOW on any metric.
    assert classified.pop("latency_p99") in ("PASS", "NODATA"), out
    assert classified == {"error_rate": "PASS", "latency": "PASS", "latency_spread": "PASS"}
    assert out.startswith("canary PASS")


def test_a_slow_candidate_fails_on_live_latency(live: Any, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, report, out = judge(live, "slow", tmp_path, capsys)
    metrics = {m["name"]: m["classification"] for m in report["metrics"]}
    assert (code, report["verdict"]) == (1, "FAIL"), out
    assert metrics["latency"] == "HIGH" and metrics["error_rate"] == "PASS"
    assert report["candidate"]["latency_ms"]["p50"] > 25  # 30 ms injected, read from 25 %-wide buckets


def test_a_candidate_with_injected_errors_fails_on_live_error_rate(
    live: Any, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code, report, out = judge(live, "flaky", tmp_path, capsys)
    error_rate = next(m for m in report["metrics"] if m["name"] == "error_rate")
    assert (code, report["verdict"], error_rate["classification"]) == (1, "FAIL", "HIGH"), out
    assert error_rate["estimate"] == pytest.approx(0.2, abs=0.07)
    assert report["candidate"]["errors_by_status"]["INTERNAL"] > 0


def test_an_unreachable_prometheus_is_one_line_and_exit_2(live: Any, capsys: pytest.CaptureFixture) -> None:
    from tests.conftest import free_port

    code = cli_main(["canary", "--target", live[0], "--name", "m", "--prometheus", f"http://127.0.0.1:{free_port()}"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "cannot query Prometheus" in err
