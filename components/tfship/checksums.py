"""File digests in the forms each backend can verify, and the manifest that names a model's content.

GCS keeps a CRC32C and (for non-composite objects) an MD5 of every object, so a stored copy is
checked from its metadata without downloading it; local copies are checked by re-reading them
with SHA-256. A `Digest` carries whichever of these were computed, and `mismatch` compares the
ones both sides have (at least one content hash must be common, or the check fails).

The content id of a model is the SHA-256 of its sorted (path, size, sha256) list: two pushes of
the same files have the same id, whatever the directory they came from.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

_BLOCK = 1 << 20

SHA256 = "sha256"
CRC32C = "crc32c"
MD5 = "md5"
ALL = (SHA256, CRC32C, MD5)


@dataclass(frozen=True)
class Digest:
    """Size and content hashes of one file; `crc32c` and `md5` are base64, as GCS reports them."""

    size: int
    sha256: str | None = None
    crc32c: str | None = None
    md5: str | None = None

    def mismatch(self, stored: Digest) -> str | None:
        """Why `stored` is not a copy of this file, or None when it is."""
        if stored.size != self.size:
            return f"size {stored.size} != {self.size}"
        common = [a for a in ALL if getattr(self, a) and getattr(stored, a)]
        if not common:
            return "no checksum to compare"
        for algorithm in common:
            if getattr(self, algorithm) != getattr(stored, algorithm):
                return f"{algorithm} {getattr(stored, algorithm)} != {getattr(self, algorithm)}"
        return None


def digest_file(path: str, algorithms: Iterable[str] = (SHA256,)) -> Digest:
    """Hash one local file in a single pass (hashlib and crc32c release the GIL: threads scale)."""
    wanted = set(algorithms)
    unknown = wanted - set(ALL)
    if unknown:
        raise ValueError(f"Unknown checksum algorithms {sorted(unknown)}; expected some of {ALL}.")
    sha = hashlib.sha256() if SHA256 in wanted else None
    md5 = hashlib.md5(usedforsecurity=False) if MD5 in wanted else None
    crc = None
    if CRC32C in wanted:
        import google_crc32c

        crc = google_crc32c.Checksum()
    size = 0
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            size += len(block)
            for h in (sha, md5, crc):
                if h is not None:
                    h.update(block)
    return Digest(
        size=size,
        sha256=sha.hexdigest() if sha else None,
        crc32c=base64.b64encode(crc.digest()).decode() if crc else None,
        md5=base64.b64encode(md5.digest()).decode() if md5 else None,
    )


def content_id(manifest: Mapping[str, Digest]) -> str:
    """SHA-256 over the sorted (path, size, sha256) of a model's files: its content identity."""
    h = hashlib.sha256()
    for path in sorted(manifest):
        d = manifest[path]
        if d.sha256 is None:
            raise ValueError(f"The digest of {path} has no sha256: cannot name the content.")
        h.update(f"{path}\0{d.size}\0{d.sha256}\n".encode())
    return h.hexdigest()


def manifest_to_json(manifest: Mapping[str, Digest], **extra: object) -> str:
    """The manifest as JSON (`files`: path -> digest fields, plus `extra` fields), sorted keys."""
    files = {p: {k: v for k, v in asdict(d).items() if v is not None} for p, d in manifest.items()}
    return json.dumps({**extra, "content_id": content_id(manifest), "files": files}, indent=1, sort_keys=True)


def manifest_from_json(text: str) -> tuple[dict[str, Digest], dict]:
    """Inverse of `manifest_to_json`: (manifest, the whole document)."""
    document = json.loads(text)
    manifest = {p: Digest(**fields) for p, fields in document["files"].items()}
    return manifest, document
