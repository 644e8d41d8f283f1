#!/usr/bin/env bash
# Install Conveyor's dependencies into .venv from uv.lock (project + dev group).
#
# Uses the `uv` on PATH when it works; otherwise installs uv into .tools/ with pip. Takes the
# Python that .python-version names, or else the newest Python >= 3.12 it can find: uv is
# never allowed to download an interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
export UV_PYTHON_DOWNLOADS=never

find_uv() {
    # A pyenv shim for a uv installed in another Python version is on PATH but fails.
    if command -v uv >/dev/null 2>&1 && uv --version >/dev/null 2>&1; then
        echo uv
    elif [ -x .tools/bin/uv ] && .tools/bin/uv --version >/dev/null 2>&1; then
        echo .tools/bin/uv
    else
        echo "Installing uv into .tools/ ..." >&2
        python3 -m venv .tools >&2
        .tools/bin/pip install --quiet uv >&2
        echo .tools/bin/uv
    fi
}

find_python() {
    # Prints the first Python >= 3.12, newest first, from PATH or pyenv's versions.
    local pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}" candidate
    for candidate in \
        python3.14 python3.13 python3.12 python3 \
        $(ls -d "$pyenv_root"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV); do
        if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

uv=$(find_uv)
if "$uv" python find "$(cat .python-version)" >/dev/null 2>&1; then
    exec "$uv" sync --frozen
fi
if ! python=$(find_python); then
    echo "Conveyor needs Python 3.12 or newer (3.13 preferred); none was found." >&2
    exit 1
fi
echo "Python $(cat .python-version) not found; using $python" >&2
exec "$uv" sync --frozen --python "$python"
