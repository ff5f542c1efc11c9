#!/bin/sh
# The one install recipe: the Dockerfile runs it, and tests/test_install_recipe.py runs it too.
# Builds a wheel from SOURCE (not an editable install), installs it into a fresh virtualenv at
# TARGET, and compiles the translations inside the installed package, from outside the source
# tree so nothing but the installed copy can be imported.
#
#   scripts/install.sh TARGET [SOURCE]      (SOURCE defaults to this script's checkout)
#
# PYTHON picks the interpreter that makes the virtualenv (default: python3). pip's own
# configuration (index, find-links, cache) applies as usual.
set -eu

if [ $# -lt 1 ]; then
    echo "usage: $0 TARGET_VENV [SOURCE_DIR]" >&2
    exit 2
fi
target=$1
source_dir=${2:-$(cd "$(dirname "$0")/.." && pwd)}
python=${PYTHON:-python3}

wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT

"$python" -m venv "$target"
# Built from a copy, so the source tree gets no build/ or egg-info droppings.
mkdir "$wheels/src"
tar -C "$source_dir" --exclude=./.venv --exclude=./var --exclude=./.git --exclude=./build \
    --exclude='*.egg-info' --exclude=__pycache__ -cf - . | tar -C "$wheels/src" -xf -
"$target/bin/python" -m pip wheel --quiet --no-deps --wheel-dir "$wheels/dist" "$wheels/src"
"$target/bin/python" -m pip install --quiet "$wheels"/dist/acceso-*.whl
cd /
"$target/bin/python" -c "from portal.translations import compile_catalogs; compile_catalogs()"
"$target/bin/python" -c "import portal, sys; print('acceso installed from', portal.__file__)"
