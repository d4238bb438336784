"""tfship.yaml loads, and the orchestrators build $name's DAG and pipeline from it."""

from pathlib import Path

import pytest

from tfship.chain.project import load_project

ROOT = Path(__file__).resolve().parents[1]


def test_the_config_is_valid():
    project = load_project(str(ROOT / "tfship.yaml"))
    assert project.chain.name == "$name"
    assert Path(project.chain.data).exists() and Path(project.chain.schema).exists()


def test_the_pipeline_compiles(tmp_path):
    pytest.importorskip("kfp", reason="the KFP adapter needs tfship[kfp]")
    from tfship.kfp import compile_pipeline

    path = compile_pipeline(ROOT / "tfship.yaml", str(tmp_path / "pipeline.yaml"))
    assert "pipelineInfo" in Path(path).read_text()
