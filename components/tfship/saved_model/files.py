"""Recognise a servable SavedModel directory from its files, without importing TensorFlow.

`tfship push` runs in a small container (no TensorFlow: 3 s and 550 MB to import) and must refuse
what TF Serving would fail to load: a directory without `saved_model.pb`, a `saved_model.pb` that
is not a SavedModel protobuf (truncated, or another file renamed), one with no `serve` graph or no
signature, or variables whose index or shards are missing. The protobuf is parsed against a
minimal schema with the real field numbers of tensorflow/core/protobuf/{saved_model,meta_graph}.proto
(fields tfship does not read are skipped by the parser, but must still be well formed).
This is a structural check; the validate step is where the model is loaded and run.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache

from tfship.errors import ModelError
from tfship.tfserving import SERVE_TAG

SAVED_MODEL_PB = "saved_model.pb"
_SHARD_RE = re.compile(r"variables\.data-(\d{5})-of-(\d{5})")


@lru_cache(maxsize=1)
def _saved_model_class():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="tfship_saved_model_min.proto", package="tfship_min", syntax="proto3")

    def message(name: str, *fields: tuple[str, int, int, int, str]) -> None:
        msg = proto.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            field = msg.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = type_name

    message("SignatureDef")
    message("SignatureEntry", ("key", 1, F.TYPE_STRING, F.LABEL_OPTIONAL, ""),
            ("value", 2, F.TYPE_MESSAGE, F.LABEL_OPTIONAL, ".tfship_min.SignatureDef"))
    message("MetaInfoDef", ("tags", 4, F.TYPE_STRING, F.LABEL_REPEATED, ""))
    message("MetaGraphDef", ("meta_info_def", 1, F.TYPE_MESSAGE, F.LABEL_OPTIONAL, ".tfship_min.MetaInfoDef"),
            ("signature_def", 5, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".tfship_min.SignatureEntry"))
    message("SavedModel", ("saved_model_schema_version", 1, F.TYPE_INT64, F.LABEL_OPTIONAL, ""),
            ("meta_graphs", 2, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".tfship_min.MetaGraphDef"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tfship_min.SavedModel"))


def serving_signatures(pb_bytes: bytes) -> list[str]:
    """Signature names of the `serve`-tagged graph of a serialized SavedModel.

    Raises:
        ModelError: the bytes are not a SavedModel, or it has no `serve` graph.
    """
    from google.protobuf.message import DecodeError

    saved_model = _saved_model_class()()
    try:
        saved_model.ParseFromString(pb_bytes)
    except DecodeError as error:
        raise ModelError(f"{SAVED_MODEL_PB} is not a SavedModel protobuf ({error})") from error
    for graph in saved_model.meta_graphs:
        if SERVE_TAG in graph.meta_info_def.tags:
            return sorted(entry.key for entry in graph.signature_def)
    tags = [list(g.meta_info_def.tags) for g in saved_model.meta_graphs]
    raise ModelError(f"{SAVED_MODEL_PB} has no graph tagged {SERVE_TAG!r} (tag sets: {tags})")


def check_saved_model(path: str) -> list[str]:
    """Return the files of the SavedModel directory `path` (relative, sorted) if TF Serving can load it.

    Raises:
        ModelError: naming the directory, what is wrong and what was expected.
    """
    expected = (
        "Expected a SavedModel version directory (saved_model.pb with a 'serve' graph and at least "
        "one signature, variables/ complete), as written by `tfship export`."
    )
    if not os.path.isdir(path):
        raise ModelError(f"Invalid value for argument `model`. Received: model={path!r}, not a directory. {expected}")
    files = sorted(
        os.path.relpath(os.path.join(root, f), path)
        for root, _, names in os.walk(path)
        for f in names
    )
    if SAVED_MODEL_PB not in files:
        found = ", ".join(files[:5]) + (" ..." if len(files) > 5 else "") or "nothing"
        raise ModelError(
            f"Invalid value for argument `model`. Received: model={path!r}, which holds {found} but no "
            f"{SAVED_MODEL_PB}. {expected}"
        )
    with open(os.path.join(path, SAVED_MODEL_PB), "rb") as handle:
        pb = handle.read()
    try:
        signatures = serving_signatures(pb)
    except ModelError as error:
        raise ModelError(f"Corrupt model {path!r}: {error}. {expected}") from error
    if not signatures:
        raise ModelError(f"Corrupt model {path!r}: the 'serve' graph has no signature. {expected}")
    shards = [m for f in files if (m := _SHARD_RE.fullmatch(f.removeprefix("variables/")))
              and f.startswith("variables/")]
    if shards:
        total = int(shards[0].group(2))
        have = {int(m.group(1)) for m in shards}
        missing = [i for i in range(total) if i not in have]
        if "variables/variables.index" not in files or missing:
            raise ModelError(
                f"Corrupt model {path!r}: variables/ is incomplete (index present: "
                f"{'variables/variables.index' in files}, missing shards: {missing}). {expected}"
            )
    return files
