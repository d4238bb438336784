"""Is training on images and text input-bound? (issue 11). Prints one table, measured side by side.

For the image demo (8x8 PNG digits, resized in the graph to 32x32 here so decoding and resizing
cost something) and the text demo (jokes, tokenised in the graph), in one process:

1. input: preprocessed batches per second from the training input pipeline alone (read, parse,
   decode or tokenise, look up; parallel and prefetched), as `tfship train` builds it;
2. train: optimizer steps per second of `tfship.train` on the same data and batch size;
3. headroom = input / train: above 1, the model waits for no input.

    .venv/bin/python benchmarks/media_input.py [--steps 300]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import tfship
from tfship.steps.train.data import analyze, resolve_files
from tfship.demo import write_image_demo, write_text_demo
from tfship.steps.train.preprocessing import Preprocessor, write_vocabularies
from tfship.schema import load_schema
from tfship.steps.train.step import TrainConfig, _training_input
from tfship.steps.train.distribute import cluster_role

BATCH = 64


def input_batches_per_second(data: str, schema_path: str, batches: int, folder: str) -> float:
    config = TrainConfig(data=data, schema=schema_path, job_dir=folder, batch_size=BATCH)
    schema = load_schema(schema_path)
    files = resolve_files(data)
    stats = analyze(files, schema, config.holdout_every)
    preprocessor = Preprocessor(schema, stats, write_vocabularies(stats, os.path.join(folder, "vocab")))
    iterator = iter(_training_input(config, files, schema, preprocessor, cluster_role()))
    next(iterator)  # warm: traces the map functions, fills the prefetch buffer
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="tfship-bench-media-")
    image_data, image_schema = write_image_demo(os.path.join(root, "image"))
    with open(image_schema, "w") as handle:  # upscale in the graph: decoding + resizing do real work
        handle.write("task: classification\nlabel: digit\nlabel_dtype: int64\n"
                     "features:\n  image: {dtype: image, shape: [32, 32, 1]}\n")
    cases = {"image (PNG 8x8 -> 32x32)": (image_data, image_schema),
             "text (jokes, 48 tokens)": write_text_demo(os.path.join(root, "text"))}
    print(f"{'data':28} {'input batches/s':>16} {'train steps/s':>14} {'headroom':>9}")
    for name, (data, schema) in cases.items():
        folder = tempfile.mkdtemp(dir=root)
        feed = input_batches_per_second(data, schema, args.steps, folder)
        result = tfship.train(data, schema, os.path.join(folder, "job"), steps=args.steps,
                              checkpoint_every=args.steps, batch_size=BATCH, log_every=args.steps)
        train = result.metrics["steps_per_sec"]
        print(f"{name:28} {feed:16.1f} {train:14.1f} {feed / train:9.1f}")


if __name__ == "__main__":
    main()
