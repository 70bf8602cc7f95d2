"""What the speed benchmarks share: seeded samples of Materials Project structures, and the lines
that name the machine and the git commit a result was measured on."""

from __future__ import annotations

import gzip
import json
import os
import platform
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from skdynemb._paths import shared_data  # noqa: E402
from skdynemb.structures import to_crystals  # noqa: E402


def sampled_crystals(file: str, n: int, seed: int):
    """``n`` structures drawn without replacement (``numpy`` generator seeded with ``seed``) from
    ``shared/data/mp/<file>`` (records with ``cif`` and ``material_id``), as crystals named by id.

    Parameters
    ----------
    file : str
        File name under the shared data's ``mp/`` folder, e.g. ``"mp_eform_crysxpp.json.gz"``.
    n : int
        Number of structures.
    seed : int
        Seed of the draw.

    Returns
    -------
    list of Crystal
    """
    path = shared_data("mp", file)
    if path is None:
        sys.exit(f"needs ../shared/data/mp/{file} (or $SKDYNEMB_DATA pointing at the data folder)")
    with gzip.open(path, "rt") as f:
        records = json.load(f)
    picked = [records[i] for i in np.random.default_rng(seed).choice(len(records), n, replace=False)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return to_crystals([r["cif"] for r in picked], ids=[r["material_id"] for r in picked])


def mp_crystals(n: int, seed: int):
    """``n`` seeded structures of the MP formation-energy file (the speed benchmarks' usual sample)."""
    return sampled_crystals("mp_eform_crysxpp.json.gz", n, seed)


def machine() -> str:
    """CPU model, core count, kernel, Python and torch versions, as one line."""
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return (
        f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )


def commit() -> str:
    """The checkout's short git commit, with ``+ uncommitted changes`` when the tree is dirty."""

    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

    try:
        head, dirty = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain")
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return f"{head}{' + uncommitted changes' if dirty else ''}"
