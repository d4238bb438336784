"""Read and run a SavedModel exactly the way TF Serving does, and nothing more.

TF Serving's C++ loader is the session-based SavedModel loader (`tf.compat.v1.saved_model.loader`,
tag "serve"), the one `saved_model_cli run` also uses. A SavedModel can load in TF2
(`tf.saved_model.load`) and still fail there: a Keras 3 model saved naively with
`tf.saved_model.save` is the common case (tests/saved_model/test_savedmodel.py builds one). Everything in tfship that
needs to know "will this serve?" (validate, serve, export's own check) goes through this module,
so there is one definition of "loadable".

Two levels of access:
- `read_signatures` / `read_meta_graph` parse `saved_model.pb` only (no variables, no session):
  cheap, used by `tfship inspect` and the static contract checks.
- `load_session_model` loads the graph and variables into a `tf.compat.v1.Session`, runs the
  SavedModel's init ops (table initialisers), and returns a `SessionModel` that runs signatures.

TensorFlow is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tfship.errors import ModelError, RequestError
from tfship.tfserving import CLASSIFY_METHOD, PREDICT_METHOD, REGRESS_METHOD, SERVE_TAG

if TYPE_CHECKING:
    import numpy

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
# TF Serving refuses to load a model whose warm-up file holds more records than this.
MAX_WARMUP_RECORDS = 1000



@dataclass(frozen=True)
class TensorSpecInfo:
    """One input or output of a signature, as the SavedModel declares it.

    Attributes:
        name: the key clients use (the signature's alias, e.g. "x").
        dtype: numpy-style name: "float32", "int64", "string", "bool", ...
        shape: None when the rank is unknown; otherwise one entry per dimension, None = any size.
        tensor_name: the graph tensor behind it, e.g. "x:0" (what a session feeds or fetches).
    """

    name: str
    dtype: str
    shape: tuple[int | None, ...] | None
    tensor_name: str

    def shape_text(self) -> str:
        """`[-1, 3]` style, `unknown rank` when there is no shape: how tfship prints shapes."""
        if self.shape is None:
            return "unknown rank"
        return "[" + ", ".join("-1" if d is None else str(d) for d in self.shape) + "]"


@dataclass(frozen=True)
class SignatureInfo:
    """One SignatureDef: its method ("tensorflow/serving/predict|classify|regress") and tensors."""

    name: str
    method_name: str
    inputs: dict[str, TensorSpecInfo]
    outputs: dict[str, TensorSpecInfo]


# Headers TensorFlow puts before the line that says what went wrong.
_GENERIC_LINES = ("Graph execution error", "Detected at node", "Traceback", "[[")


def _one_line(error: BaseException, limit: int = 400) -> str:
    """The first meaningful line of a (often multi-page) TensorFlow error message."""
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    lines = [part.strip() for part in str(text).splitlines() if part.strip()]
    useful = [line for line in lines if not line.startswith(_GENERIC_LINES)] or lines or [type(error).__name__]
    line = useful[0].split(" Debug info:", 1)[0]
    return line if len(line) <= limit else line[: limit - 3] + "..."


def saved_model_file(path: str) -> str:
    """`<path>/saved_model.pb` (or .pbtxt); ModelError if `path` is not a SavedModel directory."""
    if not os.path.isdir(path):
        raise ModelError(
            f"Invalid SavedModel path: {path!r} is not a directory. "
            "Expected a SavedModel version directory (holding saved_model.pb)."
        )
    for name in ("saved_model.pb", "saved_model.pbtxt"):
        candidate = os.path.join(path, name)
        if os.path.isfile(candidate):
            return candidate
    raise ModelError(
        f"Not a SavedModel: {path!r} holds no saved_model.pb. Expected a SavedModel version "
        "directory (e.g. <model>/1/); a model base path must name one of its versions."
    )


def read_saved_model(path: str) -> Any:
    """Parse `<path>/saved_model.pb` (or `.pbtxt`) into a `SavedModel` proto; ModelError if not."""
    from google.protobuf import message, text_format
    from tensorflow.core.protobuf import saved_model_pb2

    file = saved_model_file(path)
    proto = saved_model_pb2.SavedModel()
    try:
        with open(file, "rb") as handle:
            data = handle.read()
        if file.endswith(".pbtxt"):
            text_format.Parse(data.decode("utf-8"), proto)
        else:
            proto.ParseFromString(data)
    except (message.DecodeError, text_format.ParseError, UnicodeDecodeError) as error:
        raise ModelError(f"Corrupt SavedModel: {file} cannot be parsed ({_one_line(error)}).") from error
    except OSError as error:
        raise ModelError(f"Cannot read {file}: {error.strerror}") from error
    if not proto.meta_graphs:
        raise ModelError(f"Corrupt SavedModel: {file} holds no MetaGraphDef.")
    return proto


def read_meta_graph(path: str, tag: str = SERVE_TAG) -> Any:
    """The MetaGraphDef tagged `tag` (TF Serving asks for exactly {"serve"}); ModelError if none."""
    proto = read_saved_model(path)
    for meta_graph in proto.meta_graphs:
        if set(meta_graph.meta_info_def.tags) == {tag}:
            return meta_graph
    found = [sorted(m.meta_info_def.tags) for m in proto.meta_graphs]
    raise ModelError(
        f"SavedModel {path!r} has no MetaGraph tagged {{{tag!r}}} (found tag sets {found}); "
        "TF Serving loads only that one."
    )


def _dtype_name(enum: int) -> str:
    import tensorflow as tf

    try:
        return tf.as_dtype(enum).base_dtype.name  # "float32_ref" (TF1 variables) -> "float32"
    except TypeError:
        return f"dtype_enum_{enum}"


def _tensor_spec(alias: str, info: Any) -> TensorSpecInfo:
    # A TensorInfo without tensor_shape (TF1 exports such as TF Serving's half_plus_three) declares
    # nothing about the shape: unknown rank, not a scalar (its x takes any batch).
    shape = info.tensor_shape
    declared = info.HasField("tensor_shape") and not shape.unknown_rank
    dims = tuple(None if d.size < 0 else int(d.size) for d in shape.dim) if declared else None
    return TensorSpecInfo(name=alias, dtype=_dtype_name(info.dtype), shape=dims, tensor_name=info.name)


def signatures_of(meta_graph: Any) -> dict[str, SignatureInfo]:
    """The signatures of a MetaGraphDef, sorted by name (the init-op pseudo signature excluded)."""
    result = {}
    for name in sorted(meta_graph.signature_def):
        if name == "__saved_model_init_op":
            continue
        sig = meta_graph.signature_def[name]
        result[name] = SignatureInfo(
            name=name,
            method_name=sig.method_name,
            inputs={k: _tensor_spec(k, sig.inputs[k]) for k in sorted(sig.inputs)},
            outputs={k: _tensor_spec(k, sig.outputs[k]) for k in sorted(sig.outputs)},
        )
    return result


def read_signatures(path: str, tag: str = SERVE_TAG) -> dict[str, SignatureInfo]:
    """Signatures as declared in saved_model.pb, without loading variables (fast, no session)."""
    return signatures_of(read_meta_graph(path, tag))


class SessionModel:
    """A SavedModel loaded the way TF Serving loads it: tf.compat.v1 session-based loader, tag "serve".

    Thread-safe: `run` may be called from many threads at once. Each (signature, inputs, outputs)
    combination gets one session callable, built once: like TF Serving's C++ `Session::Run`, it
    lets TensorFlow's kernels judge the fed shapes (Python's `Session.run` refuses a `[3]` feed
    for a `[-1, 1]` placeholder, which TF Serving accepts and reshapes), and it skips the
    per-call graph lookups (about 40 us a call instead of 190). `close` must not race with `run`.

    Attributes:
        path: the version directory it was loaded from.
        signatures: name -> SignatureInfo, as in the loaded MetaGraphDef.
        meta_graph_def: the loaded MetaGraphDef proto (for GetModelMetadata).
    """

    def __init__(self, path: str, session: Any, meta_graph_def: Any) -> None:
        self.path = path
        self.meta_graph_def = meta_graph_def
        self.signatures: dict[str, SignatureInfo] = signatures_of(meta_graph_def)
        self._session = session
        self._closed = threading.Event()
        self._callables: dict[tuple[tuple[str, ...], tuple[str, ...]], Any] = {}
        self._callables_lock = threading.Lock()

    def _callable(self, feeds: tuple[str, ...], fetches: tuple[str, ...]) -> Any:
        key = (feeds, fetches)
        function = self._callables.get(key)
        if function is None:
            from tensorflow.core.protobuf import config_pb2

            with self._callables_lock:
                function = self._callables.get(key)
                if function is None:
                    options = config_pb2.CallableOptions(feed=list(feeds), fetch=list(fetches))
                    function = self._session._make_callable_from_options(options)
                    self._callables[key] = function
        return function

    def run(
        self,
        signature: str,
        feeds: dict[str, numpy.ndarray],
        output_names: list[str] | None = None,
    ) -> dict[str, numpy.ndarray]:
        """Run one signature: `feeds` maps every input alias to an array; returns alias -> array.

        Args:
            signature: a key of `self.signatures`.
            feeds: exactly the signature's inputs (as TF Serving's Predict requires), by alias.
            output_names: the outputs to fetch (default: all of them).

        Raises:
            RequestError: unknown signature, missing or unknown input, unknown output name.
            tf.errors.OpError: TensorFlow rejected the values (wrong shape or type, ...); its
                `error_code` is the canonical status code a server should answer with.
        """
        if self._closed.is_set():
            raise RequestError(f"SessionModel for {self.path} is closed.")
        sig = self.signatures.get(signature)
        if sig is None:
            raise RequestError(
                f"Unknown signature {signature!r}. Expected one of {sorted(self.signatures)}."
            )
        missing = sorted(set(sig.inputs) - set(feeds))
        unknown = sorted(set(feeds) - set(sig.inputs))
        if missing or unknown:
            raise RequestError(
                f"Signature {signature!r} takes inputs {sorted(sig.inputs)}; "
                f"missing {missing}, unknown {unknown}."
            )
        names = list(sig.outputs) if output_names is None else list(output_names)
        bad = sorted(set(names) - set(sig.outputs))
        if bad:
            raise RequestError(
                f"Signature {signature!r} has no output {bad}. Expected some of {sorted(sig.outputs)}."
            )
        aliases = sorted(feeds)
        function = self._callable(
            tuple(sig.inputs[a].tensor_name for a in aliases), tuple(sig.outputs[n].tensor_name for n in names)
        )
        values = function(*(feeds[a] for a in aliases))
        return dict(zip(names, values, strict=True))

    def close(self) -> None:
        """Release the session and its memory. Idempotent."""
        if not self._closed.is_set():
            self._closed.set()
            self._session.close()

    def __enter__(self) -> SessionModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_KERAS_HINT = (
    " A Keras 3 model saved with tf.saved_model.save (or a tf.Module wrapping one) loads in TF2 "
    "but not in TF Serving: export it with model.export(path) or with a tf.Module that tracks "
    "[v.value for v in model.variables]."
)


def load_session_model(path: str, tag: str = SERVE_TAG) -> SessionModel:
    """Load `path` with the session-based loader, as TF Serving does; ModelError if it cannot.

    The message is one line; it names the path and the loader's own first line, and hints at the
    Keras 3 pitfall when a variable is missing from the checkpoint.
    """
    import tensorflow as tf
    from tensorflow.python.util import deprecation

    read_meta_graph(path, tag)  # clear messages for "not a SavedModel", corrupt, wrong tags
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    try:
        with graph.as_default(), deprecation.silence():
            meta_graph_def = tf.compat.v1.saved_model.loader.load(session, [tag], path)
    except Exception as error:  # the loader raises OpError, ValueError, RuntimeError, KeyError...
        session.close()
        line = _one_line(error)
        hint = _KERAS_HINT if "Could not find variable" in line or "not found in checkpoint" in line else ""
        raise ModelError(
            f"SavedModel {path!r} does not load the way TF Serving loads it "
            f"(session-based loader, tag {tag!r}): {line}.{hint}"
        ) from error
    return SessionModel(path, session, meta_graph_def)


def read_warmup_requests(version_dir: str) -> list:
    """PredictionLog protos from `assets.extra/tf_serving_warmup_requests`, [] if there is none.

    Raises ModelError when the file is not a TFRecord of PredictionLog (TF Serving then fails the
    load). All records are returned, even beyond TF Serving's limit of MAX_WARMUP_RECORDS: the
    caller decides (validate reports it).
    """
    import tensorflow as tf
    from google.protobuf import message
    from tensorflow_serving.apis import prediction_log_pb2

    path = os.path.join(version_dir, WARMUP_FILE)
    if not os.path.isfile(path):
        return []
    records = []
    try:
        for index, raw in enumerate(tf.data.TFRecordDataset(path)):
            log = prediction_log_pb2.PredictionLog()
            try:
                log.ParseFromString(raw.numpy())
            except message.DecodeError as error:
                raise ModelError(
                    f"Warm-up file {path}: record {index} is not a PredictionLog ({_one_line(error)})."
                ) from error
            if log.WhichOneof("log_type") is None:
                raise ModelError(f"Warm-up file {path}: record {index} is an empty PredictionLog.")
            records.append(log)
    except tf.errors.OpError as error:
        raise ModelError(f"Warm-up file {path} is not a valid TFRecord file: {_one_line(error)}") from error
    return records


def _const_strings(nodes: dict[str, Any], ref: str) -> list[str]:
    """The string values of the Const node that `ref` ("name", "name:0", "name:output:0") names."""
    from tensorflow.python.framework import tensor_util

    name = ref.lstrip("^").split(":", 1)[0]
    for _ in range(8):  # follow Identity chains
        node = nodes.get(name)
        if node is None:
            return []
        if node.op == "Const":
            values = tensor_util.MakeNdarray(node.attr["value"].tensor).reshape(-1)
            return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]
        if node.op != "Identity" or not node.input:
            return []
        name = node.input[0].lstrip("^").split(":", 1)[0]
    return []


def example_features(meta_graph_def: Any) -> dict[str, str]:
    """Feature name -> dtype of every tf.Example parsing op in the graph (and its functions).

    A classify/regress signature takes serialized tf.Examples; to build valid ones for a model
    tfship did not write, validate reads the keys and types its ParseExample ops expect. Empty
    when the graph parses no tf.Example (or builds the keys at run time).
    """
    graphs = [list(meta_graph_def.graph_def.node)]
    graphs += [list(f.node_def) for f in meta_graph_def.graph_def.library.function]
    features: dict[str, str] = {}
    for nodes in graphs:
        by_name = {n.name: n for n in nodes}
        for node in nodes:
            if node.op == "ParseExample":
                n_sparse, n_dense = node.attr["Nsparse"].i, node.attr["Ndense"].i
                sparse = [k for ref in node.input[2 : 2 + n_sparse] for k in _const_strings(by_name, ref)]
                dense_refs = node.input[2 + n_sparse : 2 + n_sparse + n_dense]
                dense = [k for ref in dense_refs for k in _const_strings(by_name, ref)]
            elif node.op == "ParseExampleV2":
                sparse = _const_strings(by_name, node.input[2])
                dense = _const_strings(by_name, node.input[3])
            else:
                continue
            for keys, types in ((dense, node.attr["Tdense"].list.type), (sparse, node.attr["sparse_types"].list.type)):
                for key, dtype in zip(keys, types, strict=False):  # keys may be unresolvable
                    features.setdefault(key, _dtype_name(dtype))
    return features


def explain_run_error(error: BaseException) -> str:
    """One line for a failed `SessionModel.run`, with the Keras 3 hint where it applies."""
    line = _one_line(error)
    if "Could not find variable" in str(error):
        return line + _KERAS_HINT
    return line
