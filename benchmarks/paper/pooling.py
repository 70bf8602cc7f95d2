"""Two cheap ideas beyond the paper (issue 13): richer element rows (mean + std), two stages.

Roost on variants of the backbone's element rows, against the transformer's rows (the mean of each
element's atom vectors at the last stage), per property and training size:

- ``mean(last)``: ``dynamic:<last>``, the reference;
- ``mean+std(last)``: ``dynamic-meanstd:<last>``, that mean and the population std (ddof=0) of the
  element's atom vectors;
- ``mean(last)+mean(<early>)``: ``dynamic:<last>+<early>``, the last and an earlier stage side by side;
- ``mean+std(last+<early>)``: ``dynamic-meanstd:<last>+<early>``, both.

The samples, splits and nested training subsets are the learning curves' (:mod:`.curves`), so a fit
both commands need (e.g. ``dynamic:<last>`` at the same size and seed) is trained once and read
from the ledger by the other. Adoption rule (issue 13): a variant becomes a transformer option only
if it wins on at least two of the three properties at some training size and never loses.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from .curves import nested_training_sets, split_line
from .data import PROPERTIES, backbone_for, last_stage, load_property
from .element_stats import stage_list
from .fits import job, run_fits
from .ledger import Ledger
from .report import MIN_PCT, header, log, rounded, seed_stats, verdict, write_table
from .settings import Settings
from .tables import fit_results, maes

DEFAULT_PROPS = ("mp:G_VRH", "mp:band_gap", "matbench:n")
DEFAULT_SIZES = ("300", "1000")
#: the stage other than the last that Table 2's validation tuning picked with alignn-ff-wt10
DEFAULT_EARLY = "gcn2"
REFERENCE = "mean(last)"
#: wins needed at one training size (of the properties run), with no loss at any size
MIN_WINS = 2


def variants(last: str, early: str) -> dict[str, str]:
    """Variant label -> input name (:func:`benchmarks.paper.data.embeddings`), the reference first."""
    return {REFERENCE: f"dynamic:{last}", "mean+std(last)": f"dynamic-meanstd:{last}",
            f"mean(last)+mean({early})": f"dynamic:{last}+{early}",
            f"mean+std(last+{early})": f"dynamic-meanstd:{last}+{early}"}


def width(inputs: str, s: Settings) -> int:
    """Features per element row of the dynamic input ``inputs`` (from the backbone's stage layout)."""
    backbone = backbone_for(s)
    kind, _, what = inputs.partition(":")
    stages = stage_list(what, backbone.stage_names)
    dims = dict(zip(backbone.stage_names, backbone.stage_dims))
    total = sum(backbone.stage_dims) if stages == ["all"] else sum(dims[stage] for stage in stages)
    return total * (2 if kind == "dynamic-meanstd" else 1)


def pooling_ideas(args, s: Settings, ledger: Ledger, publish) -> None:
    """Fit Roost on every variant, size and seed, property by property, publishing the table after each."""
    s = replace(s, max_train=None)  # the sizes subsample the whole training split, as the learning curves
    props = args.props or list(DEFAULT_PROPS)
    last, early = last_stage(s), args.early_stage or DEFAULT_EARLY
    if early == last or early not in backbone_for(s).stage_names:
        raise SystemExit(f"--early-stage {early!r} must be a stage of {s.backbone} other than its last ({last!r}): "
                         f"{list(backbone_for(s).stage_names[:-1])}")
    named = variants(last, early)
    head = header("Two cheap ideas beyond the paper: mean+std element rows, two stages (issue 13)", s, args.argv, {
        "split": f"{split_line(s)}, as the learning curves",
        "seeds": f"{list(s.seeds)}; MAE = mean ± sample std (ddof=1) over seeds, on the test split"})
    items = []
    for key in props:
        data, cache = load_property(key, s), {}
        sizes = []
        for label, n, sub in nested_training_sets(data, args.sizes or DEFAULT_SIZES, s.split_seed):
            log(f"[pooling ideas] {key}: train {n} ({label}), val/test {sub.sizes().split('/', 1)[1]}")
            res = run_fits(ledger, sub, [job("roost", inputs, seed) for inputs in named.values() for seed in s.seeds],
                           s, cache)
            sizes.append({"label": label, "n": n, "property": ledger.add_property(sub, s),
                          "fits": sorted(r["key"] for r in res.values())})
        widths = {inputs: width(inputs, s) for inputs in named.values()}
        items.append({"key": key, "unit": PROPERTIES[key].unit, "sizes": sizes, "widths": widths})
        publish(args, "pooling_ideas", "pooling_ideas", {
            "properties": items, "requested": props, "variants": named, "early": early, "seeds": list(s.seeds)},
            head, ledger)


def adoption(df: pd.DataFrame) -> pd.DataFrame:
    """The adoption rule per variant and training size, from the rows of :func:`pooling_ideas_table`.

    Columns: variant, size, wins / ties / losses (the properties, comma-separated), "wins >= 2, no
    loss at this size" and "meets the rule" (wins on >= :data:`MIN_WINS` properties at some size and
    no loss at any size; the same on every row of a variant).
    """
    rows = []
    for variant, g in df[df.variant != REFERENCE].groupby("variant", sort=False):
        lost_anywhere = (g.verdict == "loss").any()
        per_size = []
        for size, part in g.groupby("size", sort=False):
            props = {column: sorted(part.loc[part.verdict == v, "property"])
                     for v, column in (("win", "wins"), ("tie", "ties"), ("loss", "losses"))}
            ok = len(props["wins"]) >= MIN_WINS and not props["losses"]
            per_size.append({"variant": variant, "size": size, "properties": part.property.nunique(),
                             **{column: ", ".join(p) for column, p in props.items()},
                             f"wins >= {MIN_WINS}, no loss at this size": "yes" if ok else "no"})
        meets = any(r[f"wins >= {MIN_WINS}, no loss at this size"] == "yes" for r in per_size) and not lost_anywhere
        rows += [{**r, "meets the rule": "yes" if meets else "no"} for r in per_size]
    return pd.DataFrame(rows)


def pooling_ideas_table(args: dict, head: dict, ledger: Ledger, out: Path) -> None:
    """The variants' test MAE per property and size, with their verdicts against ``mean(last)``,
    and the adoption rule per variant and size (a second table), from the ledger."""
    seeds, named, rows = args["seeds"], args["variants"], []
    for item in args["properties"]:
        for size in item["sizes"]:
            res, p = fit_results(ledger, size["fits"]), ledger[size["property"]]["result"]
            _, n_val, n_test = p["sizes"].split("/")
            ref = maes(res, named[REFERENCE], seeds)
            for variant, inputs in named.items():
                values = maes(res, inputs, seeds)
                m, sd = seed_stats(values)
                rows.append({"property": item["key"], "unit": item["unit"], "train size": size["n"],
                             "size": size["label"], "val/test": f"{n_val}/{n_test}", "variant": variant,
                             "inputs": inputs, "width": item["widths"][inputs], "test MAE": m, "std": sd,
                             f"% vs {REFERENCE}": 100 * (m / seed_stats(ref)[0] - 1),
                             "verdict": "ref" if variant == REFERENCE else verdict(values, ref)})
    df = pd.DataFrame(rows)
    done = [i["key"] for i in args["properties"]]
    notes = [
        f"rows: mean = the element's mean atom vector (the transformer's rows); std = the population standard "
        f"deviation (ddof=0) over that element's atoms, 0 for an element with one atom; a variant's columns are the "
        f"means of its stages, then their stds; early stage {args['early']}",
        f"% = (variant - {REFERENCE}) / {REFERENCE}; verdict vs {REFERENCE}: win/loss only when the mean difference "
        f"exceeds both the sum of the two seed stds and {MIN_PCT:g}% of the {REFERENCE} MAE, else tie",
        f"properties done: {len(done)} of the {len(args['requested'])} requested "
        f"({', '.join(k for k in args['requested'] if k not in done) or 'none'} not run)",
    ]
    write_table(rounded(df), "pooling_ideas", head, out, notes)
    rule = [f"adoption rule (issue 13): a variant becomes a transformer option only if it wins on at least "
            f"{MIN_WINS} of the properties (three requested by default) at some training size and never loses; "
            f"'meets the rule' applies it over every size run, the column before it at each size alone",
            notes[-1]]
    write_table(adoption(df), "pooling_ideas_adoption", {**head, "table": "Pooling ideas: the adoption rule"}, out,
                rule)
