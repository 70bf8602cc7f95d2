"""Table builders: each a pure function of (ledger records, manifest entry) writing its csv/md (and plots).

A manifest entry is ``{"builder": name, "args": {...}, "header": {...}}``; ``args`` names ledger
records by key (``"property"``: a property record, ``"fits"``: fit records) plus the run's choices.
The run that trains the fits calls the same builder, so ``rebuild`` writes the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .ledger import Ledger
from .report import MIN_PCT, backbones_caption, pick_on_validation, plot_layers, plot_pct_change, rounded, \
    seed_stats, verdict, write_table

#: Matbench v0.1 dielectric leaderboard, mean MAE over the 5 folds
MATBENCH_LEADERBOARD = {"MODNet": 0.2711, "coGN": 0.3088, "ALIGNN": 0.3449}
MODEL_NAMES = {"roost": "Roost", "elemnet": "ElemNet", "flaml": "AutoML (FLAML)",
               "autosklearn": "AutoML (auto-sklearn)", "crabnet": "CrabNet"}


def fit_results(ledger: Ledger, keys) -> dict[tuple[str, str, int], dict]:
    """``(model, inputs, seed) -> result`` of the fit records ``keys``."""
    out = {}
    for key in keys:
        ident = ledger[key]["identity"]
        out[(ident["model"], ident["inputs"], ident["seed"])] = ledger[key]["result"]
    return out


def maes(res: dict, inputs: str, seeds, part: str = "test_mae", model: str = "roost") -> list[float]:
    """``part`` of the fits of ``inputs`` over ``seeds``."""
    return [res[(model, inputs, s)][part] for s in seeds]


def choose(res: dict, names, seeds, model: str = "roost") -> str:
    """Of ``names``, the inputs with the lowest mean validation MAE over ``seeds``."""
    return pick_on_validation({n: maes(res, n, seeds, "val_mae", model) for n in names})


def _label(name: str) -> str:
    return name.split(":", 1)[1]


# ----------------------------------------------------------------------------- Table 2
def table2(args: dict, header: dict, ledger: Ledger, out: Path) -> None:
    """Roost with static vs dynamic embeddings per property (+ every fit, + the % change plot)."""
    sel, seeds = args["select_seeds"], args["seeds"]
    rows, fit_rows = [], []
    for item in args["properties"]:
        prop, res = ledger[item["property"]], fit_results(ledger, item["fits"])
        key, p = prop["identity"]["property"], prop["result"]
        best_static, tuned = choose(res, args["statics"], sel), choose(res, args["stages"], sel)
        st, dy, tu = (maes(res, e, seeds) for e in (best_static, args["last"], tuned))
        (ms, ss), (md, sd), (mt, sdt) = seed_stats(st), seed_stats(dy), seed_stats(tu)
        rows.append({
            "property": key, "unit": p["unit"], "train/val/test": p["sizes"], "flag": p["flag"],
            "mean baseline MAE": p["mean_baseline_mae"], "best static (val)": _label(best_static),
            "static MAE": ms, "static std": ss, "dynamic (last) MAE": md, "dynamic std": sd,
            "dynamic %": 100 * (md - ms) / ms, "dynamic verdict": verdict(dy, st),
            "tuned stage (val)": _label(tuned), "tuned MAE": mt, "tuned std": sdt,
            "tuned %": 100 * (mt - ms) / ms, "tuned verdict": verdict(tu, st),
        })
        if "crabnet" in args:
            rows[-1] |= _crabnet_columns(ledger, item, seeds, dy)
        for (_, emb, seed), r in sorted(res.items()):
            fit_rows.append({"property": key, "embedding": emb, "seed": seed, "val MAE": r["val_mae"],
                             "test MAE": r["test_mae"]})
        for (_, _, seed), r in sorted(fit_results(ledger, item.get("crabnet", [])).items()):
            fit_rows.append({"property": key, "embedding": "CrabNet (formula)", "seed": seed, "val MAE": r["val_mae"],
                             "test MAE": r["test_mae"]})
    df = pd.DataFrame(rows)
    props = args["requested"]
    count = {col: {v: int((df[col] == v).sum()) for v in ("win", "loss")}
             for col in ("dynamic verdict", "tuned verdict")}
    notes = [
        f"best static = the static table with the lowest validation MAE over seeds {sel} (out of "
        f"{', '.join(_label(s) for s in args['statics'])}); tuned = the backbone stage (or 'all' stages concatenated) "
        f"with the lowest validation MAE over seeds {sel} among {', '.join(_label(s) for s in args['stages'])} (the pick of GridSearchCV over the transformer's layer with "
        "the validation split as its one fold, PredefinedSplit; tests/test_benchmarks_smoke.py checks they agree); "
        "dynamic (last) = the last stage, fixed",
        "% = (dynamic - best static) / best static; negative is better. verdict: win/loss only when the "
        f"mean difference exceeds both the sum of the two seed stds and {MIN_PCT:g}% of the static MAE, else tie",
        f"dynamic (last) wins {count['dynamic verdict']['win']} / {len(df)}, "
        f"losses {count['dynamic verdict']['loss']}; "
        f"tuned wins {count['tuned verdict']['win']} / {len(df)}, losses {count['tuned verdict']['loss']}",
        f"properties done: {len(df)} of the {len(props)} requested ({', '.join(props[len(df):]) or 'none'} not run)",
        f"flag: >= {args['zero_flag']:.0%} of the values are exactly 0 (metal-dominated JARVIS subset): "
        "models collapse towards the median there, so these rows say little about embeddings",
    ]
    if "crabnet" in args:
        notes += _crabnet_notes(df, args["crabnet"])
    write_table(rounded(df), "table2_static_vs_dynamic", header, out, notes)
    write_table(rounded(pd.DataFrame(fit_rows)), "table2_all_fits", {**header, "table": "Table 2, every fit"}, out)
    plot_pct_change(df, out / "table2_pct_change.png", f"{header['settings']}. * = mostly zeros")


def _crabnet_columns(ledger: Ledger, item: dict, seeds, dynamic: list[float]) -> dict:
    """CrabNet's test MAE over ``seeds`` next to the dynamic last stage's (NaN / "" where not fitted yet)."""
    if "crabnet" not in item:
        return {"CrabNet MAE": np.nan, "CrabNet std": np.nan, "dynamic vs CrabNet %": np.nan,
                "dynamic vs CrabNet": ""}
    crab = maes(fit_results(ledger, item["crabnet"]), "formula", seeds, model="crabnet")
    (mc, sc), md = seed_stats(crab), seed_stats(dynamic)[0]
    return {"CrabNet MAE": mc, "CrabNet std": sc, "dynamic vs CrabNet %": 100 * (md - mc) / mc,
            "dynamic vs CrabNet": verdict(dynamic, crab)}


def _crabnet_notes(df: pd.DataFrame, crab: dict) -> list[str]:
    done = df["dynamic vs CrabNet"] != ""
    epochs = crab["params"]["epochs"] or 300
    return [
        f"CrabNet 2.0.8 (its side env), its default network, at most {epochs} epochs, on the same splits and seeds; it uses "
        "the validation split while training (stochastic weight averaging), so only its test MAE is a score; "
        "fitted on the properties of --crabnet-props only (its cost): "
        f"{', '.join(crab['props'])}",
        f"dynamic (last) vs CrabNet, same verdict rule: wins {int((df['dynamic vs CrabNet'] == 'win').sum())}, "
        f"ties {int((df['dynamic vs CrabNet'] == 'tie').sum())}, losses "
        f"{int((df['dynamic vs CrabNet'] == 'loss').sum())} of the {int(done.sum())} properties with CrabNet rows",
    ]


# ----------------------------------------------------------------------------- Table 1
def table1(args: dict, header: dict, ledger: Ledger, out: Path) -> None:
    """Roost on each backbone stage, one property (+ the MAE-per-stage plot)."""
    seeds, rows = args["seeds"], []
    for item in args["backbones"]:
        p, res = ledger[item["property"]]["result"], fit_results(ledger, item["fits"])
        for st in item["stages"]:
            m, sd = seed_stats(maes(res, f"dynamic:{st}", seeds))
            v, _ = seed_stats(maes(res, f"dynamic:{st}", seeds, "val_mae"))
            rows.append({"backbone": item["backbone"], "stage": st, "train/val/test": p["sizes"], "test MAE": m,
                         "std": sd, "val MAE": v, "mean baseline MAE": p["mean_baseline_mae"]})
    df = pd.DataFrame(rows)
    write_table(rounded(df), "table1_layers", header, out, [*args["notes"], "stage 'all' = every stage concatenated "
                                                            "per element row"])
    plot_layers(df, out / "table1_layers.png", f"Roost on {args['property']}: one backbone stage at a time",
                args["unit"], backbones_caption(header["settings"], df["backbone"]))  # every panel's backbone


# ----------------------------------------------------------------------------- Table 3
def table3(args: dict, header: dict, ledger: Ledger, out: Path) -> None:
    """ElemNet and AutoML on atom-averaged dynamic vectors vs composition features."""
    seeds, rows, askl_seconds = args["seeds"], [], []
    for item in args["properties"]:
        prop, res = ledger[item["property"]], fit_results(ledger, item["fits"])
        sizes = prop["result"]["sizes"].split("/")
        for inp in args["inputs"]:
            for model in args["models"]:
                m, sd = seed_stats(maes(res, inp, seeds, model=model))
                if model == "autosklearn":
                    askl_seconds += maes(res, inp, seeds, "fit_s", model)
                label = f"dynamic ({_label(_label(inp))}, atom-averaged)" if inp.startswith("mean:dynamic") else inp
                rows.append({"property": prop["identity"]["property"], "input": label, "width": item["widths"][inp],
                             "model": MODEL_NAMES[model], "train/test": f"{sizes[0]}/{sizes[2]}", "test MAE": m,
                             "std": sd})
    notes = ["FLAML is run with a trial limit instead of a time budget, so its search (and this table) is "
             "reproducible for a seed; a time budget would make the number of trials depend on machine load"]
    if "autosklearn" in args["models"]:
        notes.append(
            "auto-sklearn is run as it is meant to be, by a time budget "
            f"({args['autosklearn_budget']} s a fit), so its "
            "rows depend on machine speed and load and are not reproducible bit for bit; wall clock per "
            "auto-sklearn fit (search, ensemble, side-interpreter start-up, predict): "
            f"mean {np.mean(askl_seconds):.0f} s "
            f"over {len(askl_seconds)} fits")
    write_table(rounded(pd.DataFrame(rows)), "table3_methods", header, out, notes)


# ----------------------------------------------------------------------------- Table 4
def table4(args: dict, header: dict, ledger: Ledger, out: Path) -> None:
    """With vs without polymorphs, static vs dynamic (also the MAE on test entries that have polymorphs)."""
    seeds, rows = args["seeds"], []
    for item in args["sets"]:
        p, res = ledger[item["property"]]["result"], fit_results(ledger, item["fits"])
        for emb in args["embeddings"]:
            m, sd = seed_stats(maes(res, emb, seeds))
            pm, psd = seed_stats([item["polymorph_mae"][emb][str(s)] for s in seeds])
            rows.append({"property": item["key"], "set": item["set"], "entries": item["entries"],
                         "entries in polymorph groups": item["entries_in_groups"], "train/val/test": p["sizes"],
                         "embedding": emb, "test MAE": m, "std": sd, "test MAE on polymorph entries": pm,
                         "polymorph std": psd, "n polymorph test entries": item["n_polymorph_test"]})
    notes = ["without polymorphs = per reduced formula the entry with the lowest formation energy (the "
             "target itself where the source has no formation energy: MP elasticity)",
             "a static embedding gives polymorphs identical inputs, so it predicts one value for all of them; "
             "'test MAE on polymorph entries' is over test entries whose formula occurs more than once in the set"]
    write_table(rounded(pd.DataFrame(rows)), "table4_polymorphs", header, out, notes)


# ----------------------------------------------------------------------------- Table 5
def table5(args: dict, header: dict, ledger: Ledger, out: Path) -> None:
    """Matbench dielectric, official folds: the stage chosen per fold, single seeds and seed ensembles,
    next to the leaderboard (+ the per-fold table)."""
    seeds, rows = args["seeds"], []
    for item in args["folds"]:
        p, res = ledger[item["property"]]["result"], fit_results(ledger, item["fits"])
        train, val, test = (int(n) for n in p["sizes"].split("/"))
        chosen = choose(res, args["stages"], args["select_seeds"])
        for model, e in (("dynamic", chosen), ("static", args["static"])):
            rows.append({"fold": item["fold"], "model": model, "embedding": _label(e), "inner train": train,
                         "inner val": val, "test": test, "val MAE": float(np.mean(maes(res, e, seeds, "val_mae"))),
                         "test MAE (mean over seeds)": float(np.mean(maes(res, e, seeds))),
                         f"test MAE, ensemble of {len(seeds)}": item["ensemble"][e]})
    per_fold = pd.DataFrame(rows)
    label = {"dynamic": "Roost + dynamic (stage chosen per fold on inner val)",
             "static": f"Roost + {args['static']}"}
    summary = []
    for model, group in per_fold.groupby("model", sort=False):
        for what, column in (("one seed", "test MAE (mean over seeds)"),
                             (f"ensemble of {len(seeds)} seeds", f"test MAE, ensemble of {len(seeds)}")):
            summary.append({"model": f"{label[model]}, {what}", "mean MAE over folds": group[column].mean(),
                            "fold std": group[column].std(ddof=1)})
    summary += [{"model": f"{m} (Matbench v0.1 leaderboard, full training folds)", "mean MAE over folds": v,
                 "fold std": np.nan} for m, v in MATBENCH_LEADERBOARD.items()]
    done = [item["fold"] for item in args["folds"]]
    notes = [f"folds done: {len(done)} of 5 ({', '.join(map(str, done))}); the leaderboard means are over all 5",
             f"stages chosen among {', '.join(_label(s) for s in args['stages'])} by the mean inner-validation MAE "
             f"over seeds {args['select_seeds']}; Roost trains on the inner training split only",
             "one seed = the mean over seeds of each seed's test MAE; ensemble = the test MAE of the seeds' mean "
             "prediction",
             f"{args['n_dropped']} entries with an element outside a static table or the backbone are left out of "
             "every fold",
             "the leaderboard entries train on the full ~3.8k-entry training folds"
             + ("; these training folds are capped, so the comparison is not like for like" if args["capped"] else "")]
    write_table(rounded(pd.DataFrame(summary)), "table5_matbench_dielectric", header, out, notes)
    write_table(rounded(per_fold), "table5_matbench_folds", {**header, "table": "Table 5, per fold"}, out)


# ----------------------------------------------------------------------------- Table 6
def table6(args: dict, header: dict, ledger: Ledger, out: Path) -> None:
    """Cost: extraction throughput (measured by the run) and Roost per-epoch time (from the ledger)."""
    rows = list(args["extraction"])
    res, n_train = fit_results(ledger, args["fits"]), int(ledger[args["property"]]["result"]["sizes"].split("/")[0])
    for emb, width in args["embeddings"].items():
        epoch_s = res[("roost", emb, args["seed"])]["epoch_s"]
        rows.append({"what": f"Roost epoch, {emb} ({width}-d rows)", "n": n_train, "seconds": epoch_s,
                     "per second": n_train / epoch_s})
    notes = ["for a controlled Roost per-epoch comparison across row widths see "
             "benchmarks/bench_roost_epoch.py (PYTHONPATH=. .venv/bin/python benchmarks/bench_roost_epoch.py)"]
    write_table(rounded(pd.DataFrame(rows)), "table6_cost", header, out, notes)


#: the builder of each manifest entry's ``"builder"`` name (the learning curves add theirs in run.py)
BUILDERS = {"table1": table1, "table2": table2, "table3": table3, "table4": table4, "table5": table5,
            "table6": table6}
