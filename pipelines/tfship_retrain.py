"""`tfship-retrain`: the KFP pipeline of one model configured by TFSHIP_* environment variables.

A thin caller of `tfship.kfp.retrain_pipeline` (see its docstring for the graph, the placement and
the components): this file only turns the environment into a `tfship.chain.project.Project`. Teams with a
`tfship.yaml` run `tfship compile --config tfship.yaml` instead.

    TFSHIP_IMAGE, TFSHIP_GPU_IMAGE, TFSHIP_NAMESPACE
    TFSHIP_GPU_QUEUE (a Kueue LocalQueue), TFSHIP_TRAIN_WORKERS, TFSHIP_TRAIN_ENGINE

Compile with `python pipelines/tfship_retrain.py` (writes pipelines/tfship_retrain.yaml and the
step component specs in pipelines/components/, committed; tests/test_pipeline.py fails when they
are stale).
"""

import os
import sys

from tfship import chain
from tfship.kfp import compile_pipeline, write_component_specs
from tfship.chain.project import Project

HERE = os.path.dirname(os.path.abspath(__file__))
COMPILED = os.path.join(HERE, "tfship_retrain.yaml")
COMPONENTS = os.path.join(HERE, "components")

_env = os.environ.get
PROJECT = Project(
    path=__file__,
    chain=chain.ChainConfig(
        data="gs://tfship-data/penguins/penguins.csv",
        schema="gs://tfship-data/penguins/schema.yaml",
        runs_root="gs://tfship-runs/retrain/runs",
        repo="gs://tfship-models/repo",
        name="penguins",
        queue=_env("TFSHIP_GPU_QUEUE", ""),
        workers=int(_env("TFSHIP_TRAIN_WORKERS", "1")),
        engine=_env("TFSHIP_TRAIN_ENGINE", chain.ENGINES[0]),
    ),
    image=_env("TFSHIP_IMAGE", chain.DEFAULT_IMAGE),
    gpu_image=_env("TFSHIP_GPU_IMAGE", chain.DEFAULT_GPU_IMAGE),
    namespace=_env("TFSHIP_NAMESPACE", "tfship"),
)

if __name__ == "__main__":
    print(compile_pipeline(PROJECT, sys.argv[1] if len(sys.argv) > 1 else COMPILED, name="tfship-retrain"))
    if len(sys.argv) == 1:
        for path in write_component_specs(COMPONENTS, image=PROJECT.image, gpu_image=PROJECT.gpu_image):
            print(path)
