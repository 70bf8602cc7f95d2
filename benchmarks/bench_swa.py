"""Does stochastic weight averaging (SWA) cut Roost's seed scatter? (issue 28, item 2)

Roost on ALIGNN-FF's last-stage rows (``dynamic:gcn4``), Table 2's full-size Roost network, official JARVIS
splits, seeds 0-2, a fixed number of epochs without early stopping, two ways of ending:

- **last**: the weights after the last epoch;
- **swa**: the mean of the weights after each epoch of the second half (constant learning rate, as Roost
  trains; Roost has no batch norm, so the averaged weights need no statistics pass).

Beside them, from the committed ledger: Table 2's own fits (early stopping on the validation split, patience
20, best epoch kept). The SWA callback goes in through ``RoostRegressor(callbacks=...)``: no library change.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_swa --props <keys> --epochs 100 --out benchmarks/results/swa.md
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import time

import numpy as np
import torch
from joblib import Parallel, delayed
from skorch.callbacks import Callback

PROPS = ("jarvis:formation_energy_peratom", "jarvis:epsx", "jarvis:bulk_modulus_kv", "jarvis:shear_modulus_gv")
SEEDS = (0, 1, 2)


class WeightAverage(Callback):
    """Average the module's parameters over the epochs from ``start`` (1-based) on, and load the
    average when training ends."""

    def __init__(self, start: int):
        self.start = start

    def initialize(self):
        self.sum_, self.count_ = None, 0
        return self

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) < self.start:
            return
        state = {k: v.detach().clone().double() for k, v in net.module_.state_dict().items()}
        self.sum_ = state if self.sum_ is None else {k: self.sum_[k] + v for k, v in state.items()}
        self.count_ += 1

    def on_train_end(self, net, **kwargs):
        if self.count_:
            own = net.module_.state_dict()
            net.module_.load_state_dict({k: (v / self.count_).to(own[k].dtype) for k, v in self.sum_.items()})


def fit(X, y, split, seed: int, epochs: int, swa: bool, params: dict) -> float:
    from skdynemb import RoostRegressor

    torch.set_num_threads(1)
    tr, _, te = split
    callbacks = [("swa", WeightAverage(epochs // 2 + 1))] if swa else None
    model = RoostRegressor(max_epochs=epochs, batch_size=params["batch_size"], out_hidden=tuple(params["out_hidden"]),
                           lr=params["lr"], device="cpu", random_state=seed, callbacks=callbacks)
    model.fit(X[tr], y[tr])
    return float(np.mean(np.abs(model.predict(X[te]) - y[te])))


def main(argv=None) -> None:
    from benchmarks.paper.data import embeddings, load_property
    from benchmarks.paper.fits import collect, job
    from benchmarks.paper.ledger import Ledger
    from benchmarks.paper.settings import DEFAULT_LEDGER, FULL_SIZE, Settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--props", nargs="+", default=list(PROPS))
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/swa.md")
    args = parser.parse_args(argv)
    s = Settings(**FULL_SIZE)
    params = s.roost_params()
    ledger = Ledger(DEFAULT_LEDGER)
    rows = []
    tic = time.time()
    for key in args.props:
        data = load_property(key, s)
        X = embeddings(data, "dynamic:gcn4", s, {})
        maes = Parallel(n_jobs=args.n_jobs)(
            delayed(fit)(X, data.y, data.split, seed, args.epochs, swa, params)
            for swa in (False, True) for seed in SEEDS)
        stored = collect(ledger, data, [job("roost", "dynamic:gcn4", seed) for seed in SEEDS], s, {}, train=False)
        early = [float(stored[job("roost", "dynamic:gcn4", seed)]["result"]["test_mae"]) for seed in SEEDS]
        rows.append((key, early, maes[: len(SEEDS)], maes[len(SEEDS):]))
        print(key, early, maes, flush=True)
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = [
        "# SWA vs the last epoch vs early stopping: Roost's seed scatter (issue 28)", "",
        f"Command: `OMP_NUM_THREADS=1 python -m benchmarks.bench_swa --props {' '.join(args.props)}"
        f" --epochs {args.epochs} --out {args.out}`", "",
        f"Commit: {git}. Machine: {platform.machine()}, {platform.processor() or 'CPU'}, torch {torch.__version__},"
        f" 1 thread per fit, {args.n_jobs} fits at a time; {time.time() - tic:.0f} s.", "",
        f"Roost (Table 2's full-size network, batch {params['batch_size']}, lr {params['lr']}) on ALIGNN-FF `gcn4`"
        " rows, official JARVIS splits, seeds 0-2. *early stopping*: Table 2's committed fits (150 epochs at most,"
        " patience 20 on the validation split, best epoch kept). *last*: "
        f"{args.epochs} epochs, the final weights. *swa*: the same {args.epochs} epochs, the mean of the weights"
        f" after epochs {args.epochs // 2 + 1}-{args.epochs}. Test MAE per seed; mean ± std (ddof=1).", "",
        "| property | early stopping | last | swa | std early / last / swa |", "|---|---|---|---|---|",
    ]
    for key, early, last, swa in rows:
        def cell(v):
            return f"{np.mean(v):.4g} ± {np.std(v, ddof=1):.2g} ({', '.join(f'{x:.4g}' for x in v)})"
        lines.append(f"| {key} | {cell(early)} | {cell(last)} | {cell(swa)} | "
                     f"{np.std(early, ddof=1):.2g} / {np.std(last, ddof=1):.2g} / {np.std(swa, ddof=1):.2g} |")
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
