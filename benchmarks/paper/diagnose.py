"""Why dynamic embeddings win or lose on a Table 2 property: three numbers per property (issue 13).

- **polymorph spread**: the mean standard deviation of the target among entries sharing one reduced
  formula (formulas with >= 2 entries), as a % of the standard deviation of all targets. Near 0, the
  target is a function of the composition in this set, and a structure embedding has nothing of its
  own to add beyond what the backbone learned.
- **corr(target, atoms per formula)**: near 1 for per-formula extensive targets (e.g. a heat capacity
  in J/(mol K) of formula units), which Roost must infer from element fractions.
- **median and trimmed test error** of the best static table and the last stage (mean over seeds):
  whether a gap is the whole test set or a few samples (trimmed: the worst :data:`TRIM` of each
  fit's test errors left out).

The table needs the targets, which the ledger does not store, so it is not in ``manifest.json``:
``python -m benchmarks.paper.run diagnose`` with the Table 2 run's settings writes it again from
the data and the ledger in seconds; a property whose samples or split differ from the Table 2
entry's is refused.
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pandas as pd

from .data import PropData, load_property
from .ledger import Ledger, digest, property_identity, read_manifest
from .report import header, rounded, write_table
from .settings import Settings
from .tables import _label, choose, fit_results

#: share of each fit's largest test errors left out of the trimmed MAE
TRIM = 0.05


def polymorph_spread(data: PropData) -> tuple[int, float]:
    """(reduced formulas with >= 2 entries, their mean within-formula target std as a % of the std of
    all targets); (0, NaN) when no formula repeats."""
    groups = collections.defaultdict(list)
    for comp, y in zip(data.compositions, data.y):
        groups[comp.reduced_formula].append(y)
    repeated = [np.std(v) for v in groups.values() if len(v) > 1]
    if not repeated:
        return 0, float("nan")
    return len(repeated), float(100 * np.mean(repeated) / np.std(data.y))


def atoms_per_formula(data: PropData) -> np.ndarray:
    """Atoms in each sample's reduced formula."""
    return np.array([c.get_reduced_composition_and_factor()[0].num_atoms for c in data.compositions])


def trimmed_mae(errors: np.ndarray, share: float = TRIM) -> float:
    """Mean of ``errors`` (absolute) without the largest ``ceil(share * n)`` of them."""
    keep = len(errors) - int(np.ceil(share * len(errors)))
    return float(np.mean(np.sort(errors)[:max(keep, 1)]))


def _errors(data: PropData, pred) -> np.ndarray:
    y = data.y[data.split[2]]
    pred = np.asarray(pred, dtype=float)
    if pred.shape != y.shape:
        raise ValueError(f"{data.key}: {pred.size} stored test predictions for {y.size} test samples")
    return np.abs(pred - y)


def diagnose(args, s: Settings, ledger: Ledger) -> None:
    """Write ``<out>/table2_diagnostics.csv/.md`` for every property of the Table 2 entry in ``<out>``."""
    entry = read_manifest(args.out).get("table2")
    if entry is None:
        raise SystemExit(f"no Table 2 in {args.out}/manifest.json: run static-dynamic with --out {args.out} first")
    t2 = entry["args"]
    rows = []
    for item in t2["properties"]:
        key = ledger[item["property"]]["identity"]["property"]
        data = load_property(key, s)
        if digest(property_identity(data)) != item["property"]:
            raise SystemExit(f"{key}: these settings give other samples or another split than the Table 2 in "
                             f"{args.out} was built from; pass that run's settings (its header names them)")
        res = fit_results(ledger, item["fits"])
        best_static = choose(res, t2["statics"], t2["select_seeds"])
        errs = {name: [_errors(data, res[("roost", name, seed)]["pred_test"]) for seed in t2["seeds"]]
                for name in (best_static, t2["last"])}
        n_formulas, spread = polymorph_spread(data)
        row = {"property": key, "unit": data.spec.unit, "best static (val)": _label(best_static),
               "formulas with polymorphs": n_formulas, "polymorph spread %": spread,
               "corr(target, atoms per formula)": float(np.corrcoef(data.y, atoms_per_formula(data))[0, 1])}
        for label, name in (("static", best_static), ("dynamic", t2["last"])):
            row[f"{label} MAE"] = float(np.mean([e.mean() for e in errs[name]]))
            row[f"{label} median AE"] = float(np.mean([np.median(e) for e in errs[name]]))
            row[f"{label} trimmed MAE"] = float(np.mean([trimmed_mae(e) for e in errs[name]]))
        rows.append(row)
    head = header("Table 2 diagnostics: polymorph spread, atoms per formula, median and trimmed errors", s,
                  args.argv, {"table 2": f"{Path(args.out) / 'table2_static_vs_dynamic.md'} ({entry['header']['command']})"})
    notes = [
        "polymorph spread % = mean std of the target among entries of one reduced formula (formulas with >= 2 "
        "entries) / std of all targets; near 0: the target is a function of the composition in this set",
        "corr(target, atoms per formula): Pearson correlation with the number of atoms in the reduced formula "
        "(near 1: a per-formula extensive target)",
        f"static = best static table (chosen on validation), dynamic = last stage ({_label(t2['last'])}); MAE, median "
        f"absolute error and trimmed MAE (each fit's worst {TRIM:.0%} of test errors left out) are means over "
        f"seeds {t2['seeds']}",
        "not in manifest.json (it needs the targets, which the ledger does not store): its command writes it again "
        "from the data and the ledger in seconds",
    ]
    write_table(rounded(pd.DataFrame(rows)), "table2_diagnostics", head, Path(args.out), notes)
