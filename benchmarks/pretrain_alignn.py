"""Train our own ALIGNN extractor on MP formation energies, then judge its dynamic embeddings downstream.

``train``: ALIGNN from scratch on the 36,737 MP structures of
``shared/data/mp/mp_eform_crysxpp.json.gz`` (e_form, eV/atom), seeded 80/10/10 hold-out, a
CPU-sized network (defaults below: 64 wide, 2 ALIGNN + 2 GCN layers, 8-nearest graphs, 12
epochs, one torch thread). Resumable: re-run the same command after an interruption.

``downstream``: Roost on JARVIS formation energy (official leaderboard split of
``shared/data/jarvis/...``: fit on "train", scored on "test"; "val" unused) with per-element rows
from (a) this ALIGNN's last stage, (b) the CGCNN MP formation-energy backbone's last stage,
(c) static matscholar200 vectors; several seeds, fixed epochs, test MAE (eV/atom) mean ± std.

    nohup .venv/bin/python benchmarks/pretrain_alignn.py train --output benchmarks/_work/alignn-mp-eform \
        > benchmarks/_work/pretrain_alignn.log 2>&1 &
    .venv/bin/python benchmarks/pretrain_alignn.py downstream --weights benchmarks/_work/alignn-mp-eform/best
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def train(args) -> None:
    from tqdm.auto import tqdm

    from skdynemb.backbones.alignn import ALIGNNConfig
    from skdynemb.datasets import load_mp_eform
    from skdynemb.backbones.alignn.graphs import KNearestGraph
    from skdynemb.pretrain import pretrain_alignn
    from skdynemb.structures import to_crystal

    tic = time.perf_counter()
    ds = load_mp_eform(limit=args.limit)
    with warnings.catch_warnings():  # pymatgen notes every CIF whose coordinates it rounds
        warnings.filterwarnings("ignore", message="Issues encountered while parsing CIF")
        crystals = [to_crystal(s, index=i, id=ds.ids[i])
                    for i, s in enumerate(tqdm(ds.structures, desc="parsing CIFs", mininterval=30))]
    print(f"read {len(crystals)} structures in {time.perf_counter() - tic:.0f} s", flush=True)
    config = ALIGNNConfig(hidden_features=args.hidden, embedding_features=args.embedding,
                          alignn_layers=args.alignn_layers, gcn_layers=args.gcn_layers)
    result = pretrain_alignn(
        crystals, ds.targets["e_form"].to_numpy(), ids=list(ds.ids), output_dir=args.output, config=config,
        graph=KNearestGraph(max_neighbors=args.max_neighbors), epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr,
        random_state=args.seed, num_threads=args.threads, device="auto",
    )
    summary = json.loads((result.output_dir / "summary.json").read_text())
    print(json.dumps({k: summary[k] for k in ("n_train", "n_val", "n_test", "best_epoch", "val_mae", "test_mae",
                                              "baseline_test_mae", "train_seconds")}, indent=2))
    print(f"wall time {time.perf_counter() - tic:.0f} s on {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch thread(s)")


def downstream(args) -> None:
    from skdynemb.datasets import jarvis_leaderboard_task
    from skdynemb.models import RoostRegressor
    from skdynemb.transformers.dynamic import DynamicEmbeddingTransformer
    from skdynemb.transformers.static import StaticEmbeddingTransformer

    torch.set_num_threads(args.threads)
    task = jarvis_leaderboard_task("formation_energy_peratom")
    structures, y, parts = list(task.structures), task.y, task.split_indices()
    print({k: len(v) for k, v in parts.items()}, flush=True)
    embedders = {
        "alignn": lambda: DynamicEmbeddingTransformer(backbone="alignn", weights=args.weights, progress=False),
        "cgcnn": lambda: DynamicEmbeddingTransformer(backbone="cgcnn-mp-eform", progress=False),
        "static": lambda: StaticEmbeddingTransformer("matscholar200"),
    }
    rows = {}
    for label in args.embeddings:
        embedder = embedders[label]()
        tic = time.perf_counter()
        X = embedder.fit_transform(structures)
        embed_s = time.perf_counter() - tic
        maes, tic = [], time.perf_counter()
        for seed in args.seeds:
            model = RoostRegressor(max_epochs=args.epochs, random_state=seed)
            model.fit(X[parts["train"]], y[parts["train"]])
            maes.append(float(np.mean(np.abs(model.predict(X[parts["test"]]) - y[parts["test"]]))))
        rows[label] = maes
        print(f"{label}: Roost {args.epochs} epochs, test MAE {np.mean(maes):.4f} ± {np.std(maes):.4f} eV/atom "
              f"over seeds {args.seeds} ({maes}); embedding {embed_s:.0f} s, fits {time.perf_counter() - tic:.0f} s",
              flush=True)
    print(json.dumps(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train")
    p.add_argument("--output", default="benchmarks/_work/alignn-mp-eform")
    p.add_argument("--limit", type=int, default=None, help="first N structures only (timing runs)")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--embedding", type=int, default=64)
    p.add_argument("--alignn-layers", type=int, default=2)
    p.add_argument("--gcn-layers", type=int, default=2)
    p.add_argument("--max-neighbors", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(run=train)
    p = sub.add_parser("downstream")
    p.add_argument("--weights", default="benchmarks/_work/alignn-mp-eform/best")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--embeddings", nargs="+", choices=["alignn", "cgcnn", "static"],
                   default=["alignn", "cgcnn", "static"],
                   help="alignn: our checkpoint's last stage; cgcnn: cgcnn-mp-eform's last stage; "
                   "static: matscholar200")
    p.set_defaults(run=downstream)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
