#!/usr/bin/env bash
# Create the side environment that AutoSklearnRegressor runs auto-sklearn in.
#
# auto-sklearn 0.15.0 (its last release) builds only on Python <= 3.9 and needs scikit-learn 0.24,
# so it cannot share skdynemb's environment. This script makes a Python 3.9 venv with it:
#
#   bash scripts/setup-autosklearn.sh [ENV_DIR]
#
# ENV_DIR defaults to ${XDG_CACHE_HOME:-~/.cache}/skdynemb/autosklearn-0.15.0, where
# AutoSklearnRegressor looks by default (elsewhere: export SKDYNEMB_AUTOSKLEARN_PYTHON=ENV_DIR/bin/python).
# Python 3.9 is taken from $PYTHON39, else python3.9 on PATH, else pyenv. The install takes about
# 5 minutes; re-running is cheap: it skips the install when the pins below have not changed and
# the env still imports auto-sklearn.
set -euo pipefail

# numpy 1.24+ breaks scikit-learn 0.24's compiled modules; scipy 1.11+ returns scalars from
# stats.mode, which crashes scikit-learn 0.24's most-frequent imputation (a configuration
# auto-sklearn tries).
PINS=("auto-sklearn==0.15.0" "numpy<1.24" "scipy<1.11")

env_dir=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/skdynemb/autosklearn-0.15.0}

source "$(dirname "$0")/_find-python.sh"

check_env() {
    "$env_dir/bin/python" -c "import numpy, autosklearn.regression; assert autosklearn.__version__ == '0.15.0'" \
        >/dev/null 2>&1
}

stamp="$env_dir/.skdynemb-autosklearn-installed"
want=$(printf '%s\n' "${PINS[@]}" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && check_env; then
    echo "auto-sklearn env ready: $env_dir/bin/python"
    exit 0
fi

py=$(find_python 3.9 PYTHON39)
echo "building the auto-sklearn env in $env_dir with $py (about 5 minutes)"
rm -f "$stamp"
if [ ! -x "$env_dir/bin/python" ]; then
    mkdir -p "$(dirname "$env_dir")"
    "$py" -m venv "$env_dir"
fi
"$env_dir/bin/python" -m pip install --quiet "${PINS[@]}"
check_env || {
    echo "setup-autosklearn.sh: $env_dir was built but does not import auto-sklearn 0.15.0" >&2
    exit 1
}
echo "$want" > "$stamp"
echo "auto-sklearn env ready: $env_dir/bin/python"
