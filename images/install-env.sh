#!/bin/sh
# Install one locked environment: the same command builds the developer venvs (Makefile), the image
# environments (Dockerfile.cpu, Dockerfile.gpu) and the image environment the tests rebuild
# (tests/test_image_env.py), so what runs on a cluster is what the tests ran.
#
#   images/install-env.sh LOCK VENV [--editable]
#
# LOCK is a file under locks/ (exact versions with hashes); VENV is created when absent. Packages
# not in the lock are removed, then tfship itself is installed from this checkout without
# dependencies and without build isolation (its build backend is in the lock too). Nothing is
# resolved here: a package missing from the lock fails the install instead of being fetched.
# Environment: UV (the uv command, from locks/tools.txt), PYTHON (the interpreter, default python3.11).
set -eu
lock=$1
venv=$2
editable=${3:-}
uv=${UV:-uv}
export UV_PYTHON_DOWNLOADS=never
if [ ! -x "$venv/bin/python" ]; then
    "$uv" venv --quiet --python "${PYTHON:-python3.11}" "$venv"
fi
"$uv" pip sync --quiet --python "$venv/bin/python" --require-hashes "$lock"
if [ "$editable" = "--editable" ]; then
    "$uv" pip install --quiet --python "$venv/bin/python" --no-deps --no-build-isolation --editable .
else
    "$uv" pip install --quiet --python "$venv/bin/python" --no-deps --no-build-isolation --reinstall-package tfship .
fi
echo "installed $lock into $venv, exactly these versions:"
"$uv" pip freeze --quiet --python "$venv/bin/python" --exclude-editable | paste -sd ' ' | fold -s -w 100
