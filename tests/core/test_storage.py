"""The storage module on local disk and on fake-gcs-server through the real client."""

from __future__ import annotations

import os

import pytest

from tfship import storage
from tfship.errors import StorageError


@pytest.fixture(params=["local", "gcs"])
def root(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "root")
    return request.getfixturevalue("gcs_bucket") + "/prefix"


def test_write_read_list_round_trip(root: str, tmp_path) -> None:
    storage.write_text(storage.join(root, "a.txt"), "alpha")
    storage.write_bytes(storage.join(root, "sub", "b.bin"), b"\x00\x01")
    assert storage.read_text(storage.join(root, "a.txt")) == "alpha"
    assert storage.list_files(root) == ["a.txt", "sub/b.bin"]
    assert storage.glob(storage.join(root, "*.txt")) == [storage.join(root, "a.txt")]
    local = tmp_path / "copy"
    storage.download_tree(root, str(local))
    assert (local / "sub" / "b.bin").read_bytes() == b"\x00\x01"
    storage.upload_tree(str(local), storage.join(root, "again"))
    assert storage.list_files(storage.join(root, "again")) == ["a.txt", "sub/b.bin"]
    storage.delete_tree(root)
    assert storage.list_files(root) == []


def test_missing_file_is_one_clear_error(root: str) -> None:
    with pytest.raises(StorageError, match="No such (file|object)"):
        storage.read_bytes(storage.join(root, "absent"))


def test_missing_bucket_and_unknown_scheme_are_rejected(gcs_emulator: str) -> None:
    with pytest.raises(StorageError, match="Bucket 'no-such-bucket' .* does not exist"):
        storage.read_bytes("gs://no-such-bucket/x")
    with pytest.raises(StorageError, match="unknown scheme 's3'"):
        storage.check_uri("s3://bucket/x", "repo")


def test_tree_copies_refuse_links_that_leave_the_source(root: str, tmp_path) -> None:
    """upload_tree and download_tree (the mirrors of export and training) share push's link rule.

    Before: the linked file's content was uploaded, and a directory link was silently skipped.
    """
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "kept.txt").write_text("inside")
    os.symlink("sub/kept.txt", source / "inner_link.txt")
    os.symlink("/etc/passwd", source / "sub" / "leak.txt")
    with pytest.raises(StorageError, match=r"Refusing to copy .*source: sub/leak.txt -> /etc/passwd \(leaves the "
                                           r"directory\)\. Nothing was copied"):
        storage.upload_tree(str(source), root)
    with pytest.raises(StorageError, match=r"sub/leak.txt -> /etc/passwd"):
        storage.download_tree(str(source), str(tmp_path / "copy"))
    assert storage.list_files(root) == []
    assert not (tmp_path / "copy").exists()
    os.remove(source / "sub" / "leak.txt")
    storage.upload_tree(str(source), root)
    assert storage.list_files(root) == ["inner_link.txt", "sub/kept.txt"]
    assert storage.read_text(storage.join(root, "inner_link.txt")) == "inside"


def test_a_download_never_writes_outside_its_directory(root: str, tmp_path) -> None:
    """Object names may hold '..' on real GCS (the emulator normalises them, so the names are passed here)."""
    storage.write_text(storage.join(root, "a.txt"), "alpha")
    with pytest.raises(StorageError, match=r"Refusing to copy .*: \.\./escaped.txt would land outside .*copy\. Nothing"):
        storage.download_tree(root, str(tmp_path / "copy"), ["a.txt", "../escaped.txt"])
    assert not (tmp_path / "copy").exists() and not (tmp_path / "escaped.txt").exists()
