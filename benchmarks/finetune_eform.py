"""ALIGNN-FF with its GCN stages fine-tuned on Materials Project formation energies (issue 28, item 6).

The paper's extractor was an ALIGNN trained on MP formation energies; its weights are unreachable here.
This script adapts the default backbone instead: ALIGNN-FF (``alignnff_wt10``) keeps its embedding and
four ALIGNN layers frozen, their outputs (atom and bond features after ``alignn4``) are computed once and
cached, and only the four atom-graph GCN layers and a new output layer are trained on ``e_form`` of the
shared MP set. The result is a full official-layout checkpoint (the frozen part unchanged), loadable
with ``skdynemb.backbones.alignn.load(folder)``.

Left out of training, validation and test: every MP entry in a test split of Table 2's MP properties
(full-size preset), and every MP entry that matches a Matbench dielectric structure (all of them are in
some official test fold) or a JARVIS structure in any property's test split, by reduced formula and
volume per atom within :data:`VOLUME_TOLERANCE`.

Steps (each resumes; files under ``--out``, default ``benchmarks/_work/eform_ft``)::

    python -m benchmarks.finetune_eform cache --part 0/2 & python -m benchmarks.finetune_eform cache --part 1/2
    python -m benchmarks.finetune_eform train --epochs 8
    python -m benchmarks.finetune_eform export    # -> benchmarks/_work/alignn-ff-eform (a derived checkpoint)

Split of the kept entries: seeded 90 / 5 / 5 (train / validation for the best epoch / held-out test).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from skdynemb.backbones.alignn.layers import segment_mean

VOLUME_TOLERANCE = 0.05  # relative, on volume per atom (PBE vs OptB88vdW relaxations differ by a few %)
SHARD = 512
BASE = "alignnff_wt10"
SEED = 123


def _log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


# ----------------------------------------------------------------------------- what is left out
def excluded(out: Path) -> tuple[set[str], dict[str, list[float]]]:
    """(MP ids to leave out, reduced formula -> volumes per atom to leave out); memoised in ``out``."""
    path = out / "excluded.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        return set(saved["ids"]), saved["formula_volumes"]
    from benchmarks.paper.data import PROPERTIES, dataset, load_property
    from benchmarks.paper.settings import FULL_SIZE, Settings

    full_size = Settings(**FULL_SIZE)

    ids: set[str] = set()
    for key, spec in PROPERTIES.items():
        if spec.source in ("mp", "mp_elasticity"):
            data = load_property(key, full_size)
            ids |= {str(i) for i in np.asarray(data.ids)[data.split[2]]}
    volumes: dict[str, list[float]] = {}

    def add(structure) -> None:
        volumes.setdefault(structure.composition.reduced_formula, []).append(structure.volume / len(structure))

    for s in dataset("matbench", full_size).structures:
        add(s)
    jarvis = dataset("jarvis", full_size)
    mask = (jarvis.splits == "test").any(axis=1).to_numpy()  # in the test split of any property
    for i in np.flatnonzero(mask):
        add(jarvis.structures[int(i)])
    path.write_text(json.dumps({"ids": sorted(ids), "formula_volumes": volumes}))
    return ids, volumes


def is_excluded(structure, material_id: str, ids: set[str], volumes: dict[str, list[float]]) -> bool:
    if material_id in ids:
        return True
    v = structure.volume / len(structure)
    return any(abs(v - w) <= VOLUME_TOLERANCE * w for w in volumes.get(structure.composition.reduced_formula, ()))


# ----------------------------------------------------------------------------- cache of the frozen part
def base_model():
    """(ALIGNN-FF network in eval mode, its backbone: graph rule and batching)."""
    from skdynemb.backbones.alignn import load

    backbone = load(BASE)
    return backbone.module.eval(), backbone


def cache(args) -> None:
    from skdynemb.datasets.local import load_mp_eform
    from skdynemb.structures import to_crystal

    torch.set_num_threads(1)
    out = Path(args.out)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    ids, volumes = excluded(out)
    ds = load_mp_eform()
    part, parts = map(int, args.part.split("/"))
    n = len(ds.ids) if args.limit is None else min(args.limit, len(ds.ids))
    full, backbone = base_model()
    frozen = copy.deepcopy(full)  # the frozen part: ALIGNN-FF without its GCN layers
    frozen.gcn_layers = nn.ModuleList()
    e_form = ds.targets["e_form"].to_numpy(dtype=np.float64)
    for k, start in enumerate(range(0, n, SHARD)):
        if k % parts != part:
            continue
        path = out / "shards" / f"{k:04d}.pt"
        if path.is_file():
            continue
        tic = time.perf_counter()
        keep, structures = [], []
        for i in range(start, min(start + SHARD, n)):
            s = ds.structures[i]
            if is_excluded(s, str(ds.ids[i]), ids, volumes):
                continue
            keep.append(i)
            structures.append(to_crystal(s, index=i))
        xs, ys, src, dst, w, n_nodes, n_edges = [], [], [], [], [], [], []
        for b in range(0, len(structures), 64):
            batch = backbone.batch(structures[b : b + 64], keep[b])
            with torch.no_grad():
                st = frozen.stages(batch, pool_edges=False)
            xs.append(st.x[-1].half())  # stored in float16 (the features are O(1)-O(100)): half the memory
            ys.append(st.y[-1].half())
            node_first = batch.node_offsets[batch.edge_graph_index]
            src.append((batch.edge_src - node_first).to(torch.int32))
            dst.append((batch.edge_dst - node_first).to(torch.int32))
            w.append(batch.edge_weight)
            n_nodes.append(torch.diff(batch.node_offsets))
            n_edges.append(torch.diff(batch.edge_offsets))
        shard = {"index": torch.tensor(keep, dtype=torch.int64), "x": torch.cat(xs), "y": torch.cat(ys),
                 "src": torch.cat(src), "dst": torch.cat(dst), "weight": torch.cat(w),
                 "n_nodes": torch.cat(n_nodes), "n_edges": torch.cat(n_edges),
                 "e_form": torch.tensor(e_form[keep], dtype=torch.float64)}
        tmp = path.with_suffix(".tmp")
        torch.save(shard, tmp)
        os.replace(tmp, path)
        _log(f"shard {k}: {len(keep)} kept of {min(start + SHARD, n) - start}, "
             f"{shard['y'].shape[0]} edges, {time.perf_counter() - tic:.0f} s")


# ----------------------------------------------------------------------------- training the GCN part
class Store:
    """Every cached shard in memory, sliced per structure."""

    def __init__(self, out: Path):
        # memory-mapped: concatenating reads them once, without a second copy of every shard in memory
        shards = [torch.load(p, weights_only=True, mmap=True) for p in sorted((out / "shards").glob("*.pt"))]
        if not shards:
            raise SystemExit(f"no cached shards in {out / 'shards'}: run the cache step first")
        cat = {k: torch.cat([s[k] for s in shards]) for k in shards[0]}
        order = torch.argsort(cat["index"])
        assert bool((order == torch.arange(len(order))).all()), "shards out of order"
        self.index = cat["index"].numpy()
        self.x, self.y = cat["x"], cat["y"]
        self.src, self.dst, self.weight = cat["src"].long(), cat["dst"].long(), cat["weight"]
        self.n_nodes, self.n_edges = cat["n_nodes"], cat["n_edges"]
        self.node_off = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(self.n_nodes, 0)])
        self.edge_off = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(self.n_edges, 0)])
        self.target = cat["e_form"].numpy()

    def __len__(self) -> int:
        return len(self.index)

    def batch(self, rows: np.ndarray):
        rows = torch.as_tensor(rows, dtype=torch.int64)
        nn_, ne = self.n_nodes[rows], self.n_edges[rows]
        nodes = torch.cat([torch.arange(self.node_off[r], self.node_off[r + 1]) for r in rows.tolist()])
        edges = torch.cat([torch.arange(self.edge_off[r], self.edge_off[r + 1]) for r in rows.tolist()])
        first = torch.repeat_interleave(torch.cumsum(nn_, 0) - nn_, ne)
        graph = torch.repeat_interleave(torch.arange(len(rows)), nn_)
        return (self.x[nodes].float(), self.y[edges].float(), self.src[edges] + first, self.dst[edges] + first,
                self.weight[edges], graph, len(rows))


class Head(nn.Module):
    """The trainable part: ALIGNN-FF's GCN layers (initialised from it) and a new output layer."""

    def __init__(self, full):
        super().__init__()
        self.gcn_layers = copy.deepcopy(full.gcn_layers)
        self.fc = nn.Linear(full.fc.in_features, 1)

    def forward(self, x, y, src, dst, weight, graph, n_graphs):
        for layer in self.gcn_layers:
            x, y = layer(src, dst, weight, x, y)
        return self.fc(segment_mean(x, graph, n_graphs)).squeeze(-1)


def split(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.random.default_rng(SEED).permutation(n)
    n_val = n_test = int(round(0.05 * n))
    return np.sort(order[n_val + n_test:]), np.sort(order[:n_val]), np.sort(order[n_val : n_val + n_test])


def predict(head: Head, store: Store, rows: np.ndarray, batch_size: int = 128) -> np.ndarray:
    head.eval()
    out = []
    with torch.no_grad():
        for b in range(0, len(rows), batch_size):
            out.append(head(*store.batch(rows[b : b + batch_size])).double().numpy())
    return np.concatenate(out)


def train(args) -> None:
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    store = Store(out)
    tr, va, te = split(len(store))
    mean, std = float(store.target[tr].mean()), float(store.target[tr].std())
    full, _ = base_model()
    torch.manual_seed(SEED)
    head = Head(full)
    state_path = out / "train_state.pt"
    opt = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=1e-5)
    steps = math.ceil(len(tr) / args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps)
    history, start = [], 0
    if state_path.is_file():
        state = torch.load(state_path, weights_only=True)
        head.load_state_dict(state["head"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        history, start = json.loads(state["history"]), state["epoch"]
    y_std = torch.as_tensor((store.target - mean) / std, dtype=torch.float32)
    _log(f"{len(store)} structures: train {len(tr)} / val {len(va)} / test {len(te)}; mean {mean:.4f} std {std:.4f}")
    for epoch in range(start + 1, args.epochs + 1):
        tic = time.perf_counter()
        head.train()
        order = tr[np.random.default_rng([SEED, epoch]).permutation(len(tr))]
        total = 0.0
        for b in range(0, len(order), args.batch_size):
            rows = order[b : b + args.batch_size]
            pred = head(*store.batch(rows))
            loss = torch.nn.functional.l1_loss(pred, y_std[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(rows)
            if (b // args.batch_size) % 100 == 99:
                _log(f"epoch {epoch}: {b + len(rows)} / {len(order)} structures, {time.perf_counter() - tic:.0f} s")
        val = float(np.mean(np.abs(std * predict(head, store, va) + mean - store.target[va])))
        history.append({"epoch": epoch, "train_mae": std * total / len(tr), "val_mae": val,
                        "seconds": time.perf_counter() - tic})
        _log(json.dumps(history[-1]))
        if val <= min(h["val_mae"] for h in history):
            torch.save({"head": head.state_dict(), "mean": mean, "std": std, "epoch": epoch}, out / "best_head.pt")
        torch.save({"head": head.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "history": json.dumps(history), "epoch": epoch}, state_path)
    best = torch.load(out / "best_head.pt", weights_only=True)
    head.load_state_dict(best["head"])
    test = float(np.mean(np.abs(std * predict(head, store, te) + mean - store.target[te])))
    summary = {"n_train": len(tr), "n_val": len(va), "n_test": len(te), "best_epoch": best["epoch"],
               "val_mae": min(h["val_mae"] for h in history), "test_mae": test,
               "baseline_test_mae": float(np.mean(np.abs(store.target[te] - mean))),
               "target_mean": mean, "target_std": std, "lr": args.lr, "epochs": args.epochs,
               "batch_size": args.batch_size, "history": history}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _log(f"best epoch {best['epoch']}: val {summary['val_mae']:.4f}, test {test:.4f} eV/atom "
         f"(training mean: {summary['baseline_test_mae']:.4f})")


def export(args) -> None:
    """The fine-tuned network as a derived checkpoint of ALIGNN-FF: only the GCN layers and the output
    layer are written (float16, ~3 MB); what loads from it is the model measured downstream."""
    from skdynemb.backbones.alignn.checkpoints import save_derived_checkpoint

    out = Path(args.out)
    full, _ = base_model()
    best = torch.load(out / "best_head.pt", weights_only=True)
    head = Head(full)
    head.load_state_dict(best["head"])
    model = copy.deepcopy(full)
    model.gcn_layers.load_state_dict(head.gcn_layers.state_dict())
    with torch.no_grad():  # the standardisation folded into the output layer: predicts eV/atom
        model.fc.weight.copy_(head.fc.weight * best["std"])
        model.fc.bias.copy_((head.fc.bias * best["std"] + best["mean"]).reshape(model.fc.bias.shape))
    save_derived_checkpoint(model, BASE, args.checkpoint, ("gcn_layers.", "fc."), torch.float16)
    _log(f"wrote {args.checkpoint}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("step", choices=["cache", "train", "export"])
    parser.add_argument("--out", default="benchmarks/_work/eform_ft")
    parser.add_argument("--part", default="0/1", help="cache: this process's share, k/n (shards k, k+n, ...)")
    parser.add_argument("--limit", type=int, default=None, help="cache: only the first N MP entries")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint", default="benchmarks/_work/alignn-ff-eform",
                        help="export: the checkpoint folder to write")
    args = parser.parse_args(argv)
    {"cache": cache, "train": train, "export": export}[args.step](args)


if __name__ == "__main__":
    main()
