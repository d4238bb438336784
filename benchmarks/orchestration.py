"""Wall time of the chain under each orchestrator, on the same demo data, and their overhead.

    .venv/bin/python benchmarks/orchestration.py [--steps 100] [--out results.json]

For each way of running the chain, two runs on a fresh repository: the first (no stable version:
train, export, validate, push, promote) and the second (the whole chain with a canary against the
first), timed separately:

- bare:    the step commands back to back (`tfship <step> ...` as `tfship.chain` builds them), the
           canary against a `tfship serve` started for it; no orchestration at all.
- run:     `tfship run`.
- airflow: `airflow dags test tfship_retrain` in local mode (.venv-airflow; `airflow db migrate` of a
           fresh AIRFLOW_HOME is timed apart, it happens once per installation).
- kfp:     the pipeline under `kfp.local.SubprocessRunner(use_venv=False)`.

Overhead = orchestrator / bare for the same run (target < 1.5x); `tfship run` target: < 120 s.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
AIRFLOW_BIN = ROOT / ".venv-airflow" / "bin" / "airflow"

sys.path.insert(0, str(ROOT))

from tfship import chain, local_runner# noqa: E402
from tfship.demo import write_demo  # noqa: E402


def _quiet(_line: str) -> None:
    pass


def bare(work: Path, data: str, schema: str, steps: int, requests: int) -> list[float]:
    config = chain.ChainConfig(data=data, schema=schema, contract=str(Path(data).parent / "contract.yaml"),
                               runs_root=str(work / "runs"), repo=str(work / "repo"), name="penguins",
                               steps=steps, canary_requests=requests)
    times = []
    for index in range(2):
        start = time.monotonic()
        plan = local_runner.plan(config, f"bare{index}")
        for step in chain.steps_for(plan):
            if step.service:
                continue
            if step.name == "canary":
                verdict, _ = local_runner.run_canary(config, plan, echo=_quiet)
                assert verdict == chain.PASS, verdict
                continue
            code = local_runner.launch(chain.step_args(step.name, config, plan), echo=_quiet)
            assert code == 0, f"{step.name} exited {code}"
        times.append(time.monotonic() - start)
    return times


def tfship_run(work: Path, steps: int, requests: int) -> list[float]:
    times = []
    for _ in range(2):
        start = time.monotonic()
        subprocess.run([str(VENV_BIN / "tfship"), "run", "--run-dir", str(work), "--steps", str(steps),
                        "--requests", str(requests)], check=True, capture_output=True)
        times.append(time.monotonic() - start)
    return times


def airflow(work: Path, data: str, schema: str, steps: int, requests: int) -> tuple[float, list[float]]:
    home = work / "airflow-home"
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "false", "TFSHIP_DAG_MODE": "local",
           "TFSHIP_CLI": str(VENV_BIN / "tfship"), "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    start = time.monotonic()
    subprocess.run([str(AIRFLOW_BIN), "db", "migrate"], env=env, check=True, capture_output=True)
    migrate = time.monotonic() - start
    conf = {"data": data, "schema": schema, "contract": str(Path(data).parent / "contract.yaml"),
            "runs_root": str(work / "runs"), "repo": str(work / "repo"), "steps": steps,
            "canary_requests": requests}
    times = []
    for _ in range(2):
        start = time.monotonic()
        subprocess.run([str(AIRFLOW_BIN), "dags", "test", "tfship_retrain", "-c", json.dumps(conf)],
                       env=env, check=True, capture_output=True)
        times.append(time.monotonic() - start)
    return migrate, times


def kfp_local(work: Path, data: str, schema: str, steps: int, requests: int) -> list[float]:
    import kfp.local

    from pipelines.tfship_retrain import PROJECT
    from tfship.kfp import retrain_pipeline

    tfship_retrain = retrain_pipeline(PROJECT, name="tfship-retrain")

    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(work / "root"))
    times = []
    for _ in range(2):
        start = time.monotonic()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            tfship_retrain(data=data, schema=schema, contract=str(Path(data).parent / "contract.yaml"),
                           runs_root=str(work / "runs"), repo=str(work / "repo"), name="penguins",
                           steps=steps, canary_requests=requests, serving_target="")
        times.append(time.monotonic() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=chain.ChainConfig(
        data="-", schema="-", runs_root="-", repo="-").steps)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--out", default="")
    parser.add_argument("--skip", nargs="*", default=[], choices=["airflow", "kfp"])
    args = parser.parse_args()
    results: dict[str, object] = {"steps": args.steps, "requests": args.requests}
    with tempfile.TemporaryDirectory() as tmp:
        data, schema = write_demo(os.path.join(tmp, "data"))
        results["bare_s"] = bare(Path(tmp, "bare"), data, schema, args.steps, args.requests)
        results["run_s"] = tfship_run(Path(tmp, "run"), args.steps, args.requests)
        if "airflow" not in args.skip and AIRFLOW_BIN.exists():
            results["airflow_db_migrate_s"], results["airflow_s"] = airflow(
                Path(tmp, "airflow"), data, schema, args.steps, args.requests)
        if "kfp" not in args.skip:
            results["kfp_s"] = kfp_local(Path(tmp, "kfp"), data, schema, args.steps, args.requests)
    base = results["bare_s"]
    for key in ("run_s", "airflow_s", "kfp_s"):
        if key in results:
            results[key.replace("_s", "_overhead")] = [round(t / b, 2) for t, b in zip(results[key], base)]
    for key, value in results.items():
        shown = [round(v, 1) for v in value] if isinstance(value, list) else value
        print(f"{key:>22}: {shown}  (first run, second run with canary)" if isinstance(value, list)
              else f"{key:>22}: {shown}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
