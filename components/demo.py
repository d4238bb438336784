"""The embedded demo data: Palmer penguins, shipped inside the `palmerpenguins` package.

344 real rows (three species, two categorical and four numeric features, some cells "NA"), small
enough to run the whole chain on a laptop in a minute, real enough to exercise vocabularies,
missing values and a three-class label.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

from tfship.errors import DataError

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


def write_demo(directory: str) -> tuple[str, str]:
    """Copy the demo data and its schema into `directory`; returns (data_path, schema_path)."""
    os.makedirs(directory, exist_ok=True)
    data = os.path.join(directory, "penguins.csv")
    schema = os.path.join(directory, "schema.yaml")
    shutil.copyfile(penguins_csv(), data)
    with open(schema, "w", encoding="utf-8") as handle:
        handle.write(SCHEMA)
    with open(os.path.join(directory, "contract.yaml"), "w", encoding="utf-8") as handle:
        handle.write(CONTRACT)
    return data, schema
