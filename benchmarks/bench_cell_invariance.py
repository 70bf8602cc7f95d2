"""How much the cell a crystal is given in changes its dynamic-embedding rows, per backbone.

For real Materials Project structures (../shared/data/mp, a seeded draw of small cells), each
crystal is given in three cells: spglib's standard primitive cell, the standard conventional
cell, and the 2x2x2 supercell of the primitive cell. Per backbone and ``standardize`` setting,
the element rows (all stages, ``pooling="element"``) of the conventional and supercell inputs
are compared with those of the primitive input: the largest absolute difference per crystal,
and that difference relative to the largest absolute value of the rows.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/bench_cell_invariance.py --n 12 \
        --out benchmarks/results/cell_invariance.md
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import warnings
from pathlib import Path

import numpy as np
from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from skdynemb import DynamicEmbeddingTransformer
from skdynemb._paths import shared_dir

BACKBONES = ("cgcnn-mp-eform", "chgnet", "alignn-mp-eform")


def crystals(n: int, seed: int, max_sites: int) -> list[tuple[str, list[Structure]]]:
    """``n`` MP crystals (primitive cell of at most ``max_sites`` sites): (id, [primitive, conventional, 2x2x2])."""
    with gzip.open(shared_dir() / "data" / "mp" / "mp_eform_crysxpp.json.gz", "rt") as fh:
        records = json.load(fh)
    out = []
    for i in np.random.default_rng(seed).permutation(len(records)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = Structure.from_str(records[i]["cif"], fmt="cif")
            sga = SpacegroupAnalyzer(s)
            prim, conv = sga.get_primitive_standard_structure(), sga.get_conventional_standard_structure()
        if len(prim) > max_sites or len(conv) == len(prim):  # keep crystals whose cells differ
            continue
        out.append((records[i]["material_id"], [prim, conv, prim * (2, 2, 2)]))
        if len(out) == n:
            return out
    return out


def differences(backbone: str, standardize, cases) -> list[tuple[float, float]]:
    t = DynamicEmbeddingTransformer(
        backbone=backbone, stage="all", cell=standardize, progress=False, device="cpu"
    ).fit()
    out = []
    for _, cells in cases:
        rows = [e.features for e in t.transform(cells)]
        diff = max(float(np.abs(r - rows[0]).max()) for r in rows[1:])
        out.append((diff, diff / float(np.abs(rows[0]).max())))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-sites", type=int, default=6)
    parser.add_argument("--backbones", nargs="*", default=list(BACKBONES))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cell_invariance.md"))
    args = parser.parse_args()
    cases = crystals(args.n, args.seed, args.max_sites)
    lines = [
        "# Rows of one crystal given in different cells",
        "",
        f"Command: `PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/bench_cell_invariance.py --n {args.n} "
        f"--seed {args.seed} --max-sites {args.max_sites}`  ",
        f"Machine: {platform.machine()}, {platform.system()}, CPU, float32.  ",
        f"Crystals: {len(cases)} Materials Project entries (seeded draw, primitive cell <= {args.max_sites} sites, "
        f"conventional cell larger than the primitive): {', '.join(c for c, _ in cases)}.",
        "",
        "Each crystal is given as its standard primitive cell, standard conventional cell and the 2x2x2",
        "supercell of the primitive cell. Per crystal: the largest |difference| of the element rows",
        "(all stages) of the conventional and supercell inputs from those of the primitive input; 'rel' divides",
        "it by the largest |value| of the rows. Median and maximum over the crystals.",
        "",
        "| backbone | standardize | median max abs diff | max abs diff | median rel | max rel |",
        "|---|---|---|---|---|---|",
    ]
    for backbone in args.backbones:
        for standardize in (None, "primitive"):
            d = np.array(differences(backbone, standardize, cases))
            lines.append(
                f"| {backbone} | {standardize} | {np.median(d[:, 0]):.2e} | {d[:, 0].max():.2e} | "
                f"{np.median(d[:, 1]):.2e} | {d[:, 1].max():.2e} |"
            )
            print(lines[-1], flush=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
