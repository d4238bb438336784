"""`tfship push`: publish a SavedModel into a TF Serving model repository, atomically and checksummed.

Repository layout (a local directory or a gs://bucket/prefix)::

    <repo>/models.config                      ModelServerConfig text proto: what the server loads
    <repo>/<name>/<version>/saved_model.pb    TF Serving's layout (`base_path` = <repo>/<name>)
    <repo>/<name>/.tfship/versions/<v>.json   manifest of version v: files, sizes, checksums
    <repo>/<name>/.tfship/staging/<v>/        a version being uploaded (hidden: TF Serving skips
                                              every non-integer directory)

A push goes through these steps; each one is safe to kill, and re-running the same push resumes:

0. Check the repository (`_preflight`): every models.config rule the push could fail on later,
   a name or repository that is a file, and an existing models.config that names no model over
   pushed versions (refused unless `force`). Nothing is written before this passes.
1. Check the SavedModel (no TensorFlow needed), refuse links that leave it, and hash every file (SHA-256, plus CRC32C and MD5
   for gs://). The SHA-256 list is the model's content id. With `warmup_traffic`, the files pushed
   are those of a private copy (hard links where possible) whose
   `assets.extra/tf_serving_warmup_requests` was rebuilt from the request logs and replayed on
   the model (TensorFlow needed then): the source directory is never written, and the manifest
   and content id are those of the pushed tree, new warm-up file included.
2. Claim the version by creating its manifest exclusively (`if_generation_match=0` on gs://, a
   hard link locally). A claim with the same content id is this push's own (re-run: resume or
   no-op); another content id means the version is taken (`VersionExistsError`, or the next free
   number when none was asked for).
3. Upload every file under the hidden staging prefix, `workers` at a time, and verify each copy
   against its source checksum. Locally the staged directory is then renamed to `<version>`
   (atomic); on gs:// (no rename) the staged objects are copied server-side, create-only, and
   verified again. A version directory is complete before models.config ever names it.
4. Update models.config (generation precondition on gs://, lock + atomic rename locally):
   first add the version to the model's `specific` versions; then, once the server has loaded
   it (when a serving target is given, its GetModelStatus says AVAILABLE), move the label.
   TF Serving accepts a label only on a loaded version, so these are two separate updates.

`promote`, `rollback`, `rollback_to` and `remove_label` are single models.config updates with
the same precondition; see `tfship.models_config` for the label rules. Every label move (these,
and step 4's label) goes through `tfship.history.recorded_update`, which records it in the
model's label history first.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass

from tfship import models_config as mc
from tfship import storage
from tfship.checksums import CRC32C, MD5, SHA256, Digest, content_id, digest_file
from tfship.checksums import manifest_from_json, manifest_to_json
from tfship.errors import ChecksumMismatchError, ConfigError, StorageError, VersionExistsError
from tfship.history import recorded_update
from tfship.saved_model.files import check_saved_model

log = logging.getLogger(__name__)

META_DIR = ".tfship"
MAX_WORKERS = 64

__all__ = ["PushConfig", "PushResult", "promote", "push", "remove_label", "rollback", "rollback_to", "run_push"]


@dataclass(frozen=True)
class PushConfig:
    """What to push where. Checked when built; `run_push` does the I/O.

    Args:
        model: the SavedModel version directory (local, or gs:// which is downloaded first).
        repo: the repository root: a local path or gs://bucket/prefix.
        name: the model name (TF Serving serves it as /v1/models/<name>).
        label: the label to move to the pushed version once it is loaded (default "canary");
            None adds the version without labelling it. "stable" promotes it directly.
        version: the version number. Default: the model directory's own number when its name is an
            integer (as `tfship export` writes it), else the next free number.
        serving_target: a TF Serving the repository feeds (`host:port` gRPC or `http://host:port`
            REST). When set, the label moves only after it reports the version AVAILABLE. Without
            it the label moves at once, which a running server accepts only for a label the model
            does not have yet; see docs/push.md.
        wait_timeout_s: how long to wait for the serving target (default 300).
        workers: files transferred at once (default 8; 1 = one file at a time).
        progress: draw a progress bar; None (default) = only on a terminal.
        force: write models.config even when it exists but names no model over a repository
            that holds pushed versions (an emptied file): the model restarts with this version
            only, and every other model and label stays dropped. Default False: refused.
        warmup_traffic: a glob of `tfship serve` request logs: the pushed version's warm-up
            file is rebuilt from up to 1000 sampled logged requests (`tfship.saved_model.warmup.
            warm_up_from_traffic`), so it warms up on what users send. The source model
            directory is not modified. Default "": pushed as it is.
    """

    model: str
    repo: str
    name: str
    label: str | None = mc.CANARY
    version: int | None = None
    serving_target: str | None = None
    wait_timeout_s: float = 300.0
    workers: int = 8
    progress: bool | None = None
    force: bool = False
    warmup_traffic: str = ""

    def __post_init__(self) -> None:
        if not self.model or not isinstance(self.model, str):
            raise ConfigError(f"Invalid value for argument `model`. Received: model={self.model!r}. "
                              "Expected the path of a SavedModel version directory.")
        storage.check_uri(self.model, "model")
        storage.check_uri(self.repo, "repo")
        mc.check_model_name(self.name)
        if self.label is not None:
            mc.check_label(self.label)
        if self.version is not None and (
            not isinstance(self.version, int) or isinstance(self.version, bool) or self.version < 0
        ):
            raise ConfigError(f"Invalid value for argument `version`. Received: version={self.version!r}. "
                              "Expected an integer >= 0, or nothing for the next free version.")
        if not isinstance(self.workers, int) or not 1 <= self.workers <= MAX_WORKERS:
            raise ConfigError(f"Invalid value for argument `workers`. Received: workers={self.workers!r}. "
                              f"Expected an integer from 1 to {MAX_WORKERS}.")
        if not self.wait_timeout_s > 0:
            raise ConfigError(f"Invalid value for argument `wait_timeout_s`. Received: "
                              f"wait_timeout_s={self.wait_timeout_s!r}. Expected seconds > 0.")
        if self.serving_target is not None and (not self.serving_target or any(c.isspace() for c in self.serving_target)):
            raise ConfigError(f"Invalid value for argument `serving_target`. Received: "
                              f"serving_target={self.serving_target!r}. Expected host:port (gRPC) or "
                              "http://host:port (REST).")


@dataclass(frozen=True)
class PushResult:
    """What a push did. `uploaded` False and `config_changed` False: it was a no-op."""

    name: str
    version: int
    version_uri: str
    config_uri: str
    label: str | None
    content_id: str
    files: int
    bytes: int
    uploaded: bool
    config_changed: bool
    seconds: float


def push(
    model: str,
    repo: str,
    name: str,
    label: str | None = mc.CANARY,
    version: int | None = None,
    **options: object,
) -> PushResult:
    """Push the SavedModel `model` to `<repo>/<name>/<version>/` and label it (see `PushConfig`).

    Idempotent: pushing the same files again reports the existing version and changes nothing;
    a push killed at any point completes when re-run. Example::

        result = tfship.push("export/1700000000", "gs://models", "penguins")
        result.version  # 1700000000, labelled `canary` in gs://models/models.config
    """
    return run_push(PushConfig(model=model, repo=repo, name=name, label=label, version=version, **options))


# ---- paths and manifests --------------------------------------------------------------------------


def _base(repo: str, name: str) -> str:
    return storage.join(repo, name)


def _manifest_uri(base: str, version: int) -> str:
    return storage.join(base, META_DIR, "versions", f"{version}.json")


def _staging_uri(base: str, version: int) -> str:
    return storage.join(base, META_DIR, "staging", str(version))


def _claims(base: str) -> dict[int, str]:
    """`{version: content id}` of every claimed version of the model."""
    claims = {}
    for file in storage.list_files(storage.join(base, META_DIR, "versions")):
        stem, ext = os.path.splitext(file)
        if ext == ".json" and stem.isdigit():
            _, document = manifest_from_json(storage.read_text(_manifest_uri(base, int(stem))))
            claims[int(stem)] = document["content_id"]
    return claims


def used_versions(repo: str, name: str) -> set[int]:
    """Every version number a push of model `name` has taken: the version directories, and the
    versions an unfinished push has claimed (a new push must never reuse a number)."""
    base = _base(repo, name)
    used = {int(d) for d in storage.list_dirs(base) if d.isdigit()}
    for file in storage.list_files(storage.join(base, META_DIR, "versions")):
        stem, ext = os.path.splitext(file)
        if ext == ".json" and stem.isdigit():
            used.add(int(stem))
    return used


def _hash_model(model_dir: str, files: list[str], gcs: bool, workers: int) -> dict[str, Digest]:
    from concurrent.futures import ThreadPoolExecutor

    algorithms = (SHA256, CRC32C, MD5) if gcs else (SHA256,)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        digests = pool.map(lambda f: digest_file(os.path.join(model_dir, f), algorithms), files)
        return dict(zip(files, digests))


def _mismatches(manifest: Mapping[str, Digest], stored: Mapping[str, Digest]) -> dict[str, str]:
    """`{file: why}` for each file of `manifest` that is missing from `stored` or differs."""
    bad = {}
    for file, digest in manifest.items():
        why = "missing" if file not in stored else digest.mismatch(stored[file])
        if why:
            bad[file] = why
    return bad


def _describe(bad: Mapping[str, str]) -> str:
    items = [f"{f} ({why})" for f, why in sorted(bad.items())]
    return ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")


# ---- step 2: claim a version --------------------------------------------------------------------


def _exported_version(model_dir: str) -> int | None:
    name = os.path.basename(os.path.normpath(model_dir))
    return int(name) if name.isdigit() else None


def _claim(config: PushConfig, base: str, model_dir: str, manifest: dict[str, Digest]) -> tuple[int, bool]:
    """Pick and claim the version; returns (version, claimed by this call)."""
    cid = content_id(manifest)

    def create(version: int) -> bool:
        document = manifest_to_json(manifest, name=config.name, version=version)
        return storage.create_exclusive(_manifest_uri(base, version), document.encode("utf-8"))

    claims = _claims(base)
    wanted = config.version if config.version is not None else _exported_version(model_dir)
    if wanted is None:
        same = [v for v, c in claims.items() if c == cid]
        if same:
            return max(same), False
        taken = set(claims) | {int(d) for d in storage.list_dirs(base) if d.isdigit()}
        taken |= set(mc.served_versions(mc.read_models_config(config.repo), config.name))
        candidate = max(taken, default=0) + 1
        while True:
            if create(candidate):
                return candidate, True
            if _claims(base).get(candidate) == cid:
                return candidate, False
            candidate += 1
    if claims.get(wanted) == cid:
        return wanted, False
    if wanted not in claims:
        if str(wanted) in storage.list_dirs(base):
            raise VersionExistsError(
                f"Version {wanted} of model {config.name!r} already exists at {storage.join(base, str(wanted))} "
                "but was not pushed by tfship (no manifest), so its content cannot be compared. Expected a "
                "new version number. Fix: pass another --version, or remove that directory."
            )
        if create(wanted):
            return wanted, True
        if _claims(base).get(wanted) == cid:
            return wanted, False
    raise VersionExistsError(
        f"Version {wanted} of model {config.name!r} already exists in {config.repo} with different content "
        f"(content id {claims.get(wanted) or _claims(base).get(wanted)}, this model's is {cid}). The "
        "repository was not changed. Fix: pass another --version, or leave --version out (and export "
        "into a directory not named after an existing version) to take the next free one."
    )


# ---- step 3: upload and verify --------------------------------------------------------------------


def _new_progress(config: PushConfig, total: int):
    from tfship.progress import ProgressBar

    return ProgressBar(total, f"push {config.name}", enabled=config.progress)


def _place_local(config: PushConfig, base: str, version: int, model_dir: str, manifest: dict[str, Digest]) -> bool:
    """Stage, verify (SHA-256 of the copies), rename into place. False if already in place."""
    version_uri = storage.join(base, str(version))
    staging = _staging_uri(base, version)
    # One pusher at a time per version: a killed one's lock is gone with it, and its staging is
    # thrown away below by the next one.
    with storage.local_lock(staging + ".lock"):
        if os.path.isdir(version_uri):
            bad = _mismatches(manifest, storage.digests(version_uri, list(manifest), config.workers))
            if bad:
                raise ChecksumMismatchError(
                    f"{version_uri} does not match its manifest: {_describe(bad)}. The repository is "
                    "corrupt; it was not changed. Fix: remove that version directory and its manifest "
                    f"{_manifest_uri(base, version)}, then push again."
                )
            return False
        storage.delete_tree(staging)
        files = sorted(manifest)
        bar = _new_progress(config, sum(d.size for d in manifest.values()))
        log.info("uploading %d files (%d bytes) to %s", len(files), bar.total, staging)
        try:
            storage.upload_files(model_dir, staging, files, config.workers, _logged(bar, len(files)))
        finally:
            bar.close()
        bad = _mismatches(manifest, storage.digests(staging, files, config.workers))
        if bad:
            storage.delete_tree(staging)
            raise ChecksumMismatchError(
                f"Checksum mismatch after copying to {staging}: {_describe(bad)}. The source changed "
                "while it was pushed, or the disk corrupted it. Nothing was published. Fix: make sure "
                "nothing writes to the model directory, then push again."
            )
        log.info("verified %d files (sha256)", len(files))
        if not storage.rename_dir(staging, version_uri):
            raise VersionExistsError(f"{version_uri} appeared while this push held the version's lock: "
                                     "something outside tfship writes to the repository.")
    return True


def _place_gcs(config: PushConfig, base: str, version: int, model_dir: str, manifest: dict[str, Digest]) -> bool:
    """Stage (resuming), verify CRC32C/MD5, copy into place create-only, verify. False if already there."""
    version_uri = storage.join(base, str(version))
    staging = _staging_uri(base, version)
    placed = storage.digests(version_uri)
    bad = {f: why for f, why in _mismatches(manifest, placed).items() if why != "missing"}
    extra = sorted(set(placed) - set(manifest))
    if bad or extra:
        raise ChecksumMismatchError(
            f"{version_uri} holds objects that are not this version's: {_describe(bad) or extra[:5]}. The "
            "repository was not changed. Fix: remove those objects and push again."
        )
    todo = [f for f in sorted(manifest) if f not in placed]
    if not todo:
        leftover = storage.list_files(staging)  # a push killed while cleaning up after the copy
        if leftover:
            storage.delete_files(staging, leftover, config.workers)
        return False
    staged = storage.digests(staging)
    upload = [f for f in todo if f not in staged or manifest[f].mismatch(staged[f])]
    bar = _new_progress(config, sum(manifest[f].size for f in todo))
    bar.advance(sum(manifest[f].size for f in todo if f not in upload))  # resumed from a killed push
    log.info("uploading %d files (%d bytes) to %s", len(upload), sum(manifest[f].size for f in upload), staging)
    try:
        storage.upload_files(model_dir, staging, upload, config.workers, _logged(bar, len(upload)))
    finally:
        bar.close()
    bad = _mismatches({f: manifest[f] for f in todo}, storage.digests(staging))
    if bad and not _mismatches(manifest, storage.digests(version_uri)):
        return False  # a concurrent push of the same model finished first and cleaned up
    if bad:
        storage.delete_files(staging, todo, config.workers)
        raise ChecksumMismatchError(
            f"Checksum mismatch after upload to {staging}: {_describe(bad)}. The source changed while "
            "it was pushed, or the transfer corrupted it. Nothing was published (the staged copies were "
            "deleted). Fix: make sure nothing writes to the model directory, then push again."
        )
    log.info("verified %d staged files (crc32c, md5)", len(todo))
    storage.copy_objects(staging, version_uri, todo, config.workers)
    bad = _mismatches(manifest, storage.digests(version_uri))
    if bad:
        raise ChecksumMismatchError(
            f"Checksum mismatch in {version_uri} after the server-side copy: {_describe(bad)}. models.config "
            "was not changed. Fix: remove that version directory and push again."
        )
    storage.delete_files(staging, todo, config.workers)
    return True


def _logged(bar, count: int):
    """Progress callback: advance the bar, and log each completed share at debug level."""
    state = {"bytes": 0}

    def advance(n: int) -> None:
        bar.advance(n)
        state["bytes"] += n
        log.debug("uploaded %d/%d bytes", state["bytes"], bar.total)

    return advance


def _release(base: str, version: int) -> None:
    """Undo this push's claim after a failure, so the version number can be pushed again."""
    try:
        storage.delete_files(storage.join(base, META_DIR, "versions"), [f"{version}.json"])
    except StorageError as error:  # pragma: no cover - best effort, the original error matters
        log.warning("could not release the claim on version %d: %s", version, error)


# ---- step 4: models.config ----------------------------------------------------------------------


def set_label(
    repo: str,
    name: str,
    label: str,
    version: int,
    serving_target: str | None = None,
    wait_timeout_s: float = 300.0,
) -> bool:
    """Move `label` to `version` (already in models.config), after the target serves it if given.

    Returns whether models.config changed.
    """
    mc.check_label(label)
    current = mc.version_labels(mc.read_models_config(repo), name)
    if current.get(label) == version:
        return False
    if serving_target is not None:
        from tfship.steps.push.version_wait import wait_until_available

        log.info("waiting for %s to serve version %d of %s", serving_target, version, name)
        wait_until_available(serving_target, name, version, wait_timeout_s)
    elif label in current:
        log.warning(
            "moving label %r of %s from version %d to %d without a serving target: a running TF Serving "
            "accepts this only once version %d is loaded (pass --serving-target to wait for it)",
            label, name, current[label], version, version,
        )
    _, changed = recorded_update(repo, name, "push", lambda c: mc.with_label(c, name, label, version))
    if changed:
        log.info("models.config: %s label %r -> version %d", name, label, version)
    return changed


def _pushed_versions(repo: str) -> dict[str, list[int]]:
    """`{model: [versions]}` of the integer-named version directories in the repository."""
    found = {}
    for model in storage.list_dirs(repo):
        versions = sorted(int(d) for d in storage.list_dirs(storage.join(repo, model)) if d.isdigit())
        if versions:
            found[model] = versions
    return found


def _preflight(config: PushConfig) -> bool:
    """Every check on the repository a push can fail, before it writes anything.

    A push refused after its upload would leave the version's files behind; so the models.config
    rules (`mc.check_can_add`), the model's directory and an emptied config are all checked first.
    Returns whether the push may write over an existing models.config that names no model: with
    `force`, or when the repository holds no version such a file could have dropped.
    """
    repo, name = config.repo, config.name
    if storage.is_file(repo):
        raise ConfigError(
            f"Invalid value for argument `repo`. Received: repo={repo!r}, which is a file. Expected a "
            "model repository directory (or one to create). Fix: pass the repository's root."
        )
    current = mc.read_models_config(repo)  # a missing bucket or an unparsable config fails here
    base_path = mc.model_base_path(repo, name)
    mc.check_can_add(current, name, base_path)
    base = _base(repo, name)
    if storage.is_file(base):
        raise ConfigError(
            f"Invalid value for argument `name`. Received: name={name!r}, but {base} is a file, not a "
            "model directory. Expected a name that is free or a model's directory. Fix: pass another --name."
        )
    if config.force:
        return True
    if not mc.is_empty(current) or not storage.exists(mc.config_uri(repo)):
        return False  # nothing empty to write over (one emptied meanwhile is refused by the update)
    pushed = _pushed_versions(repo)
    if pushed:
        summary = "; ".join(f"{m}: {v}" for m, v in sorted(pushed.items()))
        size = len(storage.read_bytes(mc.config_uri(repo)))
        raise ConfigError(mc.empty_config_message(mc.config_uri(repo), size, summary))
    return True


def run_push(config: PushConfig) -> PushResult:
    """Run the push described by `config` (see the module docstring for the steps)."""
    began = time.monotonic()
    replace_empty = _preflight(config)
    model_dir = config.model
    if storage.is_gcs(model_dir):
        model_dir = storage.local_cache_dir(config.model, "push-model")
        storage.download_tree(config.model, model_dir)
    check_saved_model(model_dir)
    files = storage.local_files(model_dir)  # refuses links that leave the model, naming them
    if config.warmup_traffic:
        model_dir = _with_traffic_warmup(model_dir, files, config.warmup_traffic)
        files = storage.local_files(model_dir)
    try:
        return _push_files(config, model_dir, files, began, replace_empty)
    finally:
        if config.warmup_traffic:
            shutil.rmtree(model_dir, ignore_errors=True)


def _with_traffic_warmup(model_dir: str, files: list[str], pattern: str) -> str:
    """A private copy of `model_dir` whose warm-up file is rebuilt from the request logs `pattern` matches.

    Files are hard-linked where the filesystem allows (no copy of large variables), copied
    otherwise; the old warm-up file is left out, so the new one is a new file and the source's
    is never written through a shared link.
    """
    from tfship.saved_model.loader import WARMUP_FILE
    from tfship.saved_model.warmup import warm_up_from_traffic

    copy = tempfile.mkdtemp(prefix="tfship-push-warmup-")
    try:
        for file in files:
            if os.path.normpath(file) == WARMUP_FILE:
                continue
            source, target = os.path.join(model_dir, file), os.path.join(copy, file)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            try:
                os.link(source, target)
            except OSError:  # another filesystem, or links not allowed
                shutil.copy2(source, target)
        count = warm_up_from_traffic(copy, pattern)
    except BaseException:
        shutil.rmtree(copy, ignore_errors=True)
        raise
    log.info("warm-up: %d logged requests from %s", count, pattern)
    return copy


def _push_files(config: PushConfig, model_dir: str, files: list[str], began: float, replace_empty: bool) -> PushResult:
    """Steps 1 (hashing) to 4 of a push of `files` of the checked local `model_dir`."""
    repo, name = config.repo, config.name
    gcs = storage.is_gcs(repo)
    manifest = _hash_model(model_dir, files, gcs, config.workers)
    cid = content_id(manifest)
    base = _base(repo, name)
    version, claimed = _claim(config, base, model_dir, manifest)
    log.info("version %d of %s (content %s, %s)", version, name, cid[:12], "claimed" if claimed else "resumed")
    try:
        place = _place_gcs if gcs else _place_local
        uploaded = place(config, base, version, model_dir, manifest)
    except ChecksumMismatchError:
        if claimed:
            _release(base, version)
        raise
    log.info("version %d in place at %s", version, storage.join(base, str(version)))
    base_path = mc.model_base_path(repo, name)
    _, changed = mc.update_models_config(
        repo, lambda c: mc.with_version(c, name, base_path, version), replace_empty=replace_empty
    )
    if changed:
        log.info("models.config: %s serves version %d", name, version)
    if config.label is not None:
        changed |= set_label(repo, name, config.label, version, config.serving_target, config.wait_timeout_s)
    return PushResult(
        name=name,
        version=version,
        version_uri=storage.join(base, str(version)),
        config_uri=mc.config_uri(repo),
        label=config.label,
        content_id=cid,
        files=len(files),
        bytes=sum(d.size for d in manifest.values()),
        uploaded=uploaded,
        config_changed=changed,
        seconds=round(time.monotonic() - began, 3),
    )


# ---- label moves the canary step calls ------------------------------------------------------------


def promote(
    repo: str, name: str, version: int | None = None, *, verdict: str | None = None, report: str | None = None
) -> int:
    """Move `stable` to the canary version (or `version`); the old stable becomes `previous`.

    One models.config update with the same precondition as a push, recorded in the model's
    history with the `verdict` and the `report` it rests on, if any. Returns the new stable version.
    """
    mc.check_model_name(name)
    chosen: dict[str, int] = {}

    def change(config):
        new, chosen["version"] = mc.promoted(config, name, version)
        return new

    _, changed = recorded_update(repo, name, "promote", change, verdict=verdict, report=report)
    log.info("models.config: %s stable -> version %d%s", name, chosen["version"], "" if changed else " (already)")
    return chosen["version"]


def rollback(repo: str, name: str) -> int:
    """Move `stable` back to the `previous` stable version; returns it. One recorded models.config update."""
    mc.check_model_name(name)
    chosen: dict[str, int] = {}

    def change(config):
        new, chosen["version"] = mc.rolled_back(config, name)
        return new

    recorded_update(repo, name, "rollback", change)
    log.info("models.config: %s stable rolled back to version %d", name, chosen["version"])
    return chosen["version"]


def rollback_to(repo: str, name: str, entry: str | int) -> dict[str, int]:
    """Restore the labels model `name` had right after history entry `entry`; returns them.

    One recorded models.config update. The entry must be `done` or `unchanged` (its labels are
    known to have been in force). A version those labels name that has since been unloaded is refused: TF Serving
    accepts a label only on a loaded version, so it must be pushed (served) again first.
    """
    from tfship.history import DONE, UNCHANGED, read_entry

    mc.check_model_name(name)
    document = read_entry(repo, name, entry)
    if document["state"] not in (DONE, UNCHANGED):
        raise ConfigError(
            f"Invalid value for argument `--to`. Received: {entry!r}, an entry in state {document['state']!r}: "
            "its labels were never confirmed in force. Expected a `done` entry (see `tfship history`)."
        )
    labels = {label: int(version) for label, version in document["after"].items()}
    recorded_update(repo, name, "rollback", lambda c: mc.with_labels(c, name, labels),
                    reason=f"restore entry {document['id']}")
    log.info("models.config: %s labels restored to entry %s: %s", name, document["id"], labels)
    return labels


def remove_label(
    repo: str, name: str, label: str, *, verdict: str | None = None, report: str | None = None
) -> None:
    """Drop `label` from model `name` (e.g. `canary` after a FAIL); its version is unloaded if unlabelled."""
    mc.check_model_name(name)
    _, changed = recorded_update(repo, name, "remove-label", lambda c: mc.without_label(c, name, label),
                                 verdict=verdict, report=report)
    if changed:
        log.info("models.config: %s label %r removed", name, label)
