#!/usr/bin/env bash
# The docs check (slower than the test suite): every code block of README.md and docs/, the slow
# ones too; the notebook executed again; the site built with warnings as errors.
#   bash scripts/check-docs.sh            # checks, leaves the tree as it is
#   bash scripts/check-docs.sh --refresh  # also writes the re-executed notebook over the committed one
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} NO_MKDOCS_2_WARNING=1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
if [ "${1:-}" = "--refresh" ]; then
  .venv/bin/python docs/_ext/run_notebook.py
else
  .venv/bin/python docs/_ext/run_notebook.py --out "$out/notebooks"
fi
SKDYNEMB_DOCS_SLOW=1 .venv/bin/python -m pytest -p no:xdist -q tests/test_doc_code.py
.venv/bin/python -m mkdocs build --strict -d "$out/site"
echo "docs check passed"
