"""Two cheap ideas beyond the paper, measured (issue 13): richer element pooling, two stages.

Variants of a backbone's per-element rows, each fed to Roost (the CPU settings of the paper
harness), on MP shear modulus (G_VRH), MP band gap (1,500 seeded entries) and Matbench dielectric
``n``, seeded 80:10:10 split, nested seeded training subsets, the same validation/test sets:

- ``mean(last)``: the mean of each element's atom vectors at the last stage (the transformer's
  ``layer=-1`` rows; asserted on real structures before any fit);
- ``mean+std(last)``: that mean and the population std (ddof=0) over the element's atoms;
- ``mean(last)+mean(<early>)``: the last stage and an earlier one concatenated;
- ``mean+std(last+<early>)``: both.

Per structure, the per-element mean and std of every stage's atom vectors (the sufficient
statistics of all variants) are cached under ``benchmarks/_work_pooling/`` (git-ignored), keyed on
the backbone's identity and the structure's content hash. Each fit's result goes to a JSON file
under ``benchmarks/results/`` (written atomically after every fit, keyed on everything the fit
depends on), so a rerun resumes; the Markdown table is rebuilt from it.

Run from the repository root::

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/bench_pooling_ideas.py
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pymatgen.core.periodic_table import Element

from skdynemb._files import atomic_write
from skdynemb.datasets import load_matbench_dielectric, load_mp_elasticity, load_mp_eform, train_val_test_split
from skdynemb.embeddings import CompoundEmbedding, ElementEmbeddings
from skdynemb.models.roost import RoostRegressor
from skdynemb.pooling import element_groups
from skdynemb.provenance import digest
from skdynemb.structures import to_crystal
from skdynemb.transformers.dynamic import DynamicEmbeddingTransformer

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "_work_pooling"
RESULTS = REPO / "benchmarks" / "results" / "pooling_ideas.json"
REPORT = REPO / "benchmarks" / "results" / "pooling_ideas.md"
#: the CPU settings of the paper harness (benchmarks/paper/common.py ``Settings``)
ROOST = dict(max_epochs=30, batch_size=32, lr=3e-4, out_hidden=(256, 128, 64), device="cpu")
#: property -> (loader, target, unit)
PROPERTIES = {
    "mp:G_VRH": (load_mp_elasticity, "G_VRH", "GPa"),
    "mp:band_gap": (lambda: load_mp_eform(sample=1500, random_state=0), "band_gap", "eV"),
    "matbench:n": (load_matbench_dielectric, "n", "-"),
}
#: differences below this share (%) of the reference MAE count as ties (the Table-2 rule)
MIN_PCT = 5.0
_CACHE_FORMAT = "element-mean-std-v1"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- data
def load(prop: str, backbone, sizes: list[int]) -> dict:
    """Structures, targets, split and nested training subsets of ``prop`` (samples the backbone covers)."""
    loader, target, unit = PROPERTIES[prop]
    task = loader().task(target, missing="drop")
    crystals, structures, keep = [], [], []
    for i in range(len(task)):
        crystal = to_crystal(task.structures[i], index=i, id=str(task.ids[i]))
        try:
            backbone.check_elements(crystal, i)
        except ValueError:
            continue
        crystals.append(crystal)
        structures.append(task.structures[i])
        keep.append(i)
    keep = np.asarray(keep)
    train, val, test = train_val_test_split(len(keep), random_state=0)
    order = np.random.default_rng(0).permutation(train)
    subsets = {n: np.sort(order[:n]) for n in sizes if n <= len(train)}
    return dict(prop=prop, unit=unit, crystals=crystals, structures=structures, ids=np.asarray(task.ids)[keep],
                y=task.y[keep], val=val, test=test, subsets=subsets, n_dropped=len(task) - len(keep))


def restrict(data: dict) -> dict:
    """``data`` reduced to the samples some training subset, validation or test set uses (re-indexed)."""
    need = np.unique(np.concatenate([*data["subsets"].values(), data["val"], data["test"]]))
    out = {**data, **{k: [data[k][i] for i in need] for k in ("crystals", "structures")},
           "ids": data["ids"][need], "y": data["y"][need], "n_total": len(data["y"])}
    for k in ("val", "test"):
        out[k] = np.searchsorted(need, data[k])
    out["subsets"] = {n: np.searchsorted(need, idx) for n, idx in data["subsets"].items()}
    return out


def split_digest(ids: np.ndarray, *parts: np.ndarray) -> str:
    """Digest of the sample ids of each part (train, validation, test)."""
    return digest([[str(i) for i in ids[p]] for p in parts])[:16]


# ----------------------------------------------------------------------------- element statistics
def element_stats(atom: np.ndarray, numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per element (sorted by Z): mean and population std (ddof=0) of its atom rows, float32."""
    _, inverse, counts = element_groups(numbers)
    x = atom.astype(np.float64)
    mean = np.zeros((len(counts), x.shape[1]))
    np.add.at(mean, inverse, x)
    mean /= counts[:, None]
    var = np.zeros_like(mean)
    np.add.at(var, inverse, (x - mean[inverse]) ** 2)
    return mean.astype(np.float32), np.sqrt(var / counts[:, None]).astype(np.float32)


class StatsCache:
    """Per-structure ``(n_stages, n_elements, d)`` mean and std arrays in ``.npz`` files."""

    def __init__(self, transformer: DynamicEmbeddingTransformer):
        self.backbone = transformer.backbone_
        self.identity = digest({"format": _CACHE_FORMAT, "identity": transformer.backbone_identity_})
        self.folder = WORK / self.backbone.name.replace(":", "_")
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, crystal) -> Path:
        return self.folder / f"{digest([self.identity, crystal.content_hash()])[:32]}.npz"

    def _read(self, crystal):
        path = self._path(crystal)
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as z:
            if str(z["identity"]) != self.identity or str(z["structure"]) != crystal.content_hash():
                return None
            return z["mean"], z["std"]

    def _write(self, tmp: str, crystal, mean: np.ndarray, std: np.ndarray) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, identity=self.identity, structure=crystal.content_hash(), mean=mean, std=std)

    def stats(self, crystals: list, batch_size: int = 64) -> list[tuple[np.ndarray, np.ndarray]]:
        """Mean and std of every stage for each crystal (computed in batches where not cached)."""
        out = [self._read(c) for c in crystals]
        todo = [k for k, o in enumerate(out) if o is None]
        t0 = time.perf_counter()
        for s in range(0, len(todo), batch_size):
            batch = todo[s : s + batch_size]
            for k, output in zip(batch, self.backbone.forward_stages([crystals[k] for k in batch])):
                pairs = [element_stats(a, crystals[k].numbers) for a in output.atom]
                mean, std = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
                c = crystals[k]
                atomic_write(self._path(c), lambda tmp, c=c, m=mean, d=std: self._write(tmp, c, m, d))
                out[k] = (mean, std)
            log(f"  forward {min(s + batch_size, len(todo))}/{len(todo)} ({time.perf_counter() - t0:.0f} s)")
        return out


def variants(stage_names: list[str], early: list[str]) -> dict[str, tuple[list[int], bool]]:
    """Variant name -> (stage indices, with std)."""
    last = len(stage_names) - 1
    out = {"mean(last)": ([last], False), "mean+std(last)": ([last], True)}
    for name in early:
        s = stage_names.index(name)
        out[f"mean(last)+mean({name})"] = ([last, s], False)
        out[f"mean+std(last+{name})"] = ([last, s], True)
    return out


def embeddings(data: dict, stats: list, stages: list[int], with_std: bool) -> ElementEmbeddings:
    compounds = []
    for crystal, (mean, std) in zip(data["crystals"], stats):
        z, _, counts = element_groups(crystal.numbers)
        blocks = [mean[s] for s in stages] + ([std[s] for s in stages] if with_std else [])
        compounds.append(CompoundEmbedding(tuple(Element.from_Z(int(k)).symbol for k in z), counts / counts.sum(),
                                           np.concatenate(blocks, axis=1), crystal.id))
    d = mean.shape[-1]
    names = [f"{kind}{s}_{k}" for kind in (["mean"] + (["std"] if with_std else [])) for s in stages for k in range(d)]
    return ElementEmbeddings(compounds, np.asarray(names, dtype=object))


def check_against_transformer(transformer, data: dict, stats: list, n: int = 5) -> None:
    """``mean(last)`` rows equal ``DynamicEmbeddingTransformer(layer=-1)`` rows on ``n`` test structures."""
    last = DynamicEmbeddingTransformer(transformer.backbone, layer=-1, device="cpu", progress=False).fit()
    picks = data["test"][:n]
    ref = last.transform([data["structures"][i] for i in picks])
    for i, row in zip(picks, ref):
        np.testing.assert_allclose(stats[i][0][-1], row.features, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- fits and ledger
def read_doc() -> dict:
    """The results file: ``{"format", "fits": {key: record}, "decision": text or None}``."""
    doc = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    return {"format": "pooling-ideas-v1", "fits": {}, "decision": None, **doc}


def read_results() -> dict:
    return read_doc()["fits"]


def _update(change) -> dict:
    """Apply ``change(doc)`` to the results file under a lock (several runs may share it); the new doc."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    WORK.mkdir(parents=True, exist_ok=True)
    with open(WORK / "results.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        doc = read_doc()
        change(doc)
        text = json.dumps(doc, indent=1, sort_keys=True)
        atomic_write(RESULTS, lambda tmp: Path(tmp).write_text(text))
    return doc


def add_result(key: str, record: dict) -> dict:
    """Add one fit to the results file; all fits."""
    return _update(lambda doc: doc["fits"].__setitem__(key, record))["fits"]


def set_decision(text: str) -> None:
    """Record the decision taken (shown under the verdicts by every rebuild)."""
    _update(lambda doc: doc.__setitem__("decision", text))


def fit(E: ElementEmbeddings, y: np.ndarray, train, val, test, seed: int) -> dict:
    t0 = time.perf_counter()
    model = RoostRegressor(**ROOST, random_state=seed).fit(E[train], y[train])
    return {"val_mae": float(np.mean(np.abs(model.predict(E[val]) - y[val]))),
            "test_mae": float(np.mean(np.abs(model.predict(E[test]) - y[test]))),
            "fit_s": time.perf_counter() - t0}


# ----------------------------------------------------------------------------- report
def verdict(new: np.ndarray, ref: np.ndarray) -> str:
    """win/loss only when the mean difference exceeds both the sum of the seed stds and 5 % of ref."""
    if len(new) < 2 or len(ref) < 2:
        return "n/a"
    margin = max(new.std(ddof=1) + ref.std(ddof=1), abs(ref.mean()) * MIN_PCT / 100)
    diff = ref.mean() - new.mean()
    return "win" if diff > margin else "loss" if -diff > margin else "tie"


def table(fits: dict) -> pd.DataFrame:
    rows = pd.DataFrame(fits.values())
    rows["order"] = [(list(PROPERTIES).index(r.property) if r.property in PROPERTIES else len(PROPERTIES),
                      len(r.stages), r.with_std, r.variant) for r in rows.itertuples()]
    rows = rows.sort_values(["train_size", "order"], kind="stable")
    out = []
    for (size, prop), g in rows.groupby(["train_size", "property"], sort=False):
        ref = g[g.variant == "mean(last)"].test_mae.to_numpy()
        for variant, v in g.groupby("variant", sort=False):
            mae = v.test_mae.to_numpy()
            out.append({"property": prop, "unit": v.unit.iloc[0], "train": size,
                        "val/test": f"{v.n_val.iloc[0]}/{v.n_test.iloc[0]}", "variant": variant,
                        "width": int(v.width.iloc[0]), "seeds": len(mae), "test MAE": mae.mean(),
                        "std": mae.std(ddof=1) if len(mae) > 1 else 0.0,
                        "% vs mean(last)": 100 * (mae.mean() / ref.mean() - 1) if len(ref) else np.nan,
                        "verdict": "ref" if variant == "mean(last)" else verdict(mae, ref),
                        "fit s (median)": float(v.fit_s.median())})
    return pd.DataFrame(out)


def decisions(df: pd.DataFrame) -> list[str]:
    """Per variant: does it win on >= 2 properties at some size and never lose (the adoption rule)?"""
    out = []
    for variant, g in df[df.verdict != "ref"].groupby("variant", sort=False):
        wins = g[g.verdict == "win"].groupby("train").property.nunique()
        best = int(wins.max()) if len(wins) else 0
        losses = g[g.verdict == "loss"]
        ok = best >= 2 and losses.empty
        lost = ", ".join(f"{r.property} n={r.train}" for r in losses.itertuples()) or "none"
        out.append(f"- `{variant}`: most properties won at one size {best} of {g.property.nunique()}; "
                   f"losses: {lost} -> {'meets' if ok else 'does not meet'} the adoption rule")
    return out


def machine() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        rev = "unknown"
    return (f"{platform.machine()} {os.cpu_count()} CPUs, torch {torch.__version__} "
            f"({torch.get_num_threads()} thread(s)), Python {platform.python_version()}, git {rev}")


NOTES = [
    "Earlier stage: `gcn2`, the only stage other than the last that the paper harness's validation tuning picked "
    "with this backbone (JARVIS bulk modulus, benchmarks/results/paper/alignn_ff_wt10/table2_static_vs_dynamic.md); "
    "there the validation MAEs of the eight earlier stages lie within seed noise of each other, so one was measured "
    "(others: `--early alignn4 ...`).",
    "Rows: `mean` = the element's mean atom vector (the transformer's rows); `std` = the population standard deviation "
    "(ddof=0) over that element's atoms, 0 for an element with one atom (or symmetry-equivalent atoms). Columns of a "
    "variant: the means of its stages, then their stds. Before any fit, `mean(last)` is asserted equal (rtol 1e-5) to "
    "`DynamicEmbeddingTransformer(backbone, layer=-1)` rows on 5 test structures of each property.",
    "Cache: per structure, the per-element mean and std of every stage (the sufficient statistics of every variant; "
    "the per-atom arrays themselves are not kept), one `.npz` per structure under `benchmarks/_work_pooling/` "
    "(git-ignored), keyed on the backbone identity (weights, graph rule, stage layout, code versions) and the "
    "structure's content hash, both checked on read.",
    "Cost: one forward pass gives every stage and both statistics, and Roost's epoch time does not depend on the row "
    "width (benchmarks/results/roost_epoch.md), so every variant costs the same as `mean(last)` except memory; "
    "`fit s` is wall-clock on a shared, loaded 2-core machine (load average ~4).",
    "Fits are deterministic for a given seed (two processes that computed the same fit got identical test MAEs).",
    "The fits ran in up to two processes at once, sharing the results file (locked writes); at n=1000 the variants "
    "ran in the order mean(last), mean+std(last), mean+std(last+gcn2), mean(last)+mean(gcn2) (the last was the "
    "weakest at n=300), so the time budget cut the latter first.",
]


def coverage(fits: dict) -> list[str]:
    """Property x size groups with fewer fits than the full grid (every variant seen x every seed seen)."""
    rows = pd.DataFrame(fits.values())
    full = rows.variant.nunique() * rows.seed.nunique()
    out = []
    for prop in PROPERTIES:
        for size in sorted(rows.train_size.unique()):
            g = rows[(rows.property == prop) & (rows.train_size == size)]
            if len(g) < full:
                absent = sorted(set(rows.variant) - set(g.variant))
                out.append(f"- {prop} n={size}: {len(g)} of {full} fits" +
                           (f" (not run: {', '.join(f'`{v}`' for v in absent)})" if absent else ""))
    return out


def write_report(fits: dict, meta: dict, decision: str | None) -> None:
    df = table(fits)
    commands = sorted({f["command"] for f in fits.values()})
    lines = ["# Two cheap ideas beyond the paper: mean+std pooling, two stages (issue 13)", ""]
    plural = "s" if len(commands) > 1 else ""
    lines += [f"- **command{plural}** (of the fits): " + "; ".join(f"`{c}`" for c in commands),
              f"- **rebuild this file** from `benchmarks/results/pooling_ideas.json`: "
              f"`{meta['command']} --report-only`"]
    lines += [f"- **{k}**: {v}" for k, v in meta.items() if k != "command"]
    lines += ["", df.to_markdown(index=False, floatfmt=".4g"), ""]
    missing = coverage(fits)
    if missing:
        lines += [f"Not complete (time budget of one sitting; `{_PREFIX}` fits the rest, resuming from the "
                  "results file):", "", *missing, ""]
    lines += ["## Decision", "",
              "Adoption rule (issue 13): a variant becomes a transformer option only if it wins on at least two of "
              "the three properties at some training size and never loses.", "", *decisions(df), ""]
    if decision:
        lines += [decision, ""]
    lines += ["## Notes", "", *[f"- {n}" for n in NOTES]]
    text = "\n".join(lines) + "\n"
    atomic_write(REPORT, lambda tmp: Path(tmp).write_text(text))


# ----------------------------------------------------------------------------- main
_PREFIX = "OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/bench_pooling_ideas.py"


def command(argv: list[str]) -> str:
    """The command line, without the options that change no fit (--minutes, --decision, --report-only)."""
    kept, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in ("--minutes", "--decision"):
            skip = True
        elif a != "--report-only" and not a.startswith(("--minutes=", "--decision=")):
            kept.append(a)
    return " ".join([_PREFIX, shlex.join(kept)]).strip()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="alignn-ff-wt10")
    p.add_argument("--props", nargs="+", default=list(PROPERTIES))
    p.add_argument("--sizes", nargs="+", type=int, default=[300, 1000])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--early", nargs="+", default=["gcn2"], help="earlier stage(s) concatenated to the last")
    p.add_argument("--variants", nargs="+", default=None, help="fit only these variants (default: all)")
    p.add_argument("--skip", nargs="*", default=[], help="PROP:SIZE pairs not to fit, e.g. matbench:n:1000")
    p.add_argument("--minutes", type=float, default=None, help="start no new fit after this many minutes")
    p.add_argument("--report-only", action="store_true", help="rebuild the table from the results file")
    p.add_argument("--decision", default=None,
                   help="text of the decision taken: stored in the results file, written under the verdicts")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    meta = {"command": command(sys.argv[1:] if argv is None else argv),
            "machine": machine(),
            "settings": (f"Roost {ROOST['max_epochs']} epochs, batch {ROOST['batch_size']}, lr {ROOST['lr']}, "
                         f"output network {ROOST['out_hidden']}, CPU, one torch thread; seeds {args.seeds}; "
                         f"backbone {args.backbone}"),
            "split": "seeded 80:10:10 (train_val_test_split, random_state=0) of the samples the backbone covers; "
                     "training subsets nested (first n of one seeded permutation of the training split); "
                     "validation and test sets the same for every size; MP band gap: 1,500 seeded entries "
                     "(load_mp_eform(sample=1500, random_state=0))",
            "MAE": "test MAE, mean ± sample std (ddof=1) over seeds; % = (variant - mean(last)) / mean(last); "
                   "verdict vs mean(last): win/loss only when the mean difference exceeds both the sum of the two "
                   "seed stds and 5 % of the mean(last) MAE, else tie"}
    if args.decision is not None:
        set_decision(args.decision)
    fits = read_results()
    if args.report_only:
        write_report(fits, meta, read_doc()["decision"])
        return
    transformer = DynamicEmbeddingTransformer(args.backbone, layer="all", device="cpu", progress=False).fit()
    names = list(transformer.backbone_.stage_names)
    vs = variants(names, args.early)
    unknown = set(args.variants or ()) - set(vs)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; choose from {list(vs)}")
    vs = vs if args.variants is None else {k: vs[k] for k in args.variants}  # in the order given
    cache = StatsCache(transformer)
    datasets, all_stats = {}, {}
    for prop in args.props:
        data = restrict(load(prop, transformer.backbone_, args.sizes))
        log(f"{prop}: {data['n_total']} samples ({data['n_dropped']} not covered), {len(data['y'])} used")
        stats = cache.stats(data["crystals"])
        check_against_transformer(transformer, data, stats)
        datasets[prop], all_stats[prop] = data, stats
    start = time.perf_counter()
    # variants outer, properties inner: a run stopped by --minutes leaves every property the same variants
    for size in args.sizes:
        for name, (stages, with_std) in vs.items():
            for prop in args.props:
                data = datasets[prop]
                if size not in data["subsets"] or f"{prop}:{size}" in args.skip:
                    continue
                train, val, test = data["subsets"][size], data["val"], data["test"]
                settings = {"property": prop, "train_size": size, "variant": name,
                            "stages": [names[s] for s in stages], "with_std": with_std,
                            "split_digest": split_digest(data["ids"], train, val, test),
                            "roost": {k: list(v) if isinstance(v, tuple) else v for k, v in ROOST.items()},
                            "backbone": cache.identity}
                E = None
                for seed in args.seeds:
                    key = digest({**settings, "seed": seed})[:24]
                    if key in fits:
                        continue
                    if args.minutes is not None and time.perf_counter() - start > 60 * args.minutes:
                        log("time budget reached: stopping (rerun to resume)")
                        write_report(fits, meta, read_doc()["decision"])
                        return
                    if E is None:
                        E = embeddings(data, all_stats[prop], stages, with_std)
                    result = fit(E, data["y"], train, val, test, seed)
                    fits = add_result(key, {**settings, "seed": seed, **result, "command": meta["command"],
                                            "unit": data["unit"], "width": E.n_features, "n_val": len(val),
                                            "n_test": len(test)})
                    log(f"{prop} n={size} {name} seed {seed}: test MAE {result['test_mae']:.4g} "
                        f"({result['fit_s']:.0f} s)")
    write_report(fits, meta, read_doc()["decision"])


if __name__ == "__main__":
    main()
