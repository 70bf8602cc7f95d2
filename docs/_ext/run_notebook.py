"""Execute the docs' notebooks in place, so the site shows fresh outputs (scripts/check-docs.sh).

    python docs/_ext/run_notebook.py [--out DIR] [NOTEBOOK ...]   # default: every docs/notebooks/*.ipynb

Each notebook runs in a fresh kernel from its own folder; stderr outputs (import notes such as
tqdm's "IProgress not found") are dropped, everything else is kept as produced. The executed
notebook replaces the committed one, or goes to ``--out DIR`` (a check that leaves the tree as it is).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def execute(path: Path, out: Path | None = None, timeout: int = 1800) -> Path:
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = [out for out in cell.outputs if out.get("name") != "stderr"]
    target = path if out is None else out / path.name
    nbformat.write(notebook, target)
    return target


if __name__ == "__main__":
    args = sys.argv[1:]
    out = None
    if args[:1] == ["--out"]:
        out, args = Path(args[1]), args[2:]
        out.mkdir(parents=True, exist_ok=True)
    for name in args or sorted(NOTEBOOKS.glob("*.ipynb")):
        print(f"executing {name}", flush=True)
        print(f"wrote {execute(Path(name).resolve(), out)}", flush=True)
