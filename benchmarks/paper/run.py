"""The paper's experiments as reproducible tables (see benchmarks/README.md).

    python -m benchmarks.paper.run static-dynamic              # Table 2, CPU-sized defaults
    python -m benchmarks.paper.run layers                      # Table 1
    python -m benchmarks.paper.run matbench | polymorphs | methods | cost
    python -m benchmarks.paper.run all --full                  # paper-sized settings (GPU machine)

Every table is written to ``--out`` as CSV (settings as ``# key: value`` lines) and Markdown, with
PNG plots where the paper has one.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.paper import common as C

MATBENCH_LEADERBOARD = {"ALIGNN": 0.3449, "MODNet": 0.2711}


def _unique(items):
    return list(dict.fromkeys(items))


def _mae(results, emb, seeds, part="test_mae"):
    return [results[(emb, s)][part] for s in seeds]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _savefig(fig, path: Path, caption: str):
    fig.text(0.01, 0.005, caption, fontsize=6, va="bottom", wrap=True)
    fig.savefig(path, dpi=120, metadata={"Software": None})
    _plt().close(fig)
    C.log(f"wrote {path}")


# ----------------------------------------------------------------------------- Table 2
def static_vs_dynamic(args, s: C.Settings):
    props = args.props or (list(C.PROPERTIES) if s.full else list(C.CPU_PROPS))
    store = C.FitStore(s)
    sel, rest = s.seeds[: s.select_seeds], s.seeds[s.select_seeds:]
    rows, fit_rows, parity = [], [], {}
    for key in props:
        t0 = time.time()
        data = C.load_property(key, s)
        C.log(f"[table 2] {key}: train/val/test {data.sizes()} ({data.n_dropped} left out)")
        cache = {}
        statics = [f"static:{t}" for t in s.static]
        stages = [f"dynamic:{st}" for st in C.stage_options(s)]
        last = stages[-2]
        res = store.run(data, [(e, seed) for e in statics + stages for seed in sel], cache)
        best_static = min(statics, key=lambda e: np.mean(_mae(res, e, sel, "val_mae")))
        tuned = min(stages, key=lambda e: np.mean(_mae(res, e, sel, "val_mae")))
        res |= store.run(data, [(e, seed) for e in _unique([best_static, last, tuned]) for seed in rest], cache)
        st, dy, tu = (_mae(res, e, s.seeds) for e in (best_static, last, tuned))
        (ms, ss), (md, sd), (mt, sdt) = C.seed_stats(st), C.seed_stats(dy), C.seed_stats(tu)
        rows.append({
            "property": key, "unit": data.spec.unit, "train/val/test": data.sizes(), "flag": data.flag,
            "mean baseline MAE": C.mean_baseline(data), "best static (val)": best_static.split(":")[1],
            "static MAE": ms, "static std": ss, "dynamic (last) MAE": md, "dynamic std": sd,
            "dynamic %": 100 * (md - ms) / ms, "dynamic verdict": C.verdict(dy, st),
            "tuned stage (val)": tuned.split(":")[1], "tuned MAE": mt, "tuned std": sdt,
            "tuned %": 100 * (mt - ms) / ms, "tuned verdict": C.verdict(tu, st),
        })
        for (emb, seed), r in sorted(res.items()):
            fit_rows.append({"property": key, "embedding": emb, "seed": seed, "val MAE": r["val_mae"],
                             "test MAE": r["test_mae"]})
        parity[key] = (data.y[data.split[2]], res[(best_static, s.seeds[0])]["pred_test"],
                       res[(last, s.seeds[0])]["pred_test"], best_static, data.spec.unit, last)
        C.log(f"[table 2] {key} done in {time.time() - t0:.0f} s")
        _write_table2(rows, fit_rows, parity, s, sel, Path(args.out), props)
    return pd.DataFrame(rows)


def _write_table2(rows, fit_rows, parity, s, sel, out: Path, props):
    """Table 2 from the properties done so far (rewritten after each property)."""
    df = pd.DataFrame(rows)
    wins = int((df["dynamic verdict"] == "win").sum())
    tuned_wins = int((df["tuned verdict"] == "win").sum())
    meta = C.header("Table 2: Roost with static vs dynamic element embeddings", s, {
        "split": "official JARVIS split for jarvis:*; seeded 80:10:10 (split seed "
                 f"{s.split_seed}) otherwise; MP formation-energy file subsampled to {s.mp_subsample} seeded entries",
        "seeds": f"{list(s.seeds)}; MAE = mean ± sample std (ddof=1) over seeds, on the test split",
    })
    notes = [
        f"best static = the static table with the lowest validation MAE over seeds {list(sel)} (out of "
        f"{', '.join(s.static)}); tuned = the backbone stage (or 'all' stages concatenated) with the lowest "
        f"validation MAE over seeds {list(sel)} (the pick of GridSearchCV over the transformer's layer with "
        "the validation split as its one fold, PredefinedSplit; tests/test_benchmarks_smoke.py checks they agree); "
        "dynamic (last) = the last stage, fixed",
        "% = (dynamic - best static) / best static; negative is better. verdict: win/loss only when the "
        f"mean difference exceeds both the sum of the two seed stds and {C.MIN_PCT:g}% of the static MAE, else tie",
        f"dynamic (last) wins {wins} / {len(df)}, losses {int((df['dynamic verdict'] == 'loss').sum())}; "
        f"tuned wins {tuned_wins} / {len(df)}, losses {int((df['tuned verdict'] == 'loss').sum())}",
        f"properties done: {len(df)} of the {len(props)} requested ({', '.join(props[len(df):]) or 'none'} not run)",
        f"flag: >= {C.ZERO_FLAG:.0%} of the values are exactly 0 (metal-dominated JARVIS subset): "
        "models collapse towards the median there, so these rows say little about embeddings",
    ]
    C.write_table(_rounded(df), "table2_static_vs_dynamic", meta, out, notes)
    C.write_table(_rounded(pd.DataFrame(fit_rows)), "table2_all_fits", {**meta, "table": "Table 2, every fit"}, out)
    _plot_table2(df, parity, out, meta)


def _rounded(df: pd.DataFrame) -> pd.DataFrame:
    return df.apply(lambda c: c.map(lambda v: float(f"{v:.4g}")) if c.dtype.kind == "f" else c)


#: % changes beyond this are drawn clipped at it, their value written at the bar's end
PCT_CLIP = 100.0


def _plot_pct_change(df, path: Path, caption: str):
    """Horizontal bars of the % change in test MAE (dynamic vs best static), clipped at
    ±:data:`PCT_CLIP` so that one property near zero (a huge relative change) does not squash
    every other bar."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(df) + 1.8))
    yy = np.arange(len(df))
    for offset, column, label in ((-0.2, "dynamic %", "dynamic (last stage)"),
                                  (0.2, "tuned %", "dynamic (stage tuned on val)")):
        values = df[column].to_numpy(dtype=float)
        ax.barh(yy + offset, np.clip(values, -PCT_CLIP, PCT_CLIP), 0.4, label=label)
        for y, v in zip(yy + offset, values):
            if abs(v) > PCT_CLIP:
                x = np.sign(v) * PCT_CLIP
                ax.text(x, y, f" {v:+.0f}% ", va="center", ha="right" if v > 0 else "left", fontsize=6,
                        color="white", fontweight="bold")
    ax.set_xlim(-PCT_CLIP * 1.02, PCT_CLIP * 1.02)
    ax.set_yticks(yy, [p + (" *" if f else "") for p, f in zip(df["property"], df["flag"])], fontsize=7)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel(f"% change in test MAE vs best static (negative = dynamic better)\n"
                  f"bars clipped at ±{PCT_CLIP:.0f}%, the value written inside", fontsize=8)
    ax.legend(fontsize=7)
    ax.invert_yaxis()
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    _savefig(fig, path, caption)


def replot_table2(out) -> Path:
    """Redraw ``table2_pct_change.png`` from the committed ``table2_static_vs_dynamic.csv`` in
    ``out`` (no refitting; the parity plot needs the fits' predictions and is not redrawn)."""
    out = Path(out)
    csv_path = out / "table2_static_vs_dynamic.csv"
    meta = dict(line[2:].split(": ", 1) for line in csv_path.read_text().splitlines()
                if line.startswith("# ") and ": " in line and not line.startswith("# note"))
    df = pd.read_csv(csv_path, comment="#", keep_default_na=False, na_values=[""])
    df["flag"] = df["flag"].fillna("").astype(str)
    _plot_pct_change(df, out / "table2_pct_change.png", f"{meta['settings']}. * = mostly zeros")
    return out / "table2_pct_change.png"


def _plot_table2(df, parity, out: Path, meta):
    plt = _plt()
    _plot_pct_change(df, out / "table2_pct_change.png", f"{meta['settings']}. * = mostly zeros")
    # parity: every property whose values have spread (not the mostly-zero ones), first seed
    keys = [k for k, f in zip(df["property"], df["flag"]) if not f and k in parity] or list(parity)
    cols = min(4, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.3 * rows + 0.4), squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.axis("off")
    for ax, key in zip(axes.flat, keys):
        y, p_s, p_d = (np.asarray(v, dtype=float) for v in parity[key][:3])
        best, unit, stage = parity[key][3:]
        ax.scatter(y, p_s, s=5, alpha=0.55, label=f"static {best.split(':')[1]}: {np.mean(np.abs(y - p_s)):.3g}")
        ax.scatter(y, p_d, s=5, alpha=0.55,
                   label=f"dynamic, stage {stage.split(':')[1]}: {np.mean(np.abs(y - p_d)):.3g}")
        lim = [min(y.min(), p_s.min(), p_d.min()), max(y.max(), p_s.max(), p_d.max())]
        ax.plot(lim, lim, "k--", lw=0.7)
        ax.set_title(key, fontsize=8)
        ax.set_xlabel(f"DFT ({unit})", fontsize=7)
        ax.set_ylabel(f"Roost ({unit})", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=6, title="test MAE", title_fontsize=6, loc="upper left")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    _savefig(fig, out / "table2_parity.png", f"test split, first seed. {meta['settings']}")


# ----------------------------------------------------------------------------- Table 1
def find_alignn_weights() -> Path | None:
    """The pretrained ALIGNN extractor, if another engineer's pretraining has finished producing one."""
    candidates = [C.REPO / "skdynemb" / "data" / "alignn-mp-eform"]
    if not C.pretraining_running():  # a checkpoint of an unfinished run is not the extractor
        work = C.REPO / "benchmarks" / "_work"
        candidates += [work / "alignn-mp-eform" / "best", *sorted(work.glob("pretrain*/best"))]
    return next((c for c in candidates if c.exists()), None)


def layers(args, s: C.Settings):
    key = args.props[0] if args.props else "jarvis:formation_energy_peratom"
    backbones = [(s.backbone, s.weights)]
    notes = []
    alignn = find_alignn_weights()
    if alignn is not None and not args.no_alignn:
        backbones.append(("alignn", str(alignn)))
        notes.append(f"ALIGNN backbone: weights {alignn.relative_to(C.REPO)} (its MODEL_CARD.md gives the "
                     "pretraining settings and MP hold-out MAE)")
    else:
        notes.append("ALIGNN backbone: not included (no finished pretrained extractor under "
                     "skdynemb/data/alignn-mp-eform/ or benchmarks/_work/alignn-mp-eform/best when this ran)"
                     if alignn is None else "ALIGNN backbone skipped (--no-alignn)")
    rows = []
    for name, weights in backbones:
        sb = replace(s, backbone=name, weights=weights)
        data = C.load_property(key, sb)
        store, cache = C.FitStore(sb), {}
        stages = C.stage_options(sb)
        res = store.run(data, [(f"dynamic:{st}", seed) for st in stages for seed in s.seeds], cache)
        base = C.mean_baseline(data)
        for st in stages:
            m, sd = C.seed_stats(_mae(res, f"dynamic:{st}", s.seeds))
            v, _ = C.seed_stats(_mae(res, f"dynamic:{st}", s.seeds, "val_mae"))
            rows.append({"backbone": name, "stage": st, "train/val/test": data.sizes(), "test MAE": m,
                         "std": sd, "val MAE": v, "mean baseline MAE": base})
    df = pd.DataFrame(rows)
    meta = C.header(f"Table 1: Roost on each backbone stage, {key}", s, {
        "split": "official JARVIS split" if key.startswith("jarvis:") else f"seeded 80:10:10 (seed {s.split_seed})",
        "seeds": f"{list(s.seeds)}; MAE mean ± sample std over seeds (test split)",
    })
    notes.append("stage 'all' = every stage concatenated per element row")
    out = Path(args.out)
    C.write_table(_rounded(df), "table1_layers", meta, out, notes)
    plt = _plt()
    groups = list(df.groupby("backbone", sort=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.8), squeeze=False, sharey=True)
    for ax, (name, part) in zip(axes[0], groups):
        layers_ = part[part["stage"] != "all"]
        x = np.arange(len(layers_))
        ax.errorbar(x, layers_["test MAE"], yerr=layers_["std"], marker="o", capsize=3, label="one stage")
        every = part[part["stage"] == "all"]
        if len(every):
            ax.axhline(every["test MAE"].iloc[0], color="C2", ls="--", lw=1, label="all stages concatenated")
        ax.axhline(part["mean baseline MAE"].iloc[0], color="gray", ls=":", label="mean baseline")
        ax.set_xticks(x, layers_["stage"], rotation=45, ha="right", fontsize=8)
        ax.set(xlabel="stage (input embedding -> last layer)", title=f"backbone {name}")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(f"test MAE ({C.PROPERTIES[key].unit})")
    fig.suptitle(f"Roost on {key}: one backbone stage at a time", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    _savefig(fig, out / "table1_layers.png", meta["settings"])
    return df


# ----------------------------------------------------------------------------- Table 4
def _energy_for_polymorphs(key: str, s: C.Settings) -> np.ndarray:
    """Formation energy of the property's entries where the source has one, else the target itself."""
    spec = C.PROPERTIES[key]
    ds = C._dataset(spec.source, s)
    task = ds.task(spec.target, missing="drop")
    for col in ("formation_energy_peratom", "e_form"):
        if col in ds.targets.columns:
            e = ds.targets[col].to_numpy(dtype=float)[task.index]
            if np.isfinite(e).all():
                return e
    return task.y


def polymorphs(args, s: C.Settings):
    from skdynemb.datasets import drop_polymorphs, reduced_formula

    props = args.props or ["mp:K_VRH", "jarvis:formation_energy_peratom"]
    static = f"static:{args.static_table}"
    rows = []
    for key in props:
        spec = C.PROPERTIES[key]
        task = C._dataset(spec.source, s).task(spec.target, missing="drop")
        keep = drop_polymorphs(task.structures.compositions(), _energy_for_polymorphs(key, s))
        for label, idx in (("with polymorphs", np.arange(len(task))), ("without polymorphs", keep)):
            data = C.load_property(key, s, indices=idx)
            formulas = [reduced_formula(c) for c in data.compositions]
            counts = pd.Series(formulas).value_counts()
            poly_test = np.array([counts[formulas[i]] > 1 for i in data.split[2]])
            res = C.FitStore(s).run(data, [(e, seed) for e in (static, "dynamic:" + C.stage_options(s)[-2])
                                           for seed in s.seeds], {}, tag=label)
            for emb in (static, "dynamic:" + C.stage_options(s)[-2]):
                m, sd = C.seed_stats(_mae(res, emb, s.seeds))
                y_te = data.y[data.split[2]]
                poly = [np.mean(np.abs(np.array(res[(emb, seed)]["pred_test"]) - y_te)[poly_test])
                        if poly_test.any() else np.nan for seed in s.seeds]
                pm, psd = C.seed_stats(poly)
                rows.append({"property": key, "set": label, "entries": len(data.y),
                             "entries in polymorph groups": int((counts[counts > 1]).sum()),
                             "train/val/test": data.sizes(), "embedding": emb, "test MAE": m, "std": sd,
                             "test MAE on polymorph entries": pm, "polymorph std": psd,
                             "n polymorph test entries": int(poly_test.sum())})
    df = pd.DataFrame(rows)
    meta = C.header("Table 4: with vs without polymorphs, static vs dynamic", s, {
        "split": f"seeded 80:10:10 (seed {s.split_seed}) of each set (so the test sets differ between the two sets)",
        "seeds": f"{list(s.seeds)}; MAE mean ± sample std over seeds",
    })
    notes = ["without polymorphs = per reduced formula the entry with the lowest formation energy (the "
             "target itself where the source has no formation energy: MP elasticity)",
             "a static embedding gives polymorphs identical inputs, so it predicts one value for all of them; "
             "'test MAE on polymorph entries' is over test entries whose formula occurs more than once in the set"]
    C.write_table(_rounded(df), "table4_polymorphs", meta, Path(args.out), notes)
    return df


# ----------------------------------------------------------------------------- Table 5
def matbench(args, s: C.Settings):
    from skdynemb.datasets import matbench_folds

    data = C.load_property("matbench:n", s)
    folds = matbench_folds("matbench_dielectric", ids=data.ids)
    seeds = s.seeds[: args.fold_seeds]
    embs = ["dynamic:" + C.stage_options(s)[-2], f"static:{args.static_table}"]
    store, cache, rows = C.FitStore(s), {}, []
    for k, (train, test) in enumerate(folds):
        fold = C.PropData(data.key, data.spec, data.ids, data.structures, data.compositions, data.y,
                          (C._cap(train, s.max_train, s.split_seed), np.array([], dtype=np.int64), test),
                          f"matbench fold {k}")
        C.log(f"[table 5] fold {k}: train/test {len(fold.split[0])}/{len(test)}")
        res = store.run(fold, [(e, seed) for e in embs for seed in seeds], cache, tag=f"fold{k}")
        for e in embs:
            rows.append({"fold": k, "embedding": e, "train": len(fold.split[0]), "test": len(test),
                         "test MAE": float(np.mean(_mae(res, e, seeds)))})
    per_fold = pd.DataFrame(rows)
    by_emb = per_fold.groupby("embedding", sort=False)["test MAE"]
    summary = [{"model": f"Roost + {e}", "mean MAE over 5 folds": by_emb.get_group(e).mean(),
                "fold std": by_emb.get_group(e).std(ddof=1)} for e in embs]
    summary += [{"model": f"{m} (Matbench v0.1 leaderboard, full training folds)", "mean MAE over 5 folds": v,
                 "fold std": np.nan} for m, v in MATBENCH_LEADERBOARD.items()]
    df = pd.DataFrame(summary)
    meta = C.header("Table 5: Matbench dielectric (refractive index n), official 5 folds", s, {
        "split": "official Matbench v0.1 folds" + ("" if s.max_train is None else
                 f"; each fold's training set subsampled to {s.max_train} (seeded), test fold complete"),
        "seeds": f"{list(seeds)} per fold (fold MAE = mean over these seeds)",
    })
    notes = [f"{data.n_dropped} entries with an element outside a static table or the backbone are left out of "
             "every fold",
             "the leaderboard numbers train on the full ~3.8k-entry folds; with a training cap the comparison "
             "is not like for like"]
    out = Path(args.out)
    C.write_table(_rounded(df), "table5_matbench_dielectric", meta, out, notes)
    C.write_table(_rounded(per_fold), "table5_matbench_folds", {**meta, "table": "Table 5, per fold"}, out)
    return df


# ----------------------------------------------------------------------------- Table 3
def _cached(s: C.Settings, keydict: dict, fn):
    path = Path(s.work) / "fits" / f"m_{C._digest(keydict)}.json"
    if path.exists():
        return json.loads(path.read_text())
    res = fn()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res))
    return res


def _methods_estimator(model: str, args, s: C.Settings, seed: int):
    from skdynemb import AutoMLRegressor, AutoSklearnRegressor, ElemNetRegressor

    if model == "ElemNet":
        return ElemNetRegressor(max_epochs=args.elemnet_epochs, patience=args.elemnet_patience, device=s.device,
                                random_state=seed)
    if model == "AutoML (FLAML)":
        return AutoMLRegressor(time_budget=-1, max_iter=args.automl_iter, random_state=seed,
                               estimator_list=["lgbm", "rf", "extra_tree"])
    return AutoSklearnRegressor(time_left_for_this_task=args.autosklearn_budget,
                                per_run_time_limit=_autosklearn_run_limit(args), random_state=seed)


def _autosklearn_run_limit(args) -> int:
    return max(1, args.autosklearn_budget // 4)


def _require_autosklearn():
    """Fail before any fit when Table 3's auto-sklearn rows cannot run."""
    from skdynemb.models.autosklearn import AutoSklearnEnvError, check_env

    try:
        C.log(f"auto-sklearn {check_env()} side env found")
    except AutoSklearnEnvError as exc:
        raise SystemExit(f"Table 3 needs auto-sklearn's side env: {exc}\n(or pass --autosklearn-budget 0 to leave "
                         "auto-sklearn out of Table 3)") from None


def methods(args, s: C.Settings):
    import torch

    from skdynemb import ElementFractionTransformer, MagpieTransformer

    props = args.props or ["jarvis:formation_energy_peratom", "mp:band_gap"]
    models = ["ElemNet", "AutoML (FLAML)"] + (["AutoML (auto-sklearn)"] if args.autosklearn_budget else [])
    rows, askl_seconds = [], []
    for key in props:
        data = C.load_property(key, s)
        tr, va, te = data.split
        inputs = {
            "dynamic (last stage, atom-averaged)":
                C.select_stage(C.dynamic_all(data, s), C.stage_options(s)[-2]).mean(),
            "ElementFraction": np.asarray(ElementFractionTransformer().fit().transform(data.compositions), np.float32),
            "Magpie": np.asarray(MagpieTransformer().fit().transform(data.compositions), np.float32),
        }
        for inp, X in inputs.items():
            for model in models:
                maes = []
                for seed in s.seeds:
                    def fit(X=X, model=model, seed=seed):
                        torch.set_num_threads(1)
                        t0 = time.perf_counter()
                        est = _methods_estimator(model, args, s, seed).fit(X[tr], data.y[tr])
                        return {"test_mae": float(np.mean(np.abs(est.predict(X[te]) - data.y[te]))),
                                "fit_s": time.perf_counter() - t0}
                    keyd = {"t": 3, "prop": key, "input": inp, "model": model, "seed": seed, "n": len(data.y),
                            "split": C._index_digest(data.split), "ep": args.elemnet_epochs,
                            "pat": args.elemnet_patience, "it": args.automl_iter, "bb": s.backbone}
                    if model == "AutoML (auto-sklearn)":
                        keyd |= {"askl": args.autosklearn_budget, "askl_run": _autosklearn_run_limit(args)}
                    res = _cached(s, keyd, fit)
                    maes.append(res["test_mae"])
                    if model == "AutoML (auto-sklearn)":
                        askl_seconds.append(res["fit_s"])
                    C.log(f"  [table 3] {key} {inp} {model} seed {seed}: {maes[-1]:.4g}")
                m, sd = C.seed_stats(maes)
                rows.append({"property": key, "input": inp, "width": X.shape[1], "model": model,
                             "train/test": f"{len(tr)}/{len(te)}", "test MAE": m, "std": sd})
    df = pd.DataFrame(rows)
    described = (f"ElemNetRegressor(max_epochs={args.elemnet_epochs}, patience={args.elemnet_patience}, its own 10% "
                 f"early-stopping hold-out); AutoMLRegressor(FLAML, time_budget=-1, max_iter={args.automl_iter}, "
                 "estimator_list=[lgbm, rf, extra_tree])")
    if args.autosklearn_budget:
        described += (f"; AutoSklearnRegressor(auto-sklearn 0.15.0 in its Python 3.9 side env, "
                      f"time_left_for_this_task={args.autosklearn_budget} s, per_run_time_limit="
                      f"{_autosklearn_run_limit(args)} s, memory_limit=3072 MB, n_jobs=1, its defaults otherwise: "
                      "25 meta-learning warm starts, holdout, ensemble of 50 selections)")
    meta = C.header("Table 3: ElemNet and AutoML on atom-averaged dynamic vectors vs composition features", s, {
        "split": "official JARVIS split for jarvis:*, seeded 80:10:10 otherwise; validation split unused",
        "seeds": f"{list(s.seeds)}; MAE mean ± sample std over seeds",
        "models": described,
    })
    notes = ["FLAML is run with a trial limit instead of a time budget, so its search (and this table) is "
             "reproducible for a seed; a time budget would make the number of trials depend on machine load"]
    if args.autosklearn_budget:
        notes.append(
            f"auto-sklearn is run as it is meant to be, by a time budget ({args.autosklearn_budget} s a fit), so its "
            "rows depend on machine speed and load and are not reproducible bit for bit; wall clock per "
            "auto-sklearn fit (search, ensemble, side-interpreter start-up, predict): mean "
            f"{np.mean(askl_seconds):.0f} s "
            f"over {len(askl_seconds)} fits on a 2-core machine shared with other jobs")
    C.write_table(_rounded(df), "table3_methods", meta, Path(args.out), notes)
    return df


# ----------------------------------------------------------------------------- Table 6
def cost(args, s: C.Settings):
    import torch

    from skdynemb import DynamicEmbeddingTransformer

    torch.set_num_threads(1)
    data = C.load_property("jarvis:formation_energy_peratom", s)
    rows = []
    backbones = [(s.backbone, s.weights)]
    alignn = find_alignn_weights()
    if alignn is not None and not args.no_alignn:
        backbones.append(("alignn", str(alignn)))
    structures = data.structures[: args.n_extract]
    for name, weights in backbones:
        tr = DynamicEmbeddingTransformer(name, weights=weights, layer="all", device=s.device, progress=False).fit()
        tr.transform(structures[:8])  # warm-up
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            tr.transform(structures)
            times.append(time.perf_counter() - t0)
        rows.append({"what": f"extraction, {name} (all stages, no cache, batch {tr.backbone_.default_batch_size})",
                     "n": len(structures), "seconds": min(times), "per second": len(structures) / min(times)})
    es = replace(s, epochs=args.cost_epochs)
    cache = {}
    for emb in ["dynamic:" + C.stage_options(s)[-2], "dynamic:all", "static:matscholar200", "static:onehot",
                "static:megnet16"]:
        X = C.embeddings(data, emb, es, cache)
        r = C.roost_fit(X, data.y, data.split, s.seeds[0], es)
        rows.append({"what": f"Roost epoch, {emb} ({X.n_features}-d rows)", "n": len(data.split[0]),
                     "seconds": r["epoch_s"], "per second": len(data.split[0]) / r["epoch_s"]})
    df = pd.DataFrame(rows)
    meta = C.header("Table 6: cost (wall-clock timings, NOT reproducible bit for bit)", s, {
        "split": "JARVIS formation energy (official train split for the Roost epochs)",
        "seeds": f"{s.seeds[0]}",
        "timing": f"1 torch thread; extraction = best of 2 passes; Roost = median of {args.cost_epochs} epochs; "
                  "the machine was shared with other jobs, so timings are upper bounds",
    })
    notes = ["for a controlled Roost per-epoch comparison across row widths see "
             "benchmarks/bench_roost_epoch.py (PYTHONPATH=. .venv/bin/python benchmarks/bench_roost_epoch.py)"]
    C.write_table(_rounded(df), "table6_cost", meta, Path(args.out), notes)
    return df


COMMANDS = {"static-dynamic": static_vs_dynamic, "layers": layers, "matbench": matbench,
            "polymorphs": polymorphs, "methods": methods, "cost": cost}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.paper.run", description=__doc__.splitlines()[0])
    p.add_argument("command", choices=[*COMMANDS, "all"])
    p.add_argument("--full", action="store_true", help="paper-sized settings (GPU machine): 250 epochs, 5 seeds, "
                   "full training sets, Roost's default output network, device cuda")
    p.add_argument("--props", nargs="+", choices=[*C.PROPERTIES, "all"],
                   help="properties (default: per table; 'all' = every property with >= ~250 entries)")
    p.add_argument("--backbone", help="dynamic-embedding backbone (default: cgcnn-mp-eform)")
    p.add_argument("--weights", help="checkpoint of --backbone (e.g. --backbone alignn --weights skdynemb/data/alignn-mp-eform)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seeds", type=int, nargs="+")
    p.add_argument("--select-seeds", type=int, help="seeds used to choose best static / tuned stage on val")
    p.add_argument("--max-train", type=int, help="cap on training samples (0 = no cap)")
    p.add_argument("--max-eval", type=int, help="cap on validation/test samples")
    p.add_argument("--max-samples", type=int, help="seeded entries per property before splitting (smoke runs)")
    p.add_argument("--mp-subsample", type=int, help="seeded entries drawn from the MP formation-energy file")
    p.add_argument("--static", nargs="+", help="static tables compared in Table 2")
    p.add_argument("--static-table", default="matscholar200", help="static table of Tables 4 and 5")
    p.add_argument("--n-jobs", type=int, help="parallel fits (0 = 2 unless a pretraining job runs)")
    p.add_argument("--device")
    p.add_argument("--work", default=str(C.DEFAULT_WORK), help="cache folder (embeddings, fits)")
    p.add_argument("--out", default=str(C.DEFAULT_OUT))
    p.add_argument("--fold-seeds", type=int, default=1, help="seeds per Matbench fold (Table 5)")
    p.add_argument("--no-alignn", action="store_true")
    p.add_argument("--elemnet-epochs", type=int, default=100)
    p.add_argument("--elemnet-patience", type=int, default=20)
    p.add_argument("--automl-iter", type=int, default=30)
    p.add_argument("--autosklearn-budget", type=int, default=60, help="seconds per auto-sklearn fit in Table 3 "
                   "(0 leaves auto-sklearn out; it needs the env of bash scripts/setup-autosklearn.sh)")
    p.add_argument("--n-extract", type=int, default=400, help="structures timed in Table 6")
    p.add_argument("--cost-epochs", type=int, default=5)
    return p


def main(argv=None):
    import sys

    argv = sys.argv[1:] if argv is None else list(argv)
    C.COMMAND[:] = argv
    args = parser().parse_args(argv)
    if args.props and "all" in args.props:
        args.props = _unique([p for p in args.props if p != "all"] + list(C.CPU_PROPS) + list(C.PROPERTIES))
    s = C.settings_from(args)
    C.log(f"settings: {s}")
    commands = list(COMMANDS) if args.command == "all" else [args.command]
    if "methods" in commands and args.autosklearn_budget:
        _require_autosklearn()
    return {c: COMMANDS[c](args, s) for c in commands}


if __name__ == "__main__":
    main()
