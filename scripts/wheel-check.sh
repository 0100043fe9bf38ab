#!/usr/bin/env bash
# Installs Axis from a wheel into a fresh virtual environment, as a user would (not editable),
# and runs its commands from there: a package left out of pyproject.toml shows here, where an
# editable install (make's) would still find it in the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
work="$(mktemp -d -t axis-wheel-XXXXXX)"
trap 'rm -rf "$work"' EXIT
# Built from a copy of the sources: setuptools reuses a build/ folder it finds in the tree,
# which would carry modules an earlier build saw into this wheel.
mkdir "$work/source"
tar --exclude='./.*' --exclude=./build --exclude=./dist --exclude='*.egg-info' \
    --exclude=__pycache__ --exclude='./demo-*' --exclude=./axis-data -cf - . | tar -xf - -C "$work/source"
"$PYTHON" -m pip wheel --no-deps -q -w "$work/dist" "$work/source"
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --upgrade pip
"$work/venv/bin/python" -m pip install -q "$work"/dist/axis_hub-*.whl
cd "$work"  # away from the checkout, so that nothing is imported from it
venv="$work/venv/bin"
"$venv/axis" --version
"$venv/axis-node" --help >/dev/null
"$venv/axis" bench --help >/dev/null
summary="$("$venv/axis" simulate --agencies 4 --documents 20 --json)"
echo "$summary"
"$venv/python" -c 'import json, sys; s = json.loads(sys.argv[1]); sys.exit(s["lost"] != 0 or s["documents_accepted"] != 20)' "$summary"
echo "wheel check: OK"
