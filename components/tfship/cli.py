"""`tfship <step> ...`: the container contract.

Each step lives in `tfship.commands.<step>`, a thin module that declares its flags and calls the
step function. They are imported only when their step runs, so `tfship --help` never imports
TensorFlow (about 3 s and 550 MB).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import traceback
from collections.abc import Sequence

from tfship import native_log
from tfship.errors import EXIT_BAD_INPUT, EXIT_INTERNAL_ERROR, TfshipError

# name -> one-line help. Order is the order of the chain; helpers after the steps.
COMMANDS: dict[str, str] = {
    "train": "train a model with checkpoints that survive preemption",
    "export": "export the latest checkpoint as a versioned SavedModel",
    "inspect": "print a SavedModel's signatures",
    "validate": "check a SavedModel against a signature contract and the serving baseline",
    "push": "publish a SavedModel into a TF Serving model repository",
    "promote": "move the `stable` label to the canary version",
    "rollback": "move the `stable` label back to the previous stable version",
    "history": "print a model's label history: every label move, who made it and why",
    "serve": "serve a model repository over TF Serving's gRPC and REST API",
    "canary": "compare a candidate with the stable version and decide",
    "rollout": "move traffic to the candidate in steps, judged live, rolled back on FAIL",
    "run": "run the whole chain locally: train, export, validate, push, serve, canary",
    "validate-config": "check a tfship.yaml (the model's chain, schedule, images and GPU placement)",
    "compile": "compile a tfship.yaml's Kubeflow pipeline (and its step component specs)",
    "init": "write a team's project: model, schema, contract, tfship.yaml, DAG, pipeline, tests",
}


def _command_module(name: str):
    return importlib.import_module(f"tfship.commands.{name.replace('-', '_')}")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for `tfship`; with `command`, only that sub-command's flags are declared."""
    parser = argparse.ArgumentParser(
        prog="tfship",
        description="Ship TensorFlow models: train -> export -> validate -> push -> canary.",
    )
    sub = parser.add_subparsers(dest="command", metavar="<step>", required=True)
    for name, help_text in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            _command_module(name).add_arguments(sub_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, run one step, and turn user errors into one line and an exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # TensorFlow's C++ INFO/WARNING lines drown the step's own output; errors still show.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in COMMANDS:
        command = None
    args = build_parser(command).parse_args(argv)
    try:
        return int(_command_module(args.command).main(args) or 0)
    except TfshipError as error:
        print(f"tfship {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"tfship {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as error:
        # The environment, not a verdict: a path of the wrong kind, no permission, a full disk.
        print(f"tfship {args.command}: error: {_os_error_line(error)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as error:  # a bug in tfship: never dressed as a verdict (exit 1)
        where = _write_traceback(args.command)
        print(f"tfship {args.command}: internal error (a bug in tfship, exit {EXIT_INTERNAL_ERROR}): "
              f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''} - traceback: {where}",
              file=sys.stderr)
        return EXIT_INTERNAL_ERROR


def _os_error_line(error: OSError) -> str:
    """`Cannot use PATH: Permission denied` when the error names its path, else its own text."""
    if error.filename is None:
        return f"{type(error).__name__}: {error}"
    paths = " -> ".join(str(p) for p in (error.filename, error.filename2) if p is not None)
    return f"Cannot use {paths}: {error.strerror or error} ({type(error).__name__})."


def _write_traceback(command: str) -> str:
    """Write the current exception's traceback to a file; its path (or stderr if none can be written)."""
    text = traceback.format_exc()
    try:
        fd, path = tempfile.mkstemp(prefix=f"tfship-{command}-", suffix=".traceback.txt")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError:
        sys.stderr.write(text)
        return "printed above"
    return path


def entrypoint() -> None:
    """The `tfship` console script (the images' ENTRYPOINT): `main` with TensorFlow's known start-up
    noise kept off the terminal. In-process callers (notebooks, KFP components) call `main`."""
    native_log.filter_stderr()
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()
