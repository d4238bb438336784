"""The label history: every label move recorded, on local disk and on fake-gcs-server.

Pushes use TF Serving's own half_plus_two / half_plus_three test models; concurrency tests race
real threads on one repository; crash tests SIGKILL a real process at a known point of a move.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.push.test_push import HALF_PLUS_THREE, HALF_PLUS_TWO, repo, run_cli  # noqa: F401 - repo is a fixture

from tfship import history
from tfship import models_config as mc
from tfship import storage
from tfship.errors import ConcurrentUpdateError, ConfigError, LabelError
from tfship.steps.push.step import promote, push, remove_label, rollback, rollback_to


@pytest.fixture
def no_run_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process is not an orchestrator task, whatever ran the tests."""
    for variable in (history.RUN_ID_ENV, "AIRFLOW_CTX_DAG_ID", "AIRFLOW_CTX_DAG_RUN_ID"):
        monkeypatch.delenv(variable, raising=False)


def labels(repo: str, name: str = "m") -> dict[str, int]:
    return mc.version_labels(mc.read_models_config(repo), name)


def two_versions(repo: str, testdata: Path) -> tuple[int, int]:
    """Version 1 (stable) and version 2 (canary) of model `m`."""
    first = push(str(testdata / HALF_PLUS_TWO), repo, "m", label="stable", version=1)
    second = push(str(testdata / HALF_PLUS_THREE), repo, "m", version=2)
    return first.version, second.version


def test_every_label_move_is_recorded_in_order_with_who_and_the_moves(
    repo: str, tf_serving_testdata: Path, no_run_id: None
) -> None:
    two_versions(repo, tf_serving_testdata)
    promote(repo, "m", verdict="PASS", report="gs://reports/run-7/report.json")
    promote(repo, "m")  # already stable: no move, no entry
    rollback(repo, "m")
    remove_label(repo, "m", "canary", verdict="FAIL", report="/tmp/r/report.json")

    entries = history.read_history(repo, "m")
    assert [(e["id"], e["action"], e["state"]) for e in entries] == [
        (1, "push", "done"), (2, "push", "done"), (3, "promote", "done"),
        (4, "rollback", "done"), (5, "remove-label", "done"),
    ]
    assert [e["moves"] for e in entries] == [
        {"stable": [None, 1]},
        {"canary": [None, 2]},
        {"previous": [None, 1], "stable": [1, 2]},
        {"previous": [1, None], "stable": [2, 1]},
        {"canary": [2, None]},
    ]
    assert entries[2]["before"] == {"canary": 2, "stable": 1}
    assert entries[2]["after"] == {"canary": 2, "previous": 1, "stable": 2}
    assert (entries[2]["verdict"], entries[2]["report"]) == ("PASS", "gs://reports/run-7/report.json")
    assert (entries[4]["verdict"], entries[4]["report"]) == ("FAIL", "/tmp/r/report.json")
    assert entries[0]["who"] == history.who() and "@" in entries[0]["who"]
    assert all(e["run_id"] is None and e["time"].endswith("+00:00") for e in entries)
    # TF Serving sees no new version directory: the history is hidden metadata.
    assert sorted(d for d in storage.list_dirs(storage.join(repo, "m")) if d.isdigit()) == ["1", "2"]


def test_run_id_comes_from_tfship_then_airflow(monkeypatch: pytest.MonkeyPatch, no_run_id: None) -> None:
    assert history.run_id() is None
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "ship_penguins")
    monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", "scheduled__2026-12-04")
    assert history.run_id() == "airflow:ship_penguins/scheduled__2026-12-04"
    monkeypatch.setenv(history.RUN_ID_ENV, "kfp-job-42")
    assert history.run_id() == "kfp-job-42"


# One writer process: says it is ready, waits for the start file, then moves its own label l<version>.
_MOVE_LABEL = """
import os, sys, time
from tfship import history
from tfship import models_config as mc
repo, version, start = sys.argv[1], int(sys.argv[2]), sys.argv[3]
open(f"{start}.ready-{version}", "w").close()
while not os.path.exists(start):
    time.sleep(0.002)
history.recorded_update(repo, "m", "push", lambda c: mc.with_label(c, "m", f"l{version}", version))
"""


def race_threads(repo: str, versions: range, tmp_path: Path) -> None:
    barrier = threading.Barrier(len(versions))
    errors: list[BaseException] = []

    def move(version: int) -> None:
        try:
            barrier.wait()
            history.recorded_update(repo, "m", "push", lambda c: mc.with_label(c, "m", f"l{version}", version))
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=move, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def race_processes(repo: str, versions: range, tmp_path: Path) -> None:
    start = tmp_path / "start"
    writers = [subprocess.Popen([sys.executable, "-c", _MOVE_LABEL, repo, str(v), str(start)],
                                stderr=subprocess.PIPE, text=True) for v in versions]
    for version in versions:  # every writer has imported tfship and polls: they start together
        wait_for_file(Path(f"{start}.ready-{version}"), writers)
    start.touch()
    for writer in writers:
        assert writer.wait(timeout=120) == 0, writer.stderr.read()


def wait_for_file(path: Path, writers: list[subprocess.Popen], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert all(w.poll() is None for w in writers), "a writer died before the start"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.01)


@pytest.mark.parametrize("race", [race_threads, race_processes], ids=["threads", "processes"])
def test_eight_concurrent_writers_lose_no_entry(repo: str, race: Callable, tmp_path: Path) -> None:
    """Eight writers each move their own label at once: eight entries, eight numbers, eight labels."""
    base = mc.model_base_path(repo, "m")
    for version in range(1, 9):
        mc.update_models_config(repo, lambda c, v=version: mc.with_version(c, "m", base, v))
    race(repo, range(1, 9), tmp_path)
    entries = history.read_history(repo, "m")
    assert [e["id"] for e in entries] == list(range(1, 9))
    assert all(e["state"] == "done" for e in entries)
    assert sorted(label for e in entries for label in e["moves"]) == sorted(f"l{v}" for v in range(1, 9))
    assert labels(repo) == {f"l{v}": v for v in range(1, 9)}
    # Each entry's `before` is what its writer really replaced: following them rebuilds the end state.
    state: dict[str, int] = {}
    for entry in sorted(entries, key=lambda e: len(e["before"])):
        assert entry["before"] == state
        state = entry["after"]
    assert state == labels(repo)


def serving_version_1(root: Path) -> str:
    """A local repository where model m serves version 1, unlabelled."""
    repo = str(root / "repo")
    base = mc.model_base_path(repo, "m")
    mc.update_models_config(repo, lambda c: mc.with_version(c, "m", base, 1))
    return repo


def planned_then_applied(planned: Callable, applied: Callable) -> Callable:
    """A change that acts as `planned` on its first call and as `applied` on later ones: what
    another writer changing models.config between the planning and the update looks like."""
    calls: list[None] = []

    def change(config):
        calls.append(None)
        return (planned if len(calls) == 1 else applied)(config)

    return change


def label_canary_1(config):
    return mc.with_label(config, "m", "canary", 1)


def test_a_change_refused_inside_the_update_is_recorded_failed(tmp_path: Path) -> None:
    repo = serving_version_1(tmp_path)

    def refuse(config):
        raise LabelError("version 1 is gone")

    with pytest.raises(LabelError):
        history.recorded_update(repo, "m", "push", planned_then_applied(label_canary_1, refuse))
    [entry] = history.read_history(repo, "m")
    assert (entry["state"], entry["error"]) == ("failed", "version 1 is gone")
    assert labels(repo) == {}


def test_a_move_that_appears_only_after_planning_is_refused_not_made_unrecorded(tmp_path: Path) -> None:
    repo = serving_version_1(tmp_path)
    with pytest.raises(ConcurrentUpdateError, match="nothing was moved"):
        history.recorded_update(repo, "m", "push", planned_then_applied(lambda c: c, label_canary_1))
    assert labels(repo) == {} and history.read_history(repo, "m") == []


# A promote whose process is SIGKILLed right before, or right after, the models.config update.
_KILLED_PROMOTE = """
import os, signal, sys
from tfship import models_config as mc
from tfship.steps.push import step as push_step
real = mc.update_models_config
def update(*args, **kwargs):
    if sys.argv[2] == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    result = real(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
mc.update_models_config = update
push_step.promote(sys.argv[1], "m")
"""


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_move_killed_midway_leaves_a_pending_entry_never_an_unrecorded_move(
    repo: str, tf_serving_testdata: Path, when: str
) -> None:
    two_versions(repo, tf_serving_testdata)
    process = subprocess.run([sys.executable, "-c", _KILLED_PROMOTE, repo, when], timeout=120)
    assert process.returncode == -9
    entry = history.read_history(repo, "m")[-1]
    assert (entry["id"], entry["action"], entry["state"]) == (3, "promote", "pending")
    assert entry["after"] == {"canary": 2, "previous": 1, "stable": 2}
    moved = labels(repo) == entry["after"]
    assert moved == (when == "after")  # killed after the update: moved, and the pending entry says so
    table = run_cli("history", "--repo", repo, "--name", "m")
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if line.startswith("3 "))
    assert ("pending (applied?)" if moved else "pending (not applied?)") in row
    with pytest.raises(ConfigError, match="state 'pending'"):
        rollback_to(repo, "m", 3)

    promote(repo, "m")  # re-running finishes the job; only a real move is recorded again
    assert labels(repo) == entry["after"]
    assert len(history.read_history(repo, "m")) == (3 if moved else 4)


def test_cli_history_and_rollback_to_an_earlier_entry(
    repo: str, tf_serving_testdata: Path, no_run_id: None
) -> None:
    two_versions(repo, tf_serving_testdata)
    promote(repo, "m")
    env = {history.RUN_ID_ENV: "kfp-job-42"}
    restored = run_cli("rollback", "--repo", repo, "--name", "m", "--to", "2", env={**os.environ, **env})
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.strip() == "m: labels restored to entry 2: canary:2 stable:1"
    assert labels(repo) == {"stable": 1, "canary": 2}
    entry = history.read_history(repo, "m")[-1]
    assert (entry["id"], entry["action"], entry["state"], entry["run_id"]) == (4, "rollback", "done", "kfp-job-42")
    assert entry["reason"] == "restore entry 2"
    assert entry["moves"] == {"previous": [1, None], "stable": [2, 1]}

    table = run_cli("history", "--repo", repo, "--name", "m")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["id", "time", "action", "state"]
    assert [line.split()[2] for line in lines[1:5]] == ["push", "push", "promote", "rollback"]
    assert "stable:2->1" in lines[4] and "previous:1->none" in lines[4] and "kfp-job-42" in lines[4]
    assert lines[-1] == "labels now: canary:2 stable:1"
    as_json = run_cli("history", "--repo", repo, "--name", "m", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == history.read_history(repo, "m")


@pytest.mark.parametrize("entry", ["abc", "99", "0", "-1", ""])
def test_rollback_to_a_bad_entry_is_one_line_and_exit_2(tmp_path: Path, tf_serving_testdata: Path, entry: str) -> None:
    repo = str(tmp_path / "repo")
    two_versions(repo, tf_serving_testdata)
    before = labels(repo)
    result = run_cli("rollback", "--repo", repo, "--name", "m", "--to", entry)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--to" in result.stderr and "entries: 1-2" in result.stderr
    assert labels(repo) == before and len(history.read_history(repo, "m")) == 2


def test_rollback_to_labels_on_an_unloaded_version_is_refused(tmp_path: Path, tf_serving_testdata: Path) -> None:
    repo = str(tmp_path / "repo")
    two_versions(repo, tf_serving_testdata)
    remove_label(repo, "m", "canary")  # version 2 is unloaded
    result = run_cli("rollback", "--repo", repo, "--name", "m", "--to", "2")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "[2] are no longer served" in result.stderr
    assert labels(repo) == {"stable": 1}
    push(str(tf_serving_testdata / HALF_PLUS_THREE), repo, "m", version=2, label=None)  # served again
    assert rollback_to(repo, "m", "2") == {"canary": 2, "stable": 1}
    assert labels(repo) == {"canary": 2, "stable": 1}


def test_a_traffic_move_is_recorded_with_the_labels_unchanged(tmp_path: Path, tf_serving_testdata: Path) -> None:
    repo = str(tmp_path / "repo")
    two_versions(repo, tf_serving_testdata)
    entry = history.record(repo, "m", "rollout-step", verdict="PASS", report="out/rollout.json", reason="step 50%",
                           traffic={"baseline_version": 1, "candidate_version": 2, "percent": 50})
    assert history.read_history(repo, "m")[-1] == entry
    assert (entry["id"], entry["state"], entry["moves"]) == (3, "done", {})
    assert entry["before"] == entry["after"] == {"canary": 2, "stable": 1}
    row = history.format_table([entry], labels(repo))[1]
    assert "rollout-step" in row and "traffic 50% -> 2" in row and "out/rollout.json step 50%" in row
