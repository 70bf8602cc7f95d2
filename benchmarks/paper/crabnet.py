"""CrabNet 2.0.8 as a benchmark peer, fitted out of process in its own Python 3.10 env.

crabnet's last release needs Python < 3.11, so it cannot live in skdynemb's environment: it is a
benchmark-only dependency, set up once with ``bash scripts/setup-crabnet.sh`` (pins in
``benchmarks/crabnet-requirements.txt``). :func:`crabnet_fit` writes the job as JSON to a temporary
folder, runs ``crabnet_worker.py`` under the side interpreter, and reads the predictions back as
JSON; nothing is pickled across the two environments. Its result has the keys of the Roost fit
result of the paper harness (``val_mae``, ``test_mae``, ``pred_test``, ``fit_s``, ``epoch_s``), so
the harness can run it as the model named ``"crabnet"``.

CrabNet uses the validation split while training (its stochastic weight averaging keeps a weight
update only if it lowers the validation MAE, and training stops after three that do not), so
``val_mae`` is not an unseen-data score; ``test_mae`` is. A fit is bitwise reproducible for a seed
on the CPU with the same ``threads``.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
import os
import tempfile
from pathlib import Path

import numpy as np

from skdynemb._side_env import SideEnv

#: environment variable naming the side interpreter (when the ``python`` argument is None)
PYTHON_ENV_VAR = "SKDYNEMB_CRABNET_PYTHON"
SETUP_SCRIPT = "scripts/setup-crabnet.sh"
WORKER = Path(__file__).with_name("crabnet_worker.py")
#: CrabNet arguments the worker sets itself, refused in ``options``
RESERVED = ("random_state", "epochs", "verbose", "losscurve", "learningcurve", "save", "compute_device",
            "force_cpu", "model", "model_name")


class CrabNetEnvError(RuntimeError):
    """The side environment with crabnet is missing or does not import it."""


class CrabNetWorkerError(RuntimeError):
    """The CrabNet worker failed or ran past its timeout (the message quotes its stderr)."""


_ENV = SideEnv(
    name="CrabNet", package="crabnet", folder="crabnet-2.0.8", env_var=PYTHON_ENV_VAR,
    python_source="the python argument",
    setup_hint=(f"create it with `bash {SETUP_SCRIPT}` from the skdynemb repository (Python 3.10 + crabnet 2.0.8 + "
                f"torch 1.12.1, about a minute), or point ${PYTHON_ENV_VAR} at the python of such an env"),
    env_error=CrabNetEnvError, worker_error=CrabNetWorkerError,
)


def _run_worker(args: list[str], folder: Path, python, timeout: float, threads: int) -> None:
    """Run ``crabnet_worker.py ARGS`` in ``folder`` (its working directory: CrabNet writes there)."""
    env = {**os.environ, "MPLBACKEND": "Agg", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    _ENV.run(WORKER, args, folder, python, timeout, env=env)


def check_env(python=None, timeout: float = 120) -> dict:
    """Versions in the side env (crabnet, torch, numpy, python); CrabNetEnvError naming the setup script."""
    with tempfile.TemporaryDirectory(prefix="skdynemb-crabnet-") as tmp:
        _run_worker(["check", "versions.json"], Path(tmp), python, timeout, threads=1)
        return json.loads((Path(tmp) / "versions.json").read_text())["versions"]


@functools.lru_cache(maxsize=None)
def _available(exe: str) -> bool:
    try:
        check_env(exe)
    except (CrabNetEnvError, CrabNetWorkerError):
        return False
    return True


def crabnet_available(python=None) -> bool:
    """True when the side env exists and imports crabnet (checked once per interpreter path)."""
    return _available(str(_ENV.resolve_python(python)[0]))


def _formulas(formulas) -> list[str]:
    """Formula strings; a pymatgen Composition (or anything with ``.formula``) gives its formula."""
    out = []
    for i, f in enumerate(formulas):
        f = getattr(f, "formula", f)
        if not isinstance(f, str) or not f.strip():
            raise ValueError(f"sample {i}: formula must be a non-empty string or a Composition, got {f!r}")
        out.append(f)
    return out


def _split(split, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if len(split) != 3:
        raise ValueError(f"split must be (train, val, test) index arrays, got {len(split)} parts")
    parts = []
    for name, part in zip(("train", "val", "test"), split):
        idx = np.asarray(part)
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise ValueError(f"split {name} must be a 1-D array of integer positions, got {idx.dtype} {idx.shape}")
        if not idx.size:
            raise ValueError(f"split {name} is empty: CrabNet needs train, validation and test samples")
        bad = idx[(idx < 0) | (idx >= n)]
        if bad.size:
            raise ValueError(f"split {name} has position {bad[0]}, outside the {n} samples")
        parts.append(idx.astype(np.int64))
    return tuple(parts)


def _check_int(name: str, value, minimum: int, none_ok: bool = False):
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}{' or None' if none_ok else ''}, got {value!r}")
    return int(value)


def crabnet_fit(formulas, y, split, seed: int, epochs: int | None = None, *, threads: int = 1,
                timeout: float = 6 * 3600, python=None, **options) -> dict:
    """Train CrabNet on ``split[0]`` (validation ``split[1]``) and predict ``split[1]`` and ``split[2]``.

    Parameters
    ----------
    formulas : sequence of str or pymatgen Composition, length n
        Compositions of all samples (e.g. ``"Fe2 O3"``).
    y : array-like of shape (n,)
        Targets (any unit; the MAEs come in the same unit), finite on the samples of ``split``.
    split : tuple of three int arrays
        Positions into ``formulas`` of the train, validation and test samples (none empty).
    seed : int
        Seed of ``random``, ``numpy``, ``torch`` and CrabNet's ``random_state`` in the worker.
    epochs : int or None
        CrabNet's ``epochs`` (None: its default, 300). CrabNet rounds it up to a multiple of
        ``2 * epochs_step`` (20 by default) and may stop early (``epochs_run`` in the result).
    threads : int
        torch CPU threads of the worker (predictions are bitwise reproducible for the same value).
    timeout : float
        Seconds the worker may run before it is killed.
    python : str, path or None
        Interpreter of the side env; None: ``$SKDYNEMB_CRABNET_PYTHON``, else
        ``~/.cache/skdynemb/crabnet-2.0.8/bin/python``.
    **options
        Further ``crabnet.crabnet_.CrabNet`` arguments (JSON values), e.g. ``batch_size=32``,
        ``epochs_step=5``, ``d_model=512``, ``elem_prop="mat2vec"``; not those in :data:`RESERVED`.

    Returns
    -------
    result : dict
        ``val_mae`` and ``test_mae`` (unit of y; validation was seen in training, see the module
        docstring), ``pred_test`` (list of float, in the order of ``split[2]``), ``fit_s`` (seconds
        of CrabNet's ``fit``), ``epoch_s`` (``fit_s`` per epoch run), ``epochs`` (after CrabNet's
        rounding), ``epochs_run``, ``batch_size`` and ``versions`` (of the side env).

    Raises
    ------
    CrabNetEnvError
        The side env is missing or does not import crabnet (the message names the setup script).
    CrabNetWorkerError
        The worker failed or timed out (the message quotes the end of its stderr).
    """
    formulas = _formulas(formulas)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if len(y) != len(formulas):
        raise ValueError(f"{len(formulas)} formulas but {len(y)} targets")
    tr, va, te = _split(split, len(formulas))
    for i in np.concatenate([tr, va, te]):
        if not math.isfinite(y[i]):
            raise ValueError(f"sample {i} ({formulas[i]}): target is {y[i]} (NaN or inf)")
    clash = sorted(set(options) & set(RESERVED))
    if clash:
        raise ValueError(f"options may not set {clash}: crabnet_fit sets them")
    if not isinstance(timeout, numbers.Real) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    job = {
        "train": {"formula": [formulas[i] for i in tr], "target": y[tr].tolist()},
        "val": {"formula": [formulas[i] for i in va], "target": y[va].tolist()},
        "test": {"formula": [formulas[i] for i in te]},
        "seed": _check_int("seed", seed, 0),
        "epochs": _check_int("epochs", epochs, 1, none_ok=True),
        "threads": _check_int("threads", threads, 1),
        "options": options,
    }
    try:
        text = json.dumps(job, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"options must be JSON-serialisable: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="skdynemb-crabnet-") as tmp:
        folder = Path(tmp)
        (folder / "job.json").write_text(text)
        _run_worker(["fit", "job.json", "result.json"], folder, python, timeout, job["threads"])
        out = json.loads((folder / "result.json").read_text())
    p_va, p_te = np.asarray(out["pred_val"], dtype=np.float64), np.asarray(out["pred_test"], dtype=np.float64)
    if p_va.shape != va.shape or p_te.shape != te.shape:
        raise CrabNetWorkerError(f"worker returned {p_va.shape} / {p_te.shape} predictions for {len(va)} validation "
                                 f"and {len(te)} test samples")
    return {
        "val_mae": float(np.mean(np.abs(p_va - y[va]))),
        "test_mae": float(np.mean(np.abs(p_te - y[te]))),
        "pred_test": [float(v) for v in p_te],
        "fit_s": float(out["fit_s"]),
        "epoch_s": float(out["fit_s"]) / int(out["epochs_run"]),
        "epochs": int(out["epochs"]),
        "epochs_run": int(out["epochs_run"]),
        "batch_size": int(out["batch_size"]),
        "versions": out["versions"],
    }
