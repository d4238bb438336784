"""The audit trail of a model's labels: every label move, who made it, and what it rests on.

Each move is one JSON object under the model's hidden metadata directory (TF Serving skips it)::

    <repo>/<name>/.tfship/history/0000000007.json

One object per entry, because gs:// makes only single-object writes atomic: an entry is created
with `storage.create_exclusive` (`if_generation_match=0` on gs://, a hard link of a fully written
file locally), so two writers can never both take one number; the loser takes the next. Entries are
never merged into one shared file, so concurrent writers cannot lose each other's entries and no
reader ever sees a partial one.

Order of a move (`recorded_update`), so labels never move without a record:

1. read models.config and plan the move (a move that would change nothing writes nothing);
2. create the entry with `state: pending`, the planned labels before and after;
3. apply the change to models.config (one precondition-guarded update, as before);
4. rewrite the entry (only this writer owns it) with `state: done` and the labels actually
   before and after, or `failed` with the error when the change was refused, or `unchanged`
   when another writer had already made it.

A process killed between 2 and 4 leaves a `pending` entry: the move may or may not have happened,
and `tfship history` says which by comparing the planned labels with models.config now. A move
whose entry cannot be created (storage down) does not happen.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from tensorflow_serving.config.model_server_config_pb2 import ModelServerConfig

from tfship import models_config as mc
from tfship import storage
from tfship.chain import RUN_ID_ENV
from tfship.errors import ConcurrentUpdateError, ConfigError, StorageError, TfshipError

PENDING, DONE, FAILED, UNCHANGED = "pending", "done", "failed", "unchanged"
# Where a run id comes from, first match wins: tfship's own variable (`tfship.chain.RUN_ID_ENV`:
# each KFP task sets it from its plan (the pipeline job id), the Airflow DAG from its run id,
# `tfship run` from its own), then Airflow's task context (set for every task it runs).
_AIRFLOW_DAG_ENV, _AIRFLOW_RUN_ENV = "AIRFLOW_CTX_DAG_ID", "AIRFLOW_CTX_DAG_RUN_ID"
_ID_WIDTH = 10  # zero-padded, so a listing sorts in entry order

__all__ = [
    "DONE", "FAILED", "PENDING", "RUN_ID_ENV", "UNCHANGED",
    "format_table", "history_uri", "read_entry", "read_history", "record", "recorded_update", "run_id", "who",
]


def history_uri(repo: str, name: str) -> str:
    """`<repo>/<name>/.tfship/history`: where the model's entries live."""
    return storage.join(storage.check_uri(repo, "repo"), mc.check_model_name(name), ".tfship", "history")


def who() -> str:
    """`user@host` of this process (the container's user and pod name under an orchestrator)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def run_id() -> str | None:
    """The orchestrator run this process belongs to, or None when run by hand."""
    if os.environ.get(RUN_ID_ENV):
        return os.environ[RUN_ID_ENV]
    if os.environ.get(_AIRFLOW_RUN_ENV):
        return f"airflow:{os.environ.get(_AIRFLOW_DAG_ENV, '?')}/{os.environ[_AIRFLOW_RUN_ENV]}"
    return None


def _entry_uri(repo: str, name: str, entry_id: int) -> str:
    return storage.join(history_uri(repo, name), f"{entry_id:0{_ID_WIDTH}d}.json")


def _entry_ids(repo: str, name: str) -> list[int]:
    ids = []
    for file in storage.list_files(history_uri(repo, name)):
        stem, ext = os.path.splitext(file)
        if ext == ".json" and stem.isdigit():
            ids.append(int(stem))
    return sorted(ids)


def _encode(entry: dict[str, Any]) -> bytes:
    return (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8")


def _append(repo: str, name: str, entry: dict[str, Any]) -> dict[str, Any]:
    """Create `entry` under the next free number (create-only); returns it with its `id`."""
    candidate = max(_entry_ids(repo, name), default=0) + 1
    while not storage.create_exclusive(_entry_uri(repo, name, candidate), _encode({**entry, "id": candidate})):
        candidate += 1  # another writer took it: each lost race means one more entry exists
    return {**entry, "id": candidate}


def read_history(repo: str, name: str) -> list[dict[str, Any]]:
    """Every entry of model `name`, oldest first (empty when nothing was ever recorded)."""
    return [_read(repo, name, entry_id) for entry_id in _entry_ids(repo, name)]


def _read(repo: str, name: str, entry_id: int) -> dict[str, Any]:
    uri = _entry_uri(repo, name, entry_id)
    try:
        return json.loads(storage.read_text(uri))
    except json.JSONDecodeError as error:
        raise ConfigError(f"History entry {uri} is not JSON ({error}). Expected an entry tfship wrote.") from error


def read_entry(repo: str, name: str, entry: str | int) -> dict[str, Any]:
    """The entry numbered `entry` (as the user typed it); a bad number is one `ConfigError` line."""
    text = str(entry).strip()
    ids = _entry_ids(repo, name)
    if not text.isdigit() or int(text) not in ids:
        known = f"{ids[0]}-{ids[-1]}" if ids else "none yet"
        raise ConfigError(
            f"Invalid value for argument `--to`. Received: {entry!r}. Expected the number of an entry in "
            f"{history_uri(repo, name)} (entries: {known}). Fix: pick one from `tfship history --repo {repo} "
            f"--name {name}`."
        )
    return _read(repo, name, int(text))


def _labels(config: ModelServerConfig, name: str) -> dict[str, int]:
    return dict(sorted(mc.version_labels(config, name).items()))


def _moves(before: dict[str, int], after: dict[str, int]) -> dict[str, list[int | None]]:
    """`{label: [from, to]}` for each label that changed (None: absent)."""
    return {label: [before.get(label), after.get(label)]
            for label in sorted(set(before) | set(after)) if before.get(label) != after.get(label)}


def _common(name: str, action: str, verdict: str | None, report: str | None, reason: str | None) -> dict[str, Any]:
    """The fields every entry has: when, who, what, and what it rests on."""
    return {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "who": who(), "run_id": run_id(),
            "model": name, "action": action, "verdict": verdict, "report": report, "reason": reason}


def recorded_update(
    repo: str,
    name: str,
    action: str,
    change: Callable[[ModelServerConfig], ModelServerConfig],
    *,
    verdict: str | None = None,
    report: str | None = None,
    reason: str | None = None,
) -> tuple[ModelServerConfig, bool]:
    """`mc.update_models_config(repo, change)` for a change that moves labels of model `name`, recorded.

    See the module docstring for the order. A change refused when planned (nothing to promote, a
    label on an unserved version) is refused again by the update, before any entry is written.
    Returns what `update_models_config` returns.
    """
    current = mc.read_models_config(repo)
    try:
        planned = change(current)
    except TfshipError:
        # Refused: no move planned. The update below runs `change` again and raises the same error,
        # or a more telling one first (a repository path it cannot lock: below a file, say).
        planned = current
    planned_before, planned_after = _labels(current, name), _labels(planned, name)
    if planned_before == planned_after:
        # Nothing to record; should another writer make the move due meanwhile, refuse it rather
        # than move labels unrecorded (re-running plans again and records it).
        def unmoved(config: ModelServerConfig) -> ModelServerConfig:
            new = change(config)
            if _labels(new, name) != _labels(config, name):
                raise ConcurrentUpdateError(
                    f"models.config of {name!r} changed while {action} ran, so its label move was not "
                    "planned and recorded: nothing was moved. Fix: re-run the command."
                )
            return new

        return mc.update_models_config(repo, unmoved)

    entry = _append(repo, name, {
        **_common(name, action, verdict, report, reason), "state": PENDING,
        "before": planned_before, "after": planned_after, "moves": _moves(planned_before, planned_after),
    })
    uri = _entry_uri(repo, name, entry["id"])
    seen: dict[str, dict[str, int]] = {}

    def observed(config: ModelServerConfig) -> ModelServerConfig:
        new = change(config)
        seen["before"], seen["after"] = _labels(config, name), _labels(new, name)
        return new

    try:
        config, changed = mc.update_models_config(repo, observed)
    except StorageError:
        raise  # the write may have landed (a gs:// timeout after the upload): the entry stays pending
    except TfshipError as error:  # refused (no canary, lost every race...): models.config was not written
        storage.write_bytes(uri, _encode({**entry, "state": FAILED, "error": str(error)}))
        raise
    state = DONE if changed and seen["before"] != seen["after"] else UNCHANGED
    storage.write_bytes(uri, _encode({**entry, "state": state, "before": seen["before"], "after": seen["after"],
                                      "moves": _moves(seen["before"], seen["after"])}))
    return config, changed


def record(
    repo: str,
    name: str,
    action: str,
    *,
    traffic: dict[str, int],
    verdict: str | None = None,
    report: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """Record a traffic move that leaves the labels as they are (a rollout step, its rollback).

    `traffic` says where requests go (`candidate_version`, `baseline_version`, `percent` to the
    candidate). Called before the move is published, so no move goes unrecorded; the entry is
    `done` at once because publishing the split is rewriting files, safe to repeat.
    """
    current = _labels(mc.read_models_config(repo), name)
    return _append(repo, name, {
        **_common(name, action, verdict, report, reason),
        "state": DONE, "before": current, "after": current, "moves": {}, "traffic": traffic,
    })


def format_table(entries: list[dict[str, Any]], current: dict[str, int]) -> list[str]:
    """Lines of `tfship history`: one row per entry, then the labels models.config holds now."""
    header = ("id", "time", "action", "state", "moves", "verdict", "run / who", "report / reason")
    rows = [header]
    for entry in entries:
        state = entry["state"]
        if state == PENDING:
            # Killed between the entry and its outcome: models.config now tells whether it moved.
            state = f"{PENDING} ({'applied?' if current == entry['after'] else 'not applied?'})"
        moves = " ".join(f"{label}:{_v(old)}->{_v(new)}" for label, (old, new) in entry["moves"].items())
        if entry.get("traffic"):
            moves = f"traffic {entry['traffic']['percent']}% -> {entry['traffic']['candidate_version']}"
        run = entry.get("run_id") or entry["who"]
        detail = " ".join(str(x) for x in (entry.get("report"), entry.get("reason"), entry.get("error")) if x)
        rows.append((str(entry["id"]), entry["time"], entry["action"], state, moves or "-",
                     entry.get("verdict") or "-", run, detail or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1] for row in rows]
    now = " ".join(f"{label}:{version}" for label, version in current.items()) or "(no labels)"
    return [*lines, f"labels now: {now}"]


def _v(version: int | None) -> str:
    return "none" if version is None else str(version)
