"""What cuts Roost's error and seed scatter on a few hundred samples: seed ensembles, the stage
chosen on inner validation, stage ensembles, early stopping (issue 28, items 1 and 2).

Per JARVIS property and repetition r (a seeded draw of ``--n-train`` training entries from the
official train split; every other entry with the property is the test set), with ALIGNN-FF
element rows read from a ``memory=`` cache:

- per candidate stage: ``SeedEnsembleRegressor(RoostRegressor, n_seeds=5, random_state=r)``
  fitted on the training set; each member is a single-seed model, the mean of the first 3 / all 5
  members the 3- / 5-seed ensemble;
- the stage chosen by ``GridSearchCV`` on the training set (Roost seed 0 of the search) with one
  80/20 validation split and with 3-fold inner CV; its test MAE is that of the chosen stage's
  first member (single model) and of its 5-seed ensemble;
- the stage ensemble: mean of the candidate stages' first members (as many models as stages),
  and of all their members (stages x seeds);
- early stopping: the last stage, each member trained on 90% with ``validation_fraction=0.1``.

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ensembles.py \
        --out benchmarks/results/ensembles.md

``--mode sources`` (issue 28 item 5) instead fits Roost (``n_seeds`` seeds) on rows that combine
sources, with :class:`~skdynemb.ElementEmbeddingUnion`: a static table, the backbone's last
stage, the two joined, and the last stages of two backbones joined; by default on the two
properties where static tables beat dynamic rows in Table 2 (ehull, phonon heat capacity).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
import torch
from sklearn.model_selection import GridSearchCV, KFold, ShuffleSplit
from sklearn.pipeline import make_pipeline

from skdynemb import (
    DynamicEmbeddingTransformer,
    ElementEmbeddingUnion,
    RoostRegressor,
    SeedEnsembleRegressor,
    StaticEmbeddingTransformer,
)
from skdynemb.datasets import jarvis_leaderboard_task

UNITS = {"formation_energy_peratom": "eV/atom", "bulk_modulus_kv": "GPa", "ehull": "eV/atom",
         "ph_heat_capacity": "J/(mol K)"}


def roost(args, **kw) -> RoostRegressor:
    return RoostRegressor(max_epochs=args.epochs, batch_size=args.batch_size, out_hidden=(256, 128, 64), **kw)


def pipeline(args, stage, regressor):
    return make_pipeline(
        DynamicEmbeddingTransformer(args.backbone, stage=stage, memory=args.cache, progress=False, device="cpu"),
        regressor,
    )


def mae(pred, y) -> float:
    return float(np.abs(np.asarray(pred) - y).mean())


def run_unit(args, prop: str, rep: int) -> dict:
    """All fits of one property and repetition; returns test MAEs (and the chosen stages)."""
    task = jarvis_leaderboard_task(prop)
    pool = task.split_indices()["train"]
    train = np.sort(np.random.default_rng(rep).choice(pool, size=args.n_train, replace=False))
    test = np.setdiff1d(np.arange(len(task.y)), train)
    X_tr, y_tr = [task.structures[i] for i in train], task.y[train]
    X_te, y_te = [task.structures[i] for i in test], task.y[test]
    out = {"property": prop, "rep": rep, "n_train": len(train), "n_test": len(test),
           "predict_mean": mae(np.full(len(y_te), y_tr.mean()), y_te), "stages": {}}
    members = {}
    for stage in args.stages:
        t = time.perf_counter()
        model = pipeline(args, stage, SeedEnsembleRegressor(roost(args), n_seeds=args.n_seeds, n_jobs=args.n_jobs,
                                                             random_state=rep))
        model.fit(X_tr, y_tr)
        rows = model[0].transform(X_te)
        members[stage] = model[-1].predict_members(rows)
        out["stages"][str(stage)] = {
            "seeds": [int(s) for s in model[-1].seeds_],
            "single": [mae(p, y_te) for p in members[stage]],
            "ens3": mae(members[stage][:3].mean(0), y_te),
            "ens5": mae(members[stage].mean(0), y_te),
            "seconds": time.perf_counter() - t,
        }
        print(prop, rep, stage, out["stages"][str(stage)], flush=True)
    first = np.stack([members[s][0] for s in args.stages])
    out["stage_ensemble_single"] = mae(first.mean(0), y_te)
    out["stage_ensemble_all"] = mae(np.concatenate([members[s] for s in args.stages]).mean(0), y_te)
    grid = {"dynamicembeddingtransformer__stage": list(args.stages)}
    for name, cv in (("val_split", ShuffleSplit(1, test_size=0.2, random_state=rep)),
                     ("cv3", KFold(3, shuffle=True, random_state=rep))):
        search = GridSearchCV(pipeline(args, args.stages[-1], roost(args, random_state=0)), grid, cv=cv,
                              scoring="neg_mean_absolute_error", refit=False, n_jobs=args.n_jobs)
        search.fit(X_tr, y_tr)
        chosen = str(search.best_params_["dynamicembeddingtransformer__stage"])
        out[name] = {"chosen": chosen, "inner_mae": dict(zip(map(str, args.stages),
                                                             (-search.cv_results_["mean_test_score"]).tolist())),
                     "single": out["stages"][chosen]["single"][0], "ens5": out["stages"][chosen]["ens5"]}
        print(prop, rep, name, out[name], flush=True)
    last = args.stages[-1]
    model = pipeline(args, last, SeedEnsembleRegressor(roost(args, validation_fraction=0.1, patience=args.patience),
                                                       n_seeds=args.n_seeds, n_jobs=args.n_jobs, random_state=rep))
    model.fit(X_tr, y_tr)
    m = model[-1].predict_members(model[0].transform(X_te))
    out["early_stopping"] = {"single": [mae(p, y_te) for p in m], "ens3": mae(m[:3].mean(0), y_te),
                             "ens5": mae(m.mean(0), y_te),
                             "epochs": [len(e.history_[0]) for e in model[-1].estimators_]}
    print(prop, rep, "early stopping", out["early_stopping"], flush=True)
    return out


def sources(args) -> dict:
    """The ``--mode sources`` variants (issue 28 item 5): each a transformer giving element rows."""
    def dyn(backbone, stage=-1):
        return DynamicEmbeddingTransformer(backbone, stage=stage, memory=args.cache, progress=False, device="cpu")

    static = StaticEmbeddingTransformer(args.static)
    return {
        f"static {args.static}": static,
        f"dynamic {args.backbone} last": dyn(args.backbone),
        f"dynamic last + static {args.static}": ElementEmbeddingUnion(
            [("dyn", dyn(args.backbone)), ("static", static)]),
        f"{args.backbone} last + {args.second_backbone} last": ElementEmbeddingUnion(
            [("a", dyn(args.backbone)), ("b", dyn(args.second_backbone))]),
    }


def run_sources_unit(args, prop: str, rep: int) -> dict:
    """Roost on each source variant, ``n_seeds`` seeds (one SeedEnsembleRegressor), one training draw."""
    task = jarvis_leaderboard_task(prop)
    pool = task.split_indices()["train"]
    train = np.sort(np.random.default_rng(rep).choice(pool, size=min(args.n_train, len(pool)), replace=False))
    test = np.setdiff1d(np.arange(len(task.y)), train)
    X_tr, y_tr = [task.structures[i] for i in train], task.y[train]
    X_te, y_te = [task.structures[i] for i in test], task.y[test]
    out = {"mode": "sources", "property": prop, "rep": rep, "n_train": len(train), "n_test": len(test),
           "predict_mean": mae(np.full(len(y_te), y_tr.mean()), y_te), "variants": {}}
    for name, transformer in sources(args).items():
        t = time.perf_counter()
        model = make_pipeline(transformer, SeedEnsembleRegressor(roost(args), n_seeds=args.n_seeds,
                                                                  n_jobs=args.n_jobs, random_state=rep))
        model.fit(X_tr, y_tr)
        m = model[-1].predict_members(model[0].transform(X_te))
        out["variants"][name] = {"width": int(model[0].n_features_out_), "seeds": [int(s) for s in model[-1].seeds_],
                                 "single": [mae(p, y_te) for p in m], "ens": mae(m.mean(0), y_te),
                                 "seconds": time.perf_counter() - t}
        print(prop, rep, name, out["variants"][name], flush=True)
    return out


def report_sources(results: list[dict], args, header: str) -> str:
    rows = []
    for r in results:
        ref = np.mean(r["variants"][f"static {args.static}"]["single"])
        for name, v in r["variants"].items():
            single = np.asarray(v["single"])
            rows.append({"property": r["property"], "unit": UNITS.get(r["property"], "?"), "rep": r["rep"],
                         "train/test": f"{r['n_train']}/{r['n_test']}", "rows": name, "width": v["width"],
                         "single seed MAE": single.mean(), "seed std": single.std(ddof=1),
                         f"{len(single)}-seed ens.": v["ens"], "% single vs static": pct(single.mean(), ref)})
    return "\n".join([header, "", pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4g"), ""])


def pct(a, b) -> float:
    return 100.0 * (a - b) / b


def report(results: list[dict], args, header: str) -> str:
    stages = [str(s) for s in args.stages]
    last = stages[-1]
    rows_a, rows_b, rows_c = [], [], []
    for r in results:
        ref = float(np.mean(r["stages"][last]["single"]))
        for s in stages:
            d = r["stages"][s]
            single = np.asarray(d["single"])
            rows_a.append({"property": r["property"], "rep": r["rep"], "stage": s,
                           "single seed MAE (mean)": single.mean(), "seed std": single.std(ddof=1),
                           "seed range %": 100 * (single.max() - single.min()) / single.mean(),
                           "3-seed ens.": d["ens3"], "5-seed ens.": d["ens5"],
                           "% 5-seed vs single": pct(d["ens5"], single.mean())})
        rows_b += [
            {"property": r["property"], "rep": r["rep"], "choice": f"fixed last ({last})",
             "chosen": last, "1 model": r["stages"][last]["single"][0], "5-seed ens.": r["stages"][last]["ens5"]},
            {"property": r["property"], "rep": r["rep"], "choice": "80/20 validation split",
             "chosen": r["val_split"]["chosen"], "1 model": r["val_split"]["single"],
             "5-seed ens.": r["val_split"]["ens5"]},
            {"property": r["property"], "rep": r["rep"], "choice": "3-fold inner CV",
             "chosen": r["cv3"]["chosen"], "1 model": r["cv3"]["single"], "5-seed ens.": r["cv3"]["ens5"]},
            {"property": r["property"], "rep": r["rep"], "choice": "stage ensemble",
             "chosen": "+".join(stages), "1 model": r["stage_ensemble_single"], "5-seed ens.": r["stage_ensemble_all"]},
            {"property": r["property"], "rep": r["rep"], "choice": "oracle (best test stage)",
             "chosen": min(stages, key=lambda s: r["stages"][s]["single"][0]),
             "1 model": min(r["stages"][s]["single"][0] for s in stages),
             "5-seed ens.": min(r["stages"][s]["ens5"] for s in stages)},
        ]
        es = np.asarray(r["early_stopping"]["single"])
        full = np.asarray(r["stages"][last]["single"])
        rows_c.append({"property": r["property"], "rep": r["rep"], "training": f"{args.epochs} epochs, all data",
                       "single seed MAE (mean)": full.mean(), "seed std": full.std(ddof=1),
                       "5-seed ens.": r["stages"][last]["ens5"], "epochs run": f"{args.epochs}"})
        rows_c.append({"property": r["property"], "rep": r["rep"],
                       "training": f"early stopping (10% inner split, patience {args.patience})",
                       "single seed MAE (mean)": es.mean(), "seed std": es.std(ddof=1),
                       "5-seed ens.": r["early_stopping"]["ens5"],
                       "epochs run": "-".join(map(str, (min(r["early_stopping"]["epochs"]),
                                                        max(r["early_stopping"]["epochs"]))))})
        _ = ref
    a, b, c = pd.DataFrame(rows_a), pd.DataFrame(rows_b), pd.DataFrame(rows_c)
    # b: % vs the fixed last stage's single model / 5-seed ensemble of the same property and rep
    base = b[b["choice"].str.startswith("fixed")].set_index(["property", "rep"])
    b["% 1 model vs last"] = [pct(v, base.loc[(p, q), "1 model"])
                              for p, q, v in zip(b["property"], b["rep"], b["1 model"])]
    b["% ens. vs last ens."] = [pct(v, base.loc[(p, q), "5-seed ens."])
                                for p, q, v in zip(b["property"], b["rep"], b["5-seed ens."])]
    summary = b.groupby("choice", sort=False)[["% 1 model vs last", "% ens. vs last ens."]].mean()
    seeds_summary = a.groupby("stage", sort=False)[["seed range %", "% 5-seed vs single"]].mean()
    fmt = "{:.4g}".format
    parts = [header,
             "\n## Seed ensembles, per stage\n",
             "single seed = the 5 members one by one (mean, sample std, range as % of the mean); 3-/5-seed ens. = "
             "MAE of the mean prediction of the first 3 / all 5 members.\n",
             a.to_markdown(index=False, floatfmt=".4g"),
             "\nMean over properties and repetitions:\n",
             seeds_summary.to_markdown(floatfmt=".3g"),
             "\n## Choosing the stage\n",
             "1 model: the chosen stage's first member (the selection used Roost seed 0 on the training set only); "
             "5-seed ens.: the chosen stage's 5-seed ensemble. Stage ensemble: the mean of the candidate stages' "
             "first members (1 model column: as many models as stages) or of all their members. % vs the fixed "
             "last stage of the same property and repetition.\n",
             b.to_markdown(index=False, floatfmt=".4g"),
             "\nMean % over properties and repetitions:\n",
             summary.to_markdown(floatfmt=".3g"),
             "\n## Early stopping on an inner split (last stage)\n",
             c.to_markdown(index=False, floatfmt=".4g"),
             ""]
    del fmt
    return "\n".join(parts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--props", nargs="+", default=["formation_energy_peratom", "bulk_modulus_kv"])
    parser.add_argument("--reps", type=int, default=2, help="repetitions (training draws) per property")
    parser.add_argument("--n-train", type=int, default=300)
    parser.add_argument("--stages", nargs="+", default=["alignn2", "all", "gcn4"],
                        help="candidate stages, the fixed reference last (default: alignn2 all gcn4)")
    parser.add_argument("--backbone", default="alignn-ff")
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--patience", type=int, default=20)
    parser.add_argument("--n-seeds", type=int, default=5)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--cache", default="/tmp/skdynemb-bench-cache", help="memory= folder of the element rows")
    parser.add_argument("--raw", default="/tmp/skdynemb-bench-ensembles.jsonl",
                        help="per-unit results (resumable: units found there are not rerun)")
    parser.add_argument("--out", default=None, help="markdown report (default: print)")
    parser.add_argument("--mode", choices=["ensembles", "sources"], default="ensembles",
                        help="ensembles: seeds, stage choice, early stopping; sources: rows that combine sources")
    parser.add_argument("--static", default="matscholar200", help="static table of --mode sources")
    parser.add_argument("--second-backbone", default="cgcnn-mp-eform", help="second backbone of --mode sources")
    args = parser.parse_args(argv)
    unit_fn = run_sources_unit if args.mode == "sources" else run_unit
    raw = Path(args.raw)
    done = [json.loads(line) for line in raw.read_text().splitlines()] if raw.exists() else []
    for prop in args.props:
        for rep in range(args.reps):
            if any(d.get("mode", "ensembles") == args.mode and d["property"] == prop and d["rep"] == rep
                   for d in done):
                continue
            unit = unit_fn(args, prop, rep)
            with raw.open("a") as fh:
                fh.write(json.dumps(unit) + "\n")
            done.append(unit)
    results = [d for d in done if d.get("mode", "ensembles") == args.mode and d["property"] in args.props
               and d["rep"] < args.reps]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    title = ("# Rows that combine sources: a static table or a second backbone appended (issue 28 item 5)"
             if args.mode == "sources" else
             "# Seed ensembles, stage choice and early stopping for Roost on few samples (issue 28)")
    header = "\n".join([
        title,
        "",
        "- **command**: `" + " ".join(["PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ensembles.py",
                                       *(sys.argv[1:] if argv is None else argv)]) + "`",
        f"- **machine**: {platform.machine()} {torch.get_num_threads()} torch thread(s) per process, "
        f"{args.n_jobs} joblib workers, torch {torch.__version__}, scikit-learn {sklearn.__version__}, "
        f"Python {platform.python_version()}, git {commit} (+ uncommitted changes of this issue)",
        f"- **data**: JARVIS-DFT leaderboard entries of `../shared/data` ({', '.join(args.props)}); per "
        f"repetition r, {args.n_train} training entries drawn with numpy seed r from the official train split, "
        "every other entry with the property is the test set",
        (f"- **rows**: {', '.join(sources(args))} (ElementEmbeddingUnion joins two sources per element; "
         "dynamic rows cached with memory=); % vs the static table's single-seed mean"
         if args.mode == "sources" else
         f"- **rows**: backbone {args.backbone}, candidate stages {args.stages} (last = fixed reference), "
         "pooling per element, cached with memory="),
        f"- **model**: RoostRegressor(max_epochs={args.epochs}, batch_size={args.batch_size}, "
        "out_hidden=(256, 128, 64)), other parameters default",
        f"- **seeds**: repetitions r = {list(range(args.reps))}; member seeds = "
        f"SeedEnsembleRegressor(n_seeds={args.n_seeds}, random_state=r).seeds_ ("
        + "; ".join(f"r={d['rep']} {d['property']}: {next(iter((d.get('variants') or d['stages']).values()))['seeds']}"
                    for d in results) + ")"
        + ("" if args.mode == "sources"
           else "; inner splits seeded with r; the stage searches use Roost random_state=0"),
        "- MAE on the test set, in the property's unit (" +
        ", ".join(f"{p}: {UNITS.get(p, '?')}" for p in args.props) + ")",
    ])
    if args.mode == "sources":
        text = report_sources(results, args, header)
        if args.out:
            Path(args.out).write_text(text)
        print(text)
        return
    text = report(results, args, header)
    if args.out:
        Path(args.out).write_text(text)
        pd.DataFrame([{"property": d["property"], "rep": d["rep"], "stage": s, "member": k, "seed": seed, "mae": v}
                      for d in results for s, st in d["stages"].items()
                      for k, (seed, v) in enumerate(zip(st["seeds"], st["single"]))]
                     ).to_csv(Path(args.out).with_suffix(".csv"), index=False)
    print(text)


if __name__ == "__main__":
    main()
