"""Not built yet: declared so `tfship --help` lists the whole chain."""

from tfship.commands._not_built import add_arguments, main

__all__ = ["add_arguments", "main"]
