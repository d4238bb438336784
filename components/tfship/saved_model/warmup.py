"""TF Serving warm-up records: write them at export (or from request logs at push), replay them at validation.

TF Serving replays `assets.extra/tf_serving_warmup_requests` (a TFRecord file of PredictionLog
protos, at most 1000 records) when it loads a version, before the version takes traffic: lazy
initialisation (lookup tables, the first run of each batch shape) then happens before the first
real request. A record that fails fails the load, so validate replays the same records the same
way and reports each failing one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from tfship.errors import DataError, ModelError
from tfship.saved_model import signature_inputs
from tfship.saved_model.loader import (
    CLASSIFY_METHOD,
    MAX_WARMUP_RECORDS,
    REGRESS_METHOD,
    WARMUP_FILE,
    SessionModel,
    load_session_model,
)
from tfship.steps.serve.request_log import read_records
from tfship.tfserving import SERVING_DEFAULT as DEFAULT_SIGNATURE


def predict_log(signature: str, inputs: dict[str, Any]) -> Any:
    """A PredictionLog holding a PredictRequest with `inputs` (name -> numpy array)."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.signature_name = signature
    for name, array in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
    return prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))


def example_log(signature: str, method: str, examples: Sequence[Any]) -> Any:
    """A PredictionLog holding a Classification- or RegressionRequest over tf.Examples."""
    from tensorflow_serving.apis import classification_pb2, prediction_log_pb2, regression_pb2

    if method == CLASSIFY_METHOD:
        request = classification_pb2.ClassificationRequest()
    elif method == REGRESS_METHOD:
        request = regression_pb2.RegressionRequest()
    else:
        raise ValueError(f"Invalid method {method!r}: expected {CLASSIFY_METHOD} or {REGRESS_METHOD}.")
    request.model_spec.signature_name = signature
    request.input.example_list.examples.extend(examples)
    if method == CLASSIFY_METHOD:
        return prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(request=request))
    return prediction_log_pb2.PredictionLog(regress_log=prediction_log_pb2.RegressLog(request=request))


def write_warmup_file(version_dir: str, records: Sequence[Any]) -> str:
    """Write `records` to `<version_dir>/assets.extra/tf_serving_warmup_requests`; returns the path."""
    import tensorflow as tf

    if not 0 < len(records) <= MAX_WARMUP_RECORDS:
        raise ValueError(
            f"Invalid number of warm-up records: {len(records)}. Expected 1 to {MAX_WARMUP_RECORDS} "
            "(TF Serving refuses more)."
        )
    path = os.path.join(version_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record.SerializeToString())
    return path


def _example_input(model: SessionModel, signature: str) -> str:
    inputs = model.signatures[signature].inputs
    if len(inputs) != 1:
        raise ModelError(
            f"signature {signature!r} takes {len(inputs)} inputs; a Classify/Regress request needs one "
            "(serialized tf.Example)."
        )
    return next(iter(inputs))


def _example_input_values(request: Any) -> Any:
    import numpy as np

    which = request.input.WhichOneof("kind")
    if which == "example_list":
        return np.array([e.SerializeToString() for e in request.input.example_list.examples], dtype=object)
    if which == "example_list_with_context":
        merged = []
        block = request.input.example_list_with_context
        for item in block.examples:
            combined = type(item)()
            combined.CopyFrom(block.context)
            combined.MergeFrom(item)
            merged.append(combined.SerializeToString())
        return np.array(merged, dtype=object)
    raise ModelError("a Classify/Regress request holds no examples.")


def replay(model: SessionModel, log: Any) -> str:
    """Run one PredictionLog against `model` as TF Serving's warm-up does; returns what ran.

    Raises ModelError (bad record: unknown signature, wrong method) or whatever the model raises.
    """
    import tensorflow as tf

    kind = log.WhichOneof("log_type")
    if kind == "predict_log":
        request = log.predict_log.request
        signature = request.model_spec.signature_name or DEFAULT_SIGNATURE
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        model.run(signature, inputs, list(request.output_filter) or None)
        return f"predict {signature}"
    if kind in ("classify_log", "regress_log"):
        request = getattr(log, kind).request
        method = CLASSIFY_METHOD if kind == "classify_log" else REGRESS_METHOD
        tasks = [(request.model_spec.signature_name or DEFAULT_SIGNATURE, method)]
    elif kind == "multi_inference_log":
        request = log.multi_inference_log.request
        tasks = [(t.model_spec.signature_name or DEFAULT_SIGNATURE, t.method_name) for t in request.tasks]
    else:
        raise ModelError(f"warm-up record of type {kind!r} is not replayed by tfship.")
    values = _example_input_values(request)
    for signature, method in tasks:
        sig = model.signatures.get(signature)
        if sig is None:
            raise ModelError(f"unknown signature {signature!r}.")
        if sig.method_name != method:
            raise ModelError(
                f"signature {signature!r} has method {sig.method_name!r}; the request needs {method!r}."
            )
        model.run(signature, {_example_input(model, signature): values})
    return f"{kind.removesuffix('_log')} " + ", ".join(s for s, _ in tasks)


def records_from_traffic(pattern: str, limit: int = MAX_WARMUP_RECORDS, seed: int = 0) -> list[Any]:
    """Up to `limit` logged requests from the PredictionLog files `pattern` matches, as warm-up records.

    A new version then warms up on what users send (their batch sizes, their signatures), not
    on held-out rows. The records are a uniform sample (reservoir, seeded: the same logs give the
    same file) of the predict, classify and regress requests logged; responses, log metadata and
    the model name and version are dropped, as TF Serving's warm-up ignores them. At most
    `MAX_WARMUP_RECORDS`, TF Serving's limit.

    Raises:
        DataError: nothing matches, a record is unreadable (file and record named), or the logs
            hold no request that can warm a model up.
    """
    import glob
    import random

    limit = min(limit, MAX_WARMUP_RECORDS)
    files = sorted(glob.glob(pattern))
    if not files:
        raise DataError(f"--warmup-traffic {pattern}: no file matches. Expected tfship serve's request logs "
                        "(DIR/<model>-*.tfrecord).")
    chooser = random.Random(seed)
    sample: list[Any] = []
    seen = 0
    for path in files:
        for _source, record in read_records(path):
            kind = record.WhichOneof("log_type")
            if kind not in ("predict_log", "classify_log", "regress_log"):
                continue
            seen += 1
            slot = len(sample) if len(sample) < limit else chooser.randrange(seen)
            if slot < limit:
                request = getattr(record, kind).request
                spec = request.model_spec
                spec.ClearField("name")
                spec.ClearField("version_choice")
                kept = type(record)()
                getattr(kept, kind).request.CopyFrom(request)
                if slot == len(sample):
                    sample.append(kept)
                else:
                    sample[slot] = kept
    if not sample:
        raise DataError(f"--warmup-traffic {pattern}: the logs hold no predict, classify or regress request.")
    return sample


def warm_up_from_traffic(version_dir: str, pattern: str) -> int:
    """Rebuild `version_dir`'s warm-up file from the request logs `pattern` matches; returns the record count.

    The records (`records_from_traffic`) are first replayed on the model as TF Serving's warm-up
    will: a version that cannot answer what users send fails here, not at load, where TF Serving
    would refuse the version while a label waits for it. `version_dir` must be a private copy:
    its warm-up file is replaced.

    Raises:
        DataError: see `records_from_traffic`.
        ModelError: the model fails a record (its index in the sample named).
    """

    records = records_from_traffic(pattern)
    with load_session_model(version_dir) as model:
        for index, record in enumerate(records):
            try:
                replay(model, record)
            except Exception as error:
                raise ModelError(
                    f"--warmup-traffic {pattern}: the model fails sampled logged request {index} "
                    f"({record.WhichOneof('log_type')}): {error}"
                ) from error
    write_warmup_file(version_dir, records)
    return len(records)


def build_records(
    rows: Sequence[dict[str, Any]],
    features: dict[str, str],
    example_signature: str,
    example_method: str,
) -> list[Any]:
    """Warm-up records for a tfship export, from held-out raw rows.

    Three records: a Predict over all rows (the batch shape of offline clients), a Predict over the
    first row (online clients send one), and a Classify/Regress over all rows as tf.Examples, so
    every exported signature is initialised before the version takes traffic.
    """
    if not rows:
        raise ValueError("Warm-up records need at least one row.")
    source = "held-out rows"
    batch = {name: signature_inputs.column(rows, name, dtype, 1, source) for name, dtype in features.items()}
    single = {name: array[:1] for name, array in batch.items()}
    return [
        predict_log(DEFAULT_SIGNATURE, batch),
        predict_log(DEFAULT_SIGNATURE, single),
        example_log(example_signature, example_method, signature_inputs.examples(rows, features, source)),
    ]
