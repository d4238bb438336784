"""The suite's own layout: every group folder under tests/ is collected.

pytest skips folders matching `norecursedirs` (by default `build`, `dist`, `venv`, ...) without a
word: a group named like one of them would drop its tests from every run while CI stays green.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]


def test_no_test_folder_matches_norecursedirs(pytestconfig: pytest.Config) -> None:
    patterns = pytestconfig.getini("norecursedirs")
    folders = sorted(p.parent for p in TESTS.rglob("test_*.py") if p.parent != TESTS)
    skipped = {str(folder.relative_to(TESTS)) for folder in folders
               for part in folder.relative_to(TESTS).parts
               if any(fnmatch.fnmatch(part, pattern) for pattern in patterns)}
    assert not skipped, f"pytest would not collect the tests in {sorted(skipped)} (norecursedirs)"
