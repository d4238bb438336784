"""A team's own input pipeline: `tfship train --input package.module:function`.

The function receives an `InputContext` and returns a `tf.data.Dataset` of single examples
`(features, label)`: `features` maps every schema feature to a scalar of the schema's dtype, and
`label` is a scalar of the label's dtype. tfship does the rest, as for its own reader: shuffling
(seeded), repeating, batching, preprocessing, prefetching, and the checkpointed iterator that
makes a resume exact::

    # my_pipelines.py
    import tensorflow as tf
    from tfship.steps.train.data import is_heldout

    def penguins(ctx):  # ctx: tfship.steps.train.input_pipeline.InputContext
        ...
        return tf.data.Dataset.from_tensor_slices((features, labels))

`--data` is still read by tfship's analysis pass (it must be CSV or TFRecord with the schema's
columns): the normalisation statistics, vocabularies, classes, the data fingerprint that guards a
resume, and export's warm-up rows come from it. The function decides how the examples of each
split are produced (its own parsing, filtering, augmentation, joins).

Resume: TensorFlow cannot save the position of an iterator whose pipeline runs Python
(`from_generator`, `py_function`, `numpy_function`). Such a pipeline is checked to be
deterministic (two fresh passes give the same first batches) and is then resumed by re-reading
the stream and skipping the batches already trained on, the way multi-worker runs resume; a
pipeline that is neither saveable nor deterministic is refused, since no resume of it could be
exact.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tfship.errors import ConfigError
from tfship.schema import Schema
from tfship.steps.train.user_code import import_function
from tfship.steps.train.data import split_label

if TYPE_CHECKING:
    import tensorflow as tf

SPLITS = ("train", "heldout")
# Examples compared by `repeats_itself`: enough to catch an unseeded shuffle or random op.
_DETERMINISM_EXAMPLES = 256


@dataclass(frozen=True)
class InputContext:
    """What an `--input` function is given.

    Args:
        schema: the run's schema (features and their dtypes, the label, the task).
        split: `train` (the examples to train on; tfship shuffles and repeats them) or `heldout`
            (the examples evaluated after training, read once in order).
        seed: the run's `--seed`: seed any randomness with it, so that a resume is exact.
        files: the local paths `--data` resolved to (gs:// files already copied), in a stable order.
        holdout_every: tfship's own reader holds out every N-th row of each file
            (`tfship.steps.train.data.is_heldout(index, holdout_every)`); follow it to evaluate on the same rows.
    """

    schema: Schema
    split: str
    seed: int
    files: tuple[str, ...]
    holdout_every: int

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ConfigError(f"Invalid value for `split`: {self.split!r}. Expected one of {', '.join(SPLITS)}.")


def load_input_fn(spec: str) -> Callable[[InputContext], Any]:
    """The function `--input` names (ConfigError, one line, if it cannot be imported)."""
    return import_function(spec, "--input", ConfigError)


def examples(spec: str, context: InputContext) -> tf.data.Dataset:
    """Call the `--input` function and check what it returns against the schema."""
    import tensorflow as tf

    function = load_input_fn(spec)
    try:
        dataset = function(context)
    except Exception as error:  # the team's code failing: their bug, reported as one line
        detail = str(error).splitlines()[0] if str(error) else ""
        raise ConfigError(f"--input {spec!r} failed for split {context.split!r}: {type(error).__name__}: {detail}") from error
    if not isinstance(dataset, tf.data.Dataset):
        raise ConfigError(f"--input {spec!r} returned {type(dataset).__name__}; expected a tf.data.Dataset.")
    check_element_spec(spec, dataset.element_spec, context.schema)
    return dataset


def check_element_spec(spec: str, element_spec: Any, schema: Schema) -> None:
    """Refuse, in one line naming the key, a dataset whose elements are not `(features, label)`
    examples of the schema's dtypes (a pure check of `Dataset.element_spec`)."""
    import tensorflow as tf

    where = f"--input {spec!r}"
    if not (isinstance(element_spec, tuple) and len(element_spec) == 2 and isinstance(element_spec[0], dict)):
        raise ConfigError(
            f"{where} returns elements of {_describe(element_spec)}; expected (features, label): "
            "a dict of feature tensors and a label tensor."
        )
    features, label = element_spec
    missing, extra = sorted(set(schema.features) - set(features)), sorted(set(features) - set(schema.features))
    if missing or extra:
        raise ConfigError(f"{where} returns features {sorted(features)}; the schema's are {sorted(schema.features)} "
                          f"(missing {missing}, not in the schema {extra}).")
    # Raw values, as tfship's own reader yields them: an image as its encoded bytes and text as a
    # string (both decoded in the model's graph), a vector as (n,) floats.
    checks = [(f"feature {name!r}", features[name], schema.raw_dtype(name), schema.raw_shape(name),
               schema.dtype_of(name)) for name in schema.features]
    checks.append((f"the label {schema.label!r}", label, schema.label_dtype, (), schema.label_dtype))
    for what, tensor_spec, dtype, shape, declared in checks:
        says = dtype if declared == dtype else f"{declared}, given as its raw {dtype}"
        if not isinstance(tensor_spec, tf.TensorSpec):
            raise ConfigError(f"{where} returns {what} as {_describe(tensor_spec)}; expected a {dtype} tensor.")
        if tensor_spec.dtype != tf.as_dtype(dtype):
            raise ConfigError(f"{where} returns {what} as {tensor_spec.dtype.name}; the schema says {says}.")
        if tensor_spec.shape != tf.TensorShape(shape):
            raise ConfigError(
                f"{where} returns {what} with shape {tensor_spec.shape}; expected one value per example "
                f"(shape {tuple(shape)}): return unbatched examples, tfship batches them."
            )


def _describe(structure: Any) -> str:
    """A returned structure in a few words: `a tuple of 3`, `a dict`, or the TensorSpec itself."""
    if isinstance(structure, (tuple, list)):
        return f"a {type(structure).__name__} of {len(structure)}"
    return str(structure) if hasattr(structure, "dtype") else f"a {type(structure).__name__}"


def batches(dataset: tf.data.Dataset, schema: Schema, batch_size: int, split: str, seed: int,
            shuffle_buffer: int = 10_000) -> tf.data.Dataset:
    """Examples -> what tfship's own reader yields: batches of (raw feature dict, raw label),
    shuffled and repeated for `train`, features and label cast as the preprocessor takes them."""
    import tensorflow as tf

    if split == "train":
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    dataset = dataset.batch(batch_size, drop_remainder=split == "train")
    return dataset.map(lambda features, label: split_label({**features, schema.label: label}, schema),
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)


def unsaveable_reason(spec: str, dataset: tf.data.Dataset) -> str | None:
    """Why TensorFlow cannot checkpoint an iterator over the `--input` function's training
    `dataset` (None: it can); ConfigError if it yields nothing.

    Tried for real: a fresh iterator reads one element and is saved to a scratch directory.
    TensorFlow refuses pipelines with Python in them (`PyFunc is stateful`).
    """
    import tensorflow as tf

    iterator = iter(dataset)
    if next(iterator, None) is None:
        raise ConfigError(f"--input {spec!r} returned no training examples (split 'train').")
    scratch = tempfile.mkdtemp(prefix="tfship-input-probe-")
    try:
        tf.train.Checkpoint(iterator=iterator).write(f"{scratch}/probe")
    except (tf.errors.FailedPreconditionError, tf.errors.UnimplementedError, tf.errors.InvalidArgumentError) as error:
        return error.message.splitlines()[0].rsplit("}}", 1)[-1].split(" [Op:")[0].strip()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return None


def repeats_itself(make: Callable[[], tf.data.Dataset], count: int = _DETERMINISM_EXAMPLES) -> bool:
    """Whether two datasets made by `make` start with the same `count` elements.

    Two separately made datasets, as a resume makes a new one in a new process (two iterators of
    one dataset differ by design when it reshuffles each iteration, seeded or not).
    """
    import numpy as np
    import tensorflow as tf

    def first() -> list[Any]:
        return [tf.nest.flatten(element) for element in make().take(count).as_numpy_iterator()]

    def same(a: Any, b: Any) -> bool:
        a, b = np.asarray(a), np.asarray(b)  # strings come back as bytes
        return np.array_equal(a, b, equal_nan=a.dtype.kind == "f")

    one, two = first(), first()
    return len(one) == len(two) and all(same(a, b) for x, y in zip(one, two) for a, b in zip(x, y, strict=True))
