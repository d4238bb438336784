"""TF Serving's own names, stated once: what tfship's SavedModels, server, canary and models.config
must spell exactly as TF Serving does (no TensorFlow import: the CLI and the DAG file read these).
"""

from __future__ import annotations

import re

SERVE_TAG = "serve"  # the MetaGraph tag TF Serving loads
SERVING_DEFAULT = "serving_default"  # the signature a request without `signature_name` calls
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
# A model is reached as /v1/models/<name>: one path segment. Dots and dashes are fine, but not
# first (hidden directories); `..` is refused separately.
MODEL_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
