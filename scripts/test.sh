#!/usr/bin/env bash
# Set up (if needed) and run the test suite on all cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS=1
exec .venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" "$@"
