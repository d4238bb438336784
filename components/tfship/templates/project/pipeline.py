"""Kubeflow pipeline `tfship-retrain-$name`: the chain of tfship.yaml.

`python pipeline.py` (or `tfship compile`) writes pipeline.yaml, which you upload to KFP or submit with
`kfp.Client().create_run_from_pipeline_package("pipeline.yaml")`.
"""

from pathlib import Path

from tfship.kfp import compile_pipeline, retrain_pipeline

CONFIG = Path(__file__).resolve().parent / "tfship.yaml"
pipeline = retrain_pipeline(CONFIG)

if __name__ == "__main__":
    print(compile_pipeline(CONFIG, str(CONFIG.parent / "pipeline.yaml")))
