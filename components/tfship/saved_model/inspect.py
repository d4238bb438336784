"""`tfship inspect`: what a SavedModel offers clients, readable, like `saved_model_cli show --all`.

Reads saved_model.pb only (no variables, no session), so it is fast on any model size. Prints each
MetaGraph's tags and signatures (method, inputs and outputs with dtype, shape and graph tensor),
then the warm-up file and tfship's export metadata when present. `contract_yaml` prints the
contract the model satisfies today, the starting point for `tfship validate --contract`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from typing import Any

import yaml

from tfship import storage
from tfship.errors import ModelError
from tfship.saved_model.loader import (
    SignatureInfo,
    read_saved_model,
    read_signatures,
    read_warmup_requests,
    signatures_of,
)
from tfship.steps.validate.contract import contract_from_signatures
from tfship.tfserving import SERVE_TAG

METADATA_FILE = os.path.join("assets.extra", "tfship_metadata.json")


def resolve_version_dir(path: str) -> str:
    """`path` if it is a SavedModel; for a model base path, its highest integer version.

    A gs:// path is mirrored locally first, without `variables/` (inspect never needs them).
    """
    if storage.is_gcs(path):
        path = _mirror(path)
    if os.path.isfile(os.path.join(path, "saved_model.pb")) or not os.path.isdir(path):
        return path
    versions = [n for n in os.listdir(path) if n.isdigit() and os.path.isdir(os.path.join(path, n))]
    return os.path.join(path, max(versions, key=int)) if versions else path


def _mirror(uri: str) -> str:
    files = [f for f in storage.list_files(uri) if "variables/" not in f and not f.startswith("variables")]
    if not files:
        raise ModelError(f"Not a SavedModel: {uri!r} holds no files.")
    local = storage.local_cache_dir(uri, "inspect")
    storage.download_tree(uri, local, files)
    return local


def _column_widths(rows: list[tuple[str, str, str, str]]) -> list[int]:
    return [max((len(r[i]) for r in rows), default=0) for i in range(3)]


def format_signature(sig: SignatureInfo, indent: str = "  ") -> list[str]:
    """One signature as aligned lines: name, dtype, shape, (graph tensor)."""
    lines = [f"{indent}signature {sig.name!r}  method: {sig.method_name}"]
    for kind in ("inputs", "outputs"):
        specs = getattr(sig, kind)
        lines.append(f"{indent}  {kind}:" + ("" if specs else " (none)"))
        rows = [(s.name, s.dtype, s.shape_text(), s.tensor_name) for s in specs.values()]
        widths = _column_widths(rows)
        for name, dtype, shape, tensor in rows:
            lines.append(
                f"{indent}    {name:<{widths[0]}}  {dtype:<{widths[1]}}  {shape:<{widths[2]}}  ({tensor})"
            )
    return lines


def describe(path: str) -> str:
    """The whole human-readable description of the SavedModel at `path`."""

    version_dir = resolve_version_dir(path)
    proto = read_saved_model(version_dir)
    lines = [f"SavedModel {path if storage.is_gcs(path) else version_dir}"]
    for meta_graph in proto.meta_graphs:
        tags = ", ".join(sorted(meta_graph.meta_info_def.tags)) or "(none)"
        tf_version = meta_graph.meta_info_def.tensorflow_version or "unknown"
        lines.append(f"MetaGraph tags: {tags}  (written by TensorFlow {tf_version})")
        signatures = signatures_of(meta_graph)
        if not signatures:
            lines.append("  no signatures")
        for sig in signatures.values():
            lines += format_signature(sig)
    try:
        records = read_warmup_requests(version_dir)
        kinds = sorted({r.WhichOneof("log_type") for r in records})
        lines.append(f"warm-up: {len(records)} record(s)" + (f" ({', '.join(kinds)})" if kinds else ""))
    except ModelError as error:
        lines.append(f"warm-up: unreadable: {error}")
    metadata = read_metadata(version_dir)
    if metadata:
        lines.append(
            f"tfship export: version {metadata.get('version')}, checkpoint step "
            f"{metadata.get('checkpoint_step')}, task {metadata.get('schema', {}).get('task')}, "
            f"exported {metadata.get('exported_at')}"
        )
        if metadata.get("metrics"):
            lines.append("  metrics: " + json.dumps(metadata["metrics"], sort_keys=True))
    return "\n".join(lines)


def read_metadata(version_dir: str) -> dict[str, Any] | None:
    """tfship's export metadata, or None for a SavedModel tfship did not write."""
    path = os.path.join(version_dir, METADATA_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        raise ModelError(f"Unreadable export metadata {path}: {error}") from error


def contract_yaml(path: str, tag: str = SERVE_TAG, only: Collection[str] | None = None) -> str:
    """The contract YAML that the model at `path` satisfies now (signatures of tag `tag`).

    `only` limits it to those signatures (the rest stay allowed, unchecked).
    """

    signatures = read_signatures(resolve_version_dir(path), tag)
    contract = contract_from_signatures({name: sig for name, sig in signatures.items()
                                         if only is None or name in only})
    return yaml.safe_dump(contract.to_dict(), sort_keys=False, default_flow_style=None)


def as_dict(path: str) -> dict[str, Any]:
    """Machine-readable description (`tfship inspect --json`)."""
    version_dir = resolve_version_dir(path)
    proto = read_saved_model(version_dir)
    return {
        "path": version_dir,
        "meta_graphs": [
            {
                "tags": sorted(mg.meta_info_def.tags),
                "signatures": {
                    name: {
                        "method_name": sig.method_name,
                        **{
                            kind: {
                                t.name: {"dtype": t.dtype, "shape": None if t.shape is None else
                                         [-1 if d is None else d for d in t.shape], "tensor": t.tensor_name}
                                for t in getattr(sig, kind).values()
                            }
                            for kind in ("inputs", "outputs")
                        },
                    }
                    for name, sig in signatures_of(mg).items()
                },
            }
            for mg in proto.meta_graphs
        ],
        "metadata": read_metadata(version_dir),
    }
