#!/usr/bin/env bash
# Create the side environment that the CrabNet benchmark peer (benchmarks/paper/crabnet.py) runs in.
#
# crabnet 2.0.8 (its last release) needs Python < 3.11, so it cannot share skdynemb's environment.
# This script makes a Python 3.10 venv with the exact versions of benchmarks/crabnet-requirements.txt
# (crabnet 2.0.8, torch 1.12.1 run on the CPU, numpy 1.26.4, ...):
#
#   bash scripts/setup-crabnet.sh [ENV_DIR]
#
# ENV_DIR defaults to ${XDG_CACHE_HOME:-~/.cache}/skdynemb/crabnet-2.0.8, where the benchmark looks by
# default (elsewhere: export SKDYNEMB_CRABNET_PYTHON=ENV_DIR/bin/python). Python 3.10 is taken from
# $PYTHON310, else python3.10 on PATH, else pyenv. It downloads about 0.9 GB (torch is 776 MB) and
# takes about a minute; re-running is cheap: it skips the install when the pins have not changed and
# the env still imports crabnet. Benchmark-only: neither the library, its tests' pass nor CI needs it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_find-python.sh

requirements=benchmarks/crabnet-requirements.txt
env_dir=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/skdynemb/crabnet-2.0.8}

check_env() {
    "$env_dir/bin/python" -I -c "import torch, crabnet.crabnet_; from importlib.metadata import version; \
assert version('crabnet') == '2.0.8' and torch.__version__.startswith('1.12.1')" >/dev/null 2>&1
}

stamp="$env_dir/.skdynemb-crabnet-installed"
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && check_env; then
    echo "CrabNet env ready: $env_dir/bin/python"
    exit 0
fi

py=$(find_python 3.10 PYTHON310)
echo "building the CrabNet env in $env_dir with $py (about a minute, 0.9 GB download)"
start=$SECONDS
rm -f "$stamp"
if [ ! -x "$env_dir/bin/python" ]; then
    mkdir -p "$(dirname "$env_dir")"
    "$py" -m venv "$env_dir"
fi
"$env_dir/bin/python" -m pip install --quiet --no-input -r "$requirements"
"$env_dir/bin/python" -m pip check
check_env || {
    echo "setup-crabnet.sh: $env_dir was built but does not import crabnet 2.0.8 with torch 1.12.1" >&2
    exit 1
}
echo "$want" > "$stamp"
echo "CrabNet env ready: $env_dir/bin/python (built in $((SECONDS - start)) s)"
