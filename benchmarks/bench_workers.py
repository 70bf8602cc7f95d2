"""Extraction throughput (structures/s) against the number of workers, for joblib's loky and dask backends.

Times :func:`skdynemb.streaming.extract_to_file` end to end (reading CIF text, building
crystals, CGCNN forward, pooling, writing parquet), and ``DynamicEmbeddingTransformer.transform``
on the CIF strings (parsing + extraction; its ``n_jobs`` workers parse too), over the first N Materials Project records
of ``shared/data/mp/mp_eform_crysxpp.json.gz``, copied to a temporary file (never into the
repository). Each setting gets one warm-up run (worker start-up and imports), then the median
of ``--repeats`` timed runs is reported.

    .venv/bin/python benchmarks/bench_workers.py --n 300 --batch-size 32 --repeats 3
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import tempfile
import time
import warnings
from contextlib import ExitStack
from pathlib import Path


def _records(n: int, folder: Path) -> Path:
    from skdynemb._paths import shared_data

    source = shared_data("mp", "mp_eform_crysxpp.json.gz")
    if source is None:
        raise SystemExit("needs ../shared/data/mp/mp_eform_crysxpp.json.gz")
    with gzip.open(source, "rt") as fh:
        records = json.load(fh)[:n]
    path = folder / f"mp{n}.json.gz"
    with gzip.open(path, "wt") as fh:
        json.dump(records, fh)
    return path


def _time(path: Path, folder: Path, n_jobs, batch_size: int, repeats: int) -> float:
    from skdynemb import DynamicEmbeddingTransformer
    from skdynemb.streaming import extract_to_file

    transformer = DynamicEmbeddingTransformer(
        backbone="cgcnn-mp-eform", pooling="mean", device="cpu", batch_size=batch_size, n_jobs=n_jobs, progress=False
    ).fit()
    times = []
    for k in range(repeats + 1):  # run 0 warms up the workers
        start = time.perf_counter()
        extract_to_file(path, folder / "out.parquet", transformer, overwrite=True, progress=False)
        if k:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _time_transform(path: Path, n_jobs, batch_size: int, repeats: int) -> float:
    """``DynamicEmbeddingTransformer.transform`` on the CIF strings: parsing + extraction, no file output."""
    from skdynemb import DynamicEmbeddingTransformer

    with gzip.open(path, "rt") as fh:
        cifs = [r["cif"] for r in json.load(fh)]
    transformer = DynamicEmbeddingTransformer(
        backbone="cgcnn-mp-eform", pooling="mean", device="cpu", batch_size=batch_size, n_jobs=n_jobs, progress=False
    ).fit()
    times = []
    for k in range(repeats + 1):
        start = time.perf_counter()
        transformer.transform(cifs)
        if k:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="structures (default 300)")
    parser.add_argument("--batch-size", type=int, default=32, help="structures per worker task (default 32)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # pymatgen CIF notes and CGCNN padding warnings

    import joblib
    import torch
    from distributed import Client, LocalCluster

    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = _records(args.n, folder)
        for threads in (1, 2):
            torch.set_num_threads(threads)
            rows.append(("sequential (in-process)", f"1 process, {threads} torch thread(s)",
                         _time(path, folder, None, args.batch_size, args.repeats)))
        torch.set_num_threads(1)
        rows.append(("loky", "2 worker processes", _time(path, folder, 2, args.batch_size, args.repeats)))
        for n_jobs, label in ((None, "1 process, 1 torch thread"), (2, "2 loky worker processes")):
            rows.append(
                ("transform() on CIF text", label, _time_transform(path, n_jobs, args.batch_size, args.repeats)))
        for workers in (1, 2):
            with ExitStack() as stack:
                cluster = stack.enter_context(LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
                ))
                stack.enter_context(Client(cluster))
                stack.enter_context(joblib.parallel_config("dask"))
                rows.append(("dask LocalCluster", f"{workers} worker process(es), 1 thread each",
                             _time(path, folder, -1, args.batch_size, args.repeats)))

    print(f"{args.n} MP structures, batch size {args.batch_size}, median of {args.repeats} runs, "
          f"{os.cpu_count()} CPUs, load average before: {load_before:.1f}, after: {os.getloadavg()[0]:.1f}\n")
    print("| backend | workers | time (s) | structures/s | speed-up |")
    print("|---|---|---:|---:|---:|")
    base = rows[0][2]
    for backend, workers, seconds in rows:
        print(f"| {backend} | {workers} | {seconds:.2f} | {args.n / seconds:.1f} | {base / seconds:.2f} |")


if __name__ == "__main__":
    main()
