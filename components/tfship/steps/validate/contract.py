"""The signature contract, and the pure checks against it and against the serving baseline.

A contract names the signatures clients depend on (YAML)::

    signatures:
      serving_default:
        inputs:
          x: {dtype: float32, shape: [-1, 1]}
        outputs:
          y: {dtype: float32, shape: [-1, 1]}
        allow_extra_outputs: false      # optional, per signature or at the top level
        method_name: tensorflow/serving/predict   # optional

Tensor keys: `dtype` (required), `shape` (a list; -1 or null = any size; omitted = not checked),
`probabilities` (optional bool: values in [0, 1] summing to 1 over the last axis; by default
outputs named `probabilities` or `probs` are checked so), `tf_example` (optional bool, inputs
only: feed serialized tf.Examples; by default the string inputs of classify/regress signatures,
and a signature's only input when it is a string named `inputs` or `examples` (and the like) in a
graph that parses tf.Examples).

Shapes are compared dimension by dimension, ranks must match, and the direction matters
(`shape_satisfies`): an input must accept whatever the contract lets clients send (a contracted -1
needs a model -1, so `[-1, 1]` fails on a model that takes only `[1, 1]`), an output must produce
only what the contract allows (a contracted -1 accepts the model's `3`). Unknown keys are errors,
so that a typo (`allow_extra_output`) cannot silently weaken the gate.

Everything here is a pure function of parsed values (no TensorFlow, no I/O but `load_contract`),
so the rules are tested in microseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tfship import storage
from tfship.errors import ConfigError, StorageError
from tfship.saved_model.loader import SignatureInfo, TensorSpecInfo
from tfship.text import decode_utf8, parse_yaml

# The dtype names a contract may use (numpy-style, as `tfship inspect` prints them).
DTYPES = (
    "float16", "bfloat16", "float32", "float64",
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "bool", "string", "complex64", "complex128",
)
PROBABILITY_NAMES = ("probabilities", "probs")
_TENSOR_KEYS = {"inputs": {"dtype", "shape", "tf_example"}, "outputs": {"dtype", "shape", "probabilities"}}
_SIGNATURE_KEYS = {"inputs", "outputs", "allow_extra_outputs", "method_name"}
_TOP_KEYS = {"signatures", "allow_extra_outputs"}

Shape = tuple[int | None, ...] | None


@dataclass(frozen=True)
class TensorContract:
    """One contracted tensor. `shape` None = not checked; a None dimension = any size."""

    dtype: str
    shape: Shape = None
    probabilities: bool | None = None
    tf_example: bool | None = None


@dataclass(frozen=True)
class SignatureContract:
    name: str
    inputs: dict[str, TensorContract]
    outputs: dict[str, TensorContract]
    allow_extra_outputs: bool = False
    method_name: str | None = None


@dataclass(frozen=True)
class Contract:
    signatures: dict[str, SignatureContract]
    source: str = "contract"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON/YAML-ready); `Contract.from_dict(c.to_dict())` gives `c` back."""
        def tensor(t: TensorContract) -> dict[str, Any]:
            out: dict[str, Any] = {"dtype": t.dtype}
            if t.shape is not None:
                out["shape"] = [-1 if d is None else d for d in t.shape]
            if t.probabilities is not None:
                out["probabilities"] = t.probabilities
            if t.tf_example is not None:
                out["tf_example"] = t.tf_example
            return out

        signatures = {}
        for name, sig in self.signatures.items():
            entry: dict[str, Any] = {
                "inputs": {k: tensor(v) for k, v in sig.inputs.items()},
                "outputs": {k: tensor(v) for k, v in sig.outputs.items()},
                "allow_extra_outputs": sig.allow_extra_outputs,
            }
            if sig.method_name:
                entry["method_name"] = sig.method_name
            signatures[name] = entry
        return {"signatures": signatures}

    @classmethod
    def from_dict(cls, mapping: Any, source: str = "contract") -> Contract:
        """Validate and build; ConfigError naming the key path, the value and what was expected."""
        _expect_mapping(mapping, source, "the top level", "a mapping with `signatures`")
        _reject_unknown(mapping, _TOP_KEYS, source, "the top level")
        default_extra = _bool(mapping.get("allow_extra_outputs", False), source, "allow_extra_outputs")
        signatures = mapping.get("signatures")
        _expect_mapping(signatures, source, "signatures", "a mapping of signature name to inputs and outputs")
        if not signatures:
            raise ConfigError(f"{source}: `signatures` is empty. Expected at least one signature.")
        parsed = {}
        for name, body in signatures.items():
            where = f"signatures.{name}"
            _expect_mapping(body, source, where, "a mapping with `inputs` and `outputs`")
            _reject_unknown(body, _SIGNATURE_KEYS, source, where)
            method = body.get("method_name")
            if method is not None and not isinstance(method, str):
                raise ConfigError(f"{source}: invalid `{where}.method_name`: {method!r}. Expected a string.")
            parsed[str(name)] = SignatureContract(
                name=str(name),
                inputs=_tensors(body, "inputs", source, where),
                outputs=_tensors(body, "outputs", source, where),
                allow_extra_outputs=_bool(
                    body.get("allow_extra_outputs", default_extra), source, f"{where}.allow_extra_outputs"
                ),
                method_name=method,
            )
        return cls(parsed, source)


def _expect_mapping(value: Any, source: str, where: str, expected: str) -> None:
    if not isinstance(value, dict):
        what = "content" if where == "the top level" else f"`{where}`"
        raise ConfigError(f"{source}: invalid {what}: {_short(value)}. Expected {expected}.")


def _reject_unknown(mapping: dict, allowed: set[str], source: str, where: str) -> None:
    unknown = sorted(str(k) for k in set(mapping) - allowed)
    if unknown:
        what = "the top level" if where == "the top level" else f"`{where}`"
        raise ConfigError(f"{source}: unknown key(s) {unknown} in {what}. Expected some of {sorted(allowed)}.")


def _bool(value: Any, source: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{source}: invalid `{where}`: {value!r}. Expected true or false.")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _tensors(body: dict, kind: str, source: str, where: str) -> dict[str, TensorContract]:
    tensors = body.get(kind, {})
    if tensors is None:
        tensors = {}
    _expect_mapping(tensors, source, f"{where}.{kind}", "a mapping of tensor name to {dtype, shape}")
    result = {}
    for name, spec in tensors.items():
        path = f"{where}.{kind}.{name}"
        _expect_mapping(spec, source, path, "a mapping like {dtype: float32, shape: [-1, 1]}")
        _reject_unknown(spec, _TENSOR_KEYS[kind], source, path)
        dtype = spec.get("dtype")
        if dtype not in DTYPES:
            raise ConfigError(
                f"{source}: unknown dtype {dtype!r} for `{path}`. Expected one of {', '.join(DTYPES)}."
            )
        flags = {k: _bool(spec[k], source, f"{path}.{k}") for k in ("probabilities", "tf_example") if k in spec}
        result[str(name)] = TensorContract(dtype=dtype, shape=_shape(spec.get("shape"), source, path), **flags)
    return result


def _shape(value: Any, source: str, where: str) -> Shape:
    if value is None:
        return None
    ok = isinstance(value, list) and all(
        d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= -1) for d in value
    )
    if not ok:
        raise ConfigError(
            f"{source}: invalid shape {_short(value)} for `{where}`. Expected a list of sizes, "
            "-1 or null for any size, e.g. [-1, 1]."
        )
    return tuple(None if d is None or d == -1 else d for d in value)


def load_contract(path: str) -> Contract:
    """Read and validate a contract YAML file (local or gs://); ConfigError with one line if bad."""
    try:
        data = storage.read_bytes(path)
    except StorageError as error:
        raise ConfigError(f"Cannot read --contract {path}: {error}") from error
    text = decode_utf8(data, f"--contract {path}", ConfigError)
    mapping = parse_yaml(text, f"--contract {path}", ConfigError)
    return Contract.from_dict(mapping, source=f"contract {path}")


def contract_from_signatures(signatures: dict[str, SignatureInfo]) -> Contract:
    """The contract a model satisfies today: a starting point to edit (`tfship inspect --contract`)."""
    def tensors(specs: dict[str, TensorSpecInfo]) -> dict[str, TensorContract]:
        return {n: TensorContract(s.dtype if s.dtype in DTYPES else "string", s.shape) for n, s in specs.items()}

    return Contract(
        {
            name: SignatureContract(name, tensors(sig.inputs), tensors(sig.outputs), False, sig.method_name)
            for name, sig in signatures.items()
        },
        source="inspect",
    )


# ----------------------------------------------------------------------------------------------
# Checks: every function returns all violations it finds, never stops at the first.


CHECKS = ("contract", "load", "run", "outputs", "warmup", "baseline")


@dataclass(frozen=True)
class Violation:
    """One failed check. `where` is a dotted path such as `serving_default.outputs.y`."""

    check: str  # one of CHECKS
    where: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"check": self.check, "where": self.where, "message": self.message}

    def __str__(self) -> str:
        return f"[{self.check}] {self.where}: {self.message}"


def shape_text(shape: Shape) -> str:
    if shape is None:
        return "unknown rank"
    return "[" + ", ".join("-1" if d is None else str(d) for d in shape) + "]"


def shape_satisfies(kind: str, contracted: Shape, declared: Shape) -> bool:
    """Does a model tensor declared with `declared` keep the contract's promise to clients?

    An input must accept every shape the contract lets clients send (a contracted -1 needs a
    model -1; a contracted size is met by that size or -1). An output must produce only shapes
    the contract allows (a contracted -1 takes any model size; a contracted size needs exactly
    that size). Ranks must match. A contract without a shape accepts anything.
    """
    if contracted is None:
        return True
    if kind == "inputs":
        return shape_covers(declared, contracted)
    return shape_covers(contracted, declared)


def value_shape_matches(contracted: Shape, actual: tuple[int, ...]) -> bool:
    """Does an array of `actual` shape fit the contracted one (None = any size)?"""
    if contracted is None:
        return True
    return len(contracted) == len(actual) and all(c is None or c == a for c, a in zip(contracted, actual, strict=True))


def is_probability_output(name: str, contracted: TensorContract | None) -> bool:
    """Whether an output is checked as probabilities: the contract says so, or its name does."""
    if contracted is not None and contracted.probabilities is not None:
        return contracted.probabilities
    return name.lower() in PROBABILITY_NAMES or name.lower().endswith("_probabilities")


def check_signatures(contract: Contract, signatures: dict[str, SignatureInfo]) -> list[Violation]:
    """Every way `signatures` (what the model declares) differs from `contract`."""
    violations: list[Violation] = []
    for name, wanted in contract.signatures.items():
        actual = signatures.get(name)
        if actual is None:
            violations.append(Violation(
                "contract", name, f"missing signature; the model has {sorted(signatures) or 'none'}"
            ))
            continue
        if wanted.method_name and wanted.method_name != actual.method_name:
            violations.append(Violation(
                "contract", f"{name}.method_name",
                f"is {actual.method_name!r}, the contract requires {wanted.method_name!r}",
            ))
        for kind in ("inputs", "outputs"):
            want: dict[str, TensorContract] = getattr(wanted, kind)
            have: dict[str, TensorSpecInfo] = getattr(actual, kind)
            for tensor, spec in want.items():
                where = f"{name}.{kind}.{tensor}"
                got = have.get(tensor)
                if got is None:
                    violations.append(Violation("contract", where, f"missing; the model has {sorted(have)}"))
                    continue
                if got.dtype != spec.dtype:
                    violations.append(Violation(
                        "contract", where, f"dtype is {got.dtype}, the contract requires {spec.dtype}"
                    ))
                if not shape_satisfies(kind, spec.shape, got.shape):
                    violations.append(Violation(
                        "contract", where,
                        f"shape is {shape_text(got.shape)}, the contract requires {shape_text(spec.shape)}",
                    ))
            extra = sorted(set(have) - set(want))
            if extra and (kind == "inputs" or not wanted.allow_extra_outputs):
                hint = "" if kind == "inputs" else " (set allow_extra_outputs: true to allow them)"
                violations.append(Violation(
                    "contract", f"{name}.{kind}", f"not in the contract: {extra}{hint}"
                ))
    return violations


# ----------------------------------------------------------------------------------------------
# Baseline: what a client of the serving model would notice.


@dataclass(frozen=True)
class Change:
    """One difference between the baseline (serving now) and the candidate."""

    where: str
    breaking: bool
    baseline: str | None  # None: not in the baseline (added)
    candidate: str | None  # None: not in the candidate (removed)
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def diff_lines(self) -> list[str]:
        """Unified-diff style: `- where: baseline` / `+ where: candidate`."""
        lines = []
        if self.baseline is not None:
            lines.append(f"- {self.where}: {self.baseline}")
        if self.candidate is not None:
            lines.append(f"+ {self.where}: {self.candidate}")
        return lines


def _describe(spec: TensorSpecInfo) -> str:
    return f"{spec.dtype} {shape_text(spec.shape)}"


def _dim_covers(wide: int | None, narrow: int | None) -> bool:
    return wide is None or wide == narrow


def shape_covers(wide: Shape, narrow: Shape) -> bool:
    """Does every shape allowed by `narrow` fit `wide`? (None rank or dimension = any.)"""
    if wide is None:
        return True
    if narrow is None:
        return False
    return len(wide) == len(narrow) and all(_dim_covers(w, n) for w, n in zip(wide, narrow, strict=True))


def diff_signatures(baseline: dict[str, SignatureInfo], candidate: dict[str, SignatureInfo]) -> list[Change]:
    """Every change from `baseline` to `candidate`, each marked breaking or compatible.

    Breaking: a removed signature, input or output; a changed method or dtype; an input that now
    accepts fewer shapes (narrowed) or is new (every input is required, old clients do not send
    it); an output that may now have shapes the baseline never produced. Compatible: an added
    signature or output, an input that accepts more shapes, an output with a narrower shape.
    """
    changes: list[Change] = []
    for name in sorted(set(baseline) | set(candidate)):
        old, new = baseline.get(name), candidate.get(name)
        if new is None:
            changes.append(Change(name, True, old.method_name, None, "signature removed"))
            continue
        if old is None:
            changes.append(Change(name, False, None, new.method_name, "signature added"))
            continue
        if old.method_name != new.method_name:
            changes.append(Change(f"{name}.method_name", True, old.method_name, new.method_name, "method changed"))
        for kind in ("inputs", "outputs"):
            before, after = getattr(old, kind), getattr(new, kind)
            for tensor in sorted(set(before) | set(after)):
                where = f"{name}.{kind}.{tensor}"
                b, a = before.get(tensor), after.get(tensor)
                if a is None:
                    changes.append(Change(where, True, _describe(b), None, f"{kind[:-1]} removed"))
                elif b is None:
                    breaking = kind == "inputs"
                    reason = "input added (old clients do not send it)" if breaking else "output added"
                    changes.append(Change(where, breaking, None, _describe(a), reason))
                elif a.dtype != b.dtype:
                    changes.append(Change(where, True, _describe(b), _describe(a), "dtype changed"))
                elif a.shape != b.shape:
                    if kind == "inputs":
                        breaking = not shape_covers(a.shape, b.shape)
                        reason = "input shape narrowed" if breaking else "input shape widened"
                    else:
                        breaking = not shape_covers(b.shape, a.shape)
                        reason = "output shape changed" if breaking else "output shape narrowed"
                    changes.append(Change(where, breaking, _describe(b), _describe(a), reason))
    return changes
