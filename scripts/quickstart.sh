#!/usr/bin/env bash
# Set up (if needed) and run the end-to-end example: static vs dynamic embeddings + Roost on real data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
exec .venv/bin/python examples/quickstart.py "$@"
