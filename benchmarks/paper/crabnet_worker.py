"""Fit CrabNet 2.0.8 inside its own Python 3.10 interpreter (run by ``benchmarks/paper/crabnet.py``).

    python -I crabnet_worker.py fit JOB.json OUT.json   # train/val/test formulas + targets -> predictions
    python -I crabnet_worker.py check OUT.json          # -> versions (crabnet and torch import)

This file runs under the side env of ``scripts/setup-crabnet.sh`` (crabnet, torch, numpy, pandas)
and must not import skdynemb. Job and result are plain JSON (no pickle). Exit status
:data:`ENV_BROKEN` means crabnet or torch could not be imported.

The job (JSON object):

- ``train``, ``val``: ``{"formula": [str], "target": [float]}``. CrabNet uses the validation
  set during training (its SWA weight averaging and early stop compare validation MAEs).
- ``test``: ``{"formula": [str]}``.
- ``seed`` (int): seeds ``random``, ``numpy`` and ``torch`` and CrabNet's ``random_state``.
- ``epochs`` (int or null): CrabNet's ``epochs``; null: CrabNet's default (300). CrabNet rounds
  it up to a multiple of ``2 * epochs_step`` and may stop early.
- ``threads`` (int): torch CPU threads.
- ``options`` (object): further ``crabnet.crabnet_.CrabNet`` keyword arguments (JSON values),
  none of those this worker sets (the host checks: ``crabnet.RESERVED``).
"""

import importlib.util
import json
import os
import random
import sys
import time
from pathlib import Path

ENV_BROKEN = 3

# the script's own folder (benchmarks/paper, which holds the host module crabnet.py) must not
# shadow the crabnet package
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

try:
    os.environ.setdefault("MPLBACKEND", "Agg")  # CrabNet imports pyplot; never open a window
    if importlib.util.find_spec("crabnet") is None:  # fail before the slow imports
        raise ImportError("No module named 'crabnet'")
    import numpy as np
    import pandas as pd
    import torch
    import crabnet
    from crabnet.crabnet_ import CrabNet
except Exception as exc:  # ImportError, or a compiled module built against another numpy
    print(f"cannot import crabnet in {sys.executable}: {type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(ENV_BROKEN)


def versions() -> dict:
    return {"crabnet": getattr(crabnet, "__version__", None) or _dist_version("crabnet"),
            "torch": torch.__version__, "numpy": np.__version__, "python": sys.version.split()[0]}


def _dist_version(name: str) -> str:
    from importlib.metadata import version
    return version(name)


def _frame(part: dict, with_target: bool) -> pd.DataFrame:
    n = len(part["formula"])
    target = np.asarray(part["target"], dtype=np.float64) if with_target else np.zeros(n)
    return pd.DataFrame({"formula": list(part["formula"]), "target": target})


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fit(job_path: Path, out_path: Path) -> None:
    job = json.loads(job_path.read_text())
    options = dict(job.get("options") or {})  # the host refuses those the worker sets below
    torch.set_num_threads(int(job.get("threads", 1)))
    _seed(int(job["seed"]))
    model = CrabNet(random_state=int(job["seed"]), epochs=job.get("epochs"), verbose=False, losscurve=False,
                    learningcurve=False, save=False, compute_device="cpu", model_name="skdynemb-benchmark",
                    **options)
    t0 = time.perf_counter()
    model.fit(train_df=_frame(job["train"], True), val_df=_frame(job["val"], True))
    fit_s = time.perf_counter() - t0
    epochs_run = model.epoch + 1
    pred_val = model.predict(_frame(job["val"], False))
    pred_test = model.predict(_frame(job["test"], False))
    result = {
        "pred_val": [float(v) for v in pred_val],
        "pred_test": [float(v) for v in pred_test],
        "fit_s": fit_s,
        "epochs": int(model.epochs),
        "epochs_run": int(epochs_run),
        "batch_size": int(model.batch_size),
        "versions": versions(),
    }
    out_path.write_text(json.dumps(result))


def check(out_path: Path) -> None:
    out_path.write_text(json.dumps({"versions": versions()}))


if __name__ == "__main__":
    if sys.argv[1] == "fit":
        fit(Path(sys.argv[2]), Path(sys.argv[3]))
    elif sys.argv[1] == "check":
        check(Path(sys.argv[2]))
    else:
        raise SystemExit(f"unknown command {sys.argv[1]!r} (fit, check)")
