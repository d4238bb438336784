"""Every read, write, list, copy and delete tfship does, over local paths and gs:// URIs.

Local writes are atomic (write a temporary file beside the target, fsync, `os.replace`). On
gs:// a single object write is atomic; multi-object state (a checkpoint, a model version) is
committed by writing one small marker object last, which the callers document.

gs:// goes through google-cloud-storage with Application Default Credentials; setting
`STORAGE_EMULATOR_HOST` points it at an emulator (the tests use fake-gcs-server). TensorFlow's own
gs:// filesystem is never used: it cannot be pointed at an emulator, so it could not be tested.
Every gs:// call retries transient errors aloud for at most `TFSHIP_GCS_TIMEOUT` seconds (default
30), and every public function reports a failure as one `StorageError` line (see `_reported`).

Local trees are listed by `local_files` only, whose rule on symbolic links (follow those that
stay inside, refuse those that leave) therefore holds for every tree tfship copies.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fnmatch
import functools
import glob as _glob
import logging
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tfship.errors import ConcurrentUpdateError, ConfigError, StorageError
from tfship.checksums import Digest, digest_file

if TYPE_CHECKING:
    from google.cloud.storage import Bucket, Client

GCS_SCHEME = "gs://"

log = logging.getLogger(__name__)


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
    from google.auth.exceptions import GoogleAuthError

    try:
        return storage.Client()
    except GoogleAuthError as error:
        raise StorageError(
            f"Cannot use Google Cloud credentials for gs://: {error} Fix: run `gcloud auth "
            "application-default login`, or point GOOGLE_APPLICATION_CREDENTIALS at a valid key file."
        ) from error


GCS_TIMEOUT_ENV = "TFSHIP_GCS_TIMEOUT"
DEFAULT_GCS_TIMEOUT_S = 30.0
# The longest a single gs:// request may wait for the server's answer, whatever the deadline.
_MAX_REQUEST_TIMEOUT_S = 60.0


def gcs_timeout_s() -> float:
    """Seconds one gs:// operation keeps retrying transient errors: $TFSHIP_GCS_TIMEOUT, default 30.

    Raises:
        ConfigError: the variable is set to something other than seconds in (0, 3600].
    """
    import math

    raw = os.environ.get(GCS_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_GCS_TIMEOUT_S
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= 3600:
        raise ConfigError(
            f"Invalid value for {GCS_TIMEOUT_ENV} (or --gcs-timeout). Received: {raw!r}. Expected seconds "
            f"from 0 (exclusive) to 3600, e.g. {DEFAULT_GCS_TIMEOUT_S:g}."
        )
    return seconds


def _retry(uri: str):  # -> google.api_core.retry.Retry
    """google-cloud-storage's retry on transient errors, bounded by `gcs_timeout_s()`, and audible.

    Exponential backoff from 0.2 s doubling to 8 s, for at most `gcs_timeout_s()` seconds; each
    retry logs one warning line naming the bucket and the cause, so an unreachable endpoint is not
    silence. Passed to every call whose effect is the same however often it runs: uploads of
    staged files whose content is fixed, conditional writes, reads, copies and deletes.
    """
    from google.api_core.retry import Retry
    from google.cloud.storage.retry import DEFAULT_RETRY

    bucket = split_gcs(uri)[0]
    deadline = gcs_timeout_s()

    def report(error: Exception) -> None:
        log.warning("gs://%s: %s; retrying for up to %g s in all (%s)", bucket, _cause(error), deadline, GCS_TIMEOUT_ENV)

    # DEFAULT_RETRY's predicate is the client's own list of transient errors; Retry has no
    # with_on_error, so the policy is rebuilt around it.
    return Retry(
        predicate=DEFAULT_RETRY._predicate,
        initial=0.2,
        maximum=8.0,
        multiplier=2.0,
        timeout=deadline,
        on_error=report,
    )


def _call_options(uri: str) -> dict:
    """`retry=` and `timeout=` for one google-cloud-storage call on `uri`'s bucket.

    `timeout` bounds each HTTP request (a server that accepts the connection and never answers
    would otherwise hold it 60 s); `retry` bounds the retries of the whole call.
    """
    return {"retry": _retry(uri), "timeout": min(gcs_timeout_s(), _MAX_REQUEST_TIMEOUT_S)}


def _cause(error: BaseException) -> str:
    """The root cause of a gs:// failure in a few words: 'Connection refused', '503 ...'."""
    import re

    from google.api_core.exceptions import GoogleAPICallError, RetryError

    if isinstance(error, RetryError) and error.cause is not None:
        error = error.cause
    if isinstance(error, GoogleAPICallError):
        # The client's message may run over lines (the request, then the response): one line here.
        return f"HTTP {error.code} {' '.join(str(error.message).split())}"
    text = str(error)
    errno_text = re.findall(r"\[Errno -?\d+\] [^'\")]+", text)
    if errno_text:
        return errno_text[-1]
    if "timed out" in text.lower():
        return f"no answer within {min(gcs_timeout_s(), _MAX_REQUEST_TIMEOUT_S):g} s (read timed out)"
    return f"{type(error).__name__}: {re.sub(r'<[^>]*>: ', '', text)}"


def _endpoint() -> str:
    return os.environ.get("STORAGE_EMULATOR_HOST") or "https://storage.googleapis.com"


def _reported(function: Callable) -> Callable:
    """Turn a storage failure inside `function` into one `StorageError` line instead of a traceback.

    gs://: transient errors were already retried (see `_retry`) when they reach here; what is left
    is an unreachable endpoint, refused credentials or a server error, named with the bucket and
    the cause. Local: an OSError (a path of the wrong kind, no permission, a full disk) is named
    with its path. tfship's own errors pass through unchanged.
    """

    @functools.wraps(function)
    def reported(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except StorageError:
            raise
        except Exception as error:
            if _is_gcs_failure(error):
                raise StorageError(_gcs_failure_message(args, error)) from error
            if not isinstance(error, OSError):
                raise
            path = error.filename or next((a for a in args if isinstance(a, str)), "?")
            raise StorageError(
                f"Cannot use {path}: {error.strerror or error}. Expected a path of the right kind "
                "(file or directory) that tfship may read and write. Fix: check the path and its permissions."
            ) from error

    return reported


def _gcs_failure_message(args: tuple, error: Exception) -> str:
    from google.api_core.exceptions import RetryError

    uri = next((a for a in args if isinstance(a, str) and is_gcs(a)), GCS_SCHEME)
    bucket = split_gcs(uri)[0]
    retried = f" (gave up after {gcs_timeout_s():g} s of retries)" if isinstance(error, RetryError) else ""
    return (
        f"Cannot use bucket {bucket!r} at {_endpoint()}: {_cause(error)}{retried}. Fix: check the "
        f"network, the credentials and STORAGE_EMULATOR_HOST, or allow longer with {GCS_TIMEOUT_ENV}."
    )


def _is_gcs_failure(error: Exception) -> bool:
    """True for the errors google-cloud-storage and its transport raise; never for tfship's own."""
    if isinstance(error, StorageError) or "google.api_core" not in sys.modules:
        return False
    import requests
    from google.api_core.exceptions import GoogleAPICallError, RetryError
    from google.auth.exceptions import GoogleAuthError

    return isinstance(error, (GoogleAPICallError, RetryError, GoogleAuthError, requests.RequestException))


def _bucket(uri: str) -> tuple[Bucket, str]:
    name, blob = split_gcs(uri)
    bucket = gcs_client().bucket(name)
    if not bucket.exists(**_call_options(uri)):
        raise StorageError(f"Bucket {name!r} of {uri!r} does not exist (or is not visible).")
    return bucket, blob


@_reported
def is_file(uri: str) -> bool:
    """True if `uri` is a file (locally) or an object (gs://): not a directory, prefix or nothing."""
    if is_gcs(uri):
        bucket, name = _bucket(uri)
        return bool(name) and bucket.blob(name).exists(**_call_options(uri))
    return os.path.isfile(uri)


@_reported
def exists(uri: str) -> bool:
    """True if a file or object exists at `uri`, or (locally) a directory."""
    if is_gcs(uri):
        bucket, name = _bucket(uri)
        return bucket.blob(name).exists(**_call_options(uri))
    return os.path.exists(uri)


@_reported
def read_bytes(uri: str) -> bytes:
    """The whole content of one file or object."""
    if is_gcs(uri):
        from google.api_core import exceptions

        bucket, name = _bucket(uri)
        try:
            return bucket.blob(name).download_as_bytes(**_call_options(uri))
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


@_reported
def write_bytes(uri: str, data: bytes) -> None:
    """Write one file or object atomically: readers see the old content or the new, never part."""
    if is_gcs(uri):
        bucket, name = _bucket(uri)
        bucket.blob(name).upload_from_string(data, **_call_options(uri))
        return
    path = Path(uri)
    tmp = _durable_temp(path, data)
    try:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _durable_temp(path: Path, data: bytes) -> Path:
    """A hidden, fsynced temporary file beside `path` holding `data`, ready to be renamed or linked."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def write_text(uri: str, text: str) -> None:
    write_bytes(uri, text.encode("utf-8"))


@_reported
def list_files(uri: str) -> list[str]:
    """Paths of every file below `uri`, relative to it, sorted. Empty if there is nothing."""
    if is_gcs(uri):
        bucket, prefix = _bucket(uri)
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        return sorted(
            blob.name[len(prefix) :]
            for blob in gcs_client().list_blobs(bucket, prefix=prefix, **_call_options(uri))
            if not blob.name.endswith("/")
        )
    if not os.path.isdir(uri):
        return []
    return local_files(uri)


def local_files(root: str) -> list[str]:
    """Paths of every file below the local directory `root`, relative to it, sorted.

    This is the one listing behind every local tree tfship copies (push, upload_tree, mirrors), so
    its rule on symbolic links holds everywhere: a link that resolves inside `root` is followed
    (a file link is copied as the file it names, a directory link as the files below it, which is
    what TF Serving reading the directory would see); a link that leaves `root`, dangles, or loops
    back onto its own ancestor is refused before anything is copied, all of them named. Files that
    are neither regular files nor directories (sockets, FIFOs) are refused too: copying a FIFO
    blocks forever.

    Raises:
        StorageError: naming every offending path, relative to `root`.
    """
    real_root = os.path.realpath(root)
    files: list[str] = []
    refused: list[str] = []

    def inside(target: str) -> bool:
        return target == real_root or target.startswith(real_root + os.sep)

    def walk(directory: str, relative: str, ancestors: frozenset[str]) -> None:
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            path = f"{relative}{entry.name}"
            if entry.is_symlink():
                target = os.path.realpath(entry.path)
                if not inside(target):
                    refused.append(f"{path} -> {os.readlink(entry.path)} (leaves the directory)")
                    continue
                if not os.path.exists(target):
                    refused.append(f"{path} -> {os.readlink(entry.path)} (dangling)")
                    continue
                if target in ancestors:
                    refused.append(f"{path} -> {os.readlink(entry.path)} (a loop)")
                    continue
            if entry.is_dir():
                walk(entry.path, f"{path}/", ancestors | {os.path.realpath(entry.path)})
            elif entry.is_file():
                files.append(path)
            else:
                refused.append(f"{path} (not a regular file)")

    walk(root, "", frozenset({real_root}))
    if refused:
        shown = ", ".join(refused[:5]) + (f" and {len(refused) - 5} more" if len(refused) > 5 else "")
        raise StorageError(
            f"Refusing to copy {root}: {shown}. Nothing was copied. Expected only files and links that "
            "stay inside the directory. Fix: replace each link by a copy of what it names, or remove it."
        )
    return sorted(files)


@_reported
def glob(pattern: str) -> list[str]:
    """Files matching a glob (`*`, `?`, `[...]`), local or gs://, sorted."""
    if is_gcs(pattern):
        bucket_name, blob_pattern = split_gcs(pattern)
        literal = blob_pattern.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0]
        bucket, _ = _bucket(pattern)
        return sorted(
            f"{GCS_SCHEME}{bucket_name}/{blob.name}"
            for blob in gcs_client().list_blobs(bucket, prefix=literal, **_call_options(pattern))
            if fnmatch.fnmatchcase(blob.name, blob_pattern)
        )
    if os.path.isdir(pattern):
        return sorted(str(p) for p in Path(pattern).iterdir() if p.is_file())
    return sorted(p for p in _glob.glob(pattern) if os.path.isfile(p))


@_reported
def download_file(uri: str, local_path: str) -> None:
    """Copy one object or file to a local path, atomically."""
    local = Path(local_path)
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = local.with_name(f".{local.name}.tmp-{uuid.uuid4().hex}")
    try:
        if is_gcs(uri):
            from google.api_core.exceptions import NotFound

            bucket, name = _bucket(uri)
            try:
                bucket.blob(name).download_to_filename(str(tmp), **_call_options(uri))
            except NotFound:
                raise StorageError(f"{uri} does not exist. Expected an object there.") from None
        else:
            shutil.copyfile(uri, tmp)
        os.replace(tmp, local)
    finally:
        if tmp.exists():
            tmp.unlink()


@_reported
def upload_file(local_path: str, uri: str) -> None:
    """Copy one local file to `uri` (a single-object write, atomic on GCS)."""
    if is_gcs(uri):
        bucket, name = _bucket(uri)
        bucket.blob(name).upload_from_filename(local_path, **_call_options(uri))
    else:
        write_bytes(uri, Path(local_path).read_bytes())


@_reported
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
            upload_kwargs=_call_options(uri),
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


@_reported
def download_tree(uri: str, local_dir: str, files: list[str] | None = None, workers: int = 8) -> None:
    """Copy files below `uri` (all, or the relative paths in `files`) to below `local_dir`,
    `workers` at a time (each file atomically: a reader never sees a half-written one).

    GCS object names may hold `..` (`m/1/../../etc/cron.d/x`): a name that would land outside
    `local_dir` is refused, all of them named, before anything is downloaded.
    """
    names = files if files is not None else list_files(uri)
    target = os.path.realpath(local_dir)
    escaping = [n for n in names if not os.path.realpath(os.path.join(target, n)).startswith(target + os.sep)]
    if escaping:
        raise StorageError(
            f"Refusing to copy {uri}: {', '.join(escaping[:5])} would land outside {local_dir}. Nothing "
            "was copied. Expected names below the directory. Fix: rename or remove those objects."
        )
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        # list() re-raises the first failure (a StorageError naming the object).
        list(pool.map(lambda name: download_file(join(uri, name), os.path.join(local_dir, name)), names))


@_reported
def delete(uri: str) -> None:
    """Remove one file or object; nothing there is not an error."""
    if is_gcs(uri):
        from google.api_core import exceptions

        bucket, name = _bucket(uri)
        try:
            bucket.blob(name).delete(**_call_options(uri))
        except exceptions.NotFound:
            pass
        return
    Path(uri).unlink(missing_ok=True)


@_reported
def delete_tree(uri: str) -> None:
    """Remove everything below `uri`; nothing there is not an error."""
    if is_gcs(uri):
        bucket, prefix = _bucket(uri)
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        options = _call_options(uri)
        for blob in gcs_client().list_blobs(bucket, prefix=prefix, **options):
            blob.delete(**options)
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


# ---- Extensions for `tfship push`: checksums, preconditions, retries, parallel transfer --------
#
# A model version is many objects; these helpers move them in parallel and verify every copy
# against a digest of its source. The one mutable object tfship shares between writers
# (models.config) is changed only through `update_bytes`: a compare-and-swap on the object's
# generation on gs://, a lock plus an atomic rename locally.

# `progress` arguments are called with the number of bytes just transferred.
Progress = Callable[[int], None]


def backoff_delay(attempt: int, base: float = 0.05, cap: float = 2.0, jitter: float = 0.5) -> float:
    """Seconds to wait before retry number `attempt` (0-based): doubling, capped, with jitter.

    The jitter (a random share of up to `jitter` taken off) keeps writers that collided once from
    colliding again in lock-step.
    """
    import random

    return min(cap, base * 2**attempt) * (1.0 - jitter * random.random())


def _lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


@_reported
def update_bytes(
    uri: str, update: Callable[[bytes | None], bytes | None], attempts: int = 16
) -> bytes | None:
    """Read-modify-write one file or object so that no concurrent update is ever lost.

    `update(current)` gets the current bytes (None when absent) and returns the new bytes, or None
    to leave the object as it is. On gs:// the write carries `if_generation_match` of the read
    (0: create only if still absent); if another writer got there first (HTTP 412) `update` runs
    again on their version, after a backoff, up to `attempts` times. Locally an exclusive
    `flock` on `.<name>.lock` beside the file serialises writers (released by the kernel if a
    writer is killed) and the write is an atomic rename. Returns the bytes now stored.

    Raises:
        ConcurrentUpdateError: gs:// only, when every attempt lost the race.
    """
    import time

    if not is_gcs(uri):
        path = Path(uri)
        with local_lock(str(_lock_path(path))):
            current = path.read_bytes() if path.exists() else None
            new = update(current)
            if new is None:
                return current
            write_bytes(uri, new)
            return new

    from google.api_core import exceptions

    bucket, name = _bucket(uri)
    for attempt in range(attempts):
        blob = bucket.get_blob(name, **_call_options(uri))
        generation = 0 if blob is None else blob.generation
        try:
            current = None
            if blob is not None:
                current = blob.download_as_bytes(if_generation_match=generation, **_call_options(uri))
            new = update(current)
            if new is None:
                return current
            bucket.blob(name).upload_from_string(
                new, if_generation_match=generation, **_call_options(uri)
            )
            return new
        except (exceptions.PreconditionFailed, exceptions.NotFound):
            time.sleep(backoff_delay(attempt))
    raise ConcurrentUpdateError(
        f"Could not update {uri}: another writer changed it {attempts} times in a row while this "
        "one was applying its change (generation precondition failed each time). Nothing was "
        "lost or half-written. Fix: re-run the command."
    )


@contextlib.contextmanager
def local_lock(path: str) -> Iterator[None]:
    """Hold an exclusive `flock` on the local file `path` (created if absent) inside the block.

    The kernel drops the lock when its holder dies, even by SIGKILL: a killed writer never leaves
    a stale lock behind. Local paths only (gs:// writers use generation preconditions instead).
    """
    import fcntl

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@_reported
def create_exclusive(uri: str, data: bytes) -> bool:
    """Create a file or object holding `data` only if nothing is there yet; True if created.

    Atomic in both places: gs:// with `if_generation_match=0`; locally a fully written temporary
    file is hard-linked to the name (link fails if the name exists), so no reader sees a partial
    file and two creators cannot both win.
    """
    if is_gcs(uri):
        from google.api_core import exceptions

        bucket, name = _bucket(uri)
        try:
            bucket.blob(name).upload_from_string(data, if_generation_match=0, **_call_options(uri))
        except exceptions.PreconditionFailed:
            return False
        return True
    path = Path(uri)
    tmp = _durable_temp(path, data)
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        _fsync_dir(path.parent)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@_reported
def list_dirs(uri: str) -> list[str]:
    """Names of the immediate sub-directories (gs:// prefixes) of `uri`, sorted."""
    if is_gcs(uri):
        bucket, prefix = _bucket(uri)
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        blobs = gcs_client().list_blobs(bucket, prefix=prefix, delimiter="/", **_call_options(uri))
        for _ in blobs:  # the prefixes are known once the pages are read
            pass
        return sorted(p[len(prefix) :].rstrip("/") for p in blobs.prefixes)
    if not os.path.isdir(uri):
        return []
    return sorted(e.name for e in os.scandir(uri) if e.is_dir())


@_reported
def digests(uri: str, files: list[str] | None = None, workers: int = 8) -> dict:
    """`{relative path: Digest}` of the files below `uri` (all, or those in `files` that exist).

    gs://: size, CRC32C and MD5 from the object metadata of one listing (nothing downloaded).
    Local: size and SHA-256, re-read from disk, `workers` files at a time.
    """

    if is_gcs(uri):
        bucket, prefix = _bucket(uri)
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        wanted = None if files is None else set(files)
        found = {}
        for blob in gcs_client().list_blobs(bucket, prefix=prefix, **_call_options(uri)):
            rel = blob.name[len(prefix) :]
            if rel.endswith("/") or (wanted is not None and rel not in wanted):
                continue
            found[rel] = Digest(size=int(blob.size), crc32c=blob.crc32c, md5=blob.md5_hash)
        return found
    names = list_files(uri) if files is None else [f for f in files if os.path.isfile(join(uri, f))]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return dict(zip(names, pool.map(lambda f: digest_file(join(uri, f)), names)))


def _batches(local_dir: str, names: list[str], workers: int) -> list[list[str]]:
    """Groups of files for one parallel round each: about 1/16 of the bytes, >= 4 files a worker.

    The progress bar moves once per round; rounds are large enough that the time lost waiting for
    the slowest file of a round stays small.
    """
    sizes = [os.path.getsize(os.path.join(local_dir, n)) for n in names]
    budget = max(sum(sizes) // 16, 1)
    batches: list[list[str]] = [[]]
    used = 0
    for name, size in zip(names, sizes):
        if batches[-1] and used >= budget and len(batches[-1]) >= 4 * workers:
            batches.append([])
            used = 0
        batches[-1].append(name)
        used += size
    return batches


@_reported
def upload_files(
    local_dir: str, uri: str, files: list[str], workers: int = 8, progress: Progress | None = None
) -> None:
    """Copy `files` (relative to `local_dir`) to below `uri`, `workers` at a time, overwriting.

    gs:// uses google-cloud-storage's transfer_manager (threads: they beat processes for many
    files here), each upload retried with backoff on transient errors and checked against the
    CRC32C the client computes on the way. Locally files are copied by threads and fsynced.
    `progress(n)` is called with the bytes done as files complete. `workers=1`: one at a time.
    """
    from concurrent.futures import ThreadPoolExecutor

    workers = max(1, int(workers))
    if is_gcs(uri):
        from google.cloud.storage import transfer_manager

        bucket, prefix = _bucket(uri)
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        for batch in _batches(local_dir, files, workers):
            pairs = [(os.path.join(local_dir, n), bucket.blob(prefix + n)) for n in batch]
            results = transfer_manager.upload_many(
                pairs,
                upload_kwargs=_call_options(uri),
                max_workers=workers,
                worker_type=transfer_manager.THREAD,
            )
            for name, result in zip(batch, results):
                if isinstance(result, Exception):
                    raise StorageError(f"Upload of {name} to {uri} failed: {result}") from result
            if progress is not None:
                progress(sum(os.path.getsize(path) for path, _ in pairs))
        return

    def copy(name: str) -> None:
        source, target = Path(local_dir, name), Path(uri, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        with open(target, "rb+") as handle:
            os.fsync(handle.fileno())
        if progress is not None:
            progress(target.stat().st_size)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(copy, files))
    for directory in sorted({Path(uri, n).parent for n in files} | {Path(uri)}):
        _fsync_dir(directory)


@_reported
def copy_objects(src_uri: str, dst_uri: str, files: list[str], workers: int = 8) -> list[str]:
    """gs:// server-side copy of `files` from below `src_uri` to below `dst_uri`, create-only.

    Each copy carries `if_generation_match=0`: an object already at the target is left as it is,
    and its name is returned for the caller to verify. GCS has no rename, so this is how a staged
    version reaches its final name.
    """
    from concurrent.futures import ThreadPoolExecutor

    from google.api_core import exceptions

    if not (is_gcs(src_uri) and is_gcs(dst_uri)):
        raise ValueError("copy_objects copies gs:// objects; locally use rename_dir.")
    bucket, src = _bucket(src_uri)
    dst_bucket, dst = _bucket(dst_uri)
    src, dst = src.rstrip("/") + "/", dst.rstrip("/") + "/"

    def copy(name: str) -> str | None:
        try:
            bucket.copy_blob(
                bucket.blob(src + name), dst_bucket, dst + name, if_generation_match=0, **_call_options(src_uri)
            )
        except exceptions.PreconditionFailed:
            return name
        return None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return [n for n in pool.map(copy, files) if n is not None]


def rename_dir(src: str, dst: str) -> bool:
    """Local only: atomically rename directory `src` to `dst`; False (nothing moved) if `dst` exists."""
    if is_gcs(src) or is_gcs(dst):
        raise ValueError("gs:// has no rename; use copy_objects.")
    target = Path(dst)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        # rename(2) replaces an EMPTY target directory: refuse that too, a version dir is never empty
        # by design and an empty one is someone's mkdir in progress.
        if target.exists():
            return False
        os.rename(src, dst)
    except OSError as error:
        import errno

        if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
            return False
        raise
    _fsync_dir(target.parent)
    return True


@_reported
def delete_files(uri: str, files: list[str], workers: int = 8) -> None:
    """Remove `files` below `uri` (missing ones are fine), then, locally, the empty directories."""
    if is_gcs(uri):
        from concurrent.futures import ThreadPoolExecutor

        from google.api_core import exceptions

        bucket, prefix = _bucket(uri)
        prefix = prefix.rstrip("/") + "/" if prefix else ""

        def delete(name: str) -> None:
            try:
                bucket.blob(prefix + name).delete(**_call_options(uri))
            except exceptions.NotFound:
                pass

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            list(pool.map(delete, files))
        return
    for name in files:
        Path(uri, name).unlink(missing_ok=True)
    for directory in sorted({Path(uri, n).parent for n in files}, key=lambda p: -len(p.parts)):
        while directory != Path(uri).parent and directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
            directory = directory.parent
