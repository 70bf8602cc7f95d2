#!/usr/bin/env bash
# Create .venv (Python 3.11) and install skdynemb with every extra, at the exact versions CI tests
# (constraints.txt). Re-running is cheap: it skips the install when neither file has changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.skdynemb-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -c constraints.txt -e ".[dev]"
    echo "$want" > "$stamp"
fi
# ALIGNN-FF weights (PyPI wheel alignn==2023.6.20, sha256-pinned, not installed) into the skdynemb cache
.venv/bin/python -m skdynemb.backbones.alignn >/dev/null || echo "setup.sh: ALIGNN-FF weights not fetched (offline?); the alignn-ff backbones will say how to get them" >&2
