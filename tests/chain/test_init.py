"""`tfship init`: the project it writes passes its own tests and runs its chain twice.

The generated project's `make test` runs with this environment's Python (not a fresh install), and
`make run` (`tfship run --config tfship.yaml`) trains, pushes and promotes version 1, then canaries
version 2 against it on a local server and promotes it: the issue's "works on the first try".
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf
import yaml

from tfship import demo
from tfship import models_config
from tfship.cli import main as tfship_main
from tfship.steps.train.data import resolve_files
from tfship.commands.init import TEMPLATE_CHOICES
from tfship.chain.project import load_project
from tfship.scaffold import TEMPLATES, init_project
from tfship.schema import load_schema

TFSHIP = f"{sys.executable} -m tfship.cli"


def make(project: Path, target: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(["make", target, f"PYTHON={sys.executable}", f"TFSHIP={TFSHIP}"], cwd=project,
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_init_refuses_a_non_empty_folder_unless_forced(tmp_path, capsys):
    project = tmp_path / "churn"
    project.mkdir()
    (project / "notes.txt").write_text("mine")
    assert tfship_main(["init", str(project)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"tfship init: error: {project} is not empty (1 entries, e.g. 'notes.txt'): tfship init writes into "
        "a new or empty folder; pass --force to overwrite its files.")
    assert sorted(p.name for p in project.iterdir()) == ["notes.txt"]  # nothing written
    assert [p.name for p in tmp_path.iterdir()] == ["churn"]  # no staging folder left behind
    (project / "tfship.yaml").write_text("stale: true\n")
    assert tfship_main(["init", str(project), "--force"]) == 0
    assert (project / "notes.txt").read_text() == "mine"  # the team's other files stay
    assert load_project(str(project / "tfship.yaml")).chain.name == "churn"


def test_the_image_template_is_a_valid_project_whose_model_tests_pass(tmp_path, capsys):
    root = tmp_path / "Digit Reader"
    written = init_project(str(root), template="image")
    assert {"tfship.yaml", "digit_reader/model.py", "dags/digit_reader.py", "pipeline.py", "Dockerfile",
            "Makefile", "README.md", "tests/test_model.py", "schema.yaml", "contract.yaml"} <= set(written)
    assert "data/schema.yaml" not in written  # the demo writer's schema moved up beside tfship.yaml
    assert tfship_main(["validate-config", "--config", str(root / "tfship.yaml")]) == 0
    assert "tfship.yaml: OK: model 'digit_reader' (digit_reader.model:build_model)" in capsys.readouterr().out
    config = load_project(str(root / "tfship.yaml")).chain
    assert config.model == "digit_reader.model:build_model"
    schema = load_schema(str(root / "schema.yaml"))
    assert schema.image_features == ["image"] and schema.shape_of("image") == (8, 8, 1) and schema.label == "digit"
    contract = yaml.safe_load((root / "contract.yaml").read_text())
    assert contract["signatures"]["serving_default"]["inputs"] == {"image": {"dtype": "string", "shape": [-1]}}
    records = sum(1 for path in resolve_files(config.data).paths for _ in tf.data.TFRecordDataset(path))
    assert records == 1797  # every digit, PNG-encoded
    assert "$" not in (root / "digit_reader" / "model.py").read_text()  # every placeholder filled
    assert run_model_tests(root) == "2 passed"


def test_the_text_template_is_a_valid_project_whose_model_tests_pass(tmp_path, capsys):
    root = tmp_path / "Joke Language"
    written = init_project(str(root), template="text")
    assert {"tfship.yaml", "joke_language/model.py", "tests/test_model.py", "data/jokes.csv", "schema.yaml",
            "contract.yaml"} <= set(written)
    assert "data/schema.yaml" not in written  # the demo writer's schema moved up beside tfship.yaml
    assert tfship_main(["validate-config", "--config", str(root / "tfship.yaml")]) == 0
    assert "tfship.yaml: OK: model 'joke_language' (joke_language.model:build_model)" in capsys.readouterr().out
    schema = load_schema(str(root / "schema.yaml"))
    assert schema.text_features == ["joke"] and schema.label == "language"
    contract = yaml.safe_load((root / "contract.yaml").read_text())
    assert contract["signatures"]["serving_default"]["inputs"] == {"joke": {"dtype": "string", "shape": [-1]}}
    rows = list(csv.DictReader((root / "data" / "jokes.csv").open(encoding="utf-8")))
    assert {row["language"] for row in rows} == set(demo.TEXT_LANGUAGES) and len(rows) > 800
    assert "$" not in (root / "joke_language" / "model.py").read_text()  # every placeholder filled
    assert run_model_tests(root) == "2 passed"


def run_model_tests(root) -> str:
    """The project's own model tests, run as its `make test` runs them (this environment's pytest);
    pytest's count of passed tests, or the output when any failed."""
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHONPATH": str(root)}
    tests = subprocess.run([sys.executable, "-m", "pytest", "tests/test_model.py", "-q", "-p", "no:cacheprovider"],
                           cwd=root, env=env, capture_output=True, text=True, timeout=300)
    passed = re.search(r"(\d+ passed)", tests.stdout)
    return passed.group(1) if tests.returncode == 0 and passed else tests.stdout[-3000:] + tests.stderr[-2000:]


def test_every_template_is_a_cli_choice():
    assert TEMPLATE_CHOICES == tuple(TEMPLATES)


@pytest.mark.slow
def test_the_tabular_project_passes_its_tests_and_runs_twice(tmp_path):
    project = tmp_path / "churn"
    init_project(str(project))
    # Keep the chain tiny: fewer steps than the template's (the canary keeps its 100 requests, the
    # judge's minimum sample: fewer would be NODATA, which never promotes).
    config = yaml.safe_load((project / "tfship.yaml").read_text())
    config["train"].update(steps=20, checkpoint_every=20)
    (project / "tfship.yaml").write_text(yaml.safe_dump(config))
    tests = make(project, "test")
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    assert "4 passed" in tests.stdout, tests.stdout[-2000:]
    first = make(project, "run")
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-3000:]
    assert "first version: no stable model yet" in first.stdout
    repo = str(project / "runs" / "repo")
    assert models_config.version_labels(models_config.read_models_config(repo), "churn")["stable"] == 1
    second = make(project, "run")
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-3000:]
    labels = models_config.version_labels(models_config.read_models_config(repo), "churn")
    assert labels.get("stable") == 2, labels
    [canaried] = [run for run in (project / "runs" / "runs").iterdir()
                  if (run / "reports" / "canary" / "report.json").exists()]
    summary = json.loads((canaried / "summary.json").read_text())
    assert summary["verdict"] == "PASS" and summary["promoted"] is True and summary["version"] == 2
