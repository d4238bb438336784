"""The locks: fresh against pyproject.toml, installed exactly, and the images pin what the tests ran."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.locks_util import ROOT, lock, pins


def test_every_lock_is_fresh_against_pyproject():
    assert lock.check() == []


def test_a_changed_version_range_makes_the_locks_stale(tmp_path, monkeypatch):
    edited = (ROOT / "pyproject.toml").read_text().replace('"scipy>=1.13,<2"', '"scipy>=1.14,<2"')
    assert edited != (ROOT / "pyproject.toml").read_text()
    (tmp_path / "pyproject.toml").write_text(edited)
    monkeypatch.setattr(lock, "PYPROJECT", tmp_path / "pyproject.toml")
    stale = lock.check()
    assert any(line.startswith("locks/dev.txt: stale") for line in stale), stale
    assert not any(line.startswith("locks/tools.txt") for line in stale), stale


def _requirements(extras: list[str]) -> list[Requirement]:
    """The direct requirements of the project with these extras, self-references expanded."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    optional = project["project"]["optional-dependencies"]
    found = [Requirement(r) for r in project["project"]["dependencies"]]
    pending, seen = list(extras), set()
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in optional[extra]:
            requirement = Requirement(text)
            if requirement.name == "tfship":
                pending.extend(requirement.extras)
            else:
                found.append(requirement)
    return found + [Requirement(r) for r in project["build-system"]["requires"]]


def test_each_lock_satisfies_every_direct_requirement():
    for name, spec in lock.environments().items():
        locked = pins(name)
        for requirement in _requirements(spec["extras"]):
            if requirement.marker and not requirement.marker.evaluate():
                continue
            version = locked.get(canonicalize_name(requirement.name))
            assert version is not None, f"{name}: {requirement.name} is not locked"
            assert requirement.specifier.contains(version, prereleases=True), (
                f"{name}: {requirement.name}=={version} does not satisfy {requirement}")


def test_this_environment_holds_exactly_the_dev_lock():
    """`make test` runs in .venv, which images/install-env.sh synced to locks/dev.txt."""
    installed = {canonicalize_name(d.metadata["Name"]): d.version
                 for d in importlib.metadata.distributions()}
    installed.pop("tfship")
    assert installed == pins("dev")


def test_the_images_pin_the_versions_the_tests_ran():
    dev = pins("dev")
    cpu = pins("image-cpu")
    assert {name: dev.get(name) for name in cpu} == cpu
    assert "kfp" in cpu and "tensorflow" in cpu  # KFP components run `python3 -m kfp...` in it
    gpu = pins("image-gpu")
    shared = {name: version for name, version in gpu.items() if name in cpu}
    assert shared == {name: cpu[name] for name in shared}
    added = set(gpu) - set(cpu)
    assert added and all(name.startswith("nvidia-") for name in added), added


def test_nothing_is_installed_around_the_locks():
    """Only uv itself is installed by pip, from its hashed lock; everything else through the script."""
    for path in [ROOT / "Makefile", ROOT / "images" / "Dockerfile.cpu", ROOT / "images" / "Dockerfile.gpu"]:
        for line in path.read_text().splitlines():
            if re.search(r"\bpip3? install\b", line):
                assert "--require-hashes -r locks/tools.txt" in line, f"{path.name}: {line.strip()}"
