"""Errors that tfship reports to a user as one line, and the exit codes they map to.

Every error a user can cause (bad data, a bad flag, a model that will not load) is a subclass
of `TfshipError`; the CLI prints its message as one line and exits with its `exit_code`. An
`OSError` that escapes a step (a path of the wrong kind, an unwritable directory, a full disk)
is the environment's fault, not a verdict: one line naming the path, exit 2. Any other exception
is a bug in tfship: the CLI prints a one-line header naming the traceback file it wrote and exits
`EXIT_INTERNAL_ERROR`, never 1 (1 means "a gate said no").
"""

from __future__ import annotations

# Exit codes are part of the container contract: orchestrators branch on them.
EXIT_OK = 0
EXIT_FAILED_CHECK = 1  # a gate said no: validation failed, canary FAIL
EXIT_BAD_INPUT = 2  # the user's input is wrong: fix it, do not retry
EXIT_INTERNAL_ERROR = 70  # EX_SOFTWARE: a bug in tfship; the traceback is in the file the CLI names
EXIT_PREEMPTED = 143  # SIGTERM: a checkpoint was saved, retry the same run (128 + SIGTERM)


class TfshipError(Exception):
    """Base of the errors caused by the user's input or environment, shown as one line."""

    exit_code: int = EXIT_BAD_INPUT


class ConfigError(TfshipError, ValueError):
    """A flag or configuration field has a value tfship cannot use."""


class SchemaError(TfshipError, ValueError):
    """The schema file is missing, not YAML, or disagrees with the data."""


class DataError(TfshipError, ValueError):
    """The data cannot be read: missing files, empty, malformed rows."""


class ModelError(TfshipError, ValueError):
    """A model cannot be built, imported, loaded or restored."""


class StorageError(TfshipError, OSError):
    """A local path or gs:// object cannot be read or written."""


class Preempted(TfshipError):
    """Training stopped on SIGTERM after saving a checkpoint; re-running the same job resumes it."""

    exit_code = EXIT_PREEMPTED


class RequestError(TfshipError, ValueError):
    """A request does not fit the model's signature (unknown signature, missing or unknown input)."""


class VersionExistsError(TfshipError, ValueError):
    """A model version already exists in the repository with different content."""


class ConcurrentUpdateError(TfshipError, RuntimeError):
    """Another writer kept changing models.config; nothing was lost, re-running the command is safe."""

    exit_code = 75  # EX_TEMPFAIL: retry the same command


class ChecksumMismatchError(StorageError):
    """A stored copy of a file does not match the checksum of the file it was copied from."""


class LabelError(TfshipError, ValueError):
    """A version label cannot be moved: no canary to promote, no previous stable to roll back to."""


class ServingTimeoutError(TfshipError, TimeoutError):
    """The serving target did not report the pushed version AVAILABLE before the deadline."""


class EndpointError(TfshipError, ConnectionError):
    """The serving endpoint is down or refusing, or does not serve the model, version or label asked."""
