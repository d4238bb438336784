"""Every read, write, list, copy and delete tfship does, over local paths and gs:// URIs.

Local writes are atomic (write a temporary file beside the target, fsync, `os.replace`). On
gs:// a single object write is atomic; multi-object state (a checkpoint, a model version) is
committed by writing one small marker object last, which the callers document.

gs:// goes through google-cloud-storage with Application Default Credentials; setting
`STORAGE_EMULATOR_HOST` points it at an emulator (the tests use fake-gcs-server). TensorFlow's own
gs:// filesystem is never used: it cannot be pointed at an emulator, so it could not be tested.
"""

from __future__ import annotations

import fnmatch
import functools
import glob as _glob
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from tfship.errors import StorageError

if TYPE_CHECKING:
    from google.cloud.storage import Bucket, Client

GCS_SCHEME = "gs://"


def is_gcs(uri: str) -> bool:
    """True for `gs://bucket/...` URIs."""
    return str(uri).startswith(GCS_SCHEME)


def check_uri(uri: str, what: str = "path") -> str:
    """Return `uri` if it is a local path or gs:// URI; reject other schemes with one line."""
    uri = str(uri)
    if "://" in uri and not is_gcs(uri):
        scheme = uri.split("://", 1)[0]
        raise StorageError(
            f"Invalid {what}: {uri!r} has the unknown scheme {scheme!r}. "
            "Expected a local path or a gs://bucket/prefix URI."
        )
    if is_gcs(uri) and not split_gcs(uri)[0]:
        raise StorageError(f"Invalid {what}: {uri!r} names no bucket. Expected gs://bucket/prefix.")
    return uri


def split_gcs(uri: str) -> tuple[str, str]:
    """`gs://bucket/a/b` -> ("bucket", "a/b")."""
    bucket, _, name = uri[len(GCS_SCHEME) :].partition("/")
    return bucket, name


def join(base: str, *parts: str) -> str:
    """Join path parts with `/` for gs:// and `os.path.join` locally."""
    if is_gcs(base):
        return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
    return os.path.join(base, *parts)


@functools.lru_cache(maxsize=1)
def gcs_client() -> Client:
    """One client per process (it pools connections). Honours STORAGE_EMULATOR_HOST."""
    try:
        from google.cloud import storage
    except ImportError as error:  # pragma: no cover - depends on the install
        raise StorageError(
            "gs:// needs google-cloud-storage. Install it with `pip install 'tfship[gcs]'`."
        ) from error
    return storage.Client()


def _bucket(uri: str) -> tuple[Bucket, str]:
    from google.api_core import exceptions

    name, blob = split_gcs(uri)
    bucket = gcs_client().bucket(name)
    try:
        if not bucket.exists():
            raise StorageError(f"Bucket {name!r} of {uri!r} does not exist (or is not visible).")
    except exceptions.GoogleAPICallError as error:
        raise StorageError(f"Cannot reach bucket {name!r} of {uri!r}: {error}") from error
    return bucket, blob


def exists(uri: str) -> bool:
    """True if a file or object exists at `uri`, or (locally) a directory."""
    if is_gcs(uri):
        bucket, name = _bucket(uri)
        return bucket.blob(name).exists()
    return os.path.exists(uri)


def read_bytes(uri: str) -> bytes:
    """The whole content of one file or object."""
    if is_gcs(uri):
        from google.api_core import exceptions

        bucket, name = _bucket(uri)
        try:
            return bucket.blob(name).download_as_bytes()
        except exceptions.NotFound as error:
            raise StorageError(f"No such object: {uri}") from error
    try:
        return Path(uri).read_bytes()
    except FileNotFoundError as error:
        raise StorageError(f"No such file: {uri}") from error
    except OSError as error:
        raise StorageError(f"Cannot read {uri}: {error.strerror}") from error


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def write_bytes(uri: str, data: bytes) -> None:
    """Write one file or object atomically: readers see the old content or the new, never part."""
    if is_gcs(uri):
        bucket, name = _bucket(uri)
        bucket.blob(name).upload_from_string(data)
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(uri: str, text: str) -> None:
    write_bytes(uri, text.encode("utf-8"))


def list_files(uri: str) -> list[str]:
    """Paths of every file below `uri`, relative to it, sorted. Empty if there is nothing."""
    if is_gcs(uri):
        bucket, prefix = _bucket(uri)
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        return sorted(
            blob.name[len(prefix) :]
            for blob in gcs_client().list_blobs(bucket, prefix=prefix)
            if not blob.name.endswith("/")
        )
    root = Path(uri)
    if not root.is_dir():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def glob(pattern: str) -> list[str]:
    """Files matching a glob (`*`, `?`, `[...]`), local or gs://, sorted."""
    if is_gcs(pattern):
        bucket_name, blob_pattern = split_gcs(pattern)
        literal = blob_pattern.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0]
        bucket, _ = _bucket(pattern)
        return sorted(
            f"{GCS_SCHEME}{bucket_name}/{blob.name}"
            for blob in gcs_client().list_blobs(bucket, prefix=literal)
            if fnmatch.fnmatchcase(blob.name, blob_pattern)
        )
    if os.path.isdir(pattern):
        return sorted(str(p) for p in Path(pattern).iterdir() if p.is_file())
    return sorted(p for p in _glob.glob(pattern) if os.path.isfile(p))


def download_file(uri: str, local_path: str) -> None:
    """Copy one object or file to a local path, atomically."""
    local = Path(local_path)
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = local.with_name(f".{local.name}.tmp-{uuid.uuid4().hex}")
    try:
        if is_gcs(uri):
            bucket, name = _bucket(uri)
            bucket.blob(name).download_to_filename(str(tmp))
        else:
            shutil.copyfile(uri, tmp)
        os.replace(tmp, local)
    finally:
        if tmp.exists():
            tmp.unlink()


def upload_file(local_path: str, uri: str) -> None:
    """Copy one local file to `uri` (a single-object write, atomic on GCS)."""
    if is_gcs(uri):
        bucket, name = _bucket(uri)
        bucket.blob(name).upload_from_filename(local_path)
    else:
        write_bytes(uri, Path(local_path).read_bytes())


def upload_tree(local_dir: str, uri: str, files: list[str] | None = None, workers: int = 8) -> None:
    """Copy files below `local_dir` (all, or the relative paths in `files`) to below `uri`."""
    names = files if files is not None else list_files(local_dir)
    if is_gcs(uri):
        from google.cloud.storage import transfer_manager

        bucket, prefix = _bucket(uri)
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        results = transfer_manager.upload_many_from_filenames(
            bucket,
            names,
            source_directory=local_dir,
            blob_name_prefix=prefix,
            max_workers=workers,
            worker_type=transfer_manager.THREAD,
        )
        for name, result in zip(names, results):
            if isinstance(result, Exception):
                raise StorageError(f"Upload of {name} to {uri} failed: {result}") from result
        return
    for name in names:
        target = Path(uri, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(local_dir, name), target)


def download_tree(uri: str, local_dir: str, files: list[str] | None = None) -> None:
    """Copy files below `uri` (all, or the relative paths in `files`) to below `local_dir`."""
    names = files if files is not None else list_files(uri)
    for name in names:
        download_file(join(uri, name), os.path.join(local_dir, name))


def delete_tree(uri: str) -> None:
    """Remove everything below `uri`; nothing there is not an error."""
    if is_gcs(uri):
        bucket, prefix = _bucket(uri)
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        for blob in gcs_client().list_blobs(bucket, prefix=prefix):
            blob.delete()
        return
    shutil.rmtree(uri, ignore_errors=True)


def local_cache_dir(uri: str, kind: str) -> str:
    """A stable local directory that mirrors a gs:// `uri` (same URI, same directory).

    Checkpoints are written here first, inside the preemption window, and then uploaded.
    `TFSHIP_CACHE` overrides the root (default: the system temporary directory).
    """
    import hashlib

    root = os.environ.get("TFSHIP_CACHE") or os.path.join(tempfile.gettempdir(), "tfship-cache")
    digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
    path = os.path.join(root, kind, digest)
    os.makedirs(path, exist_ok=True)
    return path
