"""Golden examples for `tfship validate --examples`: raw rows in CSV or JSONL.

CSV: a header row of input names, one example per row (cells are converted to each input's dtype;
an empty cell is a missing value). JSONL: one JSON object per line, input name -> value or list of
values (`{"x": [2.0]}` and `{"x": 2.0}` both feed one value). Columns that no signature takes
(a label, an id) are ignored. The format is chosen by the file extension.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from tfship import storage
from tfship.errors import ConfigError, DataError, StorageError

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


def read_rows(path: str) -> list[dict[str, Any]]:
    """The rows of a golden-examples file; DataError/ConfigError with one line if unreadable."""
    suffix = next((s for s in FORMATS if path.lower().endswith(s)), None)
    if suffix is None:
        raise ConfigError(
            f"Invalid value for `--examples`: {path!r}. Expected a file ending in "
            f"{', '.join(FORMATS)} (CSV with a header, or one JSON object per line)."
        )
    try:
        text = storage.read_text(path)
    except (StorageError, UnicodeDecodeError) as error:
        raise DataError(f"Cannot read --examples {path}: {error}") from error
    rows = _csv(text, path) if FORMATS[suffix] == "csv" else _jsonl(text, path)
    if not rows:
        raise DataError(f"--examples {path} holds no rows.")
    return rows


def _csv(text: str, path: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        return []
    rows = []
    for line, row in enumerate(reader, start=2):
        if None in row or any(v is None for v in row.values()):
            raise DataError(f"--examples {path}, line {line}: the row has a different number of cells than the header.")
        rows.append(dict(row))
    return rows


def _jsonl(text: str, path: str) -> list[dict[str, Any]]:
    rows = []
    for line, content in enumerate(text.splitlines(), start=1):
        if not content.strip():
            continue
        try:
            row = json.loads(content)
        except json.JSONDecodeError as error:
            raise DataError(f"--examples {path}, line {line}: not JSON ({error.msg}).") from error
        if not isinstance(row, dict):
            raise DataError(f"--examples {path}, line {line}: expected a JSON object, got {type(row).__name__}.")
        rows.append(row)
    return rows
