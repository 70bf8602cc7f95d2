"""Do symmetry-equivalent atoms get equal ALIGNN-FF rows? The official k-nearest rule vs the tie-complete rule.

ALIGNN's k-nearest graph keeps each site's neighbours out to its 12th distance, exact ties only.
Symmetry-equivalent neighbours whose float64 distances differ in the last bits are then cut at the
12th one in an arbitrary order, and atoms that a space-group operation maps onto each other get
different neighbourhoods. :class:`~skdynemb.backbones.alignn.graphs.TieCompleteGraph` keeps every
neighbour within ``shell_tolerance`` of the 12th distance instead. Over a seeded sample of MP
structures (``mp_eform_crysxpp.json.gz``, :func:`benchmarks._common.mp_crystals`) this measures,
for the default backbone (``alignn-ff``, official weights) under both rules:

- the fraction of structures whose symmetry-equivalent atoms (pymatgen ``SpacegroupAnalyzer``,
  ``equivalent_atoms`` at each ``--symprec``) get atom rows differing by more than ``--row-tol``
  (max abs over features) at the last stage, and at any stage;
- parity with the official rule: ALIGNN-FF energy per atom (MAE, percentiles, max difference,
  eV/atom), how far the rows move (max abs per stage) and the directed edges the rule adds;
- the orbit lever: the share of atoms (and of directed edges) that computing one atom per
  orbit would leave out, where equal rows are guaranteed.

Per-structure results are kept in ``benchmarks/_work/symmetry/<settings>.jsonl`` (the run resumes
there); the summary goes to ``benchmarks/results/symmetry.md`` with the command, machine, commit
and seed, and the time of each rule side by side. A downstream section (Roost on the last stage,
official vs tie-complete backbone) is rendered from the ledgers (``--ledger``), where the paper
harness put the fits (``--downstream-commands`` names the commands; missing fits are reported as
missing).

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_symmetry.py --n 500 --seed 0 --tolerances 1e-4 1e-3 1e-2``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import ROOT, commit, machine, mp_crystals  # noqa: E402
from skdynemb.backbones import load_backbone  # noqa: E402
from skdynemb.backbones.alignn.graphs import TieCompleteGraph  # noqa: E402

WORK = ROOT / "benchmarks" / "_work" / "symmetry"
#: Roost settings of the paper harness's cpu preset (``benchmarks/paper/settings.py``): the fits compared downstream
CPU_PARAMS = {"batch_size": 32, "device": "cpu", "epochs": 30, "lr": 0.0003, "out_hidden": [256, 128, 64]}


def orbits(crystal, symprec: float) -> np.ndarray:
    """``equivalent_atoms`` of the spglib dataset (pymatgen's SpacegroupAnalyzer at ``symprec``):
    for each site, the index of the representative of its orbit."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    data = SpacegroupAnalyzer(crystal.to_pymatgen(), symprec=symprec).get_symmetry_dataset()
    equivalent = data["equivalent_atoms"] if isinstance(data, dict) else data.equivalent_atoms
    return np.asarray(equivalent, dtype=np.int64)


def orbit_spread(rows: np.ndarray, rep: np.ndarray) -> float:
    """Largest |row(atom) - row(its orbit's representative)| over atoms and features."""
    return float(np.abs(rows - rows[rep]).max()) if len(rows) else 0.0


def measure(crystal, backbones: dict, symprecs: list[float]) -> dict:
    """One structure: orbits (per symprec; the first one's for degrees and edges), and per rule the
    orbit spread per stage (per symprec), energy, degrees, edges and the row move."""
    reps = [orbits(crystal, symprec) for symprec in symprecs]
    rep = reps[0]
    out = {"id": crystal.id, "atoms": int(crystal.num_sites), "orbits": [int(len(np.unique(r))) for r in reps]}
    stages_of = {}
    for label, backbone in backbones.items():
        graph = backbone.rule.build(crystal)
        stages = backbone.forward_stages([crystal])[0].atom
        stages_of[label] = stages
        degree = np.bincount(graph.edge_src, weights=graph.edge_mult, minlength=crystal.num_sites)
        rep_edges = float(graph.edge_mult[rep[graph.edge_src] == graph.edge_src].sum() / graph.edge_mult.sum())
        out[label] = {
            "spread": [[orbit_spread(s, r) for s in stages] for r in reps],
            "energy": float(backbone.predict_batch([crystal])[0]),
            "degree_min": int(degree.min()), "degree_max": int(degree.max()),
            "edges": int(graph.edge_mult.sum()), "rep_edge_share": rep_edges,
            "degree_spread_in_orbits": int(np.abs(degree - degree[rep]).max()),
        }
    base = next(iter(backbones))
    for label in list(backbones)[1:]:
        out[label]["move"] = [float(np.abs(a - b).max()) for a, b in zip(stages_of[label], stages_of[base])]
    return out


def summarise(records: list[dict], labels: list[str], row_tol: float, which: int = 0) -> dict:
    """Fractions, parity and orbit-lever numbers over the sample, with the orbits of symprec ``which``."""
    n = len(records)
    atoms = np.array([r["atoms"] for r in records], dtype=float)
    orbit_counts = np.array([r["orbits"][which] for r in records], dtype=float)
    summary = {"n": n, "symmetric": int(np.sum(orbit_counts < atoms)),
               "atoms_saved": float(1 - orbit_counts.sum() / atoms.sum()),
               "atoms_saved_mean": float(np.mean(1 - orbit_counts / atoms)), "rules": {}}
    for label in labels:
        spread = np.array([r[label]["spread"][which] for r in records])
        edges = np.array([r[label]["edges"] for r in records], dtype=float)
        rep_share = np.array([r[label]["rep_edge_share"] for r in records])
        rule = {
            "last": float(np.mean(spread[:, -1] > row_tol)),
            "any": float(np.mean(spread.max(axis=1) > row_tol)),
            "last_count": int(np.sum(spread[:, -1] > row_tol)),
            "any_count": int(np.sum(spread.max(axis=1) > row_tol)),
            "per_stage": np.mean(spread > row_tol, axis=0).tolist(),
            "degree_cut": int(sum(r[label]["degree_spread_in_orbits"] > 0 for r in records)),
            "median_spread_last": float(np.median(spread[:, -1])),
            "max_spread_last": float(spread[:, -1].max()),
            "edges_saved": float(1 - np.sum(rep_share * edges) / edges.sum()),
            "edges": float(edges.sum()),
        }
        if label != labels[0]:
            energy = np.array([r[label]["energy"] for r in records])
            base = np.array([r[labels[0]]["energy"] for r in records])
            move = np.array([r[label]["move"] for r in records])
            changed = move.max(axis=1) > 0
            rule.update({
                "energy_mae": float(np.mean(np.abs(energy - base))),
                "energy_p50": float(np.percentile(np.abs(energy - base), 50)),
                "energy_p90": float(np.percentile(np.abs(energy - base), 90)),
                "energy_max": float(np.max(np.abs(energy - base))),
                "changed": int(changed.sum()),
                "move_max_per_stage": move.max(axis=0).tolist(),
                "move_median_changed_last": float(np.median(move[changed, -1])) if changed.any() else 0.0,
                "extra_edges": float(edges.sum() / np.array([r[labels[0]]["edges"] for r in records]).sum() - 1),
            })
        summary["rules"][label] = rule
    return summary


def downstream(ledgers: list[Path], props: list[str], backbones: list[str], inputs: str,
               seeds: list[int]) -> tuple[list[str], list[str]]:
    """Markdown rows and the verdict per property (empty when fits are missing): Roost test MAE (mean ± sample std over ``seeds``) on ``inputs`` per property and
    backbone, read from the ledgers (the paper harness's fits, same split and settings for both; a
    record of a later ledger replaces one of an earlier ledger with the same key)."""
    by_key = {}
    for ledger in ledgers:
        for path in sorted(ledger.glob("*.jsonl")):
            by_key |= {r["key"]: r for r in map(json.loads, filter(str.strip, path.read_text().splitlines()))}
    records = list(by_key.values())
    lines = ["| property | " + " | ".join(f"`{b}` test MAE" for b in backbones) + " | change | verdict |",
             "|---|" + "---|" * (len(backbones) + 2)]
    verdicts = []
    for prop in props:
        found = {}
        for backbone in backbones:
            fits = {r["identity"]["seed"]: r for r in records
                    if r["kind"] == "fit" and r["identity"]["property"] == prop and r["identity"]["backbone"] == backbone
                    and r["identity"]["inputs"] == inputs and r["identity"]["model"] == "roost"
                    and r["identity"]["subset"] == "" and r["identity"]["seed"] in seeds
                    and r["identity"]["params"] == CPU_PARAMS}
            found[backbone] = fits
        if any(len(f) < len(seeds) for f in found.values()):
            lines.append(f"| {prop} | " + " | ".join(f"{len(f)} of {len(seeds)} seeds in the ledger" for f in found.values())
                         + " | | |")
            continue
        same = {(r["identity"]["split"], r["identity"]["y"], r["identity"]["n"]) for f in found.values() for r in f.values()}
        if len(same) != 1:
            raise ValueError(f"{prop}: the backbones' fits are on different samples or splits: {same}")
        stats = [(np.mean(m), np.std(m, ddof=1)) for m in
                 ([f[seed]["result"]["test_mae"] for seed in seeds] for f in found.values())]
        (m0, s0), (m1, s1) = stats[0], stats[-1]
        verdict = "tie" if abs(m1 - m0) <= max(s0 + s1, 0.05 * m0) else ("better" if m1 < m0 else "worse")
        verdicts.append(verdict if verdict != "tie" else ("tie, higher" if m1 > m0 else "tie, lower"))
        lines.append(f"| {prop} | " + " | ".join(f"{m:.4g} ± {sd:.2g}" for m, sd in stats)
                     + f" | {(m1 - m0) / m0:+.1%} | {verdict} |")
    return lines, verdicts


def _differ_table(summary: dict, labels: list[str]) -> list[str]:
    lines = ["| rule | last stage | any stage | structures with a site whose neighbour count differs from an "
             "equivalent site's | median / max spread at the last stage |", "|---|---|---|---|---|"]
    for label in labels:
        r = summary["rules"][label]
        lines.append(
            f"| {label} | {r['last']:.1%} ({r['last_count']}) | {r['any']:.1%} ({r['any_count']}) | {r['degree_cut']} "
            f"| {r['median_spread_last']:.2g} / {r['max_spread_last']:.2g} |"
        )
    return lines


def render(summaries: list[dict], records: list[dict], labels: list[str], stage_names: list[str], args, header: dict,
           seconds: dict, downstream_rows: list[str], verdicts: list[str]) -> str:
    s = summaries[0]
    lines = [
        "# Symmetry-equivalent atoms: official k-nearest rule vs tie-complete rule (issue 30, part 3)",
        "",
        f"- command: `{header['command']}`",
        f"- machine: {header['machine']}",
        f"- commit: {header['commit']}",
        f"- sample: {s['n']} MP structures of `mp_eform_crysxpp.json.gz` drawn with seed {args.seed} "
        f"(`benchmarks._common.mp_crystals`); backbone `{args.backbone}` (official ALIGNN-FF wt10 weights, "
        "its own graph settings: 8 Å, 12 neighbours, not canonized); orbits from pymatgen "
        "`SpacegroupAnalyzer(structure, symprec).get_symmetry_dataset().equivalent_atoms`; the rows of two atoms "
        f"differ when some feature differs by more than {args.row_tol:g} (max abs); spread = the largest such "
        "difference between an atom and its orbit's representative.",
        f"- {s['symmetric']} of {s['n']} structures have at least two equivalent atoms (symprec {args.symprec[0]:g} Å).",
        "",
        f"## Equivalent atoms with different rows (fraction of the sample), symprec {args.symprec[0]:g} Å",
        "",
        *_differ_table(s, labels),
        "",
        "Per stage (fraction of structures whose equivalent atoms differ):",
        "",
        "| rule | " + " | ".join(stage_names) + " |",
        "|---|" + "---|" * len(stage_names),
    ]
    for label in labels:
        lines.append(f"| {label} | " + " | ".join(f"{x:.1%}" for x in s["rules"][label]["per_stage"]) + " |")
    for symprec, other in zip(args.symprec[1:], summaries[1:]):
        lines += ["", f"The same with orbits at symprec {symprec:g} Å ({other['symmetric']} structures with "
                  "equivalent atoms):", "", *_differ_table(other, labels)]
    detail = next((label for label in labels[1:] if label == f"tie-complete {args.detail_tolerance:g} Å"), None)
    if detail is not None:
        lines += ["", f"Structures whose equivalent atoms still differ under `{detail}` (symprec {args.symprec[0]:g} Å): "
                  "id, atoms, orbits per symprec, largest spread over the stages per symprec, largest difference in neighbour "
                  "count between equivalent sites:", ""]
        lines += [f"- {r['id']}: {r['atoms']} atoms, orbits {r['orbits']}, spread "
                  + " / ".join(f"{max(x):.2g}" for x in r[detail]["spread"])
                  + f", neighbour counts differ by {r[detail]['degree_spread_in_orbits']}"
                  for r in records if max(r[detail]["spread"][0]) > args.row_tol]
        lines += ["", "Where the orbits differ between the two symprec values the symmetry is approximate (the "
                  "atoms are equivalent only within the looser tolerance, so their distances differ); spreads of "
                  "1e-4 to 1e-3 with equal neighbour counts in large cells are float32 sums taken in another "
                  "order (or geometry equivalent only to ~1e-3 Å); a differing neighbour count is a shell split by "
                  "more than the tolerance."]
    lines += ["", "## Parity with the official rule (same weights, same structures)", "",
              "| rule | structures whose graph changes | ALIGNN-FF energy per atom vs the official rule: MAE / median / "
              "90th percentile / max (eV/atom) | more directed edges | median row move of those structures, last stage |",
              "|---|---|---|---|---|"]
    for label in labels[1:]:
        r = s["rules"][label]
        lines.append(f"| {label} | {r['changed']} | {r['energy_mae']:.2g} / {r['energy_p50']:.2g} / {r['energy_p90']:.2g} / "
                     f"{r['energy_max']:.2g} | {r['extra_edges']:.2%} | {r['move_median_changed_last']:.2g} |")
    lines += ["", "Largest row move per stage (max abs over atoms and features, whole sample):", "",
              "| rule | " + " | ".join(stage_names) + " |", "|---|" + "---|" * len(stage_names)]
    for label in labels[1:]:
        lines.append(f"| {label} | " + " | ".join(f"{x:.2g}" for x in s["rules"][label]["move_max_per_stage"]) + " |")
    lines += [
        "", f"## One atom per orbit: what it would save (symprec {args.symprec[0]:g} Å)", "",
        f"- atoms: {s['atoms_saved']:.1%} of all atoms of the sample are not their orbit's representative "
        f"(mean per structure {s['atoms_saved_mean']:.1%}).",
    ]
    for label in labels:
        lines.append(f"- directed edges leaving a non-representative under `{label}`: "
                     f"{s['rules'][label]['edges_saved']:.1%} of all directed edges.")
    lines += [
        "",
        "Every orbit of directed edges has a member leaving a representative atom (map the edge's source onto "
        "its representative), so a forward over the quotient graph (representatives and the edges leaving "
        "them, each line-graph neighbour mapped onto its orbit's member) would do about the share of atom and "
        "edge work that is left above; not implemented. It is exact only where equivalent atoms get equal "
        "rows, i.e. with the tie-complete rule, and only for orbits of exact symmetry (see the residual "
        "structures above at the looser symprec).",
        "",
        "Time per rule, measured side by side (each structure through every rule in turn, graph + stages, "
        "one thread): " + ", ".join(f"{label} {seconds[label]:.1f} s" for label in labels) + ".",
    ]
    if downstream_rows:
        lines += [
            "", "## Downstream: Roost on the last stage, official rule vs tie-complete rule", "",
            "The paper harness's Table 2 fits (cpu preset: Roost 30 epochs, batch 32, lr 3e-4, output network "
            "(256, 128, 64), at most 400 training samples, official JARVIS splits) on the last stage "
            f"(`dynamic:{stage_names[-1]}`), seeds {args.downstream_seeds}, both rules fitted at this commit and read "
            "from the committed ledgers (" + ", ".join(f"`{p.relative_to(ROOT)}`" for p in args.ledger) + ", later "
            "ones replacing records of the same key). The official rule's fits were made again into "
            "`benchmarks/results/symmetry_ledger`: the main ledger's were made at an older commit, and Roost at "
            "this one gives other numbers for the same fit (e.g. static megnet16, seed 0, JARVIS formation "
            "energy: 0.2377 here vs 0.2390 eV/atom in the committed Table 2), so only fits of one commit are "
            "compared. Commands:", "",
            *(f"    {command}" for command in args.downstream_commands), "",
            "verdict: Table 2's rule (a difference counts when it exceeds both the sum of the two seed stds and "
            "5 % of the official rule's MAE).", "",
            *downstream_rows,
            "",
            "**Default.** " + (
                "The tie-complete rule is better downstream on every property: it can become the default."
                if verdicts and all(v == "better" for v in verdicts) else
                f"The tie-complete rule is better on {verdicts.count('better')} of {len(verdicts)} properties "
                f"(worse on {verdicts.count('worse')}, tie on {sum(v.startswith('tie') for v in verdicts)}; its mean "
                f"MAE is higher on {sum(v in ('worse', 'tie, higher') for v in verdicts)}), so the default stays the "
                "official rule, which the weights were trained on; the tie-complete rule is an option "
                "(`TieCompleteGraph`, backbone `alignn-ff-tie-complete`) for uses that need equal rows for "
                "equivalent atoms."),
        ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300, help="MP structures in the sample")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample")
    parser.add_argument("--symprec", type=float, nargs="+", default=[0.01, 0.001],
                        help="spglib symprec values (Å) of the orbits; the first is the main one")
    parser.add_argument("--row-tol", type=float, default=1e-4, help="rows differ above this max abs difference")
    parser.add_argument("--tolerances", type=float, nargs="+", default=[1e-3],
                        help="shell_tolerance values (Å) of the tie-complete rule to measure")
    parser.add_argument("--detail-tolerance", type=float, default=1e-3,
                        help="the tie-complete rule whose remaining differing structures are listed")
    parser.add_argument("--backbone", default="alignn-ff")
    parser.add_argument("--downstream", nargs="*", default=[
        "jarvis:formation_energy_peratom", "jarvis:shear_modulus_gv", "jarvis:bulk_modulus_kv"],
        help="properties whose ledger fits (official vs tie-complete backbone, last stage) are tabulated")
    parser.add_argument("--downstream-backbones", nargs=2, default=["alignn-ff-wt10", "alignn-ff-wt10-tie-complete"])
    parser.add_argument("--downstream-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    table2 = ("python -m benchmarks.paper.run static-dynamic --props jarvis:formation_energy_peratom "
              "jarvis:shear_modulus_gv jarvis:bulk_modulus_kv --stages gcn4 --static megnet16 --seeds 0 1 2 3 4 ")
    parser.add_argument("--downstream-commands", nargs="+", default=[
        table2 + "--backbone alignn-ff-wt10-tie-complete --out /tmp/table2_tie_complete --work benchmarks/_work_tie_complete",
        table2 + "--backbone alignn-ff-wt10 --out /tmp/table2_official_rerun --ledger benchmarks/results/symmetry_ledger",
    ], help="the commands that made the downstream fits (for the record)")
    parser.add_argument("--ledger", type=Path, nargs="+", default=[
        ROOT / "benchmarks" / "results" / "ledger", ROOT / "benchmarks" / "results" / "symmetry_ledger"],
        help="ledgers of the downstream fits, later ones replacing earlier records of the same key")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "symmetry.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    official = load_backbone(args.backbone)
    backbones = {"official (exact ties)": official}
    for tol in args.tolerances:
        rule = TieCompleteGraph(official.rule.cutoff, official.rule.max_neighbors, official.rule.canonize, tol)
        backbones[f"tie-complete {tol:g} Å"] = dataclasses.replace(official, rule=rule)
    labels = list(backbones)

    crystals = mp_crystals(args.n, args.seed)
    WORK.mkdir(parents=True, exist_ok=True)
    tag = (f"{args.backbone}_n{args.n}_seed{args.seed}_symprec" + "_".join(f"{p:g}" for p in args.symprec)
           + "_tol" + "_".join(f"{t:g}" for t in args.tolerances))
    work = WORK / f"{tag}.jsonl"
    done = {}
    if work.is_file():
        for line in work.read_text().splitlines():
            record = json.loads(line)
            done[record["id"]] = record
    with work.open("a") as sink:
        for k, crystal in enumerate(crystals):
            if crystal.id not in done:
                done[crystal.id] = measure(crystal, backbones, args.symprec)
                sink.write(json.dumps(done[crystal.id]) + "\n")
                sink.flush()
            if k % 50 == 0:
                print(f"{k}/{len(crystals)}", flush=True)
    seconds = {label: 0.0 for label in labels}
    for crystal in crystals:  # side by side: each structure through every rule in turn
        for label, backbone in backbones.items():
            start = time.perf_counter()
            backbone.forward_stages([crystal])
            seconds[label] += time.perf_counter() - start
    records = [done[c.id] for c in crystals]
    summaries = [summarise(records, labels, args.row_tol, which) for which in range(len(args.symprec))]
    argv_text = shlex.join(sys.argv[1:] if argv is None else argv)
    header = {"command": f"OMP_NUM_THREADS=1 python benchmarks/bench_symmetry.py {argv_text}".strip(),
              "machine": machine(), "commit": commit()}
    rows, verdicts = downstream(args.ledger, args.downstream, args.downstream_backbones,
                                f"dynamic:{official.stage_names[-1]}", args.downstream_seeds) if args.downstream else ([], [])
    args.out.write_text(render(summaries, records, labels, official.stage_names, args, header, seconds, rows, verdicts))
    (WORK / f"{tag}.summary.json").write_text(json.dumps(summaries, indent=1))
    print(args.out.read_text())


if __name__ == "__main__":
    main()
