"""The SavedModel format, one home: recognise, load and run it as TF Serving does, inspect it.

Modules: `files` (recognise a servable SavedModel from its files, no TensorFlow), `loader` (load
with TF Serving's tag and run its signatures, as TF Serving's loader does), `signature_inputs`
(rows of raw values -> the tensors and tf.Examples a signature takes), `warmup` (the
`assets.extra/tf_serving_warmup_requests` records), `inspect` (`tfship inspect`).
"""
