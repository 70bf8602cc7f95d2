#!/usr/bin/env bash
# Install this checkout as a user would (plain `pip install`, no constraints: whatever torch build
# the index serves) into fresh virtualenvs on other Pythons, then check the import, that the core
# install pulls none of wandb / tensorboard / umap-learn / numba, and run a smoke subset of tests.
#
#   bash scripts/check-python-versions.sh            # 3.12 and 3.13 (pyenv interpreters or pythonX.Y)
#   bash scripts/check-python-versions.sh 3.13       # one version
#   WORK=/tmp/pycheck KEEP=1 bash scripts/check-python-versions.sh   # where venvs go; KEEP=1 reuses them
#
# Downloads a lot (the CUDA build of torch, ~2.6 GB per version). Not part of CI, which runs the full
# suite on 3.11 (scripts/test.sh); results of a run are recorded in docs/installation.md.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=${WORK:-/tmp/skdynemb-pycheck}
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(3.12 3.13)
smoke=(tests/test_common_mistakes.py tests/test_citations.py tests/transformers/test_static.py
       tests/models/test_skorch_controls.py tests/models/test_roost.py tests/test_dataset_frames.py)
forbidden=(wandb tensorboard umap-learn numba)
status=0
mkdir -p "$work"
# the installed package looks for ../shared beside itself; point it at the checkout's
[ -d "$repo/../shared/data" ] && export SKDYNEMB_SHARED=${SKDYNEMB_SHARED:-$(cd "$repo/../shared" && pwd)}
for v in "${versions[@]}"; do
    py=$(ls -d "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/"$v"*/bin/python 2>/dev/null | sort -V | tail -1 || true)
    [ -n "$py" ] || py=$(command -v "python$v" || true)
    if [ -z "$py" ]; then echo "== Python $v: no interpreter found"; status=1; continue; fi
    venv=$work/venv-$v
    echo "== Python $v ($py) -> $venv"
    if [ "${KEEP:-0}" != 1 ] || [ ! -x "$venv/bin/python" ]; then
        rm -rf "$venv"
        "$py" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --upgrade pip
    fi
    start=$(date +%s)
    "$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps "$repo"   # this checkout, even if reused
    "$venv/bin/python" -m pip install --quiet "$repo" pytest
    echo "   install: $(( $(date +%s) - start )) s, venv $(du -sh "$venv" | cut -f1)"
    where=$(cd "$work" && "$venv/bin/python" -c "import skdynemb, torch; print('skdynemb', skdynemb.__version__, 'from', skdynemb.__file__, '| torch', torch.__version__)")
    echo "   $where"
    case $where in *"$venv"*) ;; *) echo "   FAIL: skdynemb not imported from the venv"; status=1;; esac
    (cd "$work" && "$venv/bin/python" -m skdynemb --version)
    present=$("$venv/bin/python" -m pip list --format=freeze | cut -d= -f1 | tr '[:upper:]_' '[:lower:]-' | grep -xF -f <(printf '%s\n' "${forbidden[@]}") || true)
    if [ -n "$present" ]; then echo "   FAIL: the core install pulled: $present"; status=1; else echo "   ok: none of ${forbidden[*]}"; fi
    # the installed package, not the source tree: run from outside the checkout
    if ! (cd "$work" && OMP_NUM_THREADS=1 "$venv/bin/python" -m pytest -q -p no:cacheprovider \
            --rootdir "$repo" -c "$repo/pyproject.toml" "${smoke[@]/#/$repo/}"); then status=1; fi
done
exit $status
