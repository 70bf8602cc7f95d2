"""GPU readiness: structures/s per backbone, device and batch size; CPU-vs-GPU rows; error per precision.

One command writes ``benchmarks/results/gpu.md``:

    .venv/bin/python benchmarks/bench_gpu.py --n 200 --out benchmarks/results/gpu.md

1. Throughput of ``forward_stages`` (graphs built inside, one after the other, as the extraction
   does today) per backbone, device and batch size; for ALIGNN backbones also with the graphs of the
   coming batches built in ``--workers`` worker processes while the forward runs (prefetch).
2. With a CUDA device: the largest absolute difference per stage between the CPU's and the GPU's
   rows (atom rows, mean bond and angle features), both fp32.
3. Error per stage of each precision choice of the ALIGNN backbones (``AlignnBackbone.precision``:
   tf32 on CUDA only, bf16 on every device) against fp32 on the same device.

Without a CUDA device it says so and writes the CPU numbers (sections 1 and 3), so the script is
exercised on any machine; the GPU rows come from a run on a GPU machine. MP structures are drawn
with ``--seed`` from ``shared/data/mp/mp_eform_crysxpp.json.gz`` (the data folder of the README).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from benchmarks._common import machine, mp_crystals  # noqa: E402
from skdynemb.backbones import load_backbone  # noqa: E402
from skdynemb.backbones.alignn import AlignnBackbone  # noqa: E402
from skdynemb.backbones.alignn.graphs import batch_graphs  # noqa: E402

DEFAULT_BACKBONES = ["alignn-ff-wt10", "alignn-mp-eform", "cgcnn-mp-eform", "chgnet", "sevenn-0"]


def _build_batch(rule, crystals):
    """The block-diagonal ALIGNN batch of ``crystals`` (runs in a worker process)."""
    return batch_graphs([rule.build(c) for c in crystals])


def chunks_of(crystals, size):
    return [crystals[k : k + size] for k in range(0, len(crystals), size)]


def timed_forward_stages(backbone, crystals, size) -> float:
    backbone.forward_stages(crystals[: min(2, len(crystals))])  # warm-up (CUDA context, kernels)
    _sync(backbone.device)
    start = time.perf_counter()
    for chunk in chunks_of(crystals, size):
        backbone.forward_stages(chunk)
    _sync(backbone.device)
    return time.perf_counter() - start


def timed_prefetch(backbone: AlignnBackbone, crystals, size, workers: int) -> float:
    """Graphs of every batch submitted to ``workers`` processes at once; the forward takes them in
    order as they are ready (graph building overlapped with the forward)."""
    with ProcessPoolExecutor(workers) as pool:
        pool.submit(_build_batch, backbone.rule, crystals[:1]).result()  # start the workers
        _sync(backbone.device)
        start = time.perf_counter()
        futures = [pool.submit(_build_batch, backbone.rule, chunk) for chunk in chunks_of(crystals, size)]
        with torch.no_grad():
            for future in futures:
                stages = backbone.module.stages(future.result().to(backbone.device), pool_edges=True)
                [x.cpu() for x in stages.x]  # what forward_stages hands back
        _sync(backbone.device)
        return time.perf_counter() - start


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def stage_rows(backbone, crystals, size):
    """Per kind of row ('atom', 'bond', 'angle') a list over stages of one float32 array."""
    outputs = [o for chunk in chunks_of(crystals, size) for o in backbone.forward_stages(chunk)]
    rows = {"atom": [np.concatenate([o.atom[k] for o in outputs]) for k in range(len(outputs[0].atom))]}
    for kind in ("bond", "angle"):  # kept where every structure has them (CHGNet: no angles without triplets)
        if all(getattr(o, kind) is not None for o in outputs):
            rows[kind] = [np.stack([getattr(o, kind)[k] for o in outputs]) for k in range(len(getattr(outputs[0], kind)))]
    return rows


def differences(reference, other):
    """Per kind, per stage: (largest absolute difference, largest |value| of the reference)."""
    return {kind: [(float(np.abs(a.astype(np.float64) - b).max()), float(np.abs(a).max()))
                   for a, b in zip(reference[kind], other[kind])] for kind in reference}


def difference_lines(title, diffs):
    stages = max(len(v) for v in diffs.values())
    lines = [title, "", "| rows | " + " | ".join(f"stage {k}" for k in range(stages)) + " |",
             "|---|" + "---|" * stages]
    for kind, values in diffs.items():
        lines.append(f"| {kind} | " + " | ".join(f"{d:.1e} ({s:.3g})" for d, s in values) + " |")
    return lines + [""]


def git_revision() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "skdynemb"], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip() + (" + uncommitted changes under skdynemb/" if dirty.stdout.strip() else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="MP structures")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backbones", nargs="+", default=DEFAULT_BACKBONES,
                        help="backbones (those whose extra is not installed are listed as skipped)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64, 256], help="GPU batch sizes")
    parser.add_argument("--cpu-batch-sizes", type=int, nargs="*", default=None,
                        help="CPU batch sizes (default: each backbone's default_batch_size)")
    parser.add_argument("--cpu-threads", type=int, default=1, help="torch threads on the CPU")
    parser.add_argument("--workers", type=int, default=max(1, min(4, (os.cpu_count() or 2) - 1)),
                        help="graph-building worker processes of the prefetch rows")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.cpu_threads)
    cuda = torch.cuda.is_available()
    devices = ["cpu"] + (["cuda"] if cuda else [])
    crystals = mp_crystals(args.n, args.seed)
    n = len(crystals)
    throughput, cpu_gpu, precision, skipped = [], {}, {}, []
    for name in args.backbones:
        try:
            backbone = load_backbone(name)
        except (ImportError, ModuleNotFoundError, RuntimeError, ValueError) as error:
            skipped.append(f"{name} ({type(error).__name__}: {str(error).splitlines()[0][:120]})")
            continue
        rows = {}
        for device in devices:
            backbone.to(device)
            sizes = (args.batch_sizes if device == "cuda"
                     else args.cpu_batch_sizes or [backbone.default_batch_size])
            for size in sizes:
                seconds = timed_forward_stages(backbone, crystals, size)
                throughput.append((name, device, size, "serial", n / seconds))
                if isinstance(backbone, AlignnBackbone):
                    seconds = timed_prefetch(backbone, crystals, size, args.workers)
                    throughput.append((name, device, size, f"prefetch ({args.workers} workers)", n / seconds))
                print(throughput[-1], flush=True)
            size = backbone.default_batch_size
            rows[device] = stage_rows(backbone, crystals, size)
            if isinstance(backbone, AlignnBackbone):
                for choice in (["tf32", "bf16"] if device == "cuda" else ["bf16"]):
                    backbone.precision = choice
                    precision[name, device, choice] = differences(rows[device], stage_rows(backbone, crystals, size))
                    backbone.precision = "fp32"
        if cuda:
            cpu_gpu[name] = differences(rows["cpu"], rows["cuda"])
        backbone.to("cpu")
    device_line = (f"CUDA device: {torch.cuda.get_device_name(0)} (torch {torch.__version__}, CUDA {torch.version.cuda})."
                   if cuda else "**No CUDA device** (`torch.cuda.is_available()` is False): the CPU numbers only; "
                                "run this command on a GPU machine for the GPU rows and the CPU-vs-GPU differences.")
    lines = [
        "# GPU readiness: throughput per backbone and batch size, CPU vs GPU rows, precision",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_gpu.py --n {args.n} --seed {args.seed} --backbones "
        f"{' '.join(args.backbones)} --batch-sizes {' '.join(map(str, args.batch_sizes))}"
        + (f" --cpu-batch-sizes {' '.join(map(str, args.cpu_batch_sizes))}" if args.cpu_batch_sizes else "")
        + f" --cpu-threads {args.cpu_threads} --workers {args.workers} --out {args.out}`",
        "",
        f"Commit: {git_revision()}. Machine: {machine()}; {args.cpu_threads} torch thread(s) on the CPU. "
        f"{device_line}",
        "",
        f"{n} random MP structures (seed {args.seed}). A shared machine: compare ratios within one run.",
        "",
        "## 1. Throughput (`forward_stages`, graphs built inside; prefetch: graphs built in worker processes "
        "while the forward runs)",
        "",
        "| backbone | device | batch | graphs | structures / s |",
        "|---|---|---|---|---|",
        *(f"| {name} | {device} | {size} | {mode} | {rate:.1f} |" for name, device, size, mode, rate in throughput),
        "",
    ]
    if skipped:
        lines += ["Skipped: " + "; ".join(skipped) + ".", ""]
    lines += ["## 2. CPU vs GPU rows (fp32, largest absolute difference per stage; in brackets the largest |value|)", ""]
    if cuda:
        for name, diffs in cpu_gpu.items():
            lines += difference_lines(f"### {name}", diffs)
    else:
        lines += ["Not measured: no CUDA device.", ""]
    lines += ["## 3. Precision: largest absolute difference per stage against fp32 on the same device "
              "(in brackets the largest |value|)", ""]
    for (name, device, choice), diffs in precision.items():
        lines += difference_lines(f"### {name}, {device}, {choice}", diffs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
