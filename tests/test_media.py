"""Image, text and vector features through the chain: schema, data, training, export, validate.

Real TensorFlow on tiny data: 8x8 PNG digits written by the test, short texts, 4-wide vectors.
"""

from __future__ import annotations

import pytest

from tfship.errors import SchemaError
from tfship.schema import Schema, load_schema


def write(path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_image_text_and_vector_features_round_trip(tmp_path) -> None:
    schema = load_schema(write(tmp_path / "s.yaml", (
        "task: classification\nlabel: y\nfeatures:\n"
        "  image: {dtype: image, shape: [28, 28, 1]}\n"
        "  review: {dtype: text, max_tokens: 20000, sequence_length: 128}\n"
        "  embedding: {dtype: float32, shape: [16]}\n"
        "  notes: text\n"
        "  x: float32\n")))
    assert schema.image_features == ["image"] and schema.text_features == ["review", "notes"]
    assert schema.vector_features == ["embedding"] and schema.numeric_features == ["x"]
    assert schema.shape_of("image") == (28, 28, 1) and schema.raw_shape("embedding") == (16,)
    assert schema.raw_dtypes == {"image": "string", "review": "string", "embedding": "float32",
                                 "notes": "string", "x": "float32"}
    assert schema.options["notes"] == {"max_tokens": 20000, "sequence_length": 128}  # the defaults
    assert Schema.from_dict(schema.to_dict()) == schema  # what the job file records


@pytest.mark.parametrize(
    "feature, message",
    [
        ("image", r"Image feature 'f' needs a shape"),
        ("{dtype: image}", r"Feature 'f': invalid `shape`: None\. Expected \[height, width, channels\]"),
        ("{dtype: image, shape: [8, 8, 2]}", r"The channels \(last\) must be 1 \(grayscale\), 3 \(RGB\) or 4"),
        ("{dtype: image, shape: [8, 0, 1]}", r"invalid `shape`: \[8, 0, 1\]"),
        ("{dtype: float32, shape: [4, 4]}", r"invalid `shape`: \[4, 4\]\. Expected \[n\]"),
        ("{dtype: text, max_tokens: 0}", r"Feature 'f': invalid `max_tokens`: 0\. Expected an integer >= 1"),
        ("{dtype: text, sequence_length: many}", r"invalid `sequence_length`: 'many'"),
        ("{dtype: text, shape: [3]}", r"unknown key\(s\) \['shape'\] for dtype text"),
        ("{dtype: string, shape: [3]}", r"Feature 'f' of dtype 'string' takes no settings"),
        ("{shape: [3]}", r"feature 'f': a mapping needs a `dtype` key"),
        ("{dtype: audio}", r"Invalid dtype for feature 'f': 'audio'"),
    ],
)
def test_bad_media_feature_is_one_line_naming_the_feature(tmp_path, feature: str, message: str) -> None:
    path = write(tmp_path / "s.yaml", f"task: classification\nlabel: y\nfeatures:\n  f: {feature}\n")
    with pytest.raises(SchemaError, match=message) as caught:
        load_schema(path)
    assert "\n" not in str(caught.value) and str(caught.value).startswith(f"schema {path}: ")
