"""`tfship init`: write a team's project that works on the first try.

The project holds the model function (in a package named after the folder), the schema and
contract, a `tfship.yaml`, sample data, an Airflow DAG file and a KFP pipeline file that call the
factories (`tfship.airflow.retrain_dag`, `tfship.kfp.retrain_pipeline`), a Dockerfile building on
the tfship image, tests of the model function, a README and a Makefile. Its files are the
templates under `tfship/templates/` (`string.Template`: `$name`, `$package`, ...); the sample
data comes from the demo data sets tfship ships (nothing is downloaded).

The whole project is written into a staging folder beside the target and moved into place at the
end, so a failure leaves no half-written project; a non-empty target is refused unless `force`
(then tfship's files replace their namesakes, each atomically, and other files stay).

Example::

    from tfship.scaffold import init_project
    init_project("churn", template="tabular")   # then: cd churn && make test && make run
"""

from __future__ import annotations

import os
import re
import shutil
import string
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tfship import chain, demo
from tfship.errors import ConfigError
from tfship.local_runner import contract_from_schema

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
# Template file -> where it goes in the project (`$package` is substituted in the path too).
_PROJECT_FILES = {
    "tfship.yaml": "tfship.yaml",
    "__init__.py": "$package/__init__.py",
    "dags/dag.py": "dags/$package.py",
    "pipeline.py": "pipeline.py",
    "Dockerfile": "Dockerfile",
    "Makefile": "Makefile",
    "README.md": "README.md",
    "gitignore": ".gitignore",
    "tests/test_model.py": "tests/test_model.py",
    "tests/test_config.py": "tests/test_config.py",
}


@dataclass(frozen=True)
class _Template:
    """A kind of project: its model function (templates/models/<kind>.py) and its sample data."""

    data_file: str
    write_data: Callable[[Path], None]  # writes data/<data_file>, schema.yaml, contract.yaml


def _write_penguins(root: Path) -> None:
    shutil.copyfile(demo.penguins_csv(), root / "data" / "penguins.csv")
    (root / "schema.yaml").write_text(demo.SCHEMA, encoding="utf-8")
    (root / "contract.yaml").write_text(demo.CONTRACT, encoding="utf-8")


def _write_digits(root: Path) -> None:
    """The image demo's data (scikit-learn's 8x8 digits as PNG bytes in TFRecord files,
    `tfship.demo.write_image_demo`): the files stay in data/, the schema moves up beside tfship.yaml."""

    _, schema = demo.write_image_demo(str(root / "data"))
    os.replace(schema, root / "schema.yaml")
    (root / "contract.yaml").write_text(contract_from_schema(str(root / "schema.yaml")), encoding="utf-8")


def _write_jokes(root: Path) -> None:
    """The text demo's data (pyjokes' jokes by language, `tfship.demo.write_text_demo`): the CSV
    stays in data/, its schema moves up beside tfship.yaml."""

    _, schema = demo.write_text_demo(str(root / "data"))
    os.replace(schema, root / "schema.yaml")
    (root / "contract.yaml").write_text(contract_from_schema(str(root / "schema.yaml")), encoding="utf-8")


TEMPLATES: dict[str, _Template] = {
    "tabular": _Template("penguins.csv", _write_penguins),
    "image": _Template(demo.IMAGE_DATA_GLOB, _write_digits),
    "text": _Template(demo.TEXT_DATA_FILE, _write_jokes),
}


def package_name(directory: str) -> str:
    """The project's Python package and model name, from its folder's name (`Team Churn` -> `team_churn`)."""
    name = re.sub(r"[^a-z0-9]+", "_", os.path.basename(os.path.abspath(directory)).lower()).strip("_")
    if not name:
        raise ConfigError(f"Cannot name a project after the folder {directory!r}: use letters or digits.")
    return f"model_{name}" if name[0].isdigit() else name


def _render(root: Path, values: dict[str, str], kind: str) -> None:
    sources = {**{TEMPLATES_DIR / "project" / src: dst for src, dst in _PROJECT_FILES.items()},
               TEMPLATES_DIR / "models" / f"{kind}.py": "$package/model.py"}
    for source, target in sources.items():
        path = root / string.Template(target).substitute(values)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(string.Template(source.read_text(encoding="utf-8")).substitute(values),
                        encoding="utf-8")


def init_project(directory: str, template: str = "tabular", *, force: bool = False) -> list[str]:
    """Write a new project into `directory`; returns the files written (relative, sorted).

    Args:
        directory: the project's folder (created; must be empty or absent unless `force`).
        template: `tabular` (Palmer penguins, an MLP), `image` (8x8 digits, a small CNN) or `text`
            (jokes by language, a 1-D CNN over token embeddings).
        force: write into a non-empty folder, replacing files of the same names.
    """
    if template not in TEMPLATES:
        raise ConfigError(f"Invalid value for argument `template`. Received: template={template!r}. "
                          f"Expected one of {', '.join(TEMPLATES)}.")
    target = Path(directory).resolve()
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{directory} is a file, not a folder: tfship init writes a project folder.")
    existing = sorted(os.listdir(target)) if target.exists() else []
    if existing and not force:
        raise ConfigError(f"{directory} is not empty ({len(existing)} entries, e.g. {existing[0]!r}): tfship "
                          "init writes into a new or empty folder; pass --force to overwrite its files.")
    package = package_name(directory)
    values = {"name": package, "package": package, "template": template,
              "data_file": TEMPLATES[template].data_file, "tfship_image": chain.DEFAULT_IMAGE,
              "tfship_gpu_image": chain.DEFAULT_GPU_IMAGE}
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tfship-init-", dir=target.parent))
    try:
        (staging / "data").mkdir()
        TEMPLATES[template].write_data(staging)
        _render(staging, values, template)
        written = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
        if not target.exists() or not existing:
            if target.exists():
                target.rmdir()
            os.rename(staging, target)  # the whole project appears at once
        else:
            for relative in written:
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / relative, target / relative)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written
