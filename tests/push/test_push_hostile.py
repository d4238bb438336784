"""Hostile and careless input to `tfship push`, `promote`, `rollback` (issue 14), on real files.

Repositories on local disk and in fake-gcs-server buckets; an unreachable gs:// endpoint is a
closed port or a real socket that never answers, both on 127.0.0.1. Each test names the answer
before the fix in its docstring.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
from tests.push.test_push import HALF_PLUS_THREE, HALF_PLUS_TWO, model_copy, repo, run_cli, snapshot  # noqa: F401

from tests.conftest import free_port
from tfship import models_config as mc
from tfship import storage
from tfship.errors import ConfigError, StorageError
from tfship.steps.push.step import PushConfig, push

# ---- symbolic links ------------------------------------------------------------------------------


def test_links_leaving_the_model_are_refused_by_name_and_nothing_is_written(
    repo: str, tf_serving_testdata: Path, tmp_path: Path
) -> None:
    """Before: /etc/passwd was pushed as assets.extra/leak.txt and the directory link was dropped."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not the model's")
    model = Path(model_copy(tf_serving_testdata, HALF_PLUS_TWO, tmp_path / "export" / "7"))
    (model / "assets.extra").mkdir()
    os.symlink("/etc/passwd", model / "assets.extra" / "leak.txt")
    os.symlink(outside, model / "shared")
    push(str(tf_serving_testdata / HALF_PLUS_THREE), repo, "m", version=1)
    before = snapshot(repo)
    with pytest.raises(StorageError, match=r"Refusing to copy .*7: assets.extra/leak.txt -> /etc/passwd "
                                           r"\(leaves the directory\), shared -> .*outside \(leaves the directory\)"):
        push(str(model), repo, "m")
    assert snapshot(repo) == before


def test_links_inside_the_model_are_pushed_as_the_files_they_name(
    repo: str, tf_serving_testdata: Path, tmp_path: Path
) -> None:
    """The documented rule: a link that stays inside is copied as its target (a directory link as its files)."""
    model = Path(model_copy(tf_serving_testdata, HALF_PLUS_TWO, tmp_path / "export" / "7"))
    (model / "assets.extra").mkdir()
    os.symlink("../assets/foo.txt", model / "assets.extra" / "foo_link.txt")
    os.symlink("../assets", model / "assets.extra" / "assets_link")
    result = push(str(model), repo, "m")
    stored = storage.list_files(result.version_uri)
    assert {"assets.extra/foo_link.txt", "assets.extra/assets_link/foo.txt"} <= set(stored)
    original = (model / "assets" / "foo.txt").read_bytes()
    assert storage.read_bytes(storage.join(result.version_uri, "assets.extra/foo_link.txt")) == original
    assert storage.read_bytes(storage.join(result.version_uri, "assets.extra/assets_link/foo.txt")) == original


def test_dangling_and_looping_links_are_refused(tf_serving_testdata: Path, tmp_path: Path) -> None:
    model = Path(model_copy(tf_serving_testdata, HALF_PLUS_TWO, tmp_path / "export" / "7"))
    os.symlink("assets/gone.txt", model / "dangling.txt")
    os.symlink("..", model / "assets" / "up")
    with pytest.raises(StorageError, match=r"assets/up -> \.\. \(a loop\), dangling.txt -> assets/gone.txt \(dangling\)"):
        push(str(model), str(tmp_path / "repo"), "m")
    assert not (tmp_path / "repo").exists()


# ---- an unreachable gs:// endpoint -----------------------------------------------------------------


def _promote_against(endpoint: str, bucket_uri: str, *flags: str) -> tuple[int, list[str], float]:
    env = {**os.environ, "STORAGE_EMULATOR_HOST": endpoint, "GOOGLE_CLOUD_PROJECT": "tfship-test"}
    env.pop("TFSHIP_GCS_TIMEOUT", None)
    began = time.monotonic()
    done = run_cli("promote", "--repo", f"{bucket_uri}/models", "--name", "m", *flags, env=env)
    return done.returncode, done.stderr.strip().splitlines(), time.monotonic() - began


def test_a_closed_port_is_retried_aloud_within_the_timeout_then_one_line(
    gcs_bucket: str, tf_serving_testdata: Path
) -> None:
    """Before: nothing printed for about 120 s, then a RetryError traceback.

    The repository is real (pushed to fake-gcs-server); promote is then pointed at a closed port.
    """
    push(str(tf_serving_testdata / HALF_PLUS_TWO), f"{gcs_bucket}/models", "m")
    port = free_port()  # bound and released: nothing listens there
    code, lines, seconds = _promote_against(f"http://127.0.0.1:{port}", gcs_bucket, "--gcs-timeout", "3")
    bucket = gcs_bucket.removeprefix("gs://")
    retries = [line for line in lines if "Connection refused; retrying for up to 3 s in all" in line]
    assert code == 2, lines
    assert retries and all(line.startswith(f"tfship: gs://{bucket}: [Errno 111]") for line in retries)
    assert lines[-1] == (
        f"tfship promote: error: Cannot use bucket {bucket!r} at http://127.0.0.1:{port}: [Errno 111] "
        "Connection refused (gave up after 3 s of retries). Fix: check the network, the credentials and "
        "STORAGE_EMULATOR_HOST, or allow longer with TFSHIP_GCS_TIMEOUT."
    )
    assert len(lines) == len(retries) + 1
    assert seconds < 20
    # The same repository through the emulator is intact: nothing was changed.
    assert mc.version_labels(mc.read_models_config(f"{gcs_bucket}/models"), "m") == {"canary": 123}


def test_a_server_that_never_answers_is_bounded_by_the_timeout() -> None:
    """A socket that accepts connections and never answers: each request times out, then one line."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        code, lines, seconds = _promote_against(endpoint, "gs://silent-bucket", "--gcs-timeout", "2")
    assert code == 2, lines
    assert lines[-1].startswith(f"tfship promote: error: Cannot use bucket 'silent-bucket' at {endpoint}: no answer "
                                "within 2 s (read timed out) (gave up after 2 s of retries).")
    assert seconds < 20


def test_unusable_credentials_and_timeouts_are_one_line(tmp_path: Path) -> None:
    """Before: a DefaultCredentialsError traceback, exit 1."""
    env = {k: v for k, v in os.environ.items() if k != "STORAGE_EMULATOR_HOST"}
    env["GOOGLE_APPLICATION_CREDENTIALS"] = str(tmp_path / "no-such-key.json")
    done = run_cli("rollback", "--repo", "gs://some-bucket/models", "--name", "m", env=env)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"tfship rollback: error: Cannot use Google Cloud credentials for gs://: File {tmp_path}/no-such-key.json "
        "was not found. Fix: run `gcloud auth application-default login`, or point GOOGLE_APPLICATION_CREDENTIALS "
        "at a valid key file."
    ]
    env["TFSHIP_GCS_TIMEOUT"] = "soon"
    done = run_cli("promote", "--repo", "gs://some-bucket/models", "--name", "m", env=env)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "tfship promote: error: Invalid value for TFSHIP_GCS_TIMEOUT (or --gcs-timeout). Received: 'soon'. "
        "Expected seconds from 0 (exclusive) to 3600, e.g. 30."
    )


# ---- destructive no-ops: an emptied models.config --------------------------------------------------


def test_an_emptied_config_over_pushed_versions_is_refused_until_forced(
    repo: str, tf_serving_testdata: Path
) -> None:
    """Before: the push wrote a config with only the new version; `stable` on 123 was gone."""
    push(str(tf_serving_testdata / HALF_PLUS_TWO), repo, "m", label="stable")
    storage.write_bytes(mc.config_uri(repo), b"")
    before = snapshot(repo)
    three = str(tf_serving_testdata / HALF_PLUS_THREE)
    with pytest.raises(ConfigError, match=r"models.config at .* names no model \(0 bytes\), but the repository "
                                          r"holds pushed versions \(m: \[123\]\): .*tfship push --force"):
        push(three, repo, "m", version=124)
    assert snapshot(repo) == before
    result = push(three, repo, "m", version=124, force=True)
    assert mc.version_labels(mc.read_models_config(repo), "m") == {"canary": result.version}


def test_an_empty_config_over_an_empty_repository_is_a_fresh_start(tmp_path: Path, tf_serving_testdata: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "models.config").write_bytes(b"")
    result = push(str(tf_serving_testdata / HALF_PLUS_TWO), str(repo), "m")
    assert mc.version_labels(mc.read_models_config(str(repo)), "m") == {"canary": result.version}


def test_cli_refuses_an_emptied_config_with_one_line_and_force_proceeds(tmp_path: Path, tf_serving_testdata: Path) -> None:
    repo = str(tmp_path / "repo")
    push(str(tf_serving_testdata / HALF_PLUS_TWO), repo, "m", label="stable")
    Path(mc.config_uri(repo)).write_bytes(b"")
    args = ("push", "--model", str(tf_serving_testdata / HALF_PLUS_THREE), "--repo", repo, "--name", "m",
            "--version", "124")
    refused = run_cli(*args)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith("tfship push: error: models.config at ")
    assert Path(mc.config_uri(repo)).read_bytes() == b""
    assert run_cli(*args, "--force").returncode == 0
    assert mc.served_versions(mc.read_models_config(repo), "m") == (124,)


# ---- refused late: every config rule is checked before anything is written -----------------------


def _config_with(repo: str, name: str, base_path: str, latest: bool = False) -> None:
    config = mc.with_version(mc.parse_models_config(""), name, base_path, 1)
    if latest:
        config.model_config_list.config[0].model_version_policy.latest.SetInParent()
    storage.write_text(mc.config_uri(repo), mc.format_models_config(config))


@pytest.mark.parametrize(
    ("entry", "latest", "match"),
    [
        ("m", False, r"Model 'm' in models.config has base_path '/elsewhere/m', but this push writes to"),
        ("other", False, r"Model 'm' would be written to .*/m', the base_path of model 'other' in models.config"),
        ("m", True, r"Model 'm' in models.config uses the latest version policy"),
    ],
)
def test_a_push_the_config_refuses_writes_nothing(
    repo: str, tf_serving_testdata: Path, entry: str, latest: bool, match: str
) -> None:
    """Before: the version's files and manifest were uploaded, then the config update refused."""
    base_path = "/elsewhere/m" if entry == "m" and not latest else mc.model_base_path(repo, "m")
    _config_with(repo, entry, base_path, latest)
    before = snapshot(repo)
    with pytest.raises(ConfigError, match=match):
        push(str(tf_serving_testdata / HALF_PLUS_TWO), repo, "m")
    assert snapshot(repo) == before


def test_names_that_collide_with_the_repository_are_one_line_before_any_upload(
    tmp_path: Path, tf_serving_testdata: Path
) -> None:
    """Before: `--name models.config` crashed with NotADirectoryError, exit 1, a traceback."""
    repo = tmp_path / "repo"
    push(str(tf_serving_testdata / HALF_PLUS_TWO), str(repo), "m")
    (repo / "notes").write_text("a file, not a model")
    before = snapshot(str(repo))
    with pytest.raises(ConfigError, match=r"name='models.config', which is the repository's own models.config"):
        PushConfig(model="x", repo=str(repo), name="models.config")
    with pytest.raises(ConfigError, match=r"name='notes', but .*notes is a file, not a model directory"):
        push(str(tf_serving_testdata / HALF_PLUS_TWO), str(repo), "notes")
    done = run_cli("push", "--model", str(tf_serving_testdata / HALF_PLUS_TWO), "--repo", str(repo),
                   "--name", "models.config")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "tfship push: error: Invalid value for argument `name`. Received: name='models.config', which is the "
        "repository's own models.config file (the model's base path would be that file). Expected another "
        "name. Fix: pass e.g. --name my_model."
    ]
    assert snapshot(str(repo)) == before


def test_repositories_of_the_wrong_kind_are_one_line(tmp_path: Path, tf_serving_testdata: Path) -> None:
    """A file as --repo, or a repo below a file. Before: FileExistsError / NotADirectoryError tracebacks, exit 1."""
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("a file")
    model = str(tf_serving_testdata / HALF_PLUS_TWO)
    as_repo = run_cli("push", "--model", model, "--repo", str(not_a_dir), "--name", "m")
    below = run_cli("push", "--model", model, "--repo", str(not_a_dir / "repo"), "--name", "m")
    promoted = run_cli("promote", "--repo", str(not_a_dir / "repo"), "--name", "m")
    assert (as_repo.returncode, below.returncode, promoted.returncode) == (2, 2, 2)
    assert as_repo.stderr.strip().splitlines() == [
        f"tfship push: error: Invalid value for argument `repo`. Received: repo='{not_a_dir}', which is a file. "
        "Expected a model repository directory (or one to create). Fix: pass the repository's root."
    ]
    assert below.stderr.strip().splitlines()[-1] == (
        f"tfship push: error: Cannot use {not_a_dir}/repo/m/.tfship/versions: Not a directory. Expected a path "
        "of the right kind (file or directory) that tfship may read and write. Fix: check the path and its permissions."
    )
    assert promoted.stderr.strip().splitlines() == [
        f"tfship promote: error: Cannot use {not_a_dir}/repo: Not a directory. Expected a path of the right kind "
        "(file or directory) that tfship may read and write. Fix: check the path and its permissions."
    ]
    assert not_a_dir.read_text() == "a file"
