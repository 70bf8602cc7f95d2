"""The official ALIGNN-FF extractor: speed side by side with a past revision, distinct-edge vs direct
multigraph forward, every backbone's throughput, and ALIGNN-FF energies on real JARVIS structures.

0. Side by side (``--sections side-by-side``): this tree and a past revision (``--baseline``, taken
   from git with ``git archive``) each in a worker process of its own, on the same MP structures,
   1 torch thread, batches of 64, timed in alternating rounds (ABBA order); per round each
   worker times (a) ``module.stages`` on graphs built beforehand and (b) ``forward_stages`` plus
   per-element pooling (graphs built inside, as the extraction does). The rows of (b) are then
   compared: atom rows per stage, mean bond and angle features per stage, pooled element rows.
1. Forward passes of ``alignn-ff-wt10`` (eval, no grad, all stages kept, bond/angle means) on MP
   structures under its non-canonical graph rule, in batches of 64, 1 thread: each distinct
   ``(src, dst, image)`` edge once with its multiplicity (what the backbone runs) vs the official
   multigraph with every copy (:meth:`~skdynemb.backbones.alignn.graphs.AlignnGraph.expanded`); graphs are built
   beforehand, outputs compared.
2. ``forward_stages`` throughput of every shipped backbone on the same structures (graph building
   included, batches of each backbone's ``default_batch_size``).
3. Energy per atom of each ALIGNN-FF checkpoint on the first N shared JARVIS entries with
   ``optb88vdw_total_energy`` (the selection of ``shared/fixtures/alignn_ff/README.md``), on the
   non-canonical graph it was trained on and on the canonical one.

    .venv/bin/python benchmarks/bench_alignn_ff.py --n 200 --out benchmarks/results/alignn_ff.md
    .venv/bin/python benchmarks/bench_alignn_ff.py --sections side-by-side --baseline 872e3b0 \
        --out benchmarks/results/alignn_ff_speed.md
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing
if "--worker" in sys.argv:  # a side-by-side worker imports skdynemb from the tree it is given
    sys.path.insert(0, sys.argv[sys.argv.index("--worker") + 1])
    import skdynemb  # noqa: E402,F401  (first, before benchmarks.bench_alignn puts this checkout first)
os.environ.setdefault("OMP_NUM_THREADS", "1")

from benchmarks._common import machine, mp_crystals  # noqa: E402
from skdynemb._paths import shared_data  # noqa: E402
from skdynemb.backbones import alignn, load_backbone  # noqa: E402

try:
    from skdynemb.backbones.alignn.graphs import KNearestGraph, batch_graphs  # noqa: E402
except ImportError:  # a side-by-side worker on a revision from before graphs.py moved under alignn/
    from skdynemb.graphs import KNearestGraph, batch_graphs  # noqa: E402
from skdynemb.structures import to_crystal  # noqa: E402

BACKBONES = ["cgcnn-mp-eform", "alignn-mp-eform", "chgnet", "alignn-ff-wt10"]
FF = ["alignnff_wt01", "alignnff_wt1", "alignnff_wt10"]


SIDE_BATCH = 64  # structures per forward pass in the side-by-side section


def worker(args) -> None:
    """Side-by-side worker: build everything, then answer ``time`` / ``dump PATH`` / ``quit`` on stdin."""
    import skdynemb
    from skdynemb.pooling import pool_by_element

    torch.set_num_threads(1)
    crystals = mp_crystals(args.n, args.seed)
    backbone = load_backbone("alignn-ff-wt10")
    chunks = [crystals[k : k + SIDE_BATCH] for k in range(0, len(crystals), SIDE_BATCH)]
    batches = [batch_graphs([backbone.rule.build(c) for c in chunk]) for chunk in chunks]

    def extract():
        outputs = [o for chunk in chunks for o in backbone.forward_stages(chunk)]
        return outputs, [pool_by_element(c.numbers, o) for c, o in zip(crystals, outputs)]

    forward_all(backbone.module, batches[:1])  # warm-up
    backbone.forward_stages(chunks[0][:2])
    print(json.dumps({"ready": skdynemb.__file__}), flush=True)
    for line in sys.stdin:
        command = line.split()
        if command[0] == "time":
            start = time.perf_counter()
            forward_all(backbone.module, batches)
            forward = time.perf_counter() - start
            start = time.perf_counter()
            extract()
            print(json.dumps({"forward": forward, "extract": time.perf_counter() - start}), flush=True)
        elif command[0] == "dump":
            outputs, pooled = extract()
            arrays = {f"atom{k}": np.concatenate([o.atom[k] for o in outputs]) for k in range(len(outputs[0].atom))}
            arrays.update({f"bond{k}": np.stack([o.bond[k] for o in outputs]) for k in range(len(outputs[0].bond))})
            arrays.update({f"angle{k}": np.stack([o.angle[k] for o in outputs]) for k in range(len(outputs[0].angle))})
            arrays.update({f"pooled{k}": np.concatenate([p.stages[k] for p in pooled])
                           for k in range(len(pooled[0].stages))})
            np.savez(command[1], **arrays)
            print(json.dumps({"dumped": command[1]}), flush=True)
        else:
            return


class Worker:
    """A side-by-side worker process running the skdynemb of ``tree``."""

    def __init__(self, tree: Path, args):
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", str(tree), "--n", str(args.n),
                   "--seed", str(args.seed)]
        from skdynemb._paths import DATA_ENV, data_dir

        # a past revision unpacked elsewhere would look for the data folder beside itself
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", DATA_ENV: str(data_dir())}
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                        cwd=REPO)

    def ask(self, command: str | None = None) -> dict:
        if command is not None:
            self.process.stdin.write(command + "\n")
            self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"side-by-side worker exited with {self.process.wait()}")
        return json.loads(line)

    def close(self) -> None:
        self.process.stdin.write("quit\n")
        self.process.stdin.close()
        self.process.wait()


def side_by_side_section(args):
    """Timings per round and row differences of this tree vs ``args.baseline``."""
    with tempfile.TemporaryDirectory() as folder:
        archive = Path(folder) / "baseline.tar"
        subprocess.run(["git", "archive", "--format=tar", "-o", str(archive), args.baseline, "skdynemb"], cwd=REPO,
                       check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(Path(folder) / "baseline", **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        workers = {"baseline": Worker(Path(folder) / "baseline", args), "this tree": Worker(REPO, args)}
        sources = {name: w.ask()["ready"] for name, w in workers.items()}
        rounds = []
        for r in range(args.rounds):
            order = ["baseline", "this tree"] if r % 2 == 0 else ["this tree", "baseline"]
            rounds.append({name: workers[name].ask("time") for name in order})
            print(f"round {r + 1}: " + ", ".join(f"{k} {v['forward']:.1f} s / {v['extract']:.1f} s"
                                                  for k, v in rounds[-1].items()), flush=True)
        dumps = {}
        for name, w in workers.items():
            path = Path(folder) / f"{name.replace(' ', '_')}.npz"
            w.ask(f"dump {path}")
            with np.load(path) as data:
                dumps[name] = {k: data[k] for k in data.files}
            w.close()
    base, new = dumps["baseline"], dumps["this tree"]
    diffs = {}
    for key in base:
        diffs[key] = (float(np.abs(base[key].astype(np.float64) - new[key]).max()), bool(np.array_equal(base[key], new[key])),
                      float(np.abs(base[key]).max()))
    return sources, rounds, diffs


def side_by_side_lines(args, sources, rounds, diffs, n):
    def total(name, what):
        return sum(r[name][what] for r in rounds)

    lines = [
        f"## 0. Side by side with {args.baseline} ({n} random MP structures, seed {args.seed}, batches of "
        f"{SIDE_BATCH}, 1 thread, {args.rounds} alternating rounds)",
        "",
        f"Each tree runs in its own worker process (baseline: `git archive {args.baseline} skdynemb`; "
        "this tree: the working tree of the commit below); rounds alternate which goes first. "
        "*forward*: `ALIGNN.stages(batch, pool_edges=True)` on graphs built beforehand; *extraction*: "
        "`forward_stages` (graphs built inside) + `pool_by_element`.",
        "",
        "| round | baseline forward (s) | this tree forward (s) | baseline extraction (s) | this tree extraction (s) |",
        "|---|---|---|---|---|",
        *(f"| {i + 1} | {r['baseline']['forward']:.2f} | {r['this tree']['forward']:.2f} | "
          f"{r['baseline']['extract']:.2f} | {r['this tree']['extract']:.2f} |" for i, r in enumerate(rounds)),
        "",
        "| | baseline structures / s | this tree structures / s | speed-up (total time, all rounds) |",
        "|---|---|---|---|",
    ]
    for what, label in (("forward", "forward (graphs prebuilt)"), ("extract", "extraction (graphs + forward + pooling)")):
        b, t = total("baseline", what), total("this tree", what)
        lines.append(f"| {label} | {n * len(rounds) / b:.2f} | {n * len(rounds) / t:.2f} | **{b / t:.3f}x** |")
    groups = [("atom rows", "atom"), ("mean bond features", "bond"), ("mean angle features", "angle"),
              ("pooled element rows", "pooled")]
    lines += [
        "",
        "Largest absolute difference, this tree vs baseline, per stage (float32; `=` bit for bit equal; "
        "in brackets the largest |value| of that stage):",
        "",
        "| rows | " + " | ".join(f"stage {k}" for k in range(9)) + " |",
        "|---|" + "---|" * 9,
    ]
    worst = 0.0
    for label, prefix in groups:
        cells = []
        for k in range(9):
            if f"{prefix}{k}" not in diffs:
                cells.append("")
                continue
            d, equal, scale = diffs[f"{prefix}{k}"]
            worst = max(worst, d)
            cells.append("=" if equal else f"{d:.1e} ({scale:.3g})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", f"Largest difference over every stage and kind of row: **{worst:.2e}** "
              f"({'within' if worst <= 1e-5 else 'ABOVE'} the 1e-5 tolerance).", "",
              "Worker sources: " + "; ".join(f"{k}: `{Path(v).parent.name}` from `{Path(v).parents[1]}`"
                                            for k, v in sources.items()) + ".", ""]
    return lines


def git_revision() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "skdynemb"], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip() + (" + uncommitted changes under skdynemb/" if dirty.stdout.strip() else "")


def forward_all(model, batches):
    with torch.no_grad():
        return [model.stages(b, pool_edges=True) for b in batches]


def best_of(repeats, fn):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def dedup_section(crystals, repeats):
    backbone = load_backbone("alignn-ff-wt10")
    graphs = [backbone.rule.build(c) for c in crystals]
    chunks = [graphs[k : k + 64] for k in range(0, len(graphs), 64)]
    distinct = [batch_graphs(c) for c in chunks]
    direct = [batch_graphs([g.expanded() for g in c]) for c in chunks]
    forward_all(backbone.module, distinct[:1])  # warm-up
    t_distinct, out_distinct = best_of(repeats, lambda: forward_all(backbone.module, distinct))
    t_direct, out_direct = best_of(repeats, lambda: forward_all(backbone.module, direct))
    diff = {"output": 0.0, "atom stages": 0.0, "bond means": 0.0, "angle means": 0.0}
    for a, b in zip(out_distinct, out_direct):
        diff["output"] = max(diff["output"], float((a.output - b.output).abs().max()))
        for key, part in (("atom stages", "x"), ("bond means", "y"), ("angle means", "z")):
            for u, v in zip(getattr(a, part), getattr(b, part)):
                diff[key] = max(diff[key], float((u - v).abs().max()))
    counts = {
        "distinct edges": sum(g.num_edges for g in graphs),
        "multigraph edges": sum(int(g.edge_mult.sum()) for g in graphs),
        "distinct line-graph edges": sum(g.num_lg_edges for g in graphs),
        "multigraph line-graph edges": sum(int(g.lg_mult.sum()) for g in graphs),
    }
    return t_distinct, t_direct, diff, counts


def throughput_section(crystals):
    rows = []
    for name in BACKBONES:
        backbone = load_backbone(name)
        size = backbone.default_batch_size
        backbone.forward_stages(crystals[:2])  # warm-up
        start = time.perf_counter()
        for k in range(0, len(crystals), size):
            backbone.forward_stages(crystals[k : k + size])
        seconds = time.perf_counter() - start
        rows.append((name, len(backbone.stage_names), backbone.stage_dims[-1], size, len(crystals) / seconds))
    return rows


def jarvis_section(n):
    path = shared_data("jarvis", "jarvis_structures_with_leaderboard_props.json.gz")
    with gzip.open(path, "rt") as fh:
        records = [r for r in json.load(fh) if r.get("optb88vdw_total_energy") is not None][:n]
    crystals = [to_crystal(r["structure"], id=r["jid"]) for r in records]
    target = np.array([r["optb88vdw_total_energy"] for r in records])
    rows = []
    for checkpoint in FF:
        backbone = alignn.load(checkpoint)
        for rule in (backbone.rule, KNearestGraph(backbone.rule.cutoff, backbone.rule.max_neighbors, canonize=True)):
            backbone.rule = rule
            pred = backbone.predict(crystals)
            rows.append((checkpoint, rule.canonize, float(np.mean(np.abs(pred - target))),
                         float(np.corrcoef(pred, target)[0, 1])))
    return records, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="MP structures (sections 1-2) and JARVIS entries (3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats of section 1 (best kept)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/alignn_ff.md"))
    parser.add_argument("--sections", nargs="+", default=["dedup", "throughput", "jarvis"],
                        choices=["side-by-side", "dedup", "throughput", "jarvis"])
    parser.add_argument("--baseline", default="872e3b0", help="git revision compared side by side")
    parser.add_argument("--rounds", type=int, default=4, help="alternating timed rounds of the side-by-side section")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    crystals = mp_crystals(args.n, args.seed)
    n = len(crystals)
    lines = [
        "# ALIGNN-FF: " + ", ".join({"side-by-side": "speed side by side", "dedup": "distinct-edge forward",
                                     "throughput": "backbone throughput", "jarvis": "JARVIS energies"}[s]
                                    for s in args.sections),
        "",
        f"Command: `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_alignn_ff.py --n {args.n} --seed {args.seed} "
        f"--repeats {args.repeats} --sections {' '.join(args.sections)} --baseline {args.baseline} "
        f"--rounds {args.rounds} --out {args.out}`",
        "",
        f"Commit: {git_revision()}.",
        "",
    ]
    body = []
    if "side-by-side" in args.sections:
        body += side_by_side_lines(args, *side_by_side_section(args), n)
    if "dedup" in args.sections:
        body += dedup_lines(args, n, *dedup_section(crystals, args.repeats))
    if "throughput" in args.sections:
        body += throughput_lines(n, throughput_section(crystals))
    if "jarvis" in args.sections:
        body += jarvis_lines(*jarvis_section(args.n))
    load_after = os.getloadavg()
    lines += [
        f"Machine: {machine()}; 1 torch thread. Load average (1, 5, 15 min) before: "
        f"{tuple(round(x, 2) for x in load_before)}, after: {tuple(round(x, 2) for x in load_after)} "
        "(a shared machine: wall-clock times, compare ratios rather than absolute rates).",
        "",
        *body,
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


def dedup_lines(args, n, t_distinct, t_direct, diff, counts):
    return [
        f"## 1. Distinct edges vs the direct multigraph ({n} random MP structures, seed {args.seed}, batches of 64)",
        "",
        "Graph rule of ALIGNN-FF: k-nearest, 8 Å, 12 neighbours, `use_canonize=False`. "
        + ", ".join(f"{k}: {v:,}" for k, v in counts.items()) + ".",
        "",
        "| forward (eval, no grad, 9 stages + bond/angle means) | seconds | structures / s |",
        "|---|---|---|",
        f"| distinct edges weighted by multiplicity (the backbone) | {t_distinct:.1f} | {n / t_distinct:.1f} |",
        f"| direct multigraph (every copy) | {t_direct:.1f} | {n / t_direct:.1f} |",
        "",
        f"Speed-up: **{t_direct / t_distinct:.2f}x** (best of {args.repeats}). Largest absolute difference, "
        "distinct vs direct, float32: " + ", ".join(f"{k} {v:.1e}" for k, v in diff.items()) + ".",
        "",
    ]


def throughput_lines(n, throughput):
    return [
        f"## 2. `forward_stages` throughput, every backbone ({n} MP structures, graph building included)",
        "",
        "| backbone | stages | last-stage width | batch | structures / s |",
        "|---|---|---|---|---|",
        *(f"| {name} | {stages} | {width} | {size} | {rate:.1f} |" for name, stages, width, size, rate in throughput),
        "",
    ]


def jarvis_lines(records, energies):
    return [
        f"## 3. Energy per atom on JARVIS (first {len(records)} entries with `optb88vdw_total_energy`, "
        f"{records[0]['jid']} … {records[-1]['jid']})",
        "",
        "| checkpoint | graph | MAE (eV/atom) | Pearson r |",
        "|---|---|---|---|",
        *(f"| {ck} | {'canonical' if canon else 'non-canonical (as trained)'} | {mae:.4f} | {r:.5f} |"
          for ck, canon, mae, r in energies),
        "",
        "The official DGL code gives 0.0226 / 0.0378 / 0.0559 (non-canonical) and 0.0636 / 0.0759 / 0.1194 "
        "(canonical) on these 200 (`shared/fixtures/alignn_ff/README.md`). These entries are probably in "
        "ALIGNN-FF's training data: a consistency check, not a generalisation benchmark.",
        "",
    ]


if __name__ == "__main__":
    main()
