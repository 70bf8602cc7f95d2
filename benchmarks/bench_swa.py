"""Stochastic weight averaging (``swa_start``) against early stopping, on Table 2's panel (issue 28, item 2).

Roost on ALIGNN-FF's last-stage rows (``dynamic:gcn4``) with Table 2's full-size settings (network, batch,
learning rate, official JARVIS splits / seeded MP and Matbench splits, seeds 0-2), trained two ways:

- **early stopping**: Table 2's committed fits (150 epochs at most, patience 20 on the validation split, the
  best epoch kept);
- **swa**: ``RoostRegressor(max_epochs=100, swa_start=51)``: 100 epochs, the mean of the weights after epochs
  51-100 (both numbers fixed by the pilot before this run; no validation data used).

Beside each: the mean prediction of the three seeds (what ``n_estimators=3`` or ``SeedEnsembleRegressor``
gives), and Table 2's best static table (chosen on validation, early-stopped) with the verdict of each
dynamic variant against it (Table 2's rule: a win or loss needs the means to differ by more than the summed
seed stds and 5 %). The SWA fits go into the ledger as they end (resumable; runs on disjoint ``--props``
may go side by side); ``--from-ledger`` only writes the report.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_swa --props <keys> [--from-ledger] --out benchmarks/results/swa.md
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.paper.data import PROPERTIES, load_property
from benchmarks.paper.fits import NotInLedger, collect, job, run_fits
from benchmarks.paper.ledger import Ledger
from benchmarks.paper.report import ensemble_mae, pick_on_validation, seed_stats, verdict
from benchmarks.paper.settings import DEFAULT_LEDGER, FULL_SIZE, Settings, machine

INPUTS = "dynamic:gcn4"
EPOCHS, SWA_START = 100, 51


def swa_params(s: Settings) -> dict:
    """Table 2's Roost settings with early stopping replaced by weight averaging."""
    params = {k: v for k, v in s.roost_params().items() if k not in ("early_stopping", "patience")}
    return params | {"epochs": EPOCHS, "swa_start": SWA_START}


def train(key: str, s: Settings, ledger: Ledger) -> None:
    """Train the SWA fits of property ``key`` that the ledger lacks."""
    run_fits(ledger, load_property(key, s), [job("roost", INPUTS, seed, swa_params(s)) for seed in s.seeds], s, {})


def compare(key: str, s: Settings, ledger: Ledger) -> dict | None:
    """One property's row from the ledger (None when its SWA fits are missing)."""
    data = load_property(key, s)
    seeds = list(s.seeds)
    swa_jobs = [job("roost", INPUTS, seed, swa_params(s)) for seed in seeds]
    try:
        swa = run_fits(ledger, data, swa_jobs, s, {}, train=False)
    except NotInLedger:
        return None
    early = run_fits(ledger, data, [job("roost", INPUTS, seed) for seed in seeds], s, {}, train=False)
    statics = [f"static:{t}" for t in s.static]
    select = seeds[: s.select_seeds]
    stat = collect(ledger, data, [job("roost", n, seed) for n in statics for seed in select], s, {}, train=False)
    best = pick_on_validation({n: [stat[job("roost", n, seed)]["result"]["val_mae"] for seed in select]
                               for n in statics})
    best_recs = run_fits(ledger, data, [job("roost", best, seed) for seed in seeds], s, {}, train=False)
    y_test = data.y[data.split[2]]

    def maes(recs, jobs):
        return [float(recs[j]["result"]["test_mae"]) for j in jobs]

    def ens(recs, jobs):
        return ensemble_mae([recs[j]["result"]["pred_test"] for j in jobs], y_test)

    early_jobs = [job("roost", INPUTS, seed) for seed in seeds]
    best_jobs = [job("roost", best, seed) for seed in seeds]
    e, w, b = maes(early, early_jobs), maes(swa, swa_jobs), maes(best_recs, best_jobs)
    return {"key": key, "n_train": len(data.split[0]), "early": e, "swa": w, "static": b,
            "best_static": best.split(":", 1)[1], "ens_early": ens(early, early_jobs), "ens_swa": ens(swa, swa_jobs),
            "swa_vs_early": verdict(w, e), "early_vs_static": verdict(e, b), "swa_vs_static": verdict(w, b)}


def report(rows: list[dict], args, s: Settings) -> str:
    """The markdown report of ``rows``."""
    def cell(v):
        m, sd = seed_stats(v)
        return f"{m:.4g} ± {sd:.2g}"

    props = " ".join(r["key"] for r in rows)
    lines = [
        "# SWA vs early stopping on Table 2's panel: Roost on ALIGNN-FF `gcn4` rows (issue 28, item 2)", "",
        f"Command: `OMP_NUM_THREADS=1 python -m benchmarks.bench_swa --props {props} --from-ledger"
        f" --out {args.out}` (the SWA fits were trained by the same command without `--from-ledger`, on"
        " disjoint property lists side by side).", "",
        f"Machine: {machine()}; 1 thread per fit. Seeds {list(s.seeds)}.", "",
        f"Roost with Table 2's full-size network, batch {s.batch_size}, lr {s.lr}. *early stopping*: Table 2's"
        f" committed fits (at most {s.epochs} epochs, patience {s.patience} on the validation split, best epoch"
        f" kept). *swa*: `RoostRegressor(max_epochs={EPOCHS}, swa_start={SWA_START})`, no validation data."
        " Test MAE, mean ± std over the seeds (ddof=1); *ens*: MAE of the seeds' mean prediction. *best static*:"
        " Table 2's static table chosen on the validation MAE of seed 0 (early-stopped fits, as Table 2)."
        " Verdicts: Table 2's rule (the means"
        " differ by more than the summed stds and 5 %).", "",
        "| property | n train | early stopping | swa | swa vs early | ens early | ens swa | best static |"
        " early vs static | swa vs static |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['key']} | {r['n_train']} | {cell(r['early'])} | {cell(r['swa'])} | {r['swa_vs_early']} |"
            f" {r['ens_early']:.4g} | {r['ens_swa']:.4g} | {r['best_static']} {cell(r['static'])} |"
            f" {r['early_vs_static']} | {r['swa_vs_static']} |")
    n = len(rows)
    better = sum(np.mean(r["swa"]) < np.mean(r["early"]) for r in rows)
    ens_better = sum(r["ens_swa"] < r["ens_early"] for r in rows)
    ratios = [np.mean(r["swa"]) / np.mean(r["early"]) for r in rows]
    std_smaller = sum(np.std(r["swa"], ddof=1) < np.std(r["early"], ddof=1) for r in rows)

    def tally(col):
        return ", ".join(f"{sum(r[col] == v for r in rows)} {v}{'es' if v == 'loss' else 's'}"
                         for v in ("win", "tie", "loss"))

    lines += [
        "", f"Summary over {n} properties:", "",
        f"- single fits: SWA's mean test MAE is lower on {better} of {n} (median ratio swa/early"
        f" {np.median(ratios):.3f}); Table 2's verdict swa vs early: {tally('swa_vs_early')}; seed std smaller"
        f" on {std_smaller} of {n};",
        f"- mean of 3 seeds: SWA lower on {ens_better} of {n} (median ratio"
        f" {np.median([r['ens_swa'] / r['ens_early'] for r in rows]):.3f});",
        f"- against the best static table: early stopping {tally('early_vs_static')}; swa {tally('swa_vs_static')}"
        " (the static rows keep early stopping).",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--props", nargs="+", default=list(PROPERTIES), choices=list(PROPERTIES))
    parser.add_argument("--from-ledger", action="store_true", help="train nothing; report the fits the ledger has")
    parser.add_argument("--n-jobs", type=int, default=1, help="fits run in parallel")
    parser.add_argument("--ledger", default=str(DEFAULT_LEDGER))
    parser.add_argument("--out", default="benchmarks/results/swa.md")
    args = parser.parse_args(argv)
    s = Settings(**(FULL_SIZE | {"select_seeds": 1, "n_jobs": args.n_jobs}))  # Table 2 ran --select-seeds 1
    ledger = Ledger(args.ledger)
    if not args.from_ledger:
        for key in args.props:
            train(key, s, ledger)
    rows = [r for key in args.props if (r := compare(key, s, ledger)) is not None]
    missing = len(args.props) - len(rows)
    text = report(rows, args, s)
    if missing:
        text += f"\n{missing} of the {len(args.props)} properties asked for have no SWA fits yet (not shown).\n"
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
