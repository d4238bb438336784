"""Reading the training data: file resolution, one validating analysis pass, and tf.data input.

Data are CSV files (a header row naming the columns) or TFRecord files of tf.Example, given as
a path, a directory or a glob, local or gs:// (gs:// files are copied to a local cache first:
TensorFlow's own gs:// filesystem cannot be pointed at an emulator, so it could not be tested).

`analyze` streams every training row once, in constant memory, to learn what the model's
preprocessing needs (means and deviations, vocabularies of categories and of text tokens, the
label's classes) and to reject bad rows with the file, line and column named (an image that does
not decode or has the wrong number of channels included). Raw image values are the encoded
bytes: a TFRecord bytes feature, or the file a CSV cell names relative to the CSV's folder. The tf.data pipeline then reads rows that are known
to parse. Every `holdout_every`-th row of each file is held out for evaluation.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tfship import storage
from tfship.errors import DataError
from tfship.schema import IMAGE, TEXT, Schema
from tfship.text import utf8_lines

if TYPE_CHECKING:
    import tensorflow as tf

CSV_SUFFIXES = (".csv",)
TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfr")


@dataclass(frozen=True)
class DataFiles:
    """Local files of one format, in a stable order."""

    format: str  # "csv" or "tfrecord"
    paths: tuple[str, ...]


@dataclass
class FeatureStats:
    """What `analyze` learned from the training split; stored in the job directory."""

    train_rows: int = 0
    heldout_rows: int = 0
    means: dict[str, float] = field(default_factory=dict)
    stddevs: dict[str, float] = field(default_factory=dict)
    vocabularies: dict[str, list[str]] = field(default_factory=dict)
    classes: list[str] | None = None
    fingerprint: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, mapping: dict[str, Any]) -> FeatureStats:
        return cls(**mapping)


def resolve_files(data: str, cache_dir: str | None = None, schema: Schema | None = None) -> DataFiles:
    """Expand `data` (file, directory or glob; local or gs://) into local files of one format.

    gs:// files are mirrored into the local cache; with a `schema` that has image features, so are
    the image files its CSV rows name (relative to each CSV, as for local data), so the tf.data
    pipeline reads them from local disk like any local CSV's images.
    """
    storage.check_uri(data, "--data")
    paths = storage.glob(data)
    if not paths:
        raise DataError(f"No data files match --data {data!r}.")
    formats = {_format_of(p) for p in paths}
    if None in formats:
        unknown = next(p for p in paths if _format_of(p) is None)
        raise DataError(
            f"Cannot tell the format of {unknown!r}: expected a name ending in "
            f"{', '.join(CSV_SUFFIXES + TFRECORD_SUFFIXES)}."
        )
    if len(formats) > 1:
        raise DataError(f"--data {data!r} mixes CSV and TFRecord files; use one format.")
    data_format = formats.pop()
    if storage.is_gcs(data):
        cache = cache_dir or storage.local_cache_dir(data, "data")
        local = []
        for uri in paths:
            bucket, name = storage.split_gcs(uri)
            target = os.path.join(cache, bucket, name)
            if not os.path.exists(target):
                storage.download_file(uri, target)
            if data_format == "csv" and schema is not None and schema.image_features:
                _mirror_csv_images(uri, target, schema.image_features)
            local.append(target)
        paths = local
    return DataFiles(format=data_format, paths=tuple(paths))


def _mirror_csv_images(csv_uri: str, local_csv: str, columns: list[str]) -> None:
    """Download the images the rows of the mirrored CSV `local_csv` name (relative to `csv_uri`'s
    folder) to the same place relative to the local copy; files already there are kept.

    A cell that names no file, or a row too short for its header, is left to the analysis pass,
    which names its line and column; an object that does not exist is a StorageError naming it.
    """
    with _open_data(local_csv) as handle:
        reader = _csv_reader(handle, local_csv)
        header = next(reader, [])
        positions = [header.index(column) for column in columns if column in header]
        names = {fields[i] for fields in reader for i in positions if i < len(fields) and fields[i]}
    folder = os.path.dirname(local_csv)
    missing = sorted(name for name in names if not os.path.exists(os.path.join(folder, name)))
    if missing:
        storage.download_tree(csv_uri.rsplit("/", 1)[0], folder, missing)


def _format_of(path: str) -> str | None:
    lower = path.lower()
    if lower.endswith(CSV_SUFFIXES):
        return "csv"
    if lower.endswith(TFRECORD_SUFFIXES):
        return "tfrecord"
    return None


def is_heldout(row_index: int, holdout_every: int) -> bool:
    """Row `row_index` (0-based, per file) is held out for evaluation."""
    return row_index % holdout_every == holdout_every - 1


class _Welford:
    """Running mean and variance in constant memory, ignoring missing values."""

    def __init__(self) -> None:
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, value: float) -> None:
        if math.isnan(value):
            return
        self.count += 1
        delta = value - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (value - self.mean)

    @property
    def stddev(self) -> float:
        return math.sqrt(self.m2 / self.count) if self.count else 0.0


def analyze(files: DataFiles, schema: Schema, holdout_every: int, max_vocab: int = 10_000) -> FeatureStats:
    """Validate every row and learn normalisation statistics and vocabularies from the training rows.

    Text features are tokenised in batches with the graph's own tokenizer (`tfship.steps.train.media`), so
    the vocabulary holds exactly the tokens the model will look up.
    """
    numeric = {name: _Welford() for name in schema.numeric_features}
    counts: dict[str, Counter[str]] = {name: Counter() for name in schema.categorical_features}
    token_counts: dict[str, Counter[str]] = {name: Counter() for name in schema.text_features}
    pending_texts: dict[str, list[str]] = {name: [] for name in schema.text_features}
    label_counts: Counter[str] = Counter()
    digest = hashlib.sha256()
    stats = FeatureStats()
    reader = _csv_rows if files.format == "csv" else _tfrecord_rows
    if files.format == "csv":
        _check_same_header(files.paths)
        if schema.vector_features:
            raise DataError(f"Vector feature(s) {schema.vector_features} need TFRecord data (a float_list of "
                            f"{schema.shape_of(schema.vector_features[0])[0]} values); CSV holds one value per cell.")
    for path in files.paths:
        digest.update(os.path.basename(path).encode())
        for index, row in enumerate(reader(path, schema, digest)):
            if is_heldout(index, holdout_every):
                stats.heldout_rows += 1
                continue
            stats.train_rows += 1
            for name, accumulator in numeric.items():
                accumulator.add(row[name])
            for name, counter in counts.items():
                if row[name] not in schema.na_values and row[name] != "":
                    counter[row[name]] += 1
            for name, texts in pending_texts.items():
                texts.append(row[name])
                if len(texts) >= _TOKENIZE_BATCH:
                    _count_tokens(texts, token_counts[name])
            if schema.task == "classification":
                label_counts[class_name(row[schema.label])] += 1
    if stats.train_rows == 0:
        raise DataError(
            f"The data ({', '.join(files.paths)}) has no training rows "
            f"({stats.heldout_rows} held-out row(s) only)."
        )
    for name, accumulator in numeric.items():
        if not (math.isfinite(accumulator.mean) and math.isfinite(accumulator.stddev)):
            raise DataError(
                f"Column {name!r}: its values are too large to normalise (mean {accumulator.mean}, "
                f"standard deviation {accumulator.stddev} in float64); rescale the column."
            )
        stats.means[name] = accumulator.mean
        stats.stddevs[name] = accumulator.stddev or 1.0
    for name, counter in counts.items():
        stats.vocabularies[name] = _ranked(counter, max_vocab)
    for name, counter in token_counts.items():
        _count_tokens(pending_texts[name], counter)
        if not counter:
            raise DataError(f"Text feature {name!r} holds no words in the {stats.train_rows} training row(s) of "
                            f"{', '.join(files.paths)}: nothing to learn a vocabulary from.")
        stats.vocabularies[name] = _ranked(counter, schema.options[name]["max_tokens"])
    if schema.task == "classification":
        stats.classes = sorted(label_counts)
        if len(stats.classes) < 2:
            raise DataError(f"Label {schema.label!r} has {len(stats.classes)} class(es); need at least 2.")
    stats.fingerprint = digest.hexdigest()
    return stats


# Texts tokenised per TensorFlow call in the analysis pass (memory stays constant).
_TOKENIZE_BATCH = 1024


def _count_tokens(texts: list[str], counter: Counter[str]) -> None:
    from tfship.steps.train.media import count_tokens

    count_tokens(texts, counter)
    texts.clear()


def _ranked(counter: Counter[str], limit: int) -> list[str]:
    """The `limit` most frequent values, ties by value, so the vocabulary is the same on every run."""
    ranked = sorted(counter.items(), key=lambda item: (-item[1], item[0]))
    return [value for value, _ in ranked[:limit]]


def _open_data(path: str) -> Any:
    """A data file opened in binary (lines are decoded one by one by `_csv_reader`)."""
    try:
        return open(path, "rb")
    except OSError as error:
        raise DataError(f"Cannot open data file {path}: {error.strerror}") from error


def _csv_reader(handle: Any, path: str) -> Any:
    """A csv.reader over UTF-8 lines (a BOM dropped); a line that is not UTF-8 is a DataError."""
    return csv.reader(utf8_lines(handle, path, DataError))


def read_header(path: str) -> list[str] | None:
    """The column names in the first line of a CSV file (None if the file is empty)."""
    with _open_data(path) as handle:
        try:
            return next(_csv_reader(handle, path), None)
        except csv.Error as error:
            raise DataError(f"{path}:1: the header is not valid CSV ({error}).") from None


def _check_same_header(paths: tuple[str, ...]) -> None:
    """The tf.data reader decodes every file with the first file's column positions."""
    headers = {path: read_header(path) for path in paths}
    first = paths[0]
    for path, header in headers.items():
        if header is not None and headers[first] is not None and header != headers[first]:
            raise DataError(f"{path}: its header {header} differs from {first}'s {headers[first]}.")


def class_name(value: Any) -> str:
    """A classification label as its class name: strings as they are, integers without '.0'."""
    return value if isinstance(value, str) else str(int(value))


def _parse_number(text: str, schema: Schema, where: str, column: str) -> float:
    """A numeric cell; `na_values` -> NaN (missing). inf/nan otherwise are refused: normalisation
    statistics would become NaN and silently zero the feature for every row."""
    if text in schema.na_values:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{where}: column {column!r}: {text!r} is not a number.") from None
    if not math.isfinite(value):
        raise DataError(
            f"{where}: column {column!r}: {text!r} is not a finite number "
            "(list it under the schema's `na_values` to read it as missing)."
        )
    return value


def _csv_rows(path: str, schema: Schema, digest: Any):
    """Yield each data row of a CSV file as {column: value}, validating as it goes."""
    with _open_data(path) as handle:
        reader = _csv_reader(handle, path)
        try:
            yield from _csv_records(reader, path, schema, digest)
        except csv.Error as error:  # a field over csv.field_size_limit(), a NUL byte, ...
            raise DataError(f"{path}:{reader.line_num}: not valid CSV ({error}).") from None


def _csv_records(reader: Any, path: str, schema: Schema, digest: Any):
    """The rows of `_csv_rows`, from a reader positioned at the header."""
    header = next(reader, None)
    if header is None:
        raise DataError(f"{path} is empty: expected a header row naming the columns.")
    digest.update(",".join(header).encode())
    missing = [c for c in schema.columns if c not in header]
    if missing:
        raise DataError(
            f"{path}: the schema names column(s) {missing} that the header does not have "
            f"(header: {header})."
        )
    positions = {column: header.index(column) for column in schema.columns}
    images = {name: schema.shape_of(name)[2] for name in schema.image_features}
    line = reader.line_num
    for fields in reader:
        where = f"{path}:{reader.line_num}"
        if reader.line_num != line + 1:
            raise DataError(f"{where}: a quoted field spans lines; tfship reads one row per line.")
        line = reader.line_num
        if len(fields) != len(header):
            raise DataError(f"{where}: expected {len(header)} fields as in the header, found {len(fields)}.")
        digest.update("\x1f".join(fields).encode())
        row: dict[str, Any] = {}
        for column, position in positions.items():
            text = fields[position]
            dtype = schema.dtype_of(column)
            if column == schema.label and text in schema.na_values:
                raise DataError(f"{where}: the label {column!r} is missing ({text!r}).")
            if column in images:
                row[column] = _csv_image(path, text, images[column], f"{where}: column {column!r}")
            elif dtype in ("string", "text"):
                row[column] = text
            else:
                row[column] = _parse_number(text, schema, where, column)
        yield row


def _csv_image(csv_path: str, relative: str, channels: int, where: str) -> bytes:
    """The bytes of the image file a CSV cell names (relative to the CSV's folder), checked."""
    from tfship.steps.train.media import check_image

    if not relative:
        raise DataError(f"{where}: no image file named.")
    image_path = os.path.join(os.path.dirname(csv_path), relative)
    try:
        with open(image_path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise DataError(f"{where}: cannot read image {image_path}: {error.strerror}.") from None
    check_image(data, channels, f"{where} ({image_path})")
    return data


def _tfrecord_rows(path: str, schema: Schema, digest: Any):
    """Yield each tf.Example of a TFRecord file as {column: value}, validating as it goes."""
    import tensorflow as tf

    from tfship.steps.train.media import check_image

    try:
        records = tf.data.TFRecordDataset(path).as_numpy_iterator()
        for index, serialized in enumerate(records):
            digest.update(serialized)
            example = tf.train.Example.FromString(serialized)
            row: dict[str, Any] = {}
            for column in schema.columns:
                where = f"{path}: record {index}"
                feature = example.features.feature.get(column)
                if feature is None:
                    raise DataError(f"{where}: has no feature {column!r}.")
                kind = feature.WhichOneof("kind")
                values = list(getattr(feature, kind).value) if kind else []
                dtype = schema.dtype_of(column)
                where = f"{where}: feature {column!r}"
                if dtype in (IMAGE, TEXT, "string"):
                    if kind != "bytes_list" or len(values) != 1:
                        raise DataError(f"{where} is {len(values)} {kind}; expected one bytes_list value.")
                    if dtype == IMAGE:
                        check_image(values[0], schema.shape_of(column)[2], where)
                        row[column] = values[0]
                    else:
                        row[column] = values[0].decode("utf-8")
                    continue
                wanted = schema.shape_of(column)[0] if column in schema.vector_features else 1
                if kind == "bytes_list" or len(values) != wanted:
                    raise DataError(f"{where} has {len(values)} {kind} value(s); expected {wanted} number(s).")
                infinite = [v for v in values if math.isinf(v)]  # NaN is how a tf.Example marks a missing number
                if infinite:
                    raise DataError(f"{where} is {infinite[0]}, not a finite number.")
                row[column] = [float(v) for v in values] if column in schema.vector_features else float(values[0])
            yield row
    except tf.errors.OpError as error:
        raise DataError(f"{path}: not a readable TFRecord file ({error.message.splitlines()[0]}).") from error


def make_dataset(
    files: DataFiles,
    schema: Schema,
    batch_size: int,
    holdout_every: int,
    split: str,
    seed: int,
    shuffle_buffer: int = 10_000,
) -> tf.data.Dataset:
    """Batches of (raw feature dict, raw label) for the `train` split (shuffled, repeated) or `heldout`.

    Streams from disk: memory depends on the shuffle buffer and batch, not on the number of rows.
    Files are read in parallel (interleave), parsing is vectorised per batch, and batches are
    prefetched. Everything is deterministic for a given seed, and the iterator is checkpointable.
    """
    import tensorflow as tf

    columns = schema.columns
    autotune = tf.data.AUTOTUNE
    keep_heldout = split == "heldout"

    def select(index: tf.Tensor, row: Any) -> tf.Tensor:
        held = tf.equal(index % holdout_every, holdout_every - 1)
        return held if keep_heldout else tf.logical_not(held)

    def read_file(path: tf.Tensor) -> tf.data.Dataset:
        # TextLineDataset, not CsvDataset: CsvDataset's checkpointed position does not restore
        # exactly, which would break exact resume. Rows are decoded per batch with decode_csv.
        if files.format == "csv":
            # Each line travels with its file's folder: image cells are paths relative to it.
            folder = tf.strings.regex_replace(path, "[^/]*$", "")
            rows = tf.data.TextLineDataset(path).skip(1)
            return rows.enumerate().filter(select).map(lambda index, row: (row, folder))
        rows = tf.data.TFRecordDataset(path)
        return rows.enumerate().filter(select).map(lambda index, row: row)

    if files.format == "csv":
        header = read_header(files.paths[0]) or []
        # decode_csv returns selected columns in file order; remember where each one lands.
        select_cols = sorted(header.index(c) for c in columns)
        order = [select_cols.index(header.index(c)) for c in columns]

    paths = tf.data.Dataset.from_tensor_slices(list(files.paths))
    rows = paths.interleave(
        read_file, cycle_length=min(4, len(files.paths)), num_parallel_calls=autotune, deterministic=True
    )
    if split == "train":
        rows = rows.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    rows = rows.batch(batch_size, drop_remainder=split == "train")

    def parse_csv(lines: tf.Tensor, folders: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        fields = tf.io.decode_csv(lines, record_defaults=[""] * len(select_cols), select_cols=select_cols)
        values = {column: fields[order[i]] for i, column in enumerate(columns)}
        for name in schema.image_features:  # the file's bytes for its path (validated by `analyze`)
            values[name] = tf.map_fn(tf.io.read_file, folders + values[name], fn_output_signature=tf.string)
        return _typed(values, schema)

    def parse_examples(serialized: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        spec = {c: tf.io.FixedLenFeature(list(schema.raw_shape(c)), _parse_dtype(schema.raw_dtype(c))) for c in columns}
        parsed = tf.io.parse_example(serialized, spec)
        typed = {c: v if v.dtype == tf.string else tf.cast(v, tf.float64) for c, v in parsed.items()}
        return split_label(typed, schema)

    parse = parse_csv if files.format == "csv" else parse_examples
    return rows.map(parse, num_parallel_calls=autotune, deterministic=True).prefetch(autotune)


def _parse_dtype(dtype: str) -> Any:
    import tensorflow as tf

    if dtype == "string":
        return tf.string
    return tf.int64 if dtype.startswith("int") else tf.float32


def _typed(values: dict[str, tf.Tensor], schema: Schema) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
    """CSV string cells -> numbers where the schema says so; missing numeric cells -> NaN."""
    import tensorflow as tf

    typed: dict[str, tf.Tensor] = {}
    for column, text in values.items():
        dtype = schema.raw_dtype(column)
        if dtype == "string":
            typed[column] = text
            continue
        missing = tf.zeros_like(text, dtype=tf.bool)
        for na in schema.na_values:
            missing = tf.logical_or(missing, tf.equal(text, na))
        number = tf.strings.to_number(tf.where(missing, "0", text), tf.float64)
        typed[column] = tf.where(missing, tf.constant(math.nan, tf.float64), number)
    return split_label(typed, schema)


def split_label(typed: dict[str, tf.Tensor], schema: Schema) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
    """Features cast to what the preprocessor takes; the label as a class name or a float."""
    import tensorflow as tf

    label = typed.pop(schema.label)
    if schema.task == "classification" and label.dtype != tf.string:
        label = tf.strings.as_string(tf.cast(label, tf.int64))
    elif schema.task == "regression":
        label = tf.cast(label, tf.float32)
    features = {name: _cast(typed[name], schema.raw_dtype(name)) for name in schema.features}
    return features, label


def _cast(tensor: tf.Tensor, dtype: str) -> tf.Tensor:
    """Numeric features enter the preprocessor as float32 (integers too: missing cells are NaN)."""
    import tensorflow as tf

    return tensor if dtype == "string" else tf.cast(tensor, tf.float32)


def read_rows(files: DataFiles, schema: Schema, holdout_every: int, split: str, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` parsed rows of one split ("train" or "heldout"), in file order."""
    reader = _csv_rows if files.format == "csv" else _tfrecord_rows
    rows: list[dict[str, Any]] = []
    for path in files.paths:
        for index, row in enumerate(reader(path, schema, hashlib.sha256())):
            if is_heldout(index, holdout_every) == (split == "heldout"):
                rows.append(row)
                if len(rows) >= limit:
                    return rows
    return rows
