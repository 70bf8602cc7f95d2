"""Polymorphs: one composition, several crystal structures, one static but many dynamic vectors.

A static table gives Ti the same row in rutile, anatase and brookite; a dynamic embedding reads
each element's row from a pretrained GNN run over the actual structure, so the rows differ
between polymorphs. This script takes every Materials Project entry of one composition and
prints, per polymorph, the Euclidean distance of each element's row to that of the lowest-energy
polymorph, for a static table (always 0) and for CGCNN's last stage.

Data: the MP file of the data folder (``--data-dir DIR``, else ``$SKDYNEMB_DATA``, else
``../shared/data`` beside a clone of the repository; 36,737 entries); without one, Materials Project
2018.6.1 through jarvis-tools (69,239 entries, a download, once). The script says which; the two
sets hold different numbers of polymorphs per composition.

    python examples/polymorphs.py                      # TiO2, 18 polymorphs in the local file, ~5 s
    python examples/polymorphs.py --formula ZnS --max-polymorphs 10
    python examples/polymorphs.py --formula auto --search 2000   # most frequent composition there
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from skdynemb import DynamicEmbeddingTransformer, StaticEmbeddingTransformer
from skdynemb.datasets import fetch_mp_eform, load_mp_eform, reduced_formula
from skdynemb.datasets.local import MP_EFORM_FILE, data_file


def load_mp(search: int | None, data_dir=None):
    """Materials Project formation energies (the first ``search`` entries): local file, else online."""
    path = data_file(MP_EFORM_FILE, data_dir)
    if path is not None:
        print(f"data: {path}")
        return load_mp_eform(path, limit=search)
    print("data: no data folder (--data-dir, $SKDYNEMB_DATA or ../shared/data): Materials Project 2018.6.1 "
          "through jarvis-tools", flush=True)
    return fetch_mp_eform(limit=search)


def find_polymorphs(formula: str, search: int | None, max_polymorphs: int | None, data_dir=None):
    """(formula, ids, structures, e_form in eV/atom) of the entries of one reduced composition,
    lowest formation energy first; ``formula="auto"`` picks the most frequent composition."""
    data = load_mp(search, data_dir)
    keys = [c.reduced_formula for c in data.structures.compositions()]
    if formula == "auto":
        formula = Counter(keys).most_common(1)[0][0]
    else:
        formula = reduced_formula(formula)
    rows = np.flatnonzero(np.array(keys) == formula)
    if len(rows) < 2:
        raise SystemExit(f"{formula}: {len(rows)} entries in the searched MP entries; need at least 2 polymorphs")
    e_form = data.targets["e_form"].to_numpy()
    rows = rows[np.argsort(e_form[rows], kind="stable")][:max_polymorphs]
    return formula, data.ids[rows], [data.structures[int(i)] for i in rows], e_form[rows]


def row_distances(embeddings) -> np.ndarray:
    """(n_polymorphs, n_elements) distance of each element's row to the first polymorph's row."""
    reference = embeddings[0].features
    return np.stack([np.linalg.norm(c.features - reference, axis=1) for c in embeddings])


def main(argv=None) -> dict:
    """Print the comparison; returns ids, elements, e_form, both distance matrices and both embeddings."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--formula", default="TiO2", help="composition to look up, or 'auto' (default: TiO2)")
    parser.add_argument("--search", type=int, default=None, help="search only the first N MP entries")
    parser.add_argument("--max-polymorphs", type=int, default=None, help="keep the N lowest in energy")
    parser.add_argument("--stage", default=-1, type=int, help="CGCNN stage (default: -1, the last)")
    parser.add_argument("--data-dir", default=None,
                        help="data folder holding mp/ (default: $SKDYNEMB_DATA, else ../shared/data, "
                             "else the online loaders)")
    args = parser.parse_args(argv)

    formula, ids, structures, e_form = find_polymorphs(args.formula, args.search, args.max_polymorphs,
                                                       args.data_dir)
    static = StaticEmbeddingTransformer("matscholar200").fit().transform(structures)
    dynamic = DynamicEmbeddingTransformer("cgcnn-mp-eform", stage=args.stage, progress=False).fit().transform(
        structures
    )
    elements = static[0].elements
    d_static, d_dynamic = row_distances(static), row_distances(dynamic)
    mean_dynamic = dynamic.mean()  # atom-averaged vectors (pooling="mean")
    d_mean = np.linalg.norm(mean_dynamic - mean_dynamic[0], axis=1)

    print(f"{formula}: {len(ids)} polymorphs in MP (E_form in eV/atom); row distances to the lowest-energy "
          f"one ({ids[0]})")
    print(f"static = matscholar200 ({static.n_features}-d), dynamic = cgcnn-mp-eform "
          f"{dynamic.feature_names[0].rsplit('_', 1)[0]} ({dynamic.n_features}-d)\n")
    head = "".join(f"{'static ' + el:>11}{'dynamic ' + el:>12}" for el in elements)
    print(f"{'id':<12}{'space group':<14}{'sites':>6}{'E_form':>8}{head}{'dyn. mean':>11}")
    for k, (sid, structure) in enumerate(zip(ids, structures)):
        symbol = SpacegroupAnalyzer(structure, symprec=0.1).get_space_group_symbol()
        cells = "".join(f"{d_static[k, j]:>11.3f}{d_dynamic[k, j]:>12.3f}" for j in range(len(elements)))
        print(f"{sid:<12}{symbol:<14}{len(structure):>6}{e_form[k]:>8.3f}{cells}{d_mean[k]:>11.3f}")

    scale = np.linalg.norm(np.stack([c.features for c in dynamic]), axis=2).mean()
    print(f"\nstatic rows identical across polymorphs: {bool(np.all(d_static == 0))}")
    print(f"dynamic rows: mean distance {d_dynamic[1:].mean():.3f} (mean row norm {scale:.3f}); "
          f"distinct polymorph vectors: {len(np.unique(mean_dynamic.round(5), axis=0))} of {len(ids)}")
    return {"formula": formula, "ids": ids, "elements": elements, "e_form": e_form,
            "static": d_static, "dynamic": d_dynamic, "static_embeddings": static, "dynamic_embeddings": dynamic}


if __name__ == "__main__":
    main()
