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
from .report import MIN_PCT, backbones_caption, pick_on_validation, plot_layers, plot_methods, plot_pct_change, \
    plot_polymorphs, rounded, seed_stats, verdict, write_table

#: Matbench v0.1 dielectric leaderboard, mean MAE over the 5 folds
MATBENCH_LEADERBOARD = {"MODNet": 0.2711, "coGN": 0.3088, "ALIGNN": 0.3449}
MODEL_NAMES = {"roost": "Roost", "elemnet": "ElemNet", "flaml": "AutoML (FLAML)",
               "autosklearn": "AutoML (auto-sklearn)", "crabnet": "CrabNet",
               "crabnet-style": "CrabNet-style (ours)"}
#: what a table says of a fit it asked for and the ledger does not hold
NOT_IN_LEDGER = "not in the ledger"


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


def present(res: dict, model: str, inputs: str, seeds, part: str = "test_mae") -> list[float]:
    """``part`` of the fits of ``(model, inputs)`` the ledger holds, over those of ``seeds`` it holds."""
    return [res[(model, inputs, s)][part] for s in seeds if (model, inputs, s) in res]


def stats_or_nan(values) -> tuple[float, float]:
    """:func:`seed_stats` of ``values``; NaN, NaN when there are none."""
    return seed_stats(values) if len(values) else (np.nan, np.nan)


def in_ledger(values, seeds) -> str:
    """How many of ``seeds`` a row stands on: "3 of 3", or :data:`NOT_IN_LEDGER`."""
    return f"{len(values)} of {len(seeds)}" if len(values) else NOT_IN_LEDGER


def missing_note(res: dict, expected, prefix: str = "") -> str | None:
    """A note naming the fits of ``expected`` (``[model, inputs, seed]``) that ``res`` lacks, grouped by
    model and inputs; None when none is missing."""
    lacking: dict[tuple[str, str], list[int]] = {}
    for model, inputs, seed in expected:
        if (model, inputs, seed) not in res:
            lacking.setdefault((model, inputs), []).append(seed)
    if not lacking:
        return None
    parts = [f"{MODEL_NAMES.get(m, m)} {i} seed{'s' if len(v) > 1 else ''} {', '.join(map(str, v))}"
             for (m, i), v in lacking.items()]
    return f"{prefix}{NOT_IN_LEDGER} (asked for, not fitted yet): {'; '.join(parts)}"


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
    """Roost on each backbone stage, one property (+ the MAE-per-stage plot); a stage whose fits the
    ledger does not hold (yet) is a row marked :data:`NOT_IN_LEDGER`, and a note names every missing fit."""
    seeds, rows, notes = args["seeds"], [], list(args["notes"])
    for item in args["backbones"]:
        p, res = ledger[item["property"]]["result"], fit_results(ledger, item["fits"])
        for st in item["stages"]:
            test = present(res, "roost", f"dynamic:{st}", seeds)
            (m, sd), (v, _) = stats_or_nan(test), stats_or_nan(present(res, "roost", f"dynamic:{st}", seeds, "val_mae"))
            rows.append({"backbone": item["backbone"], "stage": st, "train/val/test": p["sizes"], "test MAE": m,
                         "std": sd, "val MAE": v, "seeds": in_ledger(test, seeds),
                         "mean baseline MAE": p["mean_baseline_mae"]})
        note = missing_note(res, item.get("expected", []), f"backbone {item['backbone']}: ")
        notes += [note] if note else []
    df = pd.DataFrame(rows)
    done = df[df["seeds"] != NOT_IN_LEDGER]
    if len(done):
        best = done.loc[done["val MAE"].idxmin()]
        notes.append(f"stage with the lowest mean validation MAE: {best['backbone']} {best['stage']} (test "
                     f"{best['test MAE']:.4g}); lowest test MAE: {done.loc[done['test MAE'].idxmin(), 'stage']}")
    write_table(rounded(df), "table1_layers", header, out, [*notes, "stage 'all' = every stage concatenated "
                                                            "per element row"])
    plot_layers(df, out / "table1_layers.png", f"Roost on {args['property']}: one backbone stage at a time",
                args["unit"], backbones_caption(header["settings"], df["backbone"]))  # every panel's backbone


# ----------------------------------------------------------------------------- Table 3
def _input_label(inputs: str) -> str:
    if inputs.startswith("mean:dynamic:"):
        return f"dynamic {inputs.split(':')[-1]} (atom-averaged)"
    if inputs.startswith("dynamic:"):
        return f"dynamic {inputs.split(':')[-1]} (element rows)"
    if inputs.startswith("static:"):
        return f"{inputs.split(':')[-1]} (element rows)"
    return "formula (CrabNet's mat2vec)" if inputs == "formula" else inputs


def _method_reference(res: dict, model: str, inputs: str, combos, seeds) -> str | None:
    """The row a dynamic row of Table 3 is compared with: the same model on static mat2vec rows (Roost,
    CrabNet-style), or on the better (lower mean test MAE) of its ElementFraction and Magpie rows."""
    if inputs.startswith("dynamic:"):
        return "static:mat2vec" if [model, "static:mat2vec"] in combos else None
    if inputs.startswith("mean:dynamic:"):
        options = {i: np.mean(present(res, model, i, seeds)) for i in ("ElementFraction", "Magpie")
                   if [model, i] in combos and present(res, model, i, seeds)}
        return min(options, key=options.get) if options else None
    return None


def table3(args: dict, header: dict, ledger: Ledger, out: Path) -> None:
    """The paper's methods on static vs dynamic inputs (+ a bar plot); rows whose fits the ledger lacks
    are marked :data:`NOT_IN_LEDGER`, methods that cannot run (AtomSets) are named in the notes."""
    seeds, rows, askl_seconds, notes = args["seeds"], [], [], []
    combos = args["combos"]
    for item in args["properties"]:
        prop, res = ledger[item["property"]], fit_results(ledger, item["fits"])
        for model, inputs in combos:
            test = present(res, model, inputs, seeds)
            m, sd = stats_or_nan(test)
            if model == "autosklearn":
                askl_seconds += present(res, model, inputs, seeds, "fit_s")
            ref = _method_reference(res, model, inputs, combos, seeds)
            ref_test = present(res, model, ref, seeds) if ref else []
            pct = 100 * (m - np.mean(ref_test)) / np.mean(ref_test) if ref_test and test else np.nan
            rows.append({"property": prop["identity"]["property"], "model": MODEL_NAMES[model],
                         "input": _input_label(inputs), "width": item["widths"][inputs],
                         "train/val/test": prop["result"]["sizes"], "test MAE": m, "std": sd,
                         "seeds": in_ledger(test, seeds), "vs": _input_label(ref) if ref else "",
                         "% vs": pct, "verdict": verdict(test, ref_test) if ref_test and test else ""})
        rows.append({"property": prop["identity"]["property"], "model": "AtomSets", "input": "MEGNet site features",
                     "width": "", "train/val/test": prop["result"]["sizes"], "test MAE": np.nan, "std": np.nan,
                     "seeds": "not run (no MEGNet weights)", "vs": "", "% vs": np.nan, "verdict": ""})
        note = missing_note(res, item.get("expected", []), f"{prop['identity']['property']}: ")
        notes += [note] if note else []
    done = [i for i in args["requested"] if i in {ledger[x["property"]]["identity"]["property"]
                                                  for x in args["properties"]}]
    notes += list(args.get("not_run", []))
    notes += [f"properties done: {len(done)} of the {len(args['requested'])} requested "
              f"({', '.join(p for p in args['requested'] if p not in done) or 'none'} not run)",
              "% vs = (row - reference) / reference, test MAE; reference = the same model on static mat2vec rows "
              "(Roost, CrabNet-style), or the better of the same model's ElementFraction and Magpie rows (ElemNet, "
              f"AutoML: a conservative reference, chosen on the test split); verdict: win/loss only when the "
              f"difference exceeds both the sum of the seed stds and {MIN_PCT:g}% of the reference, else tie",
              "FLAML is run with a trial limit instead of a time budget, so its search (and this table) is "
              "reproducible for a seed; a time budget would make the number of trials depend on machine load"]
    if "autosklearn" in args["models"] and askl_seconds:
        notes.append(
            "auto-sklearn is run as it is meant to be, by a time budget "
            f"({args['autosklearn_budget']} s a fit), so its "
            "rows depend on machine speed and load and are not reproducible bit for bit; wall clock per "
            "auto-sklearn fit (search, ensemble, side-interpreter start-up, predict): "
            f"mean {np.mean(askl_seconds):.0f} s "
            f"over {len(askl_seconds)} fits")
    df = pd.DataFrame(rows)
    write_table(rounded(df), "table3_methods", header, out, notes)
    plot_methods(df, out / "table3_methods.png", header["settings"])


# ----------------------------------------------------------------------------- Table 4
def table4(args: dict, header: dict, ledger: Ledger, out: Path) -> None:
    """With vs without polymorphs, static vs dynamic (also the MAE on test entries that have polymorphs;
    + a bar plot); rows whose fits the ledger lacks are marked :data:`NOT_IN_LEDGER`."""
    seeds, rows, notes = args["seeds"], [], []
    static, dynamic = args["embeddings"]
    for item in args["sets"]:
        p, res = ledger[item["property"]]["result"], fit_results(ledger, item["fits"])
        ref = present(res, "roost", static, seeds)
        for emb in args["embeddings"]:
            test = present(res, "roost", emb, seeds)
            m, sd = stats_or_nan(test)
            poly = [item["polymorph_mae"][emb][str(s)] for s in seeds if str(s) in item["polymorph_mae"].get(emb, {})]
            pm, psd = stats_or_nan([v for v in poly if v is not None])
            pct = 100 * (m - np.mean(ref)) / np.mean(ref) if emb == dynamic and ref and test else np.nan
            rows.append({"property": item["key"], "set": item["set"], "entries": item["entries"],
                         "entries in polymorph groups": item["entries_in_groups"], "train/val/test": p["sizes"],
                         "embedding": emb, "test MAE": m, "std": sd, "seeds": in_ledger(test, seeds),
                         "dynamic vs static %": pct, "verdict": verdict(test, ref) if pct == pct else "",
                         "test MAE on polymorph entries": pm, "polymorph std": psd,
                         "n polymorph test entries": item["n_polymorph_test"]})
        note = missing_note(res, item.get("expected", []), f"{item['key']} {item['set']}: ")
        notes += [note] if note else []
    requested = args.get("requested")
    if requested:
        done = {item["key"] for item in args["sets"]}
        notes.append(f"properties done: {len(done)} of the {len(requested)} requested "
                     f"({', '.join(k for k in requested if k not in done) or 'none'} not run)")
    notes += ["without polymorphs = per reduced formula the entry with the lowest formation energy (the "
              "target itself where the source has no formation energy: MP elasticity)",
              "a static embedding gives polymorphs identical inputs, so it predicts one value for all of them; "
              "'test MAE on polymorph entries' is over test entries whose formula occurs more than once in the set",
              f"dynamic vs static % = (dynamic - static) / static test MAE; verdict: win/loss only when the difference "
              f"exceeds both the sum of the seed stds and {MIN_PCT:g}% of the static MAE, else tie"]
    df = pd.DataFrame(rows)
    write_table(rounded(df), "table4_polymorphs", header, out, notes)
    plot_polymorphs(df, out / "table4_polymorphs.png", header["settings"])


# ----------------------------------------------------------------------------- Table 5
def table5(args: dict, header: dict, ledger: Ledger, out: Path) -> None:
    """Matbench dielectric, official folds: the stage chosen per fold, single seeds and seed ensembles,
    next to the leaderboard (+ the per-fold table)."""
    seeds, rows = args["seeds"], []
    members = args.get("members") or [_label(e) for e in args["stages"]]  # the ensemble's members
    for item in args["folds"]:
        p, res = ledger[item["property"]]["result"], fit_results(ledger, item["fits"])
        train, val, test = (int(n) for n in p["sizes"].split("/"))
        chosen = choose(res, args["stages"], args["select_seeds"])
        for model, e in (("dynamic", chosen), ("static", args["static"])):
            rows.append({"fold": item["fold"], "model": model, "embedding": _label(e), "inner train": train,
                         "inner val": val, "test": test, "val MAE": float(np.mean(maes(res, e, seeds, "val_mae"))),
                         "test MAE (mean over seeds)": float(np.mean(maes(res, e, seeds))),
                         f"test MAE, ensemble of {len(seeds)}": item["ensemble"][e]})
        if "stage_ensemble" in item:  # every member x every seed, averaged; its ensemble column holds them all
            if "members" in item:  # members of several backbones: each member's fits apart
                fits = [list(fit_results(ledger, keys).values()) for keys in item["members"].values()]
                val_mae = np.mean([[f["val_mae"] for f in member] for member in fits])
                test_mae = np.mean([[f["test_mae"] for f in member] for member in fits])
            else:
                val_mae = np.mean([maes(res, e, seeds, "val_mae") for e in args["stages"]])
                test_mae = np.mean([maes(res, e, seeds) for e in args["stages"]])
            rows.append({"fold": item["fold"], "model": "stage ensemble", "embedding": "+".join(members),
                         "inner train": train, "inner val": val, "test": test, "val MAE": float(val_mae),
                         "test MAE (mean over seeds)": float(test_mae),
                         f"test MAE, ensemble of {len(seeds)}": item["stage_ensemble"]})
    per_fold = pd.DataFrame(rows)
    n_members = len(members) * len(seeds)
    kind = "stage ensemble" if "members" not in args else "ensemble"
    label = {"dynamic": "Roost + dynamic (stage chosen per fold on inner val)",
             "static": f"Roost + {args['static']}",
             "stage ensemble": f"Roost + dynamic, {kind} ({'+'.join(members)}, no choice)"}
    summary = []
    for model, group in per_fold.groupby("model", sort=False):
        size = f"{n_members} models" if model == "stage ensemble" else f"{len(seeds)} seeds"
        for what, column in (("one model" if model == "stage ensemble" else "one seed", "test MAE (mean over seeds)"),
                             (f"ensemble of {size}", f"test MAE, ensemble of {len(seeds)}")):
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
    if (per_fold["model"] == "stage ensemble").any():
        names = ", ".join(members)
        notes.append(f"{kind} = the mean prediction of Roost on every {'stage' if kind == 'stage ensemble' else 'member'}"
                     f" of {names} "
                     f"with every seed ({n_members} models), fixed in advance: nothing is chosen; "
                     "in the per-fold table its val and 'mean over seeds' columns average all its members and its "
                     f"'ensemble of {len(seeds)}' column holds the {n_members}-model ensemble")
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
