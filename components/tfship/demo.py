"""The embedded demo data, from installed packages (nothing is downloaded at run time).

- tabular (the default): Palmer penguins, shipped inside the `palmerpenguins` package. 344 real
  rows (three species, two categorical and four numeric features, some cells "NA"), small enough
  to run the whole chain on a laptop in a minute, real enough to exercise vocabularies, missing
  values and a three-class label.
- image: scikit-learn's 1797 handwritten 8x8 digits (`sklearn.datasets.load_digits`, data files
  inside the package), written as PNG images into TFRecord files: a bytes feature decoded in
  the graph, a ten-class label.
- text: pyjokes' jokes in the eight languages it has at least 40 of (about 900 jokes), written
  to a CSV: language identification from free text, tokenised in the graph.
"""

from __future__ import annotations

import csv
import importlib.util
import itertools
import os
import shutil

from tfship.errors import ConfigError, DataError

KINDS = ("tabular", "image", "text")

SCHEMA = """\
# Palmer penguins: predict the species from measurements, island and sex.
task: classification
label: species
features:
  island: string
  bill_length_mm: float32
  bill_depth_mm: float32
  flipper_length_mm: float32
  body_mass_g: float32
  sex: string
na_values: ["NA"]
"""

# A signature contract for the demo model, as `tfship validate --contract` reads it.
CONTRACT = """\
signatures:
  serving_default:
    inputs:
      island: {dtype: string, shape: [-1]}
      bill_length_mm: {dtype: float32, shape: [-1]}
      bill_depth_mm: {dtype: float32, shape: [-1]}
      flipper_length_mm: {dtype: float32, shape: [-1]}
      body_mass_g: {dtype: float32, shape: [-1]}
      sex: {dtype: string, shape: [-1]}
    outputs:
      class_ids: {dtype: int64, shape: [-1]}
      classes: {dtype: string, shape: [-1]}
      probabilities: {dtype: float32, shape: [-1, 3]}
"""


def penguins_csv() -> str:
    """Path of the CSV inside the installed package (found without importing it: no pandas)."""
    spec = importlib.util.find_spec("palmerpenguins")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("The demo data needs the `palmerpenguins` package: pip install 'tfship[demo]'.")
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "penguins.csv")
    if not os.path.exists(path):
        raise DataError(f"The palmerpenguins package has no {path}.")
    return path


IMAGE_SCHEMA = """\
# scikit-learn's 8x8 handwritten digits as PNG images: predict the digit.
task: classification
label: digit
label_dtype: int64
features:
  image: {dtype: image, shape: [8, 8, 1]}
"""

TEXT_SCHEMA = """\
# pyjokes' jokes: predict the language a joke is written in.
task: classification
label: language
features:
  joke: {dtype: text, max_tokens: 5000, sequence_length: 48}
"""

# Languages pyjokes holds at least 40 jokes of (fewer would leave a class with no held-out rows).
TEXT_LANGUAGES = ("cs", "de", "en", "es", "it", "pl", "ru", "sv")
TEXT_DATA_FILE = "jokes.csv"  # the CSV `write_text_demo` writes (also `tfship init --template text`'s data)
_IMAGE_FILES = 2  # the digits are split over two TFRecord files, read in parallel
IMAGE_DATA_GLOB = "digits-*.tfrecord"  # the files `write_image_demo` writes


def write_image_demo(directory: str, limit: int | None = None) -> tuple[str, str]:
    """Write the digits (the first `limit`, default all 1797) as PNG bytes in TFRecord files.

    Returns (data glob, schema path). Each tf.Example holds `image` (one bytes value, a
    grayscale 8x8 PNG, 0..16 scaled to 0..255) and `digit` (int64).
    """
    import numpy as np
    import tensorflow as tf

    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise DataError("The image demo needs scikit-learn: pip install 'tfship[demo]'.") from error
    digits = load_digits()
    images = np.round(digits.images[:limit] * (255 / 16)).astype(np.uint8)[..., np.newaxis]
    os.makedirs(directory, exist_ok=True)
    paths = [os.path.join(directory, f"digits-{i:05d}-of-{_IMAGE_FILES:05d}.tfrecord") for i in range(_IMAGE_FILES)]
    writers = [tf.io.TFRecordWriter(path) for path in paths]
    for index, (image, digit) in enumerate(zip(images, digits.target[:limit])):
        example = tf.train.Example(features=tf.train.Features(feature={
            "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[tf.io.encode_png(image).numpy()])),
            "digit": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(digit)])),
        }))
        writers[index % _IMAGE_FILES].write(example.SerializeToString())
    for writer in writers:
        writer.close()
    return os.path.join(directory, IMAGE_DATA_GLOB), _write_schema(directory, IMAGE_SCHEMA)


def write_text_demo(directory: str) -> tuple[str, str]:
    """Write pyjokes' jokes of `TEXT_LANGUAGES` as a CSV (joke, language); returns (data, schema)."""
    try:
        from pyjokes.pyjokes import all_jokes
    except ImportError as error:
        raise DataError("The text demo needs pyjokes: pip install 'tfship[demo]'.") from error
    os.makedirs(directory, exist_ok=True)
    data = os.path.join(directory, TEXT_DATA_FILE)
    by_language = [[(" ".join(joke.split()), language) for joke in all_jokes[language]["all"]]
                   for language in TEXT_LANGUAGES]
    # Round-robin over the languages, so every class has held-out rows and the first rows (the
    # canary's default examples) cover every language.
    rows = [row for group in itertools.zip_longest(*by_language) for row in group if row is not None]
    with open(data, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["joke", "language"])
        writer.writerows(rows)
    return data, _write_schema(directory, TEXT_SCHEMA)


def _write_schema(directory: str, text: str) -> str:
    path = os.path.join(directory, "schema.yaml")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def write_demo_kind(kind: str, directory: str) -> tuple[str, str]:
    """Write the demo data of `kind` (one of `KINDS`) into `directory`; returns (data, schema)."""
    if kind == "tabular":
        return write_demo(directory)
    if kind == "image":
        return write_image_demo(directory)
    if kind == "text":
        return write_text_demo(directory)
    raise ConfigError(f"Invalid value for `--demo`: {kind!r}. Expected one of {', '.join(KINDS)}.")


def write_demo(directory: str) -> tuple[str, str]:
    """Copy the tabular demo data and its schema into `directory`; returns (data_path, schema_path)."""
    os.makedirs(directory, exist_ok=True)
    data = os.path.join(directory, "penguins.csv")
    schema = os.path.join(directory, "schema.yaml")
    shutil.copyfile(penguins_csv(), data)
    with open(schema, "w", encoding="utf-8") as handle:
        handle.write(SCHEMA)
    with open(os.path.join(directory, "contract.yaml"), "w", encoding="utf-8") as handle:
        handle.write(CONTRACT)
    return data, schema
