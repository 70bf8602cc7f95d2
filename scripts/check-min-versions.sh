#!/usr/bin/env bash
# Lowest supported versions: install skdynemb in a side venv (Python 3.11) with scikit-learn,
# skorch, pymatgen and cgcnn2 pinned at the lower bounds of pyproject.toml, and run a fast subset of the
# tests (estimator checks, warm start, structures, datasets, transformers on static tables).
#
# torch: PyPI's Linux wheels of old torch releases are the multi-GB CUDA builds, so torch comes
# from constraints.txt (the tested version) unless MINVER_TORCH names another requirement, e.g.
# MINVER_TORCH="torch==2.6.0" where a CPU wheel of it can be installed. Takes ~5-10 minutes the
# first time (downloads), ~3 minutes after; not part of CI (scripts/test.sh).
#
# Usage: bash scripts/check-min-versions.sh [pytest args]   (MINVER_VENV: where the venv goes)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${MINVER_VENV:-${TMPDIR:-/tmp}/skdynemb-minver}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
    || { echo "check-min-versions.sh: needs Python 3.11 (set PYTHON)" >&2; exit 1; }

# the lower bounds of the dependencies checked here, read from pyproject.toml
pins=$("$VENV/bin/python" - <<'EOF'
import re
import tomllib

deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
for dep in deps:
    m = re.match(r"\s*(scikit-learn|skorch|pymatgen|cgcnn2)\s*>=\s*([^,;\s]+)", dep)
    if m:
        print(f"{m.group(1)}=={m.group(2)}")
EOF
)
torch_req=${MINVER_TORCH:-$(grep -E '^torch==' constraints.txt)}
echo "check-min-versions.sh: $(echo $pins) $torch_req"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "$torch_req"
"$VENV/bin/python" -m pip install --quiet $pins "$torch_req" -e . "pytest>=8" "hypothesis>=6.100,<7" "ase>=3.23"
"$VENV/bin/python" -m pip freeze --exclude-editable | grep -iE '^(scikit-learn|skorch|pymatgen|cgcnn2|torch|numpy)=='
export OMP_NUM_THREADS=1
# deselected: AutoMLRegressor needs the automl extra (FLAML), and finding every estimator imports
# every extra's module (chgnet, sevenn, ...); neither is installed here
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider \
    tests/test_sklearn_compat.py tests/models/test_skorch_conventions.py tests/models/test_skorch_controls.py \
    tests/test_structures.py tests/test_datasets.py tests/transformers/test_static.py tests/backbones/test_cgcnn.py \
    -k "not AutoMLRegressor and not test_every_discovered_estimator_is_placed" "$@"
