"""Airflow tests run in .venv-airflow (Airflow 3 + cncf-kubernetes, no TensorFlow).

The steps themselves run through `$TFSHIP_CLI`: the Makefile's `test-airflow` target points it at the
`tfship` of the CPU image's environment (`.cache/image-cpu`, built from locks/image-cpu.txt the way
images/Dockerfile.cpu builds it), so the local-mode DAG runs each step's command, with the arguments the
KubernetesPodOperator pods get, in what the image holds. Each session gets a fresh AIRFLOW_HOME with a migrated
SQLite database.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"


def _tfship_cli() -> str:
    cli = os.environ.get("TFSHIP_CLI") or shutil.which("tfship")
    if not cli:
        pytest.fail("Set TFSHIP_CLI to the image environment's tfship (see the Makefile's test-airflow"
                    " target).")
    return cli


@pytest.fixture(scope="session")
def tfship_cli() -> str:
    """The image environment's `tfship` (TensorFlow and the steps), which the local-mode DAG runs."""
    return _tfship_cli()


@pytest.fixture(scope="session")
def tfship_python(tfship_cli: str) -> str:
    """The interpreter beside that `tfship`, to read results with tfship's own modules."""
    python = Path(tfship_cli).with_name("python")
    assert python.exists(), python
    return str(python)


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A fresh AIRFLOW_HOME with `airflow db migrate` done; yields the environment to run in."""
    home = tmp_path_factory.mktemp("airflow-home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "false",
        "TFSHIP_CLI": _tfship_cli(),
    }
    airflow = str(Path(sys.executable).with_name("airflow"))
    done = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    env["AIRFLOW_BIN"] = airflow
    yield env
