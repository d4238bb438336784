"""Make and check the committed dependency locks (`make lock`; `tests/test_locks.py` runs `check`).

Every environment tfship installs (the developer's `.venv`, `.venv-airflow`, and each image role) is
installed from one lock in this folder: exact versions with hashes, resolved by uv from the extras
that `[tool.tfship.locks]` in pyproject.toml names. A lock records the fingerprint of everything in
pyproject.toml that it was resolved from; when those inputs change, `check` reports the lock as stale,
so a version range edited in pyproject.toml cannot silently diverge from what is installed.

Re-running `make lock` keeps every pinned version that still satisfies pyproject.toml (uv prefers the
versions already in the output file); `make lock UPGRADE=1` moves them to the newest allowed.

Usage: python locks/lock.py [--check] [--upgrade]   (uv on PATH, or in $UV)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ROOT / "locks"
PYPROJECT = ROOT / "pyproject.toml"
TOOLS_INPUT = LOCKS / "tools.in"
FINGERPRINT_PREFIX = "# inputs-sha256: "
PYTHON_VERSION = "3.11"


def _pyproject() -> dict:
    return tomllib.loads(PYPROJECT.read_text())


def environments() -> dict[str, dict]:
    """The environments to lock, in resolution order (a constrained one after its constraint)."""
    table = _pyproject()["tool"]["tfship"]["locks"]
    ordered = sorted(table, key=lambda name: "constrain" in table[name])
    return {name: table[name] for name in ordered}


def lock_path(name: str) -> Path:
    return LOCKS / f"{name}.txt"


def fingerprint(name: str) -> str:
    """Hash of every input an environment's resolution depends on."""
    if name == "tools":
        inputs = {"tools": TOOLS_INPUT.read_text(), "python": PYTHON_VERSION}
    else:
        project = _pyproject()
        inputs = {
            "dependencies": project["project"]["dependencies"],
            "optional": project["project"]["optional-dependencies"],
            "requires-python": project["project"]["requires-python"],
            "build": project["build-system"]["requires"],
            "environment": environments()[name],
            "python": PYTHON_VERSION,
        }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def recorded_fingerprint(path: Path) -> str | None:
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        if line.startswith(FINGERPRINT_PREFIX):
            return line[len(FINGERPRINT_PREFIX):].strip()
    return None


def check() -> list[str]:
    """One line per lock that is missing or stale against pyproject.toml; empty when all are fresh."""
    problems = []
    for name in ["tools", *environments()]:
        path = lock_path(name)
        recorded = recorded_fingerprint(path)
        if recorded is None:
            problems.append(f"{path.relative_to(ROOT)}: missing or has no fingerprint; run `make lock`")
        elif recorded != fingerprint(name):
            problems.append(f"{path.relative_to(ROOT)}: stale against pyproject.toml; run `make lock`")
    return problems


def _compile(uv: str, name: str, sources: list[str], extra_args: list[str], upgrade: bool,
             stdin: str | None = None) -> None:
    path = lock_path(name)
    command = [uv, "pip", "compile", "--quiet", "--generate-hashes", "--no-header",
               "--python-version", PYTHON_VERSION, "--universal", "--output-file", str(path),
               *(["--upgrade"] if upgrade else []), *extra_args, *sources]
    subprocess.run(command, check=True, cwd=ROOT, input=stdin, text=True)
    body = path.read_text()
    header = (f"# The `{name}` environment, locked with hashes by `make lock` (locks/lock.py); "
              "do not edit.\n" f"{FINGERPRINT_PREFIX}{fingerprint(name)}\n")
    path.write_text(header + body)


def lock(uv: str, upgrade: bool) -> None:
    _compile(uv, "tools", ["locks/tools.in"], [], upgrade)
    # The build backend is locked too (the project is installed with --no-build-isolation): its
    # requirements come on standard input, so the locks name no temporary file.
    build_requires = "\n".join(_pyproject()["build-system"]["requires"]) + "\n"
    for name, spec in environments().items():
        args = [arg for extra in spec["extras"] for arg in ("--extra", extra)]
        if "constrain" in spec:
            args += ["--constraint", f"locks/{spec['constrain']}.txt"]
        _compile(uv, name, ["pyproject.toml", "-"], args, upgrade, stdin=build_requires)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report stale locks, exit 1 if any")
    parser.add_argument("--upgrade", action="store_true", help="newest allowed versions")
    args = parser.parse_args(argv)
    if args.check:
        problems = check()
        print("\n".join(problems) or "locks are fresh")
        return 1 if problems else 0
    lock(os.environ.get("UV", "uv"), args.upgrade)
    return 0


if __name__ == "__main__":
    sys.exit(main())
