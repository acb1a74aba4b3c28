#!/bin/sh
# Installs mcsdns from this source tree, with its dependencies, into a new
# virtualenv VENV that holds no pip. The image's build stage runs this (see
# Dockerfile), and so does tests/test_install.py, so the tested install is the
# shipped one.
#
#   scripts/install-image.sh VENV      (PYTHON: interpreter, default python3)
set -eu
venv="${1:?usage: scripts/install-image.sh VENV}"
python="${PYTHON:-python3}"
cd "$(dirname "$0")/.."
"$python" -m venv --without-pip "$venv"
# pip from the build interpreter installs into the venv (pip >= 22.3), builds
# the wheel of ./ in isolation and compiles the bytecode (the root filesystem is
# read-only at run time).
"$python" -m pip --python "$venv/bin/python" install --quiet --disable-pip-version-check .
"$venv/bin/mcsdns" --version
