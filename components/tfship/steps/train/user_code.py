"""Importing a team's own function named as `package.module:function` (`--model`, `--input`)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from tfship.errors import TfshipError


def import_function(spec: str, flag: str, error: type[TfshipError]) -> Callable[..., Any]:
    """The function `spec` names; `error` (one line naming `flag` and the problem) if there is none.

    Importing runs the module's top-level code: a module that fails at import is reported with
    its exception's type and message, not a traceback.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise error(f"Invalid {flag} {spec!r}: expected 'package.module:function'.")
    try:
        module = importlib.import_module(module_name)
    except Exception as caught:  # ImportError, or the user's module failing at import
        raise error(f"Cannot import {flag} {spec!r}: {type(caught).__name__}: {caught}") from caught
    function = getattr(module, attribute, None)
    if not callable(function):
        raise error(f"Invalid {flag} {spec!r}: module {module_name!r} has no function {attribute!r}.")
    return function
