"""CrabNetRegressor (our CrabNet-style model) on a Table 2 property (JARVIS formation energy by default).

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_crabnet_style.py
    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_crabnet_style.py \
        --inputs static:mat2vec dynamic:gcn4 dynamic:alignn2 --n-jobs 2

Issue 29's check and measurement, on exactly the split of the full-size Table 2
(``--preset full-size`` of ``benchmarks.paper.run``: the official JARVIS leaderboard
train/val/test labels, every entry, 739/105/96):

1. CrabNetRegressor with mat2vec rows vs the real CrabNet 2.0.8 (mat2vec, its defaults), whose
   fits on this split are already in the committed ledger (not rerun here): within 10 % of its
   test MAE or better?
2. CrabNetRegressor with dynamic rows (ALIGNN-FF, last stage ``gcn4`` = ``stage=-1``, and any
   other stage asked for) vs the same model with mat2vec rows, 3 seeds: is the paper's direction
   (dynamic better) reproduced?

Every fit trains on the training split with early stopping on the validation split (best epoch
restored), one torch thread, and goes through the paper harness's ledger (model
``"crabnet-style"``), so a stopped run resumes and the table is rebuilt from the ledger. The
embeddings come from the harness's data functions (and its per-structure cache under
``benchmarks/_work``). Result: ``benchmarks/results/crabnet_style.md``.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from benchmarks.paper.data import load_property
from benchmarks.paper.fits import crabnet_params, job, run_fits
from benchmarks.paper.ledger import Ledger, fit_identity, index_digest
from benchmarks.paper.report import fmt, seed_stats, verdict
from benchmarks.paper.settings import DEFAULT_LEDGER, FULL_SIZE, REPO, Settings, git_rev, machine

PROPERTY = "jarvis:formation_energy_peratom"
MODEL = "crabnet-style"
OUT = REPO / "benchmarks" / "results" / "crabnet_style.md"
#: CrabNetRegressor's settings for the CPU runs (1 thread): half the paper's widths
#: (d_model 256, feed-forward 1024, head 512-256-128; 3 layers, 4 heads as the paper), ~2 s an epoch
PARAMS = dict(d_model=256, n_layers=3, n_heads=4, dim_feedforward=1024, dropout=0.1, out_hidden=[512, 256, 128],
              loss="mae", lr=2e-4, batch_size=32)
#: how PARAMS were chosen (written under the table)
CHOICE = ("lr 2e-4 and the half-size widths were chosen before these runs on the validation MAE of one seed-0 fit "
          "with mat2vec rows (lr 5e-4: 0.173 eV/atom at d_model 256, 0.203 at the paper's d_model 512; lr 2e-4: 0.148 "
          "at d_model 256); no setting was tuned on dynamic rows or on the test split")


def crabnet_style_fit(model: str, X, y, split, seed: int, params: dict) -> dict:
    """Train CrabNetRegressor on ``split[0]``, early stopping on ``split[1]``; the ledger's result keys."""
    from skdynemb import CrabNetRegressor

    torch.set_num_threads(1)
    tr, va, te = split
    kwargs = {k: v for k, v in params.items() if k not in ("epochs", "early_stopping")}
    kwargs["out_hidden"] = tuple(kwargs["out_hidden"])
    t0 = time.perf_counter()
    est = CrabNetRegressor(max_epochs=params["epochs"], random_state=seed, **kwargs)
    est.fit(X[tr], y[tr], X_valid=X[va], y_valid=y[va])
    fit_s = time.perf_counter() - t0
    history = est.history_[0]
    p_te = np.asarray(est.predict(X[te]), dtype=float)
    p_va = np.asarray(est.predict(X[va]), dtype=float)
    return {"val_mae": float(np.mean(np.abs(p_va - y[va]))), "test_mae": float(np.mean(np.abs(p_te - y[te]))),
            "pred_test": [float(v) for v in p_te], "pred_val": [float(v) for v in p_va], "fit_s": fit_s,
            "epoch_s": float(np.median([row["dur"] for row in history])), "epochs_run": len(history),
            "best_epoch": int(np.argmin(history[:, "valid_loss"])) + 1}


def _results(ledger, data, model, inputs, seeds, params, settings):
    out = {}
    for seed in seeds:
        record = ledger.get(fit_identity(data, model, inputs, seed, params, settings))
        if record is not None:
            out[seed] = record["result"]
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", nargs="+", default=["static:mat2vec", "dynamic:gcn4"],
                    help="harness input names (static:<table>, dynamic:<stage>); the first is the reference")
    ap.add_argument("--prop", default=PROPERTY, help="the Table 2 property (its full-size split)")
    ap.add_argument("--roost-inputs", nargs="+", default=["static:mat2vec", "dynamic:gcn4"],
                    help="Roost rows shown beside (Table 2's fits, from the ledger)")
    ap.add_argument("--ensemble-with", help="a Roost input of --roost-inputs: also score, per seed, the mean "
                    "prediction of CrabNetRegressor on the first --inputs and Roost on this one")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=150, help="epoch limit (early stopping on the validation split)")
    ap.add_argument("--patience", type=int, default=20)
    ap.add_argument("--n-jobs", type=int, default=1, help="fits in parallel")
    ap.add_argument("--ledger", type=Path, default=DEFAULT_LEDGER)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    torch.set_num_threads(1)
    settings = replace(Settings(**FULL_SIZE), n_jobs=args.n_jobs)
    data = load_property(args.prop, settings)
    ledger = Ledger(args.ledger)
    ledger.add_property(data, settings)
    params = {**PARAMS, "epochs": args.epochs, "early_stopping": "validation split", "patience": args.patience}
    cache: dict = {}
    run_fits(ledger, data, [job(MODEL, inputs, seed, params) for inputs in args.inputs for seed in args.seeds],
             settings, cache, fit=crabnet_style_fit)
    ours = {inputs: _results(ledger, data, MODEL, inputs, args.seeds, params, settings) for inputs in args.inputs}
    real = _results(ledger, data, "crabnet", "formula", args.seeds, crabnet_params(None), settings)
    roost = {inputs: _results(ledger, data, "roost", inputs, args.seeds, settings.roost_params(), settings)
             for inputs in args.roost_inputs}
    write(args, argv, data, settings, params, ours, real, roost)


def _dirty() -> str:
    """Note on uncommitted changes to the model's or this script's file."""
    files = ["skdynemb/models/crabnet.py", "benchmarks/bench_crabnet_style.py"]
    try:
        out = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", *files], capture_output=True,
                             text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return f" (with uncommitted {', '.join(line[3:] for line in out.splitlines())})" if out.strip() else ""


def _row(name, inputs, res, seeds, extra=True):
    test = [res[s]["test_mae"] for s in seeds if s in res]
    val = [res[s]["val_mae"] for s in seeds if s in res]
    if not test:
        return None
    stat = (lambda v: fmt(*seed_stats(v))) if len(test) > 1 else (lambda v: f"{v[0]:.4g} (1 seed in the ledger)")
    cells = [name, f"`{inputs}`", stat(test), " / ".join(f"{v:.4f}" for v in test), stat(val)]
    if extra:
        cells += [" / ".join(f"{res[s]['epochs_run']} ({res[s]['best_epoch']})" for s in seeds if s in res),
                  f"{np.median([res[s]['fit_s'] for s in seeds if s in res]):.0f}"]
    else:
        cells += ["", f"{np.median([res[s]['fit_s'] for s in seeds if s in res]):.0f}"]
    return "| " + " | ".join(cells) + " |"


def write(args, argv, data, settings, params, ours, real, roost) -> None:
    seeds = args.seeds
    command = "PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_crabnet_style.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        cpu = "unknown"
    unit = data.spec.unit
    lines = [
        f"# CrabNet-style model (CrabNetRegressor): {' vs '.join(args.inputs)}, {data.key} ({unit})",
        "",
        f"- **command**: `{command.strip()}`",
        f"- **machine**: {cpu}; {machine()}",
        f"- **git commit**: {git_rev()}{_dirty()}",
        f"- **seeds**: {seeds}",
        f"- **data**: {data.key}, {data.split_name}, every entry (full available size); train/val/test "
        f"{data.sizes()}; split digest {index_digest(data.split)} (the full-size Table 2 split); "
        f"mean-baseline test MAE {data.mean_baseline():.4f} {unit}",
        f"- **CrabNetRegressor settings**: {', '.join(f'{k}={v}' for k, v in params.items())}; "
        "standardised input rows; CPU, 1 torch thread; every fit trains on the training split, early stopping "
        "on the validation split restores the best epoch",
        f"- **dynamic rows**: backbone {settings.backbone} (`DynamicEmbeddingTransformer(backbone=\"alignn-ff\")`), "
        "`dynamic:gcn4` is the last stage (`stage=-1`)",
        "- **references** (from the committed ledger, same split, not rerun): the real CrabNet 2.0.8 (its defaults: "
        "mat2vec, d_model 512, Lamb + Lookahead + SWA, 300 epochs; it sees the validation split while training, so "
        "its val MAE is not an unseen-data score), and Roost at the full-size Table 2 settings",
        f"- **settings chosen**: {CHOICE}",
        "",
        f"| model | inputs | test MAE ({unit}), mean ± std | per seed | val MAE | epochs run (best) | fit s (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for inputs, res in ours.items():
        row = _row("CrabNetRegressor", inputs, res, seeds)
        if row:
            lines.append(row)
    for name, inputs, res in [("CrabNet 2.0.8 (real)", "formula", real),
                              *[("Roost", inputs, res) for inputs, res in roost.items()]]:
        row = _row(name, inputs, res, seeds, extra=False)
        if row:
            lines.append(row)
    lines += ["", "## Verdicts", ""]
    ref_inputs = args.inputs[0]
    ref = [ours[ref_inputs][s]["test_mae"] for s in seeds if s in ours[ref_inputs]]
    real_test = [real[s]["test_mae"] for s in seeds if s in real]
    if ref and real_test:
        m, r = np.mean(ref), np.mean(real_test)
        ok = "yes" if m <= 1.10 * r else "no"
        lines.append(f"- CrabNetRegressor + `{ref_inputs}` vs the real CrabNet 2.0.8: {m:.4f} vs {r:.4f} {unit} "
                     f"({100 * (m - r) / r:+.1f} %); within 10 % or better: **{ok}**.")
    for inputs in args.inputs[1:]:
        dyn = [ours[inputs][s]["test_mae"] for s in seeds if s in ours[inputs]]
        if ref and dyn:
            m_d, m_r = np.mean(dyn), np.mean(ref)
            lines.append(f"- CrabNetRegressor + `{inputs}` vs + `{ref_inputs}`: {m_d:.4f} vs {m_r:.4f} {unit} "
                         f"({100 * (m_d - m_r) / m_r:+.1f} %), **{verdict(dyn, ref)}** by Table 2's rule (a win/loss "
                         "only when the difference exceeds both the sum of the seed stds and 5 % of the reference).")
    if args.ensemble_with:
        lines += _ensemble_lines(args, data, ours[ref_inputs], roost[args.ensemble_with], real)
    lines.append("")
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


def _ensemble_lines(args, data, crab: dict, roost: dict, real: dict) -> list[str]:
    """Verdict lines of the per-seed mean of CrabNetRegressor (first ``--inputs``) and Roost (``--ensemble-with``)."""
    seeds = [s for s in args.seeds if s in crab and s in roost]
    if not seeds:
        return [f"- ensemble with Roost `{args.ensemble_with}`: no seed has both fits in the ledger."]
    y_test = data.y[data.split[2]]
    ens = [float(np.mean(np.abs((np.asarray(crab[s]["pred_test"]) + np.asarray(roost[s]["pred_test"])) / 2
                                - y_test))) for s in seeds]
    unit = data.spec.unit
    out = [f"- per seed, the mean of CrabNetRegressor + `{args.inputs[0]}` and Roost + `{args.ensemble_with}` "
           f"(seeds {seeds}): **{fmt(*seed_stats(ens))} {unit}** ({' / '.join(f'{v:.4f}' for v in ens)})."]
    for name, res in [("the real CrabNet 2.0.8", real), (f"Roost + `{args.ensemble_with}`", roost),
                      (f"CrabNetRegressor + `{args.inputs[0]}`", crab)]:
        ref = [res[s]["test_mae"] for s in seeds if s in res]
        if len(ref) == len(seeds):
            out.append(f"  - vs {name}: {np.mean(ens):.4f} vs {np.mean(ref):.4f} {unit} "
                       f"({100 * (np.mean(ens) - np.mean(ref)) / np.mean(ref):+.1f} %), **{verdict(ens, ref)}**.")
    return out


if __name__ == "__main__":
    main()
