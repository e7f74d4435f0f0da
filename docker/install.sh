#!/bin/sh
# Install Parley from a source tree into a new virtual environment: build the wheel, install it
# with its dependencies. The container's build step (Dockerfile); tests/test_install.py runs the
# same script. The venv gets no pip of its own: the outer pip installs into it (--python).
# Usage: docker/install.sh SOURCE_DIR VENV_DIR
set -eu
src=$1
venv=$2
wheels=$(mktemp -d)
python3 -m venv --without-pip "$venv"
python3 -m pip wheel --no-deps --wheel-dir "$wheels" "$src"
python3 -m pip --python "$venv/bin/python" install "$wheels"/parley-*.whl
rm -rf "$wheels"
