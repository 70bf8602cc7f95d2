"""Learning curves (issue 13): test MAE against training-set size, dynamic vs static vs ElemNet (vs CrabNet).

Per property the validation and test splits are fixed; the training sets are nested seeded subsets
of the training split (the first n of one permutation drawn with ``split_seed``, so every smaller
set lies inside every larger one), "max" being the whole training split. At each size the stage
(among ``--stages``) and the static table (among ``--static``) are chosen on validation with the
first ``select_seeds`` seeds, as Table 2 chooses them; the chosen ones are then fitted with every seed.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from .data import PROPERTIES, PropData, last_stage, load_property, stage_options
from .fits import NotInLedger, crabnet_params, crabnet_runner, elemnet_params, fit_chosen, job, run_fits
from .ledger import Ledger
from .report import MIN_PCT, header, log, plot_learning_curves, rounded, seed_stats, verdict, write_table
from .settings import Settings
from .tables import choose, fit_results, maes

DEFAULT_PROPS = ("mp:band_gap", "mp:G_VRH", "matbench:n")
DEFAULT_SIZES = ("100", "300", "1000", "3000", "max")
#: the curves' models, in table order
MODELS = ("dynamic", "static", "elemnet", "crabnet")
LABELS = {"dynamic": "Roost, dynamic (stage chosen on val)", "static": "Roost, best static (val)",
          "elemnet": "ElemNet, atom-averaged dynamic", "crabnet": "CrabNet"}


def training_sizes(sizes, n_train: int) -> list[tuple[str, int]]:
    """``(label, n)`` per requested size below ``n_train`` (in order, no repeats), then ``("max", n_train)``
    if asked for; a number at or above ``n_train`` counts as "max"."""
    out = {}
    for size in sizes:
        n = n_train if size == "max" else int(size)
        if n < 1:
            raise ValueError(f"training size must be >= 1 or 'max', got {size!r}")
        label = "max" if n >= n_train else str(n)
        out.setdefault(label, min(n, n_train))
    return sorted(out.items(), key=lambda item: item[1])


def nested_subset(train: np.ndarray, n: int, seed: int) -> np.ndarray:
    """The first ``n`` of a ``seed``-ed permutation of ``train``, sorted (nested across ``n``);
    all of ``train``, in its order, when ``n`` covers it."""
    if n >= len(train):
        return train
    return np.sort(np.random.default_rng(seed).permutation(train)[:n])


def nested_training_sets(data: PropData, sizes, seed: int):
    """``(label, n, data with its training split cut to the nested subset of n)`` per size of
    :func:`training_sizes`; the validation and test splits stay as they are."""
    tr, va, te = data.split
    for label, n in training_sizes(sizes, len(tr)):
        yield label, n, data.with_split((nested_subset(tr, n, seed), va, te), data.split_name, "")


def averaged_inputs(s: Settings) -> str:
    """ElemNet's inputs: the atom-averaged vectors of the backbone's last stage."""
    return f"mean:dynamic:{last_stage(s)}"


def split_line(s: Settings) -> str:
    """The split line of a header over nested training sets (the learning curves, the pooling ideas)."""
    return ("official JARVIS split for jarvis:*; seeded 80:10:10 (split seed "
            f"{s.split_seed}) otherwise (MP formation-energy file subsampled to {s.mp_subsample}); validation "
            f"and test sets fixed across sizes; training sets nested seeded subsets (seed {s.split_seed})")


def learning_curve(args, s: Settings, ledger: Ledger, publish) -> None:
    """Fit every model at every size, property by property, and publish the table after each property."""
    s = replace(s, max_train=None)  # the sizes subsample the whole training split
    props = args.props or list(DEFAULT_PROPS)
    sel = s.seeds[: s.select_seeds]
    stages = [f"dynamic:{st}" for st in (args.stages or stage_options(s))]
    statics = [f"static:{t}" for t in s.static]
    averaged = averaged_inputs(s)
    models = list(dict.fromkeys(args.curve_models or MODELS))
    not_run = {}
    if "crabnet" in models:
        runner, why = crabnet_runner()
        if runner is None:
            models.remove("crabnet")
            not_run["crabnet"] = why
    head = header("Learning curves: test MAE against training-set size", s, args.argv, {
        "split": split_line(s),
        "seeds": f"{list(s.seeds)}; MAE = mean ± sample std (ddof=1) over seeds, on the test split"})
    items = []
    for key in props:
        data, cache = load_property(key, s), {}
        sizes = []
        for label, n, sub in nested_training_sets(data, args.sizes or DEFAULT_SIZES, s.split_seed):
            log(f"[learning curve] {key}: train {n} ({label}), val/test {sub.sizes().split('/', 1)[1]}")
            res, pending = {}, []
            for model in models:
                if model == "crabnet" and not crabnet_fitted(n, args.crabnet_max_size):
                    continue
                try:
                    res |= model_fits(model, ledger, sub, s, cache, args, {"dynamic": stages, "static": statics},
                                      train=not args.from_ledger)
                except NotInLedger:
                    pending.append(model)
            sizes.append({"label": label, "n": n, "property": ledger.add_property(sub, s),
                          "fits": sorted(r["key"] for r in res.values()), "pending": pending})
        items.append({"key": key, "unit": PROPERTIES[key].unit, "sizes": sizes})
        publish(args, "learning_curve", "learning_curve", {
            "properties": items, "requested": props, "models": models, "not_run": not_run, "stages": stages,
            "statics": statics, "averaged": averaged, "select_seeds": list(sel), "seeds": list(s.seeds),
            "elemnet": [args.elemnet_epochs, args.elemnet_patience], "crabnet_max_size": args.crabnet_max_size},
            head, ledger)


def model_fits(model: str, ledger: Ledger, sub: PropData, s: Settings, cache: dict, args, choices: dict,
               train: bool = True) -> dict:
    """The ledger records of one curve model at one training size: Roost on the stage / static table
    chosen on validation among ``choices[model]`` (dynamic, static), ElemNet on the atom-averaged
    vectors of the last stage, or CrabNet, with every seed; ``train``: as in :func:`run_fits`."""
    sel, rest = s.seeds[: s.select_seeds], s.seeds[s.select_seeds:]
    if model in ("dynamic", "static"):
        return fit_chosen(ledger, sub, choices[model], sel, rest, s, cache, train=train)[0]
    if model == "elemnet":
        params, inputs = elemnet_params(args.elemnet_epochs, args.elemnet_patience, s.device), averaged_inputs(s)
    else:
        params, inputs = crabnet_params(args.crabnet_epochs), "formula"
    return run_fits(ledger, sub, [job(model, inputs, seed, params) for seed in s.seeds], s, cache, train=train)


def crabnet_fitted(n: int, max_size: int | None) -> bool:
    """Whether CrabNet is fitted at training size ``n`` (all sizes when ``max_size`` is None)."""
    return max_size is None or n <= max_size


def learning_curve_table(args: dict, head: dict, ledger: Ledger, out: Path) -> None:
    """The learning-curve table and its log-log plot (one panel per property), from the ledger."""
    sel, seeds, rows = args["select_seeds"], args["seeds"], []
    for item in args["properties"]:
        for size in item["sizes"]:
            res, p = fit_results(ledger, size["fits"]), ledger[size["property"]]["result"]
            _, n_val, n_test = p["sizes"].split("/")
            values, chosen = {}, {}
            for model in args["models"]:
                if model in size.get("pending", ()) or (
                        model == "crabnet" and not crabnet_fitted(size["n"], args.get("crabnet_max_size"))):
                    continue
                if model in ("dynamic", "static"):
                    inputs = choose(res, args["stages" if model == "dynamic" else "statics"], sel)
                    fitted, chosen[model] = "roost", inputs
                else:
                    fitted, inputs = model, args["averaged"] if model == "elemnet" else "formula"
                    chosen[model] = inputs.split(":", 2)[-1] if model == "elemnet" else ""
                values[model] = maes(res, inputs, seeds, model=fitted)
            static = values.get("static")
            for model, maes_ in values.items():
                m, sd = seed_stats(maes_)
                rows.append({"property": item["key"], "unit": item["unit"], "model": LABELS[model],
                             "train size": size["n"], "size": size["label"], "val/test": f"{n_val}/{n_test}",
                             "test MAE": m, "std": sd, "chosen (val)": chosen[model].split(":", 1)[-1],
                             "% vs best static": np.nan if static is None or model == "static"
                             else 100 * (m / np.mean(static) - 1),
                             "vs best static": "" if static is None or model == "static" else verdict(maes_, static)})
    df = pd.DataFrame(rows)
    done = [i["key"] for i in args["properties"]]
    notes = [
        f"dynamic: the stage with the lowest validation MAE over seeds {sel} among "
        f"{', '.join(s.split(':', 1)[1] for s in args['stages'])}, chosen at each size; static: the table chosen "
        f"the same way among {', '.join(s.split(':', 1)[1] for s in args['statics'])}; ElemNet on the atom-averaged "
        f"vectors of the last stage ({args['averaged'].split(':')[-1]}), ElemNetRegressor(max_epochs="
        f"{args['elemnet'][0]}, patience={args['elemnet'][1]}, its own 10% early-stopping hold-out of the "
        "training set)",
        f"% vs best static = (model - best static) / best static at the same size; negative is better. "
        f"verdict as Table 2's: win/loss only when the mean difference exceeds both the sum of the two seed stds "
        f"and {MIN_PCT:g}% of the static MAE, else tie",
        f"properties done: {len(done)} of the {len(args['requested'])} requested "
        f"({', '.join(k for k in args['requested'] if k not in done) or 'none'} not run)",
        *(f"{LABELS[m]}: not run ({why})" for m, why in args["not_run"].items()),
        *(f"not in the ledger yet (table published with --from-ledger): {item['key']} at {size['label']}: "
          f"{', '.join(LABELS[m] for m in size['pending'])}"
          for item in args["properties"] for size in item["sizes"] if size.get("pending")),
        *([f"{LABELS['crabnet']}: fitted at training sizes <= {args['crabnet_max_size']} only (its cost)"]
          if args.get("crabnet_max_size") is not None and "crabnet" in args["models"] else []),
    ]
    write_table(rounded(df), "learning_curves", head, out, notes)
    plot_learning_curves(df, out / "learning_curves.png", head["settings"])
