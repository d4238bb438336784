"""One module per CLI step: `add_arguments(parser)` declares its flags, `main(args)` runs it.

These modules stay thin: they turn flags into the step's config object and call the step
function that a notebook would call. They import TensorFlow only inside `main`.
"""
