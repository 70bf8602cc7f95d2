"""Before/after check: extraction rows of the working tree bit for bit those of a git revision.

For 200 Materials Project structures drawn with a fixed seed from
``shared/data/mp/mp_eform_crysxpp.json.gz`` (copied to a temporary file, never into the
repository), every stage (``layer="all"``, with the mean bond and angle features where the
backbone has them) is extracted with ``pooling="element"`` and ``pooling="mean"`` by each
backbone, once with the working tree's code and once with the code of ``--rev`` (checked out
into a temporary ``git worktree``). Both run in a subprocess of this script with ``PYTHONPATH``
pointing at their tree, one torch thread each, the backbone's default batch size. The rows,
elements and fractions are compared bitwise and the outcome written as a markdown table.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/check_bitwise.py --rev 3b965ac

Backbones: cgcnn-mp-eform, alignn-mp-eform, alignn-ff-wt10 (when its weights are in the skdynemb
cache; ``scripts/setup.sh`` fetches them) and chgnet (when installed).
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BACKBONES = ("cgcnn-mp-eform", "alignn-mp-eform", "alignn-ff-wt10", "chgnet")
POOLINGS = ("element", "mean")
DEFAULT_OUT = REPO / "benchmarks" / "results" / "bitwise_check.md"


# ----------------------------------------------------------------------------- one tree (subprocess)
def _unavailable(backbone: str) -> str | None:
    """Why ``backbone`` cannot run here, or None."""
    if backbone == "chgnet" and importlib.util.find_spec("chgnet") is None:
        return "chgnet is not installed"
    if backbone == "alignn-ff-wt10":
        from skdynemb.backbones.alignn.fetch import FF_CHECKPOINTS, cache_dir

        folder = cache_dir() / "alignnff_wt10"
        if not all((folder / name).is_file() for name in FF_CHECKPOINTS["alignnff_wt10"]):
            return f"its weights are not in the skdynemb cache ({folder})"
    return None


def _extract(records: Path, out: Path, backbones: list[str]) -> None:
    """Rows of every backbone and pooling with the skdynemb on ``PYTHONPATH``, as npz files in ``out``."""
    import torch

    import skdynemb
    from skdynemb import DynamicEmbeddingTransformer
    from skdynemb.backbones import load_backbone
    from skdynemb.errors import InvalidStructureError

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    items = json.loads(records.read_text())
    cifs, ids = [r["cif"] for r in items], [r["id"] for r in items]
    info = {"skdynemb": skdynemb.__file__, "skipped": {}, "seconds": {}}
    for backbone in backbones:
        reason = _unavailable(backbone)
        if reason is not None:
            info["skipped"][backbone] = reason
            continue
        model = load_backbone(backbone, device="cpu")
        extras = ["bond+angle"] if model.angle_dims else []
        extras += ["bond", None] if model.bond_dims else [None]
        for pooling in POOLINGS:
            start = time.perf_counter()
            for extra in extras:  # the most compound features that every structure has
                transformer = DynamicEmbeddingTransformer(
                    backbone=backbone, layer="all", pooling=pooling, compound_features=extra, device="cpu",
                    progress=False,
                )
                try:
                    rows = transformer.fit().transform(cifs)
                    break
                except InvalidStructureError as exc:
                    if extra is None or "has no" not in str(exc):
                        raise
            info["seconds"][f"{backbone}/{pooling}"] = round(time.perf_counter() - start, 1)
            if pooling == "mean":
                arrays = {"features": np.asarray(rows), "ids": np.asarray(ids)}
            else:
                arrays = {
                    "features": np.concatenate([c.features for c in rows]),
                    "elements": np.asarray([e for c in rows for e in c.elements]),
                    "fractions": np.concatenate([c.fractions for c in rows]),
                    "ids": np.asarray([sid for sid, c in zip(ids, rows) for _ in c.elements]),
                }
            np.savez(out / f"{backbone}_{pooling}.npz", **arrays, compound_features=str(extra))
    (out / "info.json").write_text(json.dumps(info, indent=1))


# ----------------------------------------------------------------------------- driver
def _git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _sample(n: int, seed: int, path: Path) -> None:
    sys.path.insert(0, str(REPO))
    from skdynemb._paths import shared_data

    source = shared_data("mp", "mp_eform_crysxpp.json.gz")
    if source is None:
        raise SystemExit("needs ../shared/data/mp/mp_eform_crysxpp.json.gz (see shared/data/README.md)")
    with gzip.open(source, "rt") as fh:
        records = json.load(fh)
    picked = np.random.default_rng(seed).choice(len(records), n, replace=False)
    path.write_text(json.dumps([{"id": records[i]["material_id"], "cif": records[i]["cif"]} for i in picked]))


def _run_tree(tree: Path, records: Path, out: Path, backbones: list[str]) -> dict:
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", str(records), str(out), *backbones]
    subprocess.run(command, env=env, check=True)
    info = json.loads((out / "info.json").read_text())
    if not Path(info["skdynemb"]).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"the subprocess for {tree} imported skdynemb from {info['skdynemb']}")
    return info


def _compare(a: Path, b: Path) -> dict:
    """Bitwise comparison of two npz files of one backbone and pooling."""
    x, y = np.load(a), np.load(b)
    same_labels = all(np.array_equal(x[k], y[k]) for k in x.files if k != "features") and x.files == y.files
    fx, fy = x["features"], y["features"]
    if fx.shape != fy.shape:
        return {"identical": False, "max_abs_diff": "shapes differ", "rows": f"{fx.shape} vs {fy.shape}"}
    diff = float(np.max(np.abs(fx.astype(np.float64) - fy.astype(np.float64)))) if fx.size else 0.0
    identical = same_labels and fx.dtype == fy.dtype and fx.tobytes() == fy.tobytes()
    return {"identical": identical, "max_abs_diff": diff, "rows": fx.shape[0], "width": fx.shape[1]}


def _report(args, head: str, rev: str, results: dict, infos: tuple[dict, dict], wall: float) -> str:
    here, there = infos
    lines = [
        "# Bitwise before/after check of the extraction",
        "",
        "Written by `benchmarks/check_bitwise.py`. Command:",
        "",
        "```",
        "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/check_bitwise.py "
        f"--rev {args.rev} --n {args.n} --seed {args.seed}",
        "```",
        "",
        f"- working tree: `{head}`",
        f"- revision: `{args.rev}` = `{rev}` (run from a temporary `git worktree`)",
        f"- structures: {args.n} Materials Project records of `shared/data/mp/mp_eform_crysxpp.json.gz`, "
        f"drawn by `np.random.default_rng({args.seed}).choice(n_records, {args.n}, replace=False)`",
        "- each backbone: `layer=\"all\"` (every stage) plus the most compound features every structure has "
        "(bond+angle, else bond: with CHGNet's angle cutoff some structures have no angle; the seconds include "
        "that first try), its default batch size, CPU, one torch thread; rows = element rows (`element`) "
        "or structures (`mean`)",
        f"- wall time: {wall:.0f} s for both trees",
        "",
        "| backbone | pooling | compound features | identical | max abs diff | rows compared | width "
        "| seconds (tree / rev) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (backbone, pooling), r in results.items():
        diff = r["max_abs_diff"] if isinstance(r["max_abs_diff"], str) else f"{r['max_abs_diff']:.3g}"
        key = f"{backbone}/{pooling}"
        lines.append(
            f"| {backbone} | {pooling} | {r['compound_features']} | {'yes' if r['identical'] else '**no**'} | {diff} "
            f"| {r['rows']} | {r.get('width', '')} | {here['seconds'][key]} / {there['seconds'][key]} |"
        )
    skipped = {**there["skipped"], **here["skipped"]}
    for backbone, reason in skipped.items():
        lines.append(f"\nSkipped {backbone}: {reason}.")
    differ = [f"{b}/{p}" for (b, p), r in results.items() if not r["identical"]]
    verdict = "every compared output is identical" if not differ else f"{len(differ)} of {len(results)} differ"
    lines += ["", f"Outcome: {verdict}{': ' + ', '.join(differ) if differ else ''}.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", help="git revision to compare the working tree against (required)")
    parser.add_argument("--n", type=int, default=200, help="structures (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draw (default 0)")
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES), help="default: %(default)s")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown report (default: %(default)s)")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)  # RECORDS OUT BACKBONE...: one tree
    args = parser.parse_args(argv)
    if args.worker:
        _extract(Path(args.worker[0]), Path(args.worker[1]), args.worker[2:])
        return 0
    if args.rev is None:
        parser.error("--rev is required")

    start = time.perf_counter()
    rev = _git("rev-parse", "--short", args.rev)
    head = _git("describe", "--always", "--dirty")
    with tempfile.TemporaryDirectory(prefix="bitwise-") as tmp:
        tmp = Path(tmp)
        records = tmp / "records.json"
        _sample(args.n, args.seed, records)
        tree = tmp / "rev"
        _git("worktree", "add", "--detach", str(tree), rev)
        try:
            there = _run_tree(tree, records, tmp / "rev-out", args.backbones)
        finally:
            _git("worktree", "remove", "--force", str(tree))
        here = _run_tree(REPO, records, tmp / "tree-out", args.backbones)
        results = {}
        for backbone in args.backbones:
            for pooling in POOLINGS:
                a, b = tmp / "tree-out" / f"{backbone}_{pooling}.npz", tmp / "rev-out" / f"{backbone}_{pooling}.npz"
                if a.exists() and b.exists():
                    results[backbone, pooling] = {
                        **_compare(a, b), "compound_features": str(np.load(a)["compound_features"])}
        text = _report(args, head, rev, results, (here, there), time.perf_counter() - start)
    args.out.write_text(text)
    print(text)
    return 0 if results and all(r["identical"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
