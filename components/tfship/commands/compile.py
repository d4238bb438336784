"""`tfship compile`: a tfship.yaml's KFP pipeline as YAML (and, with --components-dir, every step's
component spec on the file's images). Needs kfp (`pip install 'tfship[kfp]'`)."""

from __future__ import annotations

import argparse
import os

from tfship.errors import ConfigError
from tfship.chain.project import FILE_NAME


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=FILE_NAME, help=f"the model's file (default: {FILE_NAME})")
    parser.add_argument("--output", default="",
                        help="the compiled pipeline YAML (default: pipeline.yaml beside the config)")
    parser.add_argument("--components-dir", default="",
                        help="also write each step's component spec here (<step>_op.yaml)")


def main(args: argparse.Namespace) -> int:
    from tfship.chain.project import load_project

    loaded = load_project(args.config)  # a bad file is exit 2 before kfp is even needed
    try:
        from tfship import kfp as tfship_kfp
    except ImportError as error:
        raise ConfigError(f"tfship compile needs kfp ({error}): pip install 'tfship[kfp]'.") from None
    output = args.output or os.path.join(os.path.dirname(loaded.path), "pipeline.yaml")
    print(tfship_kfp.compile_pipeline(loaded, output))
    if args.components_dir:
        for path in tfship_kfp.write_component_specs(args.components_dir, image=loaded.image,
                                                     gpu_image=loaded.gpu_image):
            print(path)
    return 0
