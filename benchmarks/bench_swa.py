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


def best_static(data, s: Settings, ledger: Ledger) -> str:
    """Table 2's static input for ``data``: the lowest validation MAE of its early-stopped fits, seed 0."""
    statics = [f"static:{t}" for t in s.static]
    select = list(s.seeds)[: s.select_seeds]
    stat = collect(ledger, data, [job("roost", n, seed) for n in statics for seed in select], s, {}, train=False)
    return pick_on_validation({n: [stat[job("roost", n, seed)]["result"]["val_mae"] for seed in select]
                               for n in statics})


def train(key: str, s: Settings, ledger: Ledger, which: str) -> None:
    """Train the SWA fits of property ``key`` that the ledger lacks, on the dynamic rows
    (``which="dynamic"``) or on Table 2's best static table (``"static"``)."""
    data = load_property(key, s)
    inputs = INPUTS if which == "dynamic" else best_static(data, s, ledger)
    run_fits(ledger, data, [job("roost", inputs, seed, swa_params(s)) for seed in s.seeds], s, {})


def compare(key: str, s: Settings, ledger: Ledger) -> dict | None:
    """One property's row from the ledger (None when its dynamic SWA fits are missing; the static
    SWA columns None when those are)."""
    data = load_property(key, s)
    seeds = list(s.seeds)
    best = best_static(data, s, ledger)
    y_test = data.y[data.split[2]]

    def fits(inputs, swa):
        jobs = [job("roost", inputs, seed, swa_params(s) if swa else None) for seed in seeds]
        try:
            recs = run_fits(ledger, data, jobs, s, {}, train=False)
        except NotInLedger:
            return None, None
        return ([float(recs[j]["result"]["test_mae"]) for j in jobs],
                ensemble_mae([recs[j]["result"]["pred_test"] for j in jobs], y_test))

    w, ens_w = fits(INPUTS, True)
    if w is None:
        return None
    (e, ens_e), (b, _), (bw, _) = fits(INPUTS, False), fits(best, False), fits(best, True)
    return {"key": key, "n_train": len(data.split[0]), "early": e, "swa": w, "static": b, "static_swa": bw,
            "best_static": best.split(":", 1)[1], "ens_early": ens_e, "ens_swa": ens_w,
            "swa_vs_early": verdict(w, e), "early_vs_static": verdict(e, b), "swa_vs_static": verdict(w, b),
            "swa_vs_static_swa": None if bw is None else verdict(w, bw)}


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "es" if word == "loss" else "s")


def report(rows: list[dict], args, s: Settings) -> str:
    """The markdown report of ``rows``."""
    def cell(v):
        if v is None:
            return "not fitted"
        m, sd = seed_stats(v)
        return f"{m:.4g} ± {sd:.2g}"

    props = " ".join(r["key"] for r in rows)
    lines = [
        "# SWA vs early stopping on Table 2's panel: Roost on ALIGNN-FF `gcn4` rows (issue 28, item 2)", "",
        f"Command: `OMP_NUM_THREADS=1 python -m benchmarks.bench_swa --props {props} --from-ledger"
        f" --out {args.out}` (the SWA fits were trained by the same command without `--from-ledger`, with"
        " `--train dynamic` then `--train static`, on disjoint property lists side by side).", "",
        f"Machine: {machine()}; 1 thread per fit. Seeds {list(s.seeds)}.", "",
        f"Roost with Table 2's full-size network, batch {s.batch_size}, lr {s.lr}. *early stopping*: Table 2's"
        f" committed fits (at most {s.epochs} epochs, patience {s.patience} on the validation split, best epoch"
        f" kept). *swa*: `RoostRegressor(max_epochs={EPOCHS}, swa_start={SWA_START})`, no validation data."
        " Test MAE, mean ± std over the seeds (ddof=1); *ens*: MAE of the seeds' mean prediction. *best static*:"
        " Table 2's static table chosen on the validation MAE of seed 0 (early-stopped fits, as Table 2), with"
        " early stopping and with SWA. Verdicts: Table 2's rule (the means differ by more than the summed stds"
        " and 5 %).", "",
        "| property | n train | early stopping | swa | swa vs early | ens early | ens swa | best static |"
        " static, early stopping | static, swa | early vs static | swa vs static (early) | swa vs static (swa) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['key']} | {r['n_train']} | {cell(r['early'])} | {cell(r['swa'])} | {r['swa_vs_early']} |"
            f" {r['ens_early']:.4g} | {r['ens_swa']:.4g} | {r['best_static']} | {cell(r['static'])} |"
            f" {cell(r['static_swa'])} | {r['early_vs_static']} | {r['swa_vs_static']} |"
            f" {r['swa_vs_static_swa'] or 'not fitted'} |")
    n = len(rows)
    better = sum(np.mean(r["swa"]) < np.mean(r["early"]) for r in rows)
    ens_better = sum(r["ens_swa"] < r["ens_early"] for r in rows)
    ratios = [np.mean(r["swa"]) / np.mean(r["early"]) for r in rows]
    std_smaller = sum(np.std(r["swa"], ddof=1) < np.std(r["early"], ddof=1) for r in rows)
    fair = [r for r in rows if r["static_swa"] is not None]

    def tally(col, among):
        return ", ".join(_count(sum(r[col] == v for r in among), v) for v in ("win", "tie", "loss"))

    lines += [
        "", f"Summary over {n} properties:", "",
        f"- single fits: SWA's mean test MAE is lower on {better} of {n} (median ratio swa/early"
        f" {np.median(ratios):.3f}); Table 2's verdict swa vs early: {tally('swa_vs_early', rows)}; seed std"
        f" smaller on {std_smaller} of {n};",
        f"- mean of 3 seeds: SWA lower on {ens_better} of {n} (median ratio"
        f" {np.median([r['ens_swa'] / r['ens_early'] for r in rows]):.3f});",
        f"- against the best static table with early stopping: early stopping {tally('early_vs_static', rows)};"
        f" swa {tally('swa_vs_static', rows)};",
    ]
    if fair:
        lines.append(
            f"- both trained alike, on the {len(fair)} properties whose static SWA fits exist: early stopping"
            f" {tally('early_vs_static', fair)}; swa (dynamic vs static) {tally('swa_vs_static_swa', fair)}.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--props", nargs="+", default=list(PROPERTIES), choices=list(PROPERTIES))
    parser.add_argument("--train", nargs="+", choices=["dynamic", "static"], default=["dynamic", "static"],
                        help="which SWA fits to train: on the dynamic rows, on Table 2's best static table")
    parser.add_argument("--from-ledger", action="store_true", help="train nothing; report the fits the ledger has")
    parser.add_argument("--n-jobs", type=int, default=1, help="fits run in parallel")
    parser.add_argument("--ledger", default=str(DEFAULT_LEDGER))
    parser.add_argument("--out", default="benchmarks/results/swa.md")
    args = parser.parse_args(argv)
    s = Settings(**(FULL_SIZE | {"select_seeds": 1, "n_jobs": args.n_jobs}))  # Table 2 ran --select-seeds 1
    ledger = Ledger(args.ledger)
    if not args.from_ledger:
        for which in args.train:
            for key in args.props:
                train(key, s, ledger, which)
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
