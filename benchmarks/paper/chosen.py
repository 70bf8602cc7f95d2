"""Table 2 with the representation chosen on validation data, and pre-registered ensembles (issue 28).

Per property, on Table 2's samples, split and Roost settings:

- **best static**: the static table with the lowest validation MAE (Table 2's pick);
- **members**: Roost on each input of ``--members`` (default: ALIGNN-FF's ``alignn2`` and ``gcn4``), every
  seed; an input of another backbone is written ``BACKBONE/INPUTS`` (e.g. ``sevenn-0/dynamic:interaction3``);
- **ensemble**: for each seed, the mean prediction of the members fitted with that seed. The members are
  fixed before any test number is seen (a recipe, not a choice), so the ensemble needs no validation data;
- **chosen**: the family chosen on validation alone: the ensemble when some member's validation MAE
  (mean over the selection seeds) is below the best static table's, else the best static table itself;
- **static ensemble**: the best static table's mean prediction over as many of its seeds as the ensemble
  has members (cyclic windows of the seeds; every seed when there are fewer), so that the ensemble also
  meets a static model of equal (or the nearest) cost.

Ensemble MAEs need the test targets, which the ledger does not store; the run computes them and keeps them
in the manifest (as Tables 4 and 5 keep theirs), so ``rebuild`` still needs no data.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from .data import PROPERTIES, ZERO_FLAG, last_stage, load_property
from .fits import collect, crabnet_params, job
from .ledger import Ledger, property_identity
from .report import MIN_PCT, ensemble_mae, header, log, pick_on_validation, plot_pct_change, rounded, seed_stats, \
    verdict, write_table
from .settings import Settings
from .tables import fit_results, maes

DEFAULT_MEMBERS = ("dynamic:alignn2", "dynamic:gcn4")


def parse_member(text: str, settings: Settings) -> tuple[str, str]:
    """``(backbone, inputs)`` of a ``--members`` entry ``[BACKBONE/]INPUTS``; BACKBONE may be
    ``NAME=WEIGHTS`` (e.g. ``alignn=benchmarks/_work/alignn-ff-eform/dynamic:gcn4``)."""
    backbone, _, inputs = text.rpartition("/")
    return backbone or settings.backbone, inputs


def backbone_arg(text: str) -> tuple[str, str | None]:
    """``(name, absolute weights path or None)`` of a backbone argument ``NAME[=WEIGHTS]``."""
    name, _, weights = text.partition("=")
    return name, (str(Path(weights).resolve()) if weights else None)


def member_settings(backbone: str, settings: Settings) -> Settings:
    """The run's settings with ``backbone`` (``NAME[=WEIGHTS]``) as the extractor (the same object for the
    run's own); weights given by path enter the fits' identity by their content hash."""
    if backbone == settings.backbone:
        return settings
    name, weights = backbone_arg(backbone)
    return replace(settings, backbone=name, weights=weights)


def member_label(backbone: str, inputs: str, settings: Settings) -> str:
    """Short name of a member: its stage for the run's backbone, ``backbone/stage`` for another
    (``NAME=<weights folder name>/stage`` for weights given by path)."""
    name = inputs.split(":", 1)[1] if inputs.startswith("dynamic:") else inputs
    if backbone == settings.backbone:
        return name
    backbone_name, weights = backbone_arg(backbone)
    return f"{backbone_name}={Path(weights).name}/{name}" if weights else f"{backbone}/{name}"


def _windows(seeds: list[int], size: int) -> list[list[int]]:
    """For each seed, it and the next ``size - 1`` seeds, cyclically."""
    return [[seeds[(i + k) % len(seeds)] for k in range(size)] for i in range(len(seeds))]


def chosen(args, s: Settings, ledger: Ledger, publish) -> None:
    """Fit (or, with ``--from-ledger``, read) every fit the table needs, property by property, and publish."""
    props = args.props or list(PROPERTIES)
    train = not args.from_ledger
    statics = [f"static:{t}" for t in s.static]
    sel, rest = list(s.seeds[: s.select_seeds]), list(s.seeds[s.select_seeds:])
    members = [parse_member(m, s) for m in (args.members or DEFAULT_MEMBERS)]
    last = f"dynamic:{last_stage(s)}"
    labels = [member_label(b, i, s) for b, i in members]
    if len(set(labels)) != len(labels):
        raise SystemExit(f"--members names an input twice: {labels}")
    head = header("Table 2, chosen on validation: best static vs dynamic ensembles", s, args.argv, {
        "split": "as Table 2 (official JARVIS split for jarvis:*; seeded 80:10:10 otherwise)",
        "seeds": f"{list(s.seeds)}; MAE = mean ± sample std (ddof=1) over seeds (for an ensemble: over its "
                 "replicates, one per seed), on the test split"})
    items = []
    for key in props:
        data, caches = load_property(key, s), {}
        log(f"[table 2 chosen] {key}: train/val/test {data.sizes()}")
        cache = caches.setdefault(s.backbone, {})
        st = collect(ledger, data, [job("roost", n, seed) for n in statics for seed in sel], s, cache, train)
        have = [n for n in statics if all(job("roost", n, seed) in st for seed in sel)]
        if not have:
            log(f"[table 2 chosen] {key}: no static table in the ledger; left out")
            continue
        best = pick_on_validation({n: [st[job("roost", n, seed)]["result"]["val_mae"] for seed in sel] for n in have})
        st |= collect(ledger, data, [job("roost", best, seed) for seed in rest], s, cache, train)
        fits = {}
        for label, (backbone, inputs) in zip(["last", *labels], [(s.backbone, last), *members]):
            sb = member_settings(backbone, s)
            d = data if sb is s else load_property(key, sb)
            if property_identity(d) != property_identity(data):
                raise SystemExit(f"{key}: {backbone} covers other samples than {s.backbone} "
                                 f"({d.sizes()} vs {data.sizes()}); an ensemble needs the same test set")
            fits[label] = collect(ledger, d, [job("roost", inputs, seed) for seed in s.seeds], sb,
                                  caches.setdefault(backbone, {}), train)
        crab = collect(ledger, data, [job("crabnet", "formula", seed, crabnet_params(None)) for seed in s.seeds],
                       s, cache, train=False)
        y_test = data.y[data.split[2]]
        item = {"property": ledger.add_property(data, s), "statics": sorted(r["key"] for r in st.values()),
                "members": {lab: sorted(r["key"] for r in fits[lab].values()) for lab in ["last", *labels]},
                "crabnet": sorted(r["key"] for r in crab.values())}
        full = [seed for seed in s.seeds if all(job("roost", i, seed) in fits[lab]
                                                for lab, (_, i) in zip(labels, members))]
        if full:
            preds = [[fits[lab][job("roost", i, seed)]["result"]["pred_test"] for lab, (_, i) in zip(labels, members)]
                     for seed in full]
            item["ensemble"] = {str(seed): ensemble_mae(rep, y_test) for seed, rep in zip(full, preds)}
        if all(job("roost", best, seed) in st for seed in s.seeds):
            windows = _windows(list(s.seeds), min(len(members), len(s.seeds)))
            preds = [[st[job("roost", best, seed)]["result"]["pred_test"] for seed in w] for w in windows]
            item["static_ensemble"] = [ensemble_mae(rep, y_test) for rep in preds]
        items.append(item)
        publish(args, "table2_chosen", "table2_chosen", {
            "properties": items, "requested": props, "statics": statics, "members": labels,
            "last": member_label(s.backbone, last, s),
            "select_seeds": sel, "seeds": list(s.seeds), "zero_flag": ZERO_FLAG}, head, ledger)


def _row(values: list[float], ref: list[float]) -> tuple[float, float, float, str]:
    m, sd = seed_stats(values) if values else (np.nan, np.nan)
    return m, sd, 100 * (m - seed_stats(ref)[0]) / seed_stats(ref)[0], verdict(values, ref) if values else ""


def chosen_table(args: dict, head: dict, ledger: Ledger, out: Path) -> None:
    """Per property: best static, the last stage, the ensemble, the validation choice, the static ensemble of
    equal size and CrabNet where fitted (``table2_chosen``); every member's own numbers (``table2_members``)."""
    seeds, sel, labels = args["seeds"], args["select_seeds"], args["members"]
    rows, member_rows = [], []
    for item in args["properties"]:
        prop = ledger[item["property"]]
        key, p = prop["identity"]["property"], prop["result"]
        st = fit_results(ledger, item["statics"])
        have = [n for n in args["statics"] if all(("roost", n, seed) in st for seed in sel)]
        best = pick_on_validation({n: maes(st, n, sel, "val_mae") for n in have})
        static = [st[("roost", best, seed)]["test_mae"] for seed in seeds if ("roost", best, seed) in st]
        fits = {lab: {seed: r for (_, _, seed), r in fit_results(ledger, keys).items()}
                for lab, keys in item["members"].items()}
        last = [fits["last"][seed]["test_mae"] for seed in seeds if seed in fits["last"]]
        ensemble = [item.get("ensemble", {})[str(seed)] for seed in seeds if str(seed) in item.get("ensemble", {})]
        member_val = {lab: [fits[lab][seed]["val_mae"] for seed in sel if seed in fits[lab]] for lab in labels}
        best_member_val = min((np.mean(v) for v in member_val.values() if len(v) == len(sel)), default=np.inf)
        static_val = float(np.mean(maes(st, best, sel, "val_mae")))
        pick = "ensemble" if best_member_val < static_val else "static"
        picked = ensemble if pick == "ensemble" else static
        crab = [r["test_mae"] for (_, _, seed), r in sorted(fit_results(ledger, item["crabnet"]).items())]
        sens = item.get("static_ensemble", [])
        row = {"property": key, "unit": p["unit"], "train/val/test": p["sizes"], "flag": p["flag"],
               "best static (val)": best.split(":", 1)[1]}
        for name, values in (("static", static), ("last", last), ("ensemble", ensemble)):
            m, sd = seed_stats(values) if values else (np.nan, np.nan)
            row |= {f"{name} MAE": m, f"{name} std": sd}
            if name != "static":
                row |= {f"{name} %": 100 * (m - row["static MAE"]) / row["static MAE"],
                        f"{name} verdict": verdict(values, static) if len(values) == len(seeds) else "incomplete"}
        m, sd, pct, v = _row(picked, static) if len(picked) == len(seeds) else (np.nan, np.nan, np.nan, "incomplete")
        row |= {"chosen (val)": pick, "chosen MAE": m, "chosen std": sd, "chosen %": pct, "chosen verdict": v}
        if sens and len(ensemble) == len(seeds):
            m, sd, pct, v = _row(ensemble, sens)
            row |= {"static ensemble MAE": seed_stats(sens)[0], "ensemble vs static ensemble %": pct,
                    "ensemble vs static ensemble": v}
        if len(crab) == len(seeds) and len(picked) == len(seeds):
            m, sd, pct, v = _row(picked, crab)
            row |= {"CrabNet MAE": seed_stats(crab)[0], "chosen vs CrabNet %": pct, "chosen vs CrabNet": v}
        rows.append(row)
        for lab in ["last", *labels] if args["last"] not in labels else labels:
            values = [fits[lab][seed]["test_mae"] for seed in seeds if seed in fits[lab]]
            m, sd, pct, v = _row(values, static) if values else (np.nan, np.nan, np.nan, "")
            member_rows.append({"property": key, "input": args["last"] if lab == "last" else lab,
                                "seeds": len(values), "test MAE": m, "std": sd,
                                "val MAE": np.mean(member_val[lab]) if member_val.get(lab) else np.nan,
                                "% vs best static": pct, "verdict vs best static": v if len(values) == len(seeds)
                                else "incomplete"})
    df = pd.DataFrame(rows)
    done = list(df["property"]) if len(df) else []
    keys = [k for item in args["properties"] for ks in (item["statics"], *item["members"].values()) for k in ks]
    revisions = sorted({ledger[k]["provenance"]["git"] for k in keys})

    def count(column: str, value: str) -> int:
        return int((df[column] == value).sum()) if column in df else 0

    with_crab = int(df["chosen vs CrabNet"].isin(["win", "tie", "loss"]).sum()) if "chosen vs CrabNet" in df else 0
    notes = [
        f"members: {', '.join(labels)} (Roost on each, every seed); ensemble = per seed the mean prediction of the "
        "members fitted with that seed, fixed in advance (no choice on validation or test)",
        f"best static = the static table with the lowest validation MAE over seeds {sel} (Table 2's pick); chosen = "
        f"the ensemble when a member's validation MAE (mean over seeds {sel}) is below the best static table's, "
        "else the best static table (validation data only)",
        f"static ensemble = the best static table's mean prediction over {min(len(labels), len(seeds))} of its "
        f"seeds (cyclic windows): as many models as the ensemble, or every seed when it has fewer than "
        f"{len(labels)}",
        f"% = (x - best static) / best static; negative is better. verdict: win/loss only when the mean difference "
        f"exceeds both the sum of the two seed stds and {MIN_PCT:g}% of the reference MAE, else tie",
        f"last stage: wins {count('last verdict', 'win')} / {len(df)}, losses {count('last verdict', 'loss')}; "
        f"ensemble: wins {count('ensemble verdict', 'win')}, losses {count('ensemble verdict', 'loss')}; "
        f"chosen: wins {count('chosen verdict', 'win')}, losses {count('chosen verdict', 'loss')}; "
        f"ensemble vs static ensemble: wins {count('ensemble vs static ensemble', 'win')}, "
        f"losses {count('ensemble vs static ensemble', 'loss')}",
        f"chosen vs CrabNet 2.0.8 (where the ledger holds its fits, {with_crab} properties): wins "
        f"{count('chosen vs CrabNet', 'win')}, ties {count('chosen vs CrabNet', 'tie')}, "
        f"losses {count('chosen vs CrabNet', 'loss')}",
        f"properties done: {len(done)} of the {len(args['requested'])} requested "
        f"({', '.join(k for k in args['requested'] if k not in done) or 'none'} not run)",
        f"flag: >= {args['zero_flag']:.0%} of the values are exactly 0: models collapse towards the median there",
        f"the fits were trained at git revisions {', '.join(revisions)} (the ledger keeps a fit across code changes "
        "that leave its settings alone; each record names its revision)",
    ]
    write_table(rounded(df), "table2_chosen", head, out, notes)
    write_table(rounded(pd.DataFrame(member_rows)), "table2_members", {**head, "table": "Table 2, each member alone"},
                out, notes[3:4])
    if len(df):
        bars = df.rename(columns={"last %": "dynamic %", "ensemble %": "tuned %"})
        plot_pct_change(bars, out / "table2_chosen_pct_change.png", f"{head['settings']}. * = mostly zeros",
                        labels=("dynamic, last stage", f"ensemble of {'+'.join(labels)}"))
