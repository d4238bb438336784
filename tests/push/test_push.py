"""`tfship push`, `promote`, `rollback` on local disk and on fake-gcs-server through the real client.

The pushed SavedModels are TF Serving's own half_plus_two / half_plus_three test models. Kill
tests run the real CLI in a subprocess and SIGKILL it at a known step; concurrency tests race real
processes and threads on one models.config.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tfship import models_config as mc
from tfship import storage
from tfship.errors import (
    ChecksumMismatchError,
    ConfigError,
    LabelError,
    ModelError,
    ServingTimeoutError,
    StorageError,
    VersionExistsError,
)
from tfship.progress import ProgressBar
from tfship.steps.push.step import PushConfig, promote, push, remove_label, rollback

HALF_PLUS_TWO = "saved_model_half_plus_two_cpu/00000123"
HALF_PLUS_THREE = "saved_model_half_plus_three/00000123"
TFSHIP = [sys.executable, "-m", "tfship.cli"]


@pytest.fixture(params=["local", "gcs"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty model repository root on local disk or in a fresh emulator bucket."""
    if request.param == "local":
        return str(tmp_path / "repo")
    return request.getfixturevalue("gcs_bucket") + "/models"


def model_copy(testdata: Path, source: str, target: Path, blobs: int = 0, blob_bytes: int = 1 << 20) -> str:
    """A copy of a TF Serving test model at `target`, optionally grown by `blobs` extra files."""
    shutil.copytree(testdata / source, target)
    extra = target / "assets.extra"
    for i in range(blobs):
        extra.mkdir(exist_ok=True)
        (extra / f"blob_{i:03d}.bin").write_bytes(os.urandom(blob_bytes))
    return str(target)


def snapshot(repo: str) -> dict[str, bytes]:
    """Every file of the repository with its content: 'left exactly as it was' is equality."""
    return {f: storage.read_bytes(storage.join(repo, f)) for f in storage.list_files(repo)}


def visible_versions(repo: str, name: str) -> list[str]:
    """What TF Serving would see under the model's base path: integer-named directories."""
    return [d for d in storage.list_dirs(storage.join(repo, name)) if d.isdigit()]


def assert_config_names_only_complete_versions(repo: str, name: str, source: str | None = None) -> None:
    """The invariant of every push: a version models.config names is complete on storage."""
    config = mc.read_models_config(repo)
    for version in mc.served_versions(config, name):
        manifest_uri = storage.join(repo, name, ".tfship", "versions", f"{version}.json")
        files = sorted(json.loads(storage.read_text(manifest_uri))["files"])
        assert storage.list_files(storage.join(repo, name, str(version))) == files, version
    for label, version in mc.version_labels(config, name).items():
        assert version in mc.served_versions(config, name), (label, version)


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*TFSHIP, *args], capture_output=True, text=True, timeout=120, env=env)


# ---- round trip, idempotence, version numbers ---------------------------------------------------


def test_push_lays_out_tf_serving_repository_and_is_idempotent(repo: str, tf_serving_testdata: Path) -> None:
    result = push(str(tf_serving_testdata / HALF_PLUS_TWO), repo, "half_plus_two")
    assert (result.version, result.uploaded, result.config_changed) == (123, True, True)
    assert storage.list_files(result.version_uri) == [
        "assets/foo.txt", "saved_model.pb", "variables/variables.data-00000-of-00001", "variables/variables.index",
    ]
    for file in storage.list_files(result.version_uri):
        assert storage.read_bytes(storage.join(result.version_uri, file)) == (
            tf_serving_testdata / HALF_PLUS_TWO / file
        ).read_bytes()
    config = mc.read_models_config(repo)
    entry = mc.find_model(config, "half_plus_two")
    assert entry.base_path == (storage.join(repo, "half_plus_two") if repo.startswith("gs://")
                               else os.path.abspath(os.path.join(repo, "half_plus_two")))
    assert entry.model_platform == "tensorflow"
    assert mc.served_versions(config, "half_plus_two") == (123,)
    assert mc.version_labels(config, "half_plus_two") == {"canary": 123}
    assert visible_versions(repo, "half_plus_two") == ["123"]
    assert storage.list_files(storage.join(repo, "half_plus_two", ".tfship", "staging")) in ([], ["123.lock"])

    before = snapshot(repo)
    again = push(str(tf_serving_testdata / HALF_PLUS_TWO), repo, "half_plus_two")
    assert (again.version, again.uploaded, again.config_changed) == (123, False, False)
    assert again.content_id == result.content_id
    assert snapshot(repo) == before


def test_without_a_numbered_directory_versions_count_up_and_same_content_is_found(
    repo: str, tf_serving_testdata: Path, tmp_path: Path
) -> None:
    two = model_copy(tf_serving_testdata, HALF_PLUS_TWO, tmp_path / "export" / "two")
    three = model_copy(tf_serving_testdata, HALF_PLUS_THREE, tmp_path / "export" / "three")
    assert push(two, repo, "m").version == 1
    assert push(three, repo, "m").version == 2
    assert mc.served_versions(mc.read_models_config(repo), "m") == (2,)  # 1 lost its last label
    again = push(two, repo, "m", label=None)  # found by content: nothing uploaded, served again
    assert (again.version, again.uploaded, again.config_changed) == (1, False, True)
    assert mc.served_versions(mc.read_models_config(repo), "m") == (1, 2)
    assert mc.version_labels(mc.read_models_config(repo), "m") == {"canary": 2}
    assert push(two, repo, "m", version=7).version == 7  # an explicit number is honoured


def test_same_version_with_other_content_is_refused_and_the_repo_is_untouched(
    repo: str, tf_serving_testdata: Path
) -> None:
    push(str(tf_serving_testdata / HALF_PLUS_TWO), repo, "m")
    before = snapshot(repo)
    with pytest.raises(VersionExistsError, match="Version 123 of model 'm' already exists .* different content"):
        push(str(tf_serving_testdata / HALF_PLUS_THREE), repo, "m")
    with pytest.raises(VersionExistsError, match="Fix: pass another --version"):
        push(str(tf_serving_testdata / HALF_PLUS_THREE), repo, "m", version=123)
    assert snapshot(repo) == before


# ---- bad input ----------------------------------------------------------------------------------


def test_bad_models_are_refused_before_anything_is_written(repo: str, tf_serving_testdata: Path, tmp_path: Path) -> None:
    push(str(tf_serving_testdata / HALF_PLUS_TWO), repo, "m")
    before = snapshot(repo)
    with pytest.raises(ModelError, match="holds checkpoint, export, export.meta but no saved_model.pb"):
        push(str(tf_serving_testdata / "bad_half_plus_two/00000123"), repo, "m")
    truncated = model_copy(tf_serving_testdata, HALF_PLUS_THREE, tmp_path / "truncated")
    pb = Path(truncated, "saved_model.pb")
    pb.write_bytes(pb.read_bytes()[:3000])
    with pytest.raises(ModelError, match="Corrupt model .*saved_model.pb is not a SavedModel protobuf"):
        push(truncated, repo, "m", version=5)
    no_index = model_copy(tf_serving_testdata, HALF_PLUS_THREE, tmp_path / "no_index")
    os.remove(os.path.join(no_index, "variables", "variables.index"))
    with pytest.raises(ModelError, match=r"variables/ is incomplete \(index present: False"):
        push(no_index, repo, "m", version=5)
    with pytest.raises(ModelError, match="not a directory"):
        push(str(tmp_path / "nothing"), repo, "m", version=5)
    assert snapshot(repo) == before


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": "a/b"}, ConfigError, r"name='a/b'. Expected .*no '/'"),
        ({"name": "../up"}, ConfigError, r"name='../up'"),
        ({"name": "has space"}, ConfigError, r"name='has space'"),
        ({"label": "can-ary"}, ConfigError, r"label='can-ary'. Expected letters, digits and '_'"),
        ({"label": "previous"}, ConfigError, r"managed by `tfship promote`"),
        ({"repo": "s3://bucket/models"}, StorageError, r"unknown scheme 's3'"),
        ({"repo": "gs:///models"}, StorageError, r"names no bucket"),
        ({"version": -1}, ConfigError, r"version=-1. Expected an integer >= 0"),
        ({"workers": 0}, ConfigError, r"workers=0. Expected an integer from 1 to 64"),
        ({"serving_target": "host port"}, ConfigError, r"serving_target='host port'"),
    ],
)
def test_bad_arguments_are_rejected_when_the_config_is_built(kwargs: dict, error: type, match: str, tmp_path: Path) -> None:
    arguments = {"model": "m", "repo": str(tmp_path / "repo"), "name": "m", **kwargs}
    with pytest.raises(error, match=match):
        PushConfig(**arguments)
    assert not (tmp_path / "repo").exists()


def test_a_missing_bucket_is_one_clear_error(gcs_emulator: str, tf_serving_testdata: Path) -> None:
    with pytest.raises(StorageError, match="Bucket 'no-such-bucket-tfship' .* does not exist"):
        push(str(tf_serving_testdata / HALF_PLUS_TWO), "gs://no-such-bucket-tfship/models", "m")


def test_cli_reports_bad_input_as_one_line_and_exit_code_2(tmp_path: Path, tf_serving_testdata: Path) -> None:
    done = run_cli("push", "--model", str(tf_serving_testdata / "bad_half_plus_two/00000123"),
                   "--repo", str(tmp_path / "repo"), "--name", "m")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("tfship push: error: Invalid value for argument `model`")
    assert not (tmp_path / "repo" / "models.config").exists()


# ---- checksums ----------------------------------------------------------------------------------


def test_a_corrupted_stored_copy_is_detected_and_nothing_is_published(
    repo: str, tf_serving_testdata: Path
) -> None:
    """Bit rot injected into a stored version: re-pushing it fails its checksum, config untouched."""
    result = push(str(tf_serving_testdata / HALF_PLUS_TWO), repo, "m", label=None)
    data = storage.join(result.version_uri, "variables/variables.data-00000-of-00001")
    good = storage.read_bytes(data)
    storage.write_bytes(data, bytes([good[0] ^ 0xFF]) + good[1:])  # same size, other content
    before = snapshot(repo)
    with pytest.raises(ChecksumMismatchError, match=r"variables.data-00000-of-00001 \((sha256|crc32c) "):
        push(str(tf_serving_testdata / HALF_PLUS_TWO), repo, "m")
    assert snapshot(repo) == before
    assert "canary" not in mc.version_labels(mc.read_models_config(repo), "m")


def test_a_source_changing_during_upload_fails_verification_and_leaves_nothing(
    repo: str, tf_serving_testdata: Path, tmp_path: Path
) -> None:
    """The exporter rewrites a file after it was hashed: the copy does not match, nothing is published."""
    model = model_copy(tf_serving_testdata, HALF_PLUS_TWO, tmp_path / "export" / "model", blobs=40, blob_bytes=256 << 10)
    last = Path(model, "variables", "variables.index")  # the last file uploaded (sorted order, one worker)
    original = last.read_bytes()
    process = subprocess.Popen(
        [*TFSHIP, "push", "--model", model, "--repo", repo, "--name", "m", "--workers", "1", "-v"],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    for line in process.stderr:
        if "uploaded" in line:
            last.write_bytes(bytes([original[0] ^ 0xFF]) + original[1:])
            break
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2, err
    assert "Checksum mismatch after " in err and "variables/variables.index" in err
    assert mc.read_models_config(repo) == mc.parse_models_config("")
    assert visible_versions(repo, "m") == []
    assert [f for f in storage.list_files(storage.join(repo, "m")) if not f.endswith(".lock")] == []
    last.write_bytes(original)
    assert push(model, repo, "m").version == 1  # the released claim is free again


# ---- SIGKILL at every step ----------------------------------------------------------------------


def _emulator_pid() -> int:
    """The fake-gcs-server process of this test session (found by its port, in /proc)."""
    port = os.environ["STORAGE_EMULATOR_HOST"].rsplit(":", 1)[1]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = Path("/proc", entry, "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"-port" in argv and argv[argv.index(b"-port") + 1] == port.encode() and b"-scheme" in argv:
                return int(entry)
    raise RuntimeError("fake-gcs-server not found")


def _start_push(model: str, repo: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*TFSHIP, "push", "--model", model, "--repo", repo, "--name", "m", "--workers", "1", "-v", *extra],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )


def _kill_after(process: subprocess.Popen, needle: str, before_kill=None) -> list[str]:
    lines = []
    for line in process.stderr:
        lines.append(line)
        if needle in line:
            if before_kill is not None:
                before_kill()
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "".join(lines)
    return lines


def _check_rerun_completes(model: str, repo: str, label_expected: str = "canary") -> None:
    result = push(model, repo, "m")
    assert result.version == 1
    config = mc.read_models_config(repo)
    assert mc.served_versions(config, "m") == (1,)
    assert mc.version_labels(config, "m") == {label_expected: 1}
    assert_config_names_only_complete_versions(repo, "m")
    assert visible_versions(repo, "m") == ["1"]
    staging = storage.join(repo, "m", ".tfship", "staging")
    assert [f for f in storage.list_files(staging) if not f.endswith(".lock")] == []
    assert sorted(storage.list_files(storage.join(repo, "m", ".tfship", "versions"))) == ["1.json"]


def test_sigkill_during_upload_exposes_nothing_and_a_rerun_completes(
    repo: str, tf_serving_testdata: Path, tmp_path: Path
) -> None:
    model = model_copy(tf_serving_testdata, HALF_PLUS_TWO, tmp_path / "export" / "model", blobs=48, blob_bytes=256 << 10)
    total = sum(f.stat().st_size for f in Path(model).rglob("*") if f.is_file())
    process = _start_push(model, repo)
    lines = _kill_after(process, "uploaded ")
    done = int(lines[-1].split("uploaded ")[1].split("/")[0])
    assert 0 < done < total  # killed mid-upload
    staged = storage.list_files(storage.join(repo, "m", ".tfship", "staging", "1"))
    assert 0 < len(staged) < 52
    assert mc.read_models_config(repo) == mc.parse_models_config("")
    assert visible_versions(repo, "m") == []
    _check_rerun_completes(model, repo)


def test_sigkill_between_upload_and_config_update_is_invisible_and_a_rerun_completes(
    repo: str, tf_serving_testdata: Path, tmp_path: Path
) -> None:
    """The push is held just before models.config changes (local: its lock; gs: the server paused)."""
    model = model_copy(tf_serving_testdata, HALF_PLUS_TWO, tmp_path / "export" / "model", blobs=16, blob_bytes=64 << 10)
    if repo.startswith("gs://"):
        pid = _emulator_pid()
        process = _start_push(model, repo)
        try:
            _kill_after(process, "verified", before_kill=lambda: os.kill(pid, signal.SIGSTOP))
        finally:
            os.kill(pid, signal.SIGCONT)
        assert mc.read_models_config(repo) == mc.parse_models_config("")
    else:
        lock_file = Path(repo, ".models.config.lock")
        lock_file.parent.mkdir(parents=True)
        with storage.local_lock(str(lock_file)):
            process = _start_push(model, repo)
            _kill_after(process, "in place at")
        assert visible_versions(repo, "m") == ["1"]  # complete (renamed atomically) ...
        assert not Path(repo, "models.config").exists()  # ... but not served
    assert_config_names_only_complete_versions(repo, "m")
    _check_rerun_completes(model, repo)


def test_sigkill_while_waiting_for_the_server_leaves_the_version_served_unlabelled(
    repo: str, tf_serving_testdata: Path, tmp_path: Path
) -> None:
    from tests.conftest import free_port

    model = model_copy(tf_serving_testdata, HALF_PLUS_TWO, tmp_path / "export" / "model")
    process = _start_push(model, repo, "--serving-target", f"http://127.0.0.1:{free_port()}")
    _kill_after(process, "waiting for")
    config = mc.read_models_config(repo)
    assert mc.served_versions(config, "m") == (1,)
    assert mc.version_labels(config, "m") == {}
    assert_config_names_only_complete_versions(repo, "m")
    _check_rerun_completes(model, repo)


def test_config_never_names_a_partial_version_while_a_push_runs(
    repo: str, tf_serving_testdata: Path, tmp_path: Path
) -> None:
    """An observer re-reads models.config and the version's files throughout a push."""
    model = model_copy(tf_serving_testdata, HALF_PLUS_TWO, tmp_path / "export" / "model", blobs=24, blob_bytes=64 << 10)
    stop = threading.Event()
    seen: list[tuple[int, ...]] = []
    failures: list[BaseException] = []

    def observe() -> None:
        while not stop.is_set():
            try:
                assert_config_names_only_complete_versions(repo, "m")
                seen.append(mc.served_versions(mc.read_models_config(repo), "m"))
            except BaseException as error:  # noqa: BLE001 - reported by the main thread
                failures.append(error)
                return

    observer = threading.Thread(target=observe)
    observer.start()
    try:
        push(model, repo, "m", workers=2)
    finally:
        stop.set()
        observer.join()
    assert not failures, failures[0]
    assert () in seen  # the observer ran before the version was served ...
    assert mc.served_versions(mc.read_models_config(repo), "m") == (1,)  # ... and it is served now


# ---- concurrency --------------------------------------------------------------------------------


def test_two_concurrent_pushes_to_one_model_both_land(repo: str, tf_serving_testdata: Path, tmp_path: Path) -> None:
    """Two processes push different models under one name at once: two versions, both served."""
    two = model_copy(tf_serving_testdata, HALF_PLUS_TWO, tmp_path / "a" / "model", blobs=4, blob_bytes=64 << 10)
    three = model_copy(tf_serving_testdata, HALF_PLUS_THREE, tmp_path / "b" / "model", blobs=4, blob_bytes=64 << 10)
    processes = [
        subprocess.Popen([*TFSHIP, "push", "--model", m, "--repo", repo, "--name", "m", "--label", ""],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for m in (two, three)
    ]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    config = mc.read_models_config(repo)
    assert mc.served_versions(config, "m") == (1, 2)  # neither update was lost
    assert_config_names_only_complete_versions(repo, "m")
    claims = {json.loads(storage.read_text(storage.join(repo, "m", ".tfship", "versions", f"{v}.json")))["content_id"]
              for v in (1, 2)}
    assert len(claims) == 2


def test_concurrent_config_updates_lose_nothing(repo: str) -> None:
    """Eight writers add a version each to one models.config at once: all eight are there."""
    base = mc.model_base_path(repo, "m") if not repo.startswith("gs://") else storage.join(repo, "m")
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def add(version: int) -> None:
        try:
            barrier.wait()
            mc.update_models_config(repo, lambda c: mc.with_version(c, "m", base, version))
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=add, args=(v,)) for v in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert mc.served_versions(mc.read_models_config(repo), "m") == tuple(range(1, 9))


def test_concurrent_pushes_of_one_version_with_other_content_one_wins(
    repo: str, tf_serving_testdata: Path
) -> None:
    results: dict[str, object] = {}
    barrier = threading.Barrier(2)

    def run(source: str) -> None:
        barrier.wait()
        try:
            results[source] = push(str(tf_serving_testdata / source), repo, "m", version=5)
        except VersionExistsError as error:
            results[source] = error

    threads = [threading.Thread(target=run, args=(s,)) for s in (HALF_PLUS_TWO, HALF_PLUS_THREE)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [r for r in results.values() if isinstance(r, VersionExistsError)]
    assert len(errors) == 1 and len(results) == 2
    assert mc.served_versions(mc.read_models_config(repo), "m") == (5,)
    assert_config_names_only_complete_versions(repo, "m")


# ---- labels: promote, rollback, waiting for the server ------------------------------------------


def test_promote_and_rollback_round_trip(repo: str, tf_serving_testdata: Path, tmp_path: Path) -> None:
    two = model_copy(tf_serving_testdata, HALF_PLUS_TWO, tmp_path / "two")
    three = model_copy(tf_serving_testdata, HALF_PLUS_THREE, tmp_path / "three")
    first = push(two, repo, "m", label="stable")
    second = push(three, repo, "m")
    labels = lambda: mc.version_labels(mc.read_models_config(repo), "m")  # noqa: E731
    assert labels() == {"stable": first.version, "canary": second.version}

    assert promote(repo, "m") == second.version
    assert labels() == {"stable": second.version, "canary": second.version, "previous": first.version}
    assert mc.served_versions(mc.read_models_config(repo), "m") == (1, 2)
    assert promote(repo, "m") == second.version  # idempotent

    assert rollback(repo, "m") == first.version
    assert labels() == {"stable": first.version, "canary": second.version}
    with pytest.raises(LabelError, match="no previous stable version is recorded"):
        rollback(repo, "m")

    remove_label(repo, "m", "canary")
    assert labels() == {"stable": first.version}
    assert mc.served_versions(mc.read_models_config(repo), "m") == (1,)  # version 2 unloaded
    with pytest.raises(LabelError, match="it has no 'canary' label"):
        promote(repo, "m")
    assert promote(repo, "m", version=1) == 1


def test_cli_push_promote_rollback(repo: str, tf_serving_testdata: Path) -> None:
    env = dict(os.environ)
    pushed = run_cli("push", "--model", str(tf_serving_testdata / HALF_PLUS_TWO), "--repo", repo, "--name", "m",
                     "--label", "stable", "-v", env=env)
    assert pushed.returncode == 0, pushed.stderr
    assert "m version 123 pushed" in pushed.stdout
    for secret in ("Bearer", "access_token", "Authorization", "private_key"):
        assert secret not in pushed.stdout + pushed.stderr
    assert run_cli("push", "--model", str(tf_serving_testdata / "saved_model_half_plus_two_2_versions/00000124"),
                   "--repo", repo, "--name", "m", env=env).returncode == 0
    promoted = run_cli("promote", "--repo", repo, "--name", "m", env=env)
    assert (promoted.returncode, promoted.stdout.strip()) == (0, "m: stable -> version 124")
    rolled = run_cli("rollback", "--repo", repo, "--name", "m", env=env)
    assert (rolled.returncode, rolled.stdout.strip()) == (0, "m: stable rolled back to version 123")
    again = run_cli("rollback", "--repo", repo, "--name", "m", env=env)
    assert again.returncode == 2
    assert again.stderr.strip() .startswith("tfship rollback: error: Cannot roll back model 'm'")


class _StatusServer:
    """A REST endpoint answering GET /v1/models/<name>/versions/<v> in TF Serving's JSON format."""

    def __init__(self, state: str) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.state = state
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                version = self.path.rsplit("/", 1)[-1]
                body = json.dumps({"model_version_status": [{
                    "version": version, "state": outer.state,
                    "status": {"error_code": "OK", "error_message": ""}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_label_moves_once_the_serving_target_reports_available(tmp_path: Path, tf_serving_testdata: Path) -> None:
    repo = str(tmp_path / "repo")
    push(str(tf_serving_testdata / HALF_PLUS_TWO), repo, "m", label="stable")
    server = _StatusServer("LOADING")
    threading.Timer(0.5, lambda: setattr(server, "state", "AVAILABLE")).start()
    try:
        result = push(str(tf_serving_testdata / "saved_model_half_plus_two_2_versions/00000124"), repo, "m",
                      serving_target=server.url, wait_timeout_s=20)
    finally:
        server.server.shutdown()
    assert result.version == 124
    assert mc.version_labels(mc.read_models_config(repo), "m") == {"stable": 123, "canary": 124}


def test_an_unreachable_serving_target_times_out_with_the_version_unlabelled(
    tmp_path: Path, tf_serving_testdata: Path
) -> None:
    from tests.conftest import free_port

    repo = str(tmp_path / "repo")
    with pytest.raises(ServingTimeoutError, match=r"did not report version 123 of model 'm' AVAILABLE within 1 s"):
        push(str(tf_serving_testdata / HALF_PLUS_TWO), repo, "m",
             serving_target=f"http://127.0.0.1:{free_port()}", wait_timeout_s=1)
    config = mc.read_models_config(repo)
    assert mc.served_versions(config, "m") == (123,) and mc.version_labels(config, "m") == {}


def test_progress_bar_draws_only_where_asked() -> None:
    stream = io.StringIO()
    bar = ProgressBar(200_000_000, "push m", stream=stream, enabled=True)
    bar.advance(100_000_000)
    bar.close()
    assert "push m [############............]  50% 100.0/200.0 MB" in stream.getvalue()
    quiet = io.StringIO()
    ProgressBar(10, "push m", stream=quiet).advance(10)  # StringIO is not a terminal
    assert quiet.getvalue() == ""
