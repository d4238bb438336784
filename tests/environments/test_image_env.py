"""The container contract, tested rather than assumed: the CPU image's Python environment, rebuilt the
way its Dockerfile builds it, runs every command of the committed KFP pipeline.

There is no Docker engine here, so the image itself is not built. Its environment is: the same lock
and the same install command (images/install-env.sh) into a fresh venv, nothing from `.venv`.
`make test` builds it once per lock and code change (`.cache/image-cpu`, passed as TFSHIP_IMAGE_ENV);
run alone, this module builds its own.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from packaging.utils import canonicalize_name

from tests.locks_util import ROOT, pins
from tests.environments.test_images import IMAGES, _instructions

from tfship import chain, history
from tfship import models_config

COMPILED = ROOT / "pipelines" / "tfship_retrain.yaml"
# Anything that fetches or installs at run time; private GKE GPU pools often have no internet.
INSTALLERS = ("pip install", "pip3 install", "uv pip", "uv sync", "apt-get", "apk add", "curl ", "wget ",
              "conda install", "easy_install")

DRIVER = """
import sys
import kfp.local
from kfp import components
from tfship.demo import write_demo

compiled, root, runs, saved_model = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
data, schema = write_demo(root + "/data")
kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=root + "/pipeline-root")
pipeline = components.load_component_from_file(compiled)
for _ in range(runs):
    pipeline(data=data, schema=schema, contract=root + "/data/contract.yaml", runs_root=root + "/runs",
             repo=root + "/repo", name="penguins", steps=60, serving_target="")
# A model trained elsewhere: no train, export imports it (`data` is imported but not read).
pipeline(data=data, schema=schema, runs_root=root + "/runs", repo=root + "/repo", name="hp",
         saved_model=saved_model, serving_target="")
"""


@pytest.fixture(scope="module")
def image_env(tmp_path_factory) -> Path:
    built = os.environ.get("TFSHIP_IMAGE_ENV")
    if built:
        return Path(built)
    venv = tmp_path_factory.mktemp("image") / "venv"
    uv = os.environ.get("UV", str(ROOT / ".venv-tools" / "bin" / "uv"))
    subprocess.run(["sh", "images/install-env.sh", "locks/image-cpu.txt", str(venv)], cwd=ROOT,
                   env={**os.environ, "UV": uv}, check=True, capture_output=True)
    return venv


def _image_run(image_env: Path, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run in the image's environment only: its bin first on PATH, no user site, no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{image_env / 'bin'}:/usr/local/bin:/usr/bin:/bin", PYTHONNOUSERSITE="1")
    return subprocess.run(argv, env=env, capture_output=True, text=True, **kwargs)


@pytest.mark.parametrize("role", ["cpu", "gpu"])
def test_dockerfiles_install_through_the_shared_script(role):
    instructions = _instructions(IMAGES / f"Dockerfile.{role}")
    runs = [rest for keyword, rest in instructions if keyword == "RUN"]
    assert any(f"images/install-env.sh locks/image-{role}.txt /opt/venv" in run for run in runs), runs
    envs = " ".join(rest for keyword, rest in instructions if keyword == "ENV")
    assert "PATH=/opt/venv/bin:$PATH" in envs  # `python3` and `tfship` in the KFP commands


def test_the_image_env_holds_exactly_its_lock(image_env):
    done = _image_run(image_env, [str(image_env / "bin" / "python"), "-c",
                                  "import importlib.metadata as m, json; print(json.dumps("
                                  "{d.metadata['Name']: d.version for d in m.distributions()}))"])
    assert done.returncode == 0, done.stderr
    installed = {canonicalize_name(name): version for name, version in json.loads(done.stdout).items()}
    assert installed.pop("tfship") == importlib.metadata.version("tfship")
    assert installed == pins("image-cpu")


def _executors() -> dict[str, dict]:
    spec = next(yaml.safe_load_all(COMPILED.read_text()))
    return spec["deploymentSpec"]["executors"]


def test_no_component_installs_anything_at_run_time():
    executors = _executors()
    assert executors
    containers = {name: e["container"] for name, e in executors.items() if "container" in e}
    assert set(executors) - set(containers) == {"exec-importer"}  # KFP's own importer, no command
    for name, container in containers.items():
        assert container["image"] in (chain.DEFAULT_IMAGE, chain.DEFAULT_GPU_IMAGE), name
        text = " ".join(container.get("command", []) + container.get("args", []))
        assert "kfp.dsl.executor_main" in text, name
        assert not [word for word in INSTALLERS if word in text], f"{name} installs at run time"


def test_the_installer_check_catches_a_default_component(tmp_path):
    """A component compiled with kfp's defaults pip-installs kfp when it starts: the check sees it."""
    from kfp import compiler, dsl

    @dsl.component(base_image=chain.DEFAULT_IMAGE)
    def default_op():  # noqa: ANN202 (kfp reads annotations; this module's are strings)
        pass

    path = tmp_path / "default.yaml"
    compiler.Compiler().compile(default_op, str(path))
    container = next(iter(yaml.safe_load(path.read_text())["deploymentSpec"]["executors"].values()))[
        "container"]
    text = " ".join(container["command"] + container["args"])
    assert [word for word in INSTALLERS if word in text]


def test_every_step_cli_starts_in_the_image_env(image_env):
    """The Airflow pods run `tfship <step> ...` (the image's ENTRYPOINT) with the chain's arguments."""
    for step in [*chain.STEPS, "run"]:  # the plan pod runs `tfship run --plan-only`
        done = _image_run(image_env, ["tfship", step, "--help"], timeout=120)
        assert done.returncode == 0, (step, done.stderr)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
def test_the_committed_pipeline_runs_in_the_image_env(image_env, tmp_path, tf_serving_testdata):
    """Every executor of the committed YAML, with kfp.local's own executor input: kfp.local runs each
    command with `python3` replaced by the interpreter that drives it, here the image env's."""
    saved_model = tf_serving_testdata / "saved_model_half_plus_two_cpu" / "00000123"
    done = _image_run(image_env, [str(image_env / "bin" / "python"), "-c", DRIVER, str(COMPILED),
                                  str(tmp_path), "2", str(saved_model)], cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    labels = models_config.version_labels(models_config.read_models_config(str(tmp_path / "repo")),
                                         "penguins")
    assert labels.get("stable") == 2 and labels.get("previous") == 1, labels
    imported = models_config.version_labels(models_config.read_models_config(str(tmp_path / "repo")), "hp")
    assert imported.get("stable") == 1, imported  # the saved model, validated, pushed and promoted
    executed = {line.split("'")[1] for line in done.stdout.splitlines() + done.stderr.splitlines()
                if "Executing task" in line and "'" in line}
    # Both runs together ran every executor of the pipeline once at least (promote after the canary).
    assert {"plan-op", "train-op", "export-op", "export-op-2", "validate-op", "push-op", "canary-op",
            "promote-op"} <= executed
    runs = list((tmp_path / "runs").iterdir())  # one folder per pipeline job id
    assert len(runs) == 3
    # Every label move names the pipeline job that made it (the plan's run id, set by each task).
    moves = history.read_history(str(tmp_path / "repo"), "penguins")
    assert len(moves) >= 4 and {entry["run_id"] for entry in moves} <= {run.name for run in runs}, moves
    assert len({entry["run_id"] for entry in moves}) == 2  # two pipeline runs moved penguins' labels
    assert sum((run / "job").exists() for run in runs) == 2  # the imported model's run trained nothing
    # Only the second run had a stable version to canary against; its report is there.
    canaried = [run for run in runs if (run / "reports" / "canary" / "report.md").exists()]
    assert len(canaried) == 1
