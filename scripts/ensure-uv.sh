#!/usr/bin/env bash
# Prints the command that runs uv, installing uv from PyPI first when it is missing.
set -euo pipefail
if command -v uv >/dev/null 2>&1; then
  echo uv
  exit 0
fi
if ! python3 -m uv --version >/dev/null 2>&1; then
  echo "installing uv from PyPI" >&2
  python3 -m pip install --quiet --disable-pip-version-check uv >&2
fi
echo "python3 -m uv"
