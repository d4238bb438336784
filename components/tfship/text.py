"""Reading the user's text files (CSV data, schema, contract and tfship.yaml) as UTF-8 and YAML,
with a clear error.

Editors on Windows save UTF-8 with a byte-order mark, and spreadsheets export Latin-1 or UTF-16:
a BOM is accepted and dropped; any other byte that is not UTF-8 is refused with the file and the
line named, instead of a `UnicodeDecodeError` traceback or a header whose first name never matches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import yaml

from tfship.errors import ConfigError

BOM = "\ufeff"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _not_utf8(source: str, line: int, byte: int, offset: int) -> str:
    return (f"{source}:{line}: not UTF-8 text (byte 0x{byte:02x} at byte {offset + 1} of the line); "
            "save the file as UTF-8.")


def decode_utf8(data: bytes, source: str, error_type: type[Exception]) -> str:
    """`data` as text without a leading BOM; `error_type` naming the line of the first bad byte."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        offset = error.start - (data.rfind(b"\n", 0, error.start) + 1)
        raise error_type(_not_utf8(source, line, data[error.start], offset)) from None
    return text.removeprefix(BOM)


def utf8_lines(raw_lines: Iterable[bytes], source: str, error_type: type[Exception]) -> Iterator[str]:
    """Decode a binary file's lines one at a time (constant memory), dropping a BOM on the first."""
    for number, raw in enumerate(raw_lines, 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise error_type(_not_utf8(source, number, raw[error.start], error.start)) from None
        yield text.removeprefix(BOM) if number == 1 else text


def parse_yaml(text: str, source: str, error_type: type[Exception]) -> Any:
    """`text` parsed as YAML; `error_type` naming `source` and the line and column of a syntax error."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise error_type(f"{source} is not valid YAML{where}: {problem}.") from None


def parse_duration(text: str, flag: str) -> float:
    """Seconds of a Prometheus-style duration ("90s", "10m", "1h"): the one spelling of a duration
    in tfship's flags and tfship.yaml (`--window`, `--interval`, `--check-every`, `rollout.interval`)."""
    match = _DURATION.fullmatch(str(text).strip())
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(
            f"Invalid value for argument `{flag}`. Received: {text!r}. Expected a duration such as 30s, 10m or 1h."
        )
    return float(match.group(1)) * _SECONDS[match.group(2)]
