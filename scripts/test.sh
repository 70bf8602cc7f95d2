#!/usr/bin/env bash
# Set up (if needed), lint, and run the test suite on all cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# lint first: ruff (pyflakes, pycodestyle, bugbear, pydocstyle) and numpydoc's validation of the
# public API's docstrings (Parameters / Returns sections); both configured in pyproject.toml
.venv/bin/ruff check .
.venv/bin/python -m numpydoc lint $(find skdynemb -name "*.py" | sort)
export OMP_NUM_THREADS=1
exec .venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" "$@"
