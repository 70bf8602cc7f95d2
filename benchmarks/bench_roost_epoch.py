"""Roost training time per epoch vs the width of the element rows.

Static element tables give 200-d rows (matscholar); dynamic embeddings give rows of the
backbone's hidden width (64-d for CHGNet, 256-d for wider stages). Roost projects every row to
``elem_fea_len - 1`` features first, so only that first linear layer depends on the width and
the per-epoch time should be comparable. Rows here are real element vectors of those widths
(elementembeddings' matscholar 200-d, CHGNet 64-d, Orb-v2 256-d) on the same real Materials
Project compositions; the network and batching are exactly those used for dynamic rows.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_roost_epoch.py --n 2000 --epochs 3 --repeats 3 --threads 1
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import time

import numpy as np
import torch
from elementembeddings.core import Embedding
from pymatgen.core import Composition

from skdynemb._paths import shared_data
from skdynemb.embeddings import CompoundEmbedding, ElementEmbeddings
from skdynemb.models import RoostRegressor

TABLES = {"static 200-d (matscholar)": "matscholar", "64-d (CHGNet)": "chgnet", "256-d (Orb-v2)": "orb_v2"}


def load_compositions(n: int):
    """n MP compositions (distinct reduced formulas, fixed shuffle) covered by every table."""
    tables = {label: Embedding.load_data(name).embeddings for label, name in TABLES.items()}
    path = shared_data("mp", "mp_eform_crysxpp.json.gz")
    if path is None:
        raise SystemExit("shared/data/mp/mp_eform_crysxpp.json.gz not found (set SKDYNEMB_SHARED)")
    records = json.load(gzip.open(path))
    comps, y, seen = [], [], set()
    for i in np.random.default_rng(0).permutation(len(records)):
        cif = records[i]["cif"]
        comp = Composition(re.search(r"_chemical_formula_sum\s+(.+)", cif).group(1).strip("' \n"))
        symbols = [e.symbol for e in comp.elements]
        if comp.reduced_formula in seen or any(s not in t for t in tables.values() for s in symbols):
            continue
        seen.add(comp.reduced_formula)
        comps.append(comp)
        y.append(records[i]["e_form"])
        if len(comps) == n:
            break
    return comps, np.array(y), tables


def embed(comps, table) -> ElementEmbeddings:
    out = []
    for comp in comps:
        els = tuple(sorted(e.symbol for e in comp.elements))
        fracs = np.array([comp.get_atomic_fraction(e) for e in els])
        out.append(CompoundEmbedding(els, fracs, np.stack([table[e] for e in els]).astype(np.float32)))
    d = out[0].features.shape[1]
    return ElementEmbeddings(out, [f"f{k}" for k in range(d)])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="number of compositions")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per fit")
    parser.add_argument("--repeats", type=int, default=3, help="fits per width, interleaved across widths")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    comps, y, tables = load_compositions(args.n)
    data = {label: embed(comps, tables[label]) for label in TABLES}
    n_el = np.array([len(c.elements) for c in comps])
    RoostRegressor(max_epochs=1).fit(data[next(iter(TABLES))][:256], y[:256])  # warm-up, untimed
    wall = {label: [] for label in TABLES}
    cpu = {label: [] for label in TABLES}
    for _ in range(args.repeats):
        for label, X in data.items():
            start = time.process_time()
            model = RoostRegressor(max_epochs=args.epochs, device=args.device).fit(X, y)
            cpu[label].append((time.process_time() - start) / args.epochs)
            wall[label] += [row["dur"] for row in model.nets_[0].history]

    print(f"{len(comps)} MP compositions, {n_el.mean():.2f} elements per compound on average "
          f"(max {n_el.max()}); RoostRegressor defaults (elem_fea_len=64, n_graph=3, batch 128); "
          f"{args.repeats} fits x {args.epochs} epochs per width, interleaved; torch {torch.__version__}, "
          f"{args.threads} thread(s), device {args.device}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    print()
    print("| element rows | width | wall s/epoch, median (min-max) | CPU s/epoch, median "
          "| CPU ratio to 200-d |")
    print("|---|---|---|---|---|")
    ref = np.median(cpu[next(iter(TABLES))])
    for label, X in data.items():
        w, c = np.array(wall[label]), np.median(cpu[label])
        print(f"| {label} | {X.n_features} | {np.median(w):.2f} ({w.min():.2f}-{w.max():.2f}) | {c:.2f} | "
              f"{c / ref:.2f} |")


if __name__ == "__main__":
    t0 = time.time()
    main()
    print(f"\n(total wall time {time.time() - t0:.0f} s)")
