"""Export + validate time, and how it grows with model size.

    .venv/bin/python benchmarks/export_validate.py [--sizes 0.1,1,10,30,100] [--repeat 2] [--out results.json]

For each size (millions of parameters), a real job: `tfship train` on the demo penguins data for
one step with an mlp of two hidden layers of width h (h chosen for the size), then the two
container commands as an orchestrator runs them, each a fresh `tfship` process, timed wall-clock:

- export:   `tfship export` (TensorFlow import, checkpoint restore, tf.saved_model.save, warm-up
            records, the staged model's own session load + warm-up replay, rename);
- validate: `tfship validate` with the demo contract and 16 golden rows (contract and baseline
            checks, then a fresh process that loads the model as TF Serving does, runs both
            signatures at two batch sizes and replays the warm-up records).

Reported per size: parameters (counted in the exported checkpoint), SavedModel size, export wall
time and its in-process part, validate wall time and the model load inside its fresh process.
Each step runs `--repeat` times (export into a fresh directory each time) and the fastest run is
reported: the machine is shared, and the minimum is the least disturbed measurement.
The fixed cost (a TensorFlow import per process, about 3 s) dominates small models.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def tfship(*args: str) -> tuple[float, str]:
    """Run `tfship <args>` in a fresh process; (wall seconds, stdout). Fails loudly."""
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "tfship.cli", *args], capture_output=True, text=True, env=ENV)
    elapsed = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit(f"tfship {args[0]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}")
    return elapsed, done.stdout


def width_for(millions: float) -> int:
    """Hidden width h of an mlp [h, h] with about `millions` M parameters (h^2 dominates)."""
    return max(8, round(math.sqrt(millions * 1e6)))


def parameters(version_dir: str) -> int:
    import tensorflow as tf

    prefix = os.path.join(version_dir, "variables", "variables")
    return sum(math.prod(shape) for name, shape in tf.train.list_variables(prefix) if "VARIABLE_VALUE" in name)


def size_mb(directory: str) -> float:
    return sum(p.stat().st_size for p in Path(directory).rglob("*") if p.is_file()) / 1e6


def golden_rows(data: str, path: str, n: int = 16) -> None:
    from tfship.local_runner import examples_from_data

    lines = examples_from_data(data, os.path.join(os.path.dirname(data), "schema.yaml"), n)
    Path(path).write_text(lines)


def measure(work: Path, data: str, schema: str, contract: str, examples: str, millions: float,
            repeat: int) -> dict:
    h = width_for(millions)
    job = work / f"job-{millions:g}"
    train_s, _ = tfship("train", "--data", data, "--schema", schema, "--job-dir", str(job), "--steps", "1",
                        "--checkpoint-every", "1", "--hparam", f"hidden_units=[{h},{h}]")
    runs = []
    for attempt in range(repeat):
        export_dir = work / f"export-{millions:g}-{attempt}"
        export_s, out = tfship("export", "--job-dir", str(job), "--export-dir", str(export_dir))
        inner = float(re.search(r" in ([0-9.]+) s", out).group(1))
        version_dir = str(export_dir / "1")
        report = work / f"validate-{millions:g}-{attempt}.json"
        validate_s, _ = tfship("validate", "--model", version_dir, "--contract", contract, "--examples", examples,
                               "--report", str(report))
        runtime = json.loads(report.read_text())["runtime"]
        runs.append((export_s, inner, validate_s, runtime["load_s"], version_dir))
    export_s, inner = min((r[0], r[1]) for r in runs)
    validate_s, load_s = min((r[2], r[3]) for r in runs)
    return {
        "target_millions": millions,
        "hidden": h,
        "parameters": parameters(runs[0][4]),
        "savedmodel_mb": round(size_mb(runs[0][4]), 1),
        "train_1_step_s": round(train_s, 2),
        "export_s": round(export_s, 2),
        "export_in_process_s": inner,
        "validate_s": round(validate_s, 2),
        "validate_load_s": load_s,
        "export_plus_validate_s": round(export_s + validate_s, 2),
        "repeat": repeat,
    }


def table(rows: list[dict]) -> str:
    head = ("| parameters | SavedModel MB | export s (in-process) | validate s (load in fresh process) "
            "| export + validate s |\n|---:|---:|---:|---:|---:|")
    lines = [head]
    for r in rows:
        lines.append(
            f"| {r['parameters'] / 1e6:.2f} M | {r['savedmodel_mb']:.1f} | {r['export_s']:.1f} "
            f"({r['export_in_process_s']:.1f}) | {r['validate_s']:.1f} ({r['validate_load_s']:.1f}) "
            f"| {r['export_plus_validate_s']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0.1,1,10,30,100", help="model sizes in millions of parameters")
    parser.add_argument("--repeat", type=int, default=2, help="runs per size; the fastest is reported")
    parser.add_argument("--out", default="", help="also write the rows as JSON here")
    args = parser.parse_args()
    from tfship.demo import write_demo

    with tempfile.TemporaryDirectory(prefix="tfship-bench-export-") as tmp:
        work = Path(tmp)
        data, schema = write_demo(str(work / "data"))
        contract = str(work / "data" / "contract.yaml")
        examples = str(work / "golden.jsonl")
        golden_rows(data, examples)
        rows = []
        for millions in (float(s) for s in args.sizes.split(",")):
            rows.append(measure(work, data, schema, contract, examples, millions, args.repeat))
            print(json.dumps(rows[-1]), flush=True)
    print(table(rows))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
