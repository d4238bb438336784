"""Read the committed locks (locks/*.txt) for the tests: name -> version for the running Python."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "locks"))
import lock  # noqa: E402  (locks/lock.py: the one home of the lock inputs and the staleness check)

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def pins(name: str) -> dict[str, str]:
    """The versions a lock installs on this interpreter (markers evaluated), by canonical name."""
    found = {}
    for line in lock.lock_path(name).read_text().splitlines():
        match = PIN.match(line)
        if match and (match.group(3) is None or Marker(match.group(3)).evaluate()):
            found[canonicalize_name(match.group(1))] = match.group(2)
    return found
