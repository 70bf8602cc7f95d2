"""The paper's experiments as reproducible tables (see benchmarks/README.md).

    python -m benchmarks.paper.run static-dynamic              # Table 2, CPU-sized defaults
    python -m benchmarks.paper.run layers                      # Table 1
    python -m benchmarks.paper.run matbench | polymorphs | methods | cost
    python -m benchmarks.paper.run all --preset full           # paper-sized settings (GPU machine)
    python -m benchmarks.paper.run learning-curve              # test MAE against training-set size
    python -m benchmarks.paper.run pooling-ideas               # mean+std element rows, two stages (issue 13)
    python -m benchmarks.paper.run diagnose --out DIR          # why Table 2 in DIR wins or loses, per property
    python -m benchmarks.paper.run chosen --preset full-size   # Table 2 chosen on validation, ensembles (issue 28)
    python -m benchmarks.paper.run rebuild                     # every table again, from ledger + manifests

Every fit goes through the ledger (``--ledger``, default benchmarks/results/ledger): a fit it holds is
read, never retrained. Every table is written to ``--out`` as CSV (settings as ``# key: value``
lines) and Markdown, with PNG plots where the paper has one, and listed in ``<out>/manifest.json``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from .data import CPU_PROPS, PROPERTIES, ZERO_FLAG, dataset, embeddings, holdout, last_stage, load_property, \
    stage_options, subsample
from .fits import NotInLedger, collect, crabnet_params, crabnet_runner, crabnet_style_params, elemnet_params, \
    fit_chosen, job, run_fits
from .ledger import MANIFEST, Ledger, canonical, read_manifest, write_manifest
from .report import ensemble_mae, header, log, plot_parity
from .settings import DEFAULT_LEDGER, DEFAULT_OUT, DEFAULT_WORK, Settings, settings_from
from . import chosen as chosen_mod, curves, diagnose, pooling
from .tables import BUILDERS as TABLE_BUILDERS

#: every table builder by name
BUILDERS = {**TABLE_BUILDERS, "learning_curve": curves.learning_curve_table,
            "pooling_ideas": pooling.pooling_ideas_table, "table2_chosen": chosen_mod.chosen_table}


def render(entry: dict, ledger: Ledger, out) -> None:
    """Write the table(s) of one manifest entry into ``out``."""
    BUILDERS[entry["builder"]](entry["args"], entry["header"], ledger, Path(out))


def publish(args, name: str, builder: str, build_args: dict, head: dict, ledger: Ledger) -> None:
    """Record table ``name`` in ``<out>/manifest.json`` and render it from the ledger, as ``rebuild`` will."""
    entry = canonical({"builder": builder, "args": build_args, "header": head})
    write_manifest(args.out, name, entry)
    render(entry, ledger, args.out)


def _keys(records: dict) -> list[str]:
    return sorted(r["key"] for r in records.values())


def _split_line(s: Settings) -> str:
    return ("official JARVIS split for jarvis:*; seeded 80:10:10 (split seed "
            f"{s.split_seed}) otherwise; MP formation-energy file subsampled to {s.mp_subsample} seeded entries")


# ----------------------------------------------------------------------------- Table 2
def static_vs_dynamic(args, s: Settings, ledger: Ledger) -> None:
    """Table 2: Roost with every static table vs dynamic (last stage, stage tuned on validation)."""
    props = args.props or (list(PROPERTIES) if s.full else list(CPU_PROPS))
    sel, rest = s.seeds[: s.select_seeds], s.seeds[s.select_seeds:]
    statics = [f"static:{t}" for t in s.static]
    stages = [f"dynamic:{st}" for st in (args.stages or stage_options(s))]
    last = f"dynamic:{last_stage(s)}"
    if last not in stages:
        raise SystemExit(f"--stages must include the last stage {last.split(':')[1]!r} (Table 2 reports it)")
    crab_props = args.crabnet_props or []
    if set(crab_props) - set(props):
        raise SystemExit(f"--crabnet-props must be among --props; not there: {sorted(set(crab_props) - set(props))}")
    crab_fit, crab_missing = crabnet_runner() if crab_props else (None, "")  # crab_missing: why it cannot run
    crab_jobs = [job("crabnet", "formula", seed, crabnet_params(args.crabnet_epochs)) for seed in s.seeds]
    items, parity = [], {}
    head = header("Table 2: Roost with static vs dynamic element embeddings", s, args.argv, {
        "split": _split_line(s),
        "seeds": f"{list(s.seeds)}; MAE = mean ± sample std (ddof=1) over seeds, on the test split"})
    for key in props:
        t0 = time.time()
        data, cache = load_property(key, s), {}
        log(f"[table 2] {key}: train/val/test {data.sizes()} ({data.n_dropped} left out)")
        if key in crab_props and crab_fit is None:  # without the side env the CrabNet rows must be in the ledger
            try:
                run_fits(ledger, data, crab_jobs, s, cache, train=False)
            except NotInLedger as exc:
                raise SystemExit(f"--crabnet-props: CrabNet cannot run: {crab_missing}; {exc}") from None
        res, best_static = fit_chosen(ledger, data, statics, sel, rest, s, cache)
        tuned_res, tuned = fit_chosen(ledger, data, stages, sel, rest, s, cache)
        res |= tuned_res | run_fits(ledger, data, [job("roost", last, seed) for seed in rest], s, cache)
        items.append({"property": ledger.add_property(data, s), "fits": _keys(res)})
        first = {j.inputs: r["result"]["pred_test"] for j, r in res.items() if j.seed == s.seeds[0]}
        parity[key] = (data.y[data.split[2]], first[best_static], first[last], best_static, data.spec.unit, last)
        table2_args = {"properties": items, "statics": statics, "stages": stages, "last": last,
                       "select_seeds": list(sel), "seeds": list(s.seeds), "requested": props, "zero_flag": ZERO_FLAG}
        if crab_props:
            table2_args["crabnet"] = {"props": crab_props, "params": crabnet_params(args.crabnet_epochs)}
        publish(args, "table2", "table2", table2_args, head, ledger)
        spread = {k: v for k, v in parity.items() if not load_flag(ledger, items, k)} or parity
        plot_parity(spread, Path(args.out) / "table2_parity.png", f"test split, first seed. {head['settings']}")
        if key in crab_props:  # after the Roost rows are published: CrabNet takes ~30x a Roost fit
            crab = run_fits(ledger, data, crab_jobs, s, cache)
            items[-1]["crabnet"] = _keys(crab)
            publish(args, "table2", "table2", table2_args, head, ledger)
        log(f"[table 2] {key} done in {time.time() - t0:.0f} s")


def load_flag(ledger: Ledger, items: list[dict], key: str) -> str:
    """The zero-share flag of property ``key`` among Table 2's ``items``."""
    return next(ledger[i["property"]]["result"]["flag"] for i in items
                if ledger[i["property"]]["identity"]["property"] == key)


# ----------------------------------------------------------------------------- Table 1
def _expected(jobs) -> list[list]:
    """``[model, inputs, seed]`` of each of ``jobs`` (what a table asks the ledger for)."""
    return [[j.model, j.inputs, j.seed] for j in dict.fromkeys(jobs)]


def _seed_rounds(combos, seeds, params=None) -> list[list]:
    """Fits in the order they are trained: every ``(model, inputs)`` of ``combos`` with the first seed,
    then with the second ..., so that a stopped run leaves a complete table on fewer seeds."""
    params = params or {}
    return [[job(m, i, seed, params.get(m)) for m, i in combos] for seed in seeds]


def layers(args, s: Settings, ledger: Ledger) -> None:
    """Table 1: Roost on each backbone stage of ``--backbone`` (and each ``--also-backbone``).

    Fits run seed by seed (every stage with the first seed, then the next), the table is published
    after each round, and ``--from-ledger`` trains nothing: the table names the fits not in the ledger."""
    key = args.props[0] if args.props else "jarvis:formation_energy_peratom"
    backbones = [(s.backbone, s.weights), *(chosen_mod.backbone_arg(b) for b in args.also_backbone or ())]
    notes = [f"backbone {name}: weights {w if w else 'shipped with skdynemb'}" for name, w in backbones]
    split = "official JARVIS split" if key.startswith("jarvis:") else f"seeded 80:10:10 (seed {s.split_seed})"
    head = header(f"Table 1: Roost on each backbone stage, {key}", s, args.argv, {
        "split": split, "seeds": f"{list(s.seeds)}; MAE mean ± sample std over seeds (test split)"})
    loaded = []
    for name, weights in backbones:
        sb = replace(s, backbone=name, weights=weights)
        data = load_property(key, sb)
        stages = stage_options(sb)
        rounds = _seed_rounds([("roost", f"dynamic:{st}") for st in stages], s.seeds)
        loaded.append((name, sb, data, stages, rounds, {}))
    items = [None] * len(loaded)
    for r in range(len(s.seeds)):
        for n, (name, sb, data, stages, rounds, cache) in enumerate(loaded):
            done = collect(ledger, data, [j for rnd in rounds[: r + 1] for j in rnd], sb, cache,
                           train=not args.from_ledger)
            items[n] = {"backbone": name, "property": ledger.add_property(data, sb), "fits": _keys(done),
                        "stages": stages, "expected": _expected(j for rnd in rounds for j in rnd)}
            publish(args, "table1", "table1", {"property": key, "unit": PROPERTIES[key].unit,
                                               "backbones": [i for i in items if i], "seeds": list(s.seeds),
                                               "notes": notes}, head, ledger)


# ----------------------------------------------------------------------------- Table 4
def _energy_for_polymorphs(key: str, s: Settings) -> np.ndarray:
    """Formation energy of the property's entries where the source has one, else the target itself."""
    spec = PROPERTIES[key]
    ds = dataset(spec.source, s)
    task = ds.task(spec.target, missing="drop")
    for col in ("formation_energy_peratom", "e_form"):
        if col in ds.targets.columns:
            e = ds.targets[col].to_numpy(dtype=float)[task.index]
            if np.isfinite(e).all():
                return e
    return task.y


def _official_split(data, s: Settings):
    """``data`` (a subset of a JARVIS property) with the official leaderboard labels of its entries as
    its split (capped as :func:`~benchmarks.paper.data.load_property` caps them)."""
    spec = PROPERTIES[data.key]
    task = dataset(spec.source, s).task(spec.target, missing="drop")
    label = dict(zip(task.ids, task.split))
    labels = np.array([label[i] for i in data.ids])
    tr, va, te = (np.flatnonzero(labels == part) for part in ("train", "val", "test"))
    split = (subsample(tr, s.max_train, s.split_seed), subsample(va, s.max_eval, s.split_seed + 1),
             subsample(te, s.max_eval, s.split_seed + 2))
    return data.with_split(split, "official JARVIS leaderboard train/val/test, restricted to the set", data.subset)


def _polymorph_sets(key: str, s: Settings) -> list:
    """``[(label, PropData)]``: the property with and without polymorphs. JARVIS: the official split for
    both (the set with polymorphs is Table 2's own; the other keeps each entry's label, so its test set
    lies inside the first's); other sources: a seeded 80:10:10 split of each set."""
    from skdynemb.datasets import drop_polymorphs

    spec = PROPERTIES[key]
    task = dataset(spec.source, s).task(spec.target, missing="drop")
    keep = drop_polymorphs(task.structures.compositions(), _energy_for_polymorphs(key, s))
    if spec.source == "jarvis":
        without = load_property(key, s, indices=keep, subset="without polymorphs")
        return [("with polymorphs", load_property(key, s)), ("without polymorphs", _official_split(without, s))]
    return [(label, load_property(key, s, indices=idx, subset=label))
            for label, idx in (("with polymorphs", np.arange(len(task))), ("without polymorphs", keep))]


def polymorphs(args, s: Settings, ledger: Ledger) -> None:
    """Table 4: with vs without polymorphs, static vs dynamic (seed by seed; ``--from-ledger``: no training)."""
    from skdynemb.datasets import reduced_formula

    props = args.props or ["mp:K_VRH", "jarvis:formation_energy_peratom"]
    embs = [f"static:{args.static_table}", f"dynamic:{last_stage(s)}"]
    rounds = _seed_rounds([("roost", e) for e in embs], s.seeds)
    head = header("Table 4: with vs without polymorphs, static vs dynamic", s, args.argv, {
        "split": "official JARVIS leaderboard labels for jarvis:* (the set without polymorphs keeps each entry's "
                 f"label); seeded 80:10:10 (seed {s.split_seed}) of each set otherwise (so its test sets differ)",
        "seeds": f"{list(s.seeds)}; MAE mean ± sample std over seeds"})
    sets, order = [], []
    for key in props:
        for label, data in _polymorph_sets(key, s):
            formulas = [reduced_formula(c) for c in data.compositions]
            counts = pd.Series(formulas).value_counts()
            poly_test = np.array([counts[formulas[i]] > 1 for i in data.split[2]])
            order.append((key, label, data, counts, poly_test, {}))
            sets.append(None)
    for r in range(len(s.seeds)):
        for n, (key, label, data, counts, poly_test, cache) in enumerate(order):
            res = collect(ledger, data, [j for rnd in rounds[: r + 1] for j in rnd], s, cache,
                          train=not args.from_ledger)
            y_te = data.y[data.split[2]]
            poly = {e: {str(j.seed): float(np.mean(np.abs(np.array(rec["result"]["pred_test"]) - y_te)[poly_test]))
                        if poly_test.any() else None for j, rec in res.items() if j.inputs == e} for e in embs}
            sets[n] = {"key": key, "set": label, "property": ledger.add_property(data, s), "fits": _keys(res),
                       "expected": _expected(j for rnd in rounds for j in rnd), "entries": len(data.y),
                       "entries_in_groups": int((counts[counts > 1]).sum()),
                       "n_polymorph_test": int(poly_test.sum()), "polymorph_mae": poly}
            publish(args, "table4", "table4", {"sets": [x for x in sets if x], "embeddings": embs,
                                               "seeds": list(s.seeds), "requested": props}, head, ledger)


# ----------------------------------------------------------------------------- Table 5
def matbench(args, s: Settings, ledger: Ledger) -> None:
    """Table 5: Matbench dielectric, official 5 folds, the best configuration of Table 2 and the curves.

    In each fold a seeded ``--inner-val`` share of the training fold is held out as the inner
    validation split; the stage (among ``--stages``) is chosen there with the ``select_seeds`` seeds,
    as Table 2 chooses it, and then fitted with every seed; ``--static-table`` is fitted with every
    seed on the same splits. The test fold scores each seed and the seed ensemble (mean prediction).
    With ``--stage-ensemble`` every stage of ``--stages`` (or, with ``--members``, every member, another
    backbone's stage written ``BACKBONE/INPUTS``) is also fitted with every seed and the mean prediction of
    all of them is scored as well (a fixed recipe: nothing is chosen).
    """
    from skdynemb.datasets import matbench_folds

    data = load_property("matbench:n", s)
    sel, rest = s.seeds[: s.select_seeds], s.seeds[s.select_seeds:]
    stages = [f"dynamic:{st}" for st in (args.stages or stage_options(s))]
    static = f"static:{args.static_table}"
    members = [chosen_mod.parse_member(m, s) for m in args.members] if args.members else None
    member_data = {s.backbone: data}
    for backbone, _ in members or ():
        if backbone not in member_data:
            member_data[backbone] = load_property("matbench:n", chosen_mod.member_settings(backbone, s))
            if list(member_data[backbone].ids) != list(data.ids):
                raise SystemExit(f"matbench:n: {backbone} covers other samples than {s.backbone}; an ensemble "
                                 "needs the same folds")
    folds, cache = [], {}
    caches = {s.backbone: cache}  # embeddings per backbone
    for k, (train, test) in enumerate(matbench_folds("matbench_dielectric", ids=data.ids)):
        inner_train, inner_val = holdout(subsample(train, s.max_train, s.split_seed), args.inner_val, s.split_seed)
        fold = data.with_split((inner_train, inner_val, test), "official Matbench v0.1 fold, inner validation "
                               f"{args.inner_val:.0%} of its training fold (seed {s.split_seed})", f"fold {k}")
        log(f"[table 5] fold {k}: inner train/val/test {fold.sizes()}")
        res, chosen = fit_chosen(ledger, fold, stages, sel, rest, s, cache)
        res |= run_fits(ledger, fold, [job("roost", static, seed) for seed in s.seeds], s, cache)
        y_test = data.y[test]
        ensemble = {e: ensemble_mae([res[job("roost", e, seed)]["result"]["pred_test"] for seed in s.seeds], y_test)
                    for e in (chosen, static)}
        item = {"fold": k, "property": ledger.add_property(fold, s), "fits": _keys(res), "ensemble": ensemble}
        if args.stage_ensemble and members:  # each member's fits kept apart: backbones share input names
            member_fits = {}
            for backbone, inputs in members:
                fd = member_data[backbone].with_split(fold.split, fold.split_name, fold.subset)
                member_fits[chosen_mod.member_label(backbone, inputs, s)] = run_fits(
                    ledger, fd, [job("roost", inputs, seed) for seed in s.seeds],
                    chosen_mod.member_settings(backbone, s), caches.setdefault(backbone, {}))
            preds = [r["result"]["pred_test"] for fits in member_fits.values() for r in fits.values()]
            item |= {"members": {lab: _keys(fits) for lab, fits in member_fits.items()},
                     "stage_ensemble": ensemble_mae(preds, y_test)}
        elif args.stage_ensemble:
            stage_jobs = [job("roost", e, seed) for e in stages for seed in s.seeds]
            res |= run_fits(ledger, fold, stage_jobs, s, cache)
            item |= {"fits": _keys(res),
                     "stage_ensemble": ensemble_mae([res[j]["result"]["pred_test"] for j in stage_jobs], y_test)}
        folds.append(item)
        head = header("Table 5: Matbench dielectric (refractive index n), official 5 folds", s, args.argv, {
            "split": "official Matbench v0.1 folds; in each, a seeded "
                     f"{args.inner_val:.0%} of the training fold is the inner validation split (seed {s.split_seed})"
                     + ("" if s.max_train is None else
                        f"; each training fold first subsampled to {s.max_train} (seeded)"),
            "seeds": f"{list(s.seeds)} per fold; the stage is chosen with seeds {list(sel)}"})
        table5_args = {"folds": folds, "stages": stages, "static": static, "select_seeds": list(sel),
                       "seeds": list(s.seeds), "n_dropped": data.n_dropped, "capped": s.max_train is not None}
        if members and args.stage_ensemble:
            table5_args["members"] = [chosen_mod.member_label(b, i, s) for b, i in members]
        publish(args, "table5", "table5", table5_args, head, ledger)


# ----------------------------------------------------------------------------- Table 3
def _method_params(model: str, args, s: Settings) -> dict:
    if model == "elemnet":
        return elemnet_params(args.elemnet_epochs, args.elemnet_patience, s.device)
    if model == "flaml":
        return {"iterations": args.automl_iter, "estimators": ["lgbm", "rf", "extra_tree"]}
    return {"budget_s": args.autosklearn_budget, "run_limit_s": max(1, args.autosklearn_budget // 4)}


def _require_autosklearn() -> None:
    """Fail before any fit when Table 3's auto-sklearn rows cannot run."""
    from skdynemb.models.autosklearn import AutoSklearnEnvError, check_env

    try:
        log(f"auto-sklearn {check_env()} side env found")
    except AutoSklearnEnvError as exc:
        raise SystemExit(f"Table 3 needs auto-sklearn's side env: {exc}\n(or pass --autosklearn-budget 0 to leave "
                         "auto-sklearn out of Table 3)") from None


#: Table 3's models: on element rows (Roost, our CrabNet-style model), on formulas (the real CrabNet), on
#: atom-averaged vectors and composition features (ElemNet, FLAML, auto-sklearn)
METHOD_MODELS = ("roost", "crabnet-style", "crabnet", "elemnet", "flaml", "autosklearn")
#: why AtomSets has no column (written into Table 3)
ATOMSETS_NOTE = ("AtomSets: not run. It reads MEGNet's pretrained site features, and no reachable package ships "
                 "MEGNet's weights (the megnet 1.3.2 wheel holds code only), so there is no column for it rather than "
                 "a substitute")


def _method_combos(models, s: Settings) -> list[tuple[str, str]]:
    """``(model, inputs)`` of Table 3 in the order they are fitted (cheap and informative first)."""
    last = f"dynamic:{last_stage(s)}"
    combos = {"roost": [("roost", last), ("roost", "static:mat2vec")],
              "crabnet-style": [("crabnet-style", "static:mat2vec"), ("crabnet-style", last)],
              "crabnet": [("crabnet", "formula")]}
    order = [c for m in ("roost", "crabnet-style", "crabnet") if m in models for c in combos[m]]
    for inputs in (f"mean:{last}", "ElementFraction", "Magpie"):
        order += [(m, inputs) for m in ("elemnet", "flaml") if m in models]
    for inputs in (f"mean:{last}", "ElementFraction", "Magpie"):
        order += [("autosklearn", inputs)] if "autosklearn" in models else []
    return order


def methods(args, s: Settings, ledger: Ledger) -> None:
    """Table 3: the paper's methods on static and dynamic inputs: Roost and our CrabNet-style model on
    element rows (mat2vec vs the last stage), the real CrabNet (mat2vec, its side env), ElemNet and AutoML
    (FLAML, auto-sklearn) on atom-averaged dynamic vectors vs ElementFraction and Magpie.

    Fits run seed by seed in :func:`_method_combos`' order, the table is published after each round;
    ``--from-ledger`` trains nothing. CrabNet is trained only when its side env is there (else its
    rows must be in the ledger); AtomSets is named as not run (:data:`ATOMSETS_NOTE`)."""
    props = args.props or ["jarvis:formation_energy_peratom", "mp:band_gap"]
    models = [m for m in (args.methods_models or METHOD_MODELS) if m != "autosklearn" or args.autosklearn_budget]
    combos = _method_combos(models, s)
    crab_fit, crab_missing = crabnet_runner() if "crabnet" in models and not args.from_ledger else (None, "")
    params = {m: _method_params(m, args, s) for m in ("elemnet", "flaml", "autosklearn") if m in models}
    if "crabnet" in models:
        params["crabnet"] = crabnet_params(args.crabnet_epochs)
    if "crabnet-style" in models:
        params["crabnet-style"] = crabnet_style_params(args.crabnet_style_epochs)
    rounds = _seed_rounds(combos, s.seeds, params)
    described = (f"ElemNetRegressor(max_epochs={args.elemnet_epochs}, patience={args.elemnet_patience}, its own 10% "
                 f"early-stopping hold-out); AutoMLRegressor(FLAML, time_budget=-1, max_iter={args.automl_iter}, "
                 "estimator_list=[lgbm, rf, extra_tree])")
    if "autosklearn" in models:
        p = _method_params("autosklearn", args, s)
        described += (f"; AutoSklearnRegressor(auto-sklearn 0.15.0 in its Python 3.9 side env, "
                      f"time_left_for_this_task={p['budget_s']} s, per_run_time_limit={p['run_limit_s']} s, "
                      "memory_limit=3072 MB, n_jobs=1, its defaults otherwise: "
                      "25 meta-learning warm starts, holdout, ensemble of 50 selections)")
    if "crabnet-style" in models:
        described += ("; CrabNetRegressor (our CrabNet-style model) with "
                      + ", ".join(f"{k}={v}" for k, v in params["crabnet-style"].items())
                      + " (benchmarks/bench_crabnet_style.py's settings)")
    if "crabnet" in models:
        described += (f"; CrabNet 2.0.8 (its side env, its defaults: mat2vec, at most "
                      f"{params['crabnet']['epochs'] or 300} epochs, SWA on the validation split)")
    if "roost" in models:
        described += "; Roost as in Table 2 (the settings line)"
    head = header("Table 3: the paper's methods on static vs dynamic inputs", s, args.argv, {
        "split": "official JARVIS split for jarvis:*, seeded 80:10:10 otherwise; the validation split is used for "
                 "early stopping (Roost, CrabNet-style) and by CrabNet's SWA, not by ElemNet or AutoML",
        "seeds": f"{list(s.seeds)}; MAE mean ± sample std over seeds", "models": described})
    loaded = [(key, load_property(key, s), {}) for key in props]
    items = [None] * len(loaded)
    for r in range(len(s.seeds)):
        for n, (key, data, cache) in enumerate(loaded):
            upto = [j for rnd in rounds[: r + 1] for j in rnd]
            trainable = not args.from_ledger
            res = collect(ledger, data, [j for j in upto if j.model != "crabnet"], s, cache, train=trainable)
            res |= collect(ledger, data, [j for j in upto if j.model == "crabnet"], s, cache,
                           train=trainable and crab_fit is not None)
            items[n] = {"property": ledger.add_property(data, s), "fits": _keys(res),
                        "expected": _expected(j for rnd in rounds for j in rnd),
                        "widths": {i: _width(embeddings(data, i, s, cache)) for _, i in combos}}
            args_t3 = {"properties": [i for i in items if i], "combos": [list(c) for c in combos], "models": models,
                       "seeds": list(s.seeds), "autosklearn_budget": args.autosklearn_budget,
                       "requested": props, "not_run": [ATOMSETS_NOTE]}
            if "crabnet" in models and crab_fit is None and not args.from_ledger:
                args_t3["not_run"] = [*args_t3["not_run"], f"CrabNet 2.0.8 was not trained by this run: "
                                      f"{crab_missing}; its rows are those the ledger holds"]
            publish(args, "table3", "table3", args_t3, head, ledger)


def _width(X) -> int | str:
    """Columns of Table 3's inputs ``X`` (an array, element rows, or the formulas: "formula")."""
    if isinstance(X, np.ndarray) and X.ndim == 1:
        return "formula"
    return int(X.n_features if hasattr(X, "n_features") else X.shape[1])


# ----------------------------------------------------------------------------- Table 6
def cost(args, s: Settings, ledger: Ledger) -> None:
    """Table 6: extraction throughput (measured now) and Roost per-epoch time (fits through the ledger)."""
    import torch

    from skdynemb import DynamicEmbeddingTransformer

    torch.set_num_threads(1)
    data = load_property("jarvis:formation_energy_peratom", s)
    extraction = []
    structures = data.structures[: args.n_extract]
    for name, weights in [(s.backbone, s.weights), *(chosen_mod.backbone_arg(b) for b in args.also_backbone or ())]:
        tr = DynamicEmbeddingTransformer(name, weights=weights, stage="all", device=s.device, progress=False).fit()
        tr.transform(structures[:8])  # warm-up
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            tr.transform(structures)
            times.append(time.perf_counter() - t0)
        batch = tr.backbone_.default_batch_size
        extraction.append({"what": f"extraction, {name} (all stages, no cache, batch {batch})",
                           "n": len(structures), "seconds": min(times), "per second": len(structures) / min(times)})
    es, cache = replace(s, epochs=args.cost_epochs), {}
    embs = [f"dynamic:{last_stage(s)}", "dynamic:all", "static:matscholar200", "static:onehot", "static:megnet16"]
    res = run_fits(ledger, data, [job("roost", e, s.seeds[0]) for e in embs], es, cache)
    head = header("Table 6: cost (wall-clock timings, NOT reproducible bit for bit)", s, args.argv, {
        "split": "JARVIS formation energy (official train split for the Roost epochs)", "seeds": f"{s.seeds[0]}",
        "timing": f"1 torch thread; extraction = best of 2 passes; Roost = median of {args.cost_epochs} epochs; "
                  "the machine was shared with other jobs, so timings are upper bounds"})
    publish(args, "table6", "table6", {"extraction": extraction, "property": ledger.add_property(data, es),
                                       "fits": _keys(res), "seed": s.seeds[0],
                                       "embeddings": {e: int(embeddings(data, e, es, cache).n_features) for e in embs}},
            head, ledger)


def rebuild(args, ledger: Ledger) -> list[Path]:
    """Every table of every manifest under ``--results`` (or the ``--manifest`` files), from the ledger
    alone, into its own folder or, with ``--out``, the same relative folder under ``--out``."""
    root = Path(args.results)
    manifests = [Path(m) for m in args.manifest] if args.manifest else sorted(root.rglob(MANIFEST))
    done = []
    for path in manifests:
        folder = path.parent
        target = folder if args.out is None else Path(args.out) / _relative(folder, root)
        for name, entry in read_manifest(folder).items():
            render(entry, ledger, target)
            write_manifest(target, name, entry)
        done.append(target)
    return done


def learning_curve(args, s: Settings, ledger: Ledger) -> None:
    """Learning curves (see :mod:`benchmarks.paper.curves`)."""
    curves.learning_curve(args, s, ledger, publish)


def pooling_ideas(args, s: Settings, ledger: Ledger) -> None:
    """Mean+std element rows and two stages vs the last stage's mean (see :mod:`benchmarks.paper.pooling`)."""
    pooling.pooling_ideas(args, s, ledger, publish)


def table2_chosen(args, s: Settings, ledger: Ledger) -> None:
    """Table 2 with the representation chosen on validation, and ensembles (see :mod:`benchmarks.paper.chosen`)."""
    chosen_mod.chosen(args, s, ledger, publish)


def _relative(folder: Path, root: Path) -> Path:
    """``folder`` below ``root`` (its own name when it lies elsewhere)."""
    try:
        return folder.resolve().relative_to(root.resolve())
    except ValueError:
        return Path(folder.resolve().name)


#: the six paper tables (``all`` runs these)
COMMANDS = {"static-dynamic": static_vs_dynamic, "layers": layers, "matbench": matbench,
            "polymorphs": polymorphs, "methods": methods, "cost": cost}
EXTRA = {"learning-curve": learning_curve, "pooling-ideas": pooling_ideas, "diagnose": diagnose.diagnose,
         "chosen": table2_chosen}


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.paper.run``."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.paper.run", description=__doc__.splitlines()[0])
    p.add_argument("command", choices=[*COMMANDS, *EXTRA, "all", "rebuild"])
    p.add_argument("--preset", choices=["cpu", "full", "full-size"], help="cpu (default): 30 epochs, 400 training "
                   "samples; full: the paper's settings (GPU); full-size: issue 13's Table 2 at full available size "
                   "(all training entries, Roost's default network, <= 150 epochs with early stopping on the "
                   "validation split, 3 seeds, MP file subsampled to 5000)")
    p.add_argument("--full", action="store_true", help="same as --preset full")
    p.add_argument("--props", nargs="+", choices=[*PROPERTIES, "all"],
                   help="properties (default: per table; 'all' = every property with >= ~250 entries)")
    p.add_argument("--backbone", help="dynamic-embedding backbone (default: alignn-ff-wt10, the checkpoint of "
                   "the library default alignn-ff)")
    p.add_argument("--weights", help="checkpoint of --backbone (e.g. --backbone alignn --weights "
                   "skdynemb/data/alignn-mp-eform); its content hash is part of every fit's ledger identity")
    p.add_argument("--also-backbone", nargs="+", metavar="NAME[=WEIGHTS]",
                   help="further backbones of Tables 1 and 6 (e.g. alignn=skdynemb/data/alignn-mp-eform)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--early-stopping", action="store_true", help="Roost stops early on the validation split")
    p.add_argument("--patience", type=int, help="epochs without a better validation loss (with early stopping)")
    p.add_argument("--seeds", type=int, nargs="+")
    p.add_argument("--select-seeds", type=int, help="seeds used to choose best static / tuned stage on val")
    p.add_argument("--max-train", type=int, help="cap on training samples (0 = no cap)")
    p.add_argument("--max-eval", type=int, help="cap on validation/test samples")
    p.add_argument("--max-samples", type=int, help="seeded entries per property before splitting (smoke runs)")
    p.add_argument("--mp-subsample", type=int, help="seeded entries drawn from the MP formation-energy file")
    p.add_argument("--static", nargs="+", help="static tables compared in Table 2")
    p.add_argument("--static-table", default="matscholar200", help="static table of Tables 4 and 5")
    p.add_argument("--n-jobs", type=int, help="fits run in parallel (default 1)")
    p.add_argument("--device")
    p.add_argument("--work", default=str(DEFAULT_WORK), help="embedding cache folder")
    p.add_argument("--ledger", default=str(DEFAULT_LEDGER), help="the result store (committed)")
    p.add_argument("--out", help=f"output folder (default {DEFAULT_OUT.relative_to(DEFAULT_OUT.parents[2])}; "
                   "for rebuild: write there instead of into each manifest's folder)")
    p.add_argument("--results", default=str(DEFAULT_OUT), help="rebuild: the folder searched for manifests")
    p.add_argument("--manifest", nargs="+", help="rebuild: only these manifest files")
    p.add_argument("--inner-val", type=float, default=0.1, help="Table 5: share of each training fold held out "
                   "(seeded) to choose the stage and score validation")
    p.add_argument("--stage-ensemble", action="store_true", help="Table 5: also fit every --stages stage (or "
                   "--members member) with every seed and score the mean prediction of all of them (no choice on "
                   "validation)")
    p.add_argument("--elemnet-epochs", type=int, default=100)
    p.add_argument("--elemnet-patience", type=int, default=20)
    p.add_argument("--automl-iter", type=int, default=30)
    p.add_argument("--autosklearn-budget", type=int, default=60, help="seconds per auto-sklearn fit in Table 3 "
                   "(0 leaves auto-sklearn out; it needs the env of bash scripts/setup-autosklearn.sh)")
    p.add_argument("--sizes", nargs="+", help="learning curve / pooling ideas: training sizes (default 100 300 "
                   "1000 3000 max / 300 1000)")
    p.add_argument("--stages", nargs="+", help="Tables 2 and 5 and the learning curve: stages the dynamic model "
                   "chooses from on validation (default: every stage of the backbone and 'all')")
    p.add_argument("--curve-models", nargs="+", choices=curves.MODELS, help="learning curve: models "
                   "(default: all; crabnet only where benchmarks/paper/crabnet.py and its side env exist)")
    p.add_argument("--early-stage", help=f"pooling ideas: the stage concatenated to the last "
                   f"(default {pooling.DEFAULT_EARLY})")
    p.add_argument("--crabnet-epochs", type=int, help="CrabNet epochs (default: CrabNet's 300)")
    p.add_argument("--crabnet-props", nargs="+", choices=list(PROPERTIES), help="Table 2: properties (among "
                   "--props) that also get CrabNet rows, every seed on the same split (it needs the side env of "
                   "bash scripts/setup-crabnet.sh; ~30x a Roost fit on the CPU)")
    p.add_argument("--from-ledger", action="store_true", help="learning curve, Tables 1, 3 and 4, chosen: train "
                   "nothing; publish what the ledger holds and name the fits it does not hold yet")
    p.add_argument("--crabnet-max-size", type=int, help="learning curve: fit CrabNet only at training sizes up to "
                   "this (default: every size)")
    p.add_argument("--methods-models", nargs="+", choices=list(METHOD_MODELS), help="Table 3: models (default: "
                   "all; auto-sklearn only with --autosklearn-budget > 0; CrabNet is trained only where its side env "
                   "is, else read from the ledger)")
    p.add_argument("--crabnet-style-epochs", type=int, default=150, help="Table 3: epoch limit of our CrabNet-style "
                   "model (early stopping on the validation split, patience 20)")
    p.add_argument("--members", nargs="+", metavar="[BACKBONE/]INPUTS", help="chosen, and Table 5 with "
                   "--stage-ensemble: the ensemble's members, fixed in advance (chosen's default: dynamic:alignn2 "
                   "dynamic:gcn4; Table 5's: every --stages stage; another backbone's stage as "
                   "sevenn-0/dynamic:interaction3)")
    p.add_argument("--n-extract", type=int, default=400, help="structures timed in Table 6")
    p.add_argument("--cost-epochs", type=int, default=5)
    return p


def main(argv=None) -> None:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``)."""
    import sys

    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    args.argv = argv
    ledger = Ledger(args.ledger)
    if args.command == "rebuild":
        rebuild(args, ledger)
        return
    args.out = args.out or str(DEFAULT_OUT)
    if args.props and "all" in args.props:
        args.props = list(dict.fromkeys([p for p in args.props if p != "all"] + list(CPU_PROPS) + list(PROPERTIES)))
    s = settings_from(args)
    log(f"settings: {s}")
    commands = list(COMMANDS) if args.command == "all" else [args.command]
    if "methods" in commands and args.autosklearn_budget and not args.from_ledger:
        _require_autosklearn()
    for c in commands:
        {**COMMANDS, **EXTRA}[c](args, s, ledger)


if __name__ == "__main__":
    main()
