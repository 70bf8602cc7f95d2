"""Extraction cost of the backbones that wrap the field's packages (SevenNet, CHGNet) vs ALIGNN-FF.

``forward_stages`` throughput (structures/s, graph building included, every stage kept) on
Materials Project elasticity structures, 1 torch thread, best of ``--repeats`` passes over the
same structures, taken round-robin (one pass of every configuration per round, so that all see
similar load on a shared machine); each backbone in batches of its ``default_batch_size``, and
``--sweep`` backbones also at other batch sizes (how ``default_batch_size`` was chosen). CIF
parsing and model loading are not timed; each backbone is warmed up on one batch first.

    .venv/bin/python benchmarks/bench_backbone_speed.py --n 50 --out benchmarks/results/backbone_speed.md
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from skdynemb._batches import batched  # noqa: E402
from benchmarks._common import commit, machine, sampled_crystals  # noqa: E402
from skdynemb.backbones import load_backbone  # noqa: E402

BACKBONES = [
    "alignn-ff", "sevenn-0", "sevenn-0-22may2024", "sevenn-l3i5", "sevenn-mf-0",
    "chgnet", "chgnet-0.2.0", "chgnet-r2scan", "cgcnn-mp-eform",
]
SWEEP = ["sevenn-0", "chgnet", "alignn-ff"]
SIZES = [1, 4, 8, 16, 50]


def one_pass(backbone, crystals, batch_size: int) -> float:
    """Seconds of ``forward_stages`` over ``crystals`` in batches of ``batch_size``."""
    start = time.perf_counter()
    for batch in batched(crystals, batch_size):
        backbone.forward_stages(batch)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="number of MP elasticity structures")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="rounds; each configuration's best round counts")
    parser.add_argument("--backbones", nargs="+", default=BACKBONES)
    parser.add_argument("--sweep", nargs="*", default=SWEEP, help="backbones also timed at batch sizes --sizes")
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/backbone_speed.md"))
    args = parser.parse_args()

    torch.set_num_threads(1)
    crystals = sampled_crystals("mp_elasticity_3191.json.gz", args.n, args.seed)
    atoms = np.array([c.num_sites for c in crystals])
    load_before = os.getloadavg()
    backbones, configs = {}, []  # configs: (name, batch size, is the default)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in args.backbones:
            backbone = backbones[name] = load_backbone(name)
            backbone.forward_stages(crystals[: backbone.default_batch_size])  # warm-up
            configs.append((name, backbone.default_batch_size, True))
            if name in args.sweep:
                configs += [(name, size, False) for size in args.sizes if size != backbone.default_batch_size]
        # round-robin: every configuration is timed once per round, so all see the same machine load
        best = {c: float("inf") for c in configs}
        for round_ in range(args.repeats):
            for config in configs:
                name, size, _ = config
                best[config] = min(best[config], one_pass(backbones[name], crystals, size))
            print(f"round {round_ + 1}/{args.repeats} done", flush=True)
    speed = {c: len(crystals) / t for c, t in best.items()}
    rows = [
        (name, size, len(backbones[name].stage_dims), max(backbones[name].stage_dims), speed[(name, size, True)])
        for name, size, default in configs if default
    ]
    sweep_rows = [(name, size, speed.get((name, size, True), speed.get((name, size, False))))
                  for name in args.sweep if name in backbones for size in args.sizes]
    load_after = os.getloadavg()
    reference = dict((r[0], r[4]) for r in rows).get("alignn-ff")

    command = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_backbone_speed.py " + " ".join(sys.argv[1:])
    lines = [
        "# Backbone extraction speed (CPU, 1 thread)",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Machine: {machine()}. Git commit: {commit()}. Load average (1, 5, 15 min) before: "
        f"{tuple(round(x, 2) for x in load_before)}, after: {tuple(round(x, 2) for x in load_after)} "
        "(the machine is shared; wall-clock times).",
        "",
        f"Data: {args.n} random structures (seed {args.seed}) from `mp/mp_elasticity_3191.json.gz`, atoms per "
        f"structure median {int(np.median(atoms))} (max {atoms.max()}). Timed: `forward_stages` incl. graph "
        f"building, every stage kept, batches of the backbone's `default_batch_size`; best of {args.repeats} "
        "round-robin rounds (each round times every configuration once, so all see similar load); CIF parsing, "
        "loading and a warm-up batch not timed.",
        "",
        "| backbone | batch (default_batch_size) | stages x max width | structures / s | vs alignn-ff |",
        "|---|---|---|---|---|",
    ]
    for name, size, n_stages, width, speed in rows:
        ratio = f"{speed / reference:.2f}x" if reference else ""
        lines.append(f"| {name} | {size} | {n_stages} x {width} | {speed:.2f} | {ratio} |")
    if sweep_rows:
        header = "| backbone | " + " | ".join(map(str, args.sizes)) + " |"
        lines += ["", "Batch size sweep (structures / s):", "", header, "|---|" + "---|" * len(args.sizes)]
        for name in args.sweep:
            speeds = {size: s for n, size, s in sweep_rows if n == name}
            if speeds:
                lines.append(f"| {name} | " + " | ".join(f"{speeds[s]:.2f}" for s in args.sizes) + " |")
    lines += ["", "Timings vary with other load on the machine: compare rows of one run, not across runs."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
