"""One real CrabNet fit on JARVIS formation energy, written to ``benchmarks/results/crabnet_smoke.md``.

    python -m benchmarks.paper.crabnet_smoke [--max-train 400] [--epochs N] [--seeds 0 ...]

The official JARVIS leaderboard train split, capped by a seeded subsample (split seed 0), and the
official validation and test splits, all entries with a formation energy (no element-coverage
filter). Needs the side env of ``bash scripts/setup-crabnet.sh``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import socket
import sys
from pathlib import Path

import numpy as np

from benchmarks.paper.crabnet import crabnet_fit
from benchmarks.paper.settings import git_rev
from skdynemb._files import atomic_write
from skdynemb.datasets import load_jarvis_leaderboard

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "benchmarks" / "results" / "crabnet_smoke.md"
TARGET = "formation_energy_peratom"
#: Roost at the harness's CPU settings, mean of seeds 0-2 (benchmarks/results/paper/table2_static_vs_dynamic.csv)
ROOST = {"best static (megnet16)": 0.2396, "dynamic, last stage (cgcnn-mp-eform conv4)": 0.1327,
         "dynamic, stage tuned on validation ('all')": 0.146}


def _network() -> str:
    """The network this process sees: none when only the loopback interface (e.g. under ``unshare -n``)."""
    try:
        interfaces = [name for _, name in socket.if_nameindex()]
    except OSError:
        return "unknown"
    return "none (loopback only)" if interfaces == ["lo"] else "available"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-train", type=int, default=400, help="seeded cap of the training split (0: all)")
    ap.add_argument("--epochs", type=int, default=None, help="CrabNet epochs (default: CrabNet's, 300)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    task = load_jarvis_leaderboard().task(TARGET, missing="drop")
    parts = task.split_indices()
    tr = parts["train"]
    if args.max_train and len(tr) > args.max_train:
        tr = np.sort(np.random.default_rng(0).choice(tr, args.max_train, replace=False))
    split = (tr, parts["val"], parts["test"])
    comps = [task.structures[int(i)].composition for i in range(len(task))]
    baseline = float(np.mean(np.abs(task.y[parts["test"]] - task.y[tr].mean())))
    rows = []
    for seed in args.seeds:
        res = crabnet_fit(comps, task.y, split, seed, epochs=args.epochs)
        rows.append((seed, res))
        print(f"seed {seed}: test MAE {res['test_mae']:.4f} eV/atom, fit {res['fit_s']:.0f} s "
              f"({res['epochs_run']} of {res['epochs']} epochs)", flush=True)
    versions = rows[0][1]["versions"]
    command = "python -m benchmarks.paper.crabnet_smoke " + shlex.join(sys.argv[1:] if argv is None else argv)
    lines = [
        "# CrabNet smoke measurement: JARVIS formation_energy_peratom",
        "",
        f"Command: `{command.strip()}` (side env: `bash scripts/setup-crabnet.sh`)",
        "",
        f"Split: official JARVIS leaderboard train/val/test, train capped to a seeded subsample of "
        f"{len(tr)} (split seed 0); sizes {len(tr)}/{len(parts['val'])}/{len(parts['test'])}, every entry with a "
        f"value (no element-coverage filter). CrabNet defaults (mat2vec, d_model 512, 3 layers, Lamb + "
        f"Lookahead + SWA, batch {rows[0][1]['batch_size']}), epochs "
        f"{'CrabNet default (300)' if args.epochs is None else args.epochs}, early stop by CrabNet's SWA rule; "
        f"CPU, 1 torch thread. CrabNet sees the validation split while training (SWA keeps an update only if "
        f"it lowers the validation MAE), so only the test MAE is an unseen-data score.",
        "",
        f"Machine: {platform.machine()} {os.cpu_count()} CPUs; side env Python {versions['python']}, crabnet "
        f"{versions['crabnet']}, torch {versions['torch']}, numpy {versions['numpy']}; git {git_rev()}; "
        f"network during the fits: {_network()}.",
        "",
        "| seed | test MAE (eV/atom) | val MAE (eV/atom) | epochs run / set | fit (s) | s per epoch |",
        "|---|---|---|---|---|---|",
        *(f"| {s} | {r['test_mae']:.4f} | {r['val_mae']:.4f} | {r['epochs_run']} / {r['epochs']} | "
          f"{r['fit_s']:.0f} | {r['epoch_s']:.2f} |" for s, r in rows),
        "",
        f"Mean baseline (training mean) test MAE: {baseline:.4f} eV/atom.",
        "",
        "For comparison (approximate: those fits used the paper harness's split, 400/105/96 after its "
        "element-coverage filter, Roost 30 epochs with a reduced output network, seeds 0-2):",
        "",
        *(f"- Roost, {name}: {mae} eV/atom" for name, mae in ROOST.items()),
        "",
    ]
    atomic_write(args.out, lambda tmp: Path(tmp).write_text("\n".join(lines)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
