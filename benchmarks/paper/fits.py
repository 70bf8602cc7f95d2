"""Model fits of the paper benchmarks, each stored in the ledger as it ends.

A fit function takes ``(X, y, split, seed, params)`` and returns the result dict every ledger fit
record holds: ``val_mae`` (None without a validation split), ``test_mae``, ``pred_test`` (floats,
test order), ``fit_s`` and ``epoch_s`` (median seconds per epoch; None for models without epochs);
fits of Roost, ElemNet and the AutoML models made since 2026-12-05 also hold ``pred_val``
(validation order) where there is a validation split.
:func:`run_fits` reads what the ledger has and trains only what it lacks.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import torch
from joblib import Parallel, delayed

from .data import PropData, embeddings
from .ledger import Ledger, fit_identity
from .report import log, pick_on_validation
from .settings import Settings


def _result(model, X, y, split, t0: float, epoch_s: float | None) -> dict:
    _, va, te = split
    fit_s = time.perf_counter() - t0
    p_te = np.asarray(model.predict(X[te]), dtype=float)
    p_va = np.asarray(model.predict(X[va]), dtype=float) if len(va) else None
    out = {"val_mae": float(np.mean(np.abs(p_va - y[va]))) if len(va) else None,
           "test_mae": float(np.mean(np.abs(p_te - y[te]))), "pred_test": [float(v) for v in p_te],
           "fit_s": fit_s, "epoch_s": epoch_s}
    if p_va is not None:  # lets a table score ensembles on validation (fits before 2026-12-05 lack it)
        out["pred_val"] = [float(v) for v in p_va]
    return out


def roost_fit(X, y, split, seed: int, params: dict) -> dict:
    """Train Roost on ``split[0]`` (``params``: :meth:`Settings.roost_params`); early stopping on
    ``split[1]`` when ``params`` ask for it, weight averaging from epoch ``params["swa_start"]`` when
    they hold it."""
    from skdynemb import RoostRegressor

    torch.set_num_threads(1)
    tr, va, _ = split
    t0 = time.perf_counter()
    model = RoostRegressor(max_epochs=params["epochs"], batch_size=params["batch_size"],
                           out_hidden=tuple(params["out_hidden"]), lr=params["lr"], device=params["device"],
                           patience=params.get("patience", 20), swa_start=params.get("swa_start"),
                           random_state=seed)
    if params.get("early_stopping"):
        if not len(va):
            raise ValueError("early stopping needs a validation split, and this split has none; "
                             "run it without --early-stopping")
        model.fit(X[tr], y[tr], X_valid=X[va], y_valid=y[va])
    else:
        model.fit(X[tr], y[tr])
    return _result(model, X, y, split, t0, float(np.median([row["dur"] for row in model.nets_[0].history])))


def _estimator(model: str, seed: int, params: dict):
    from skdynemb import AutoMLRegressor, AutoSklearnRegressor, ElemNetRegressor

    if model == "elemnet":
        return ElemNetRegressor(max_epochs=params["epochs"], patience=params["patience"], device=params["device"],
                                random_state=seed)
    if model == "flaml":
        return AutoMLRegressor(time_budget=-1, max_iter=params["iterations"], random_state=seed,
                               estimator_list=list(params["estimators"]))
    if model == "autosklearn":
        return AutoSklearnRegressor(time_left_for_this_task=params["budget_s"],
                                    per_run_time_limit=params["run_limit_s"], random_state=seed)
    raise ValueError(f"unknown model {model!r}")


def estimator_fit(model: str, X, y, split, seed: int, params: dict) -> dict:
    """Train ElemNet / FLAML / auto-sklearn (``model``) on the 2-D array ``X[split[0]]``."""
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    est = _estimator(model, seed, params).fit(X[split[0]], y[split[0]])
    epoch_s = None
    if model == "elemnet":
        epoch_s = float(np.median([row["dur"] for row in est.nets_[0].history]))
    return _result(est, X, y, split, t0, epoch_s)


def elemnet_params(epochs: int, patience: int, device: str) -> dict:
    """ElemNet's settings (its own 10% early-stopping hold-out of the training split)."""
    return {"epochs": epochs, "patience": patience, "device": device}


def crabnet_runner():
    """``(fit function, "")`` when ``benchmarks/paper/crabnet.py`` and CrabNet's side env are present,
    else ``(None, why not)``; the fit function is ``crabnet_fit(formulas, y, split, seed, epochs, **options)``."""
    try:
        from . import crabnet
    except ImportError:
        return None, "benchmarks/paper/crabnet.py is not in this checkout"
    if not crabnet.crabnet_available():
        return None, "its side env is missing (bash scripts/setup-crabnet.sh)"
    return crabnet.crabnet_fit, ""


def crabnet_params(epochs: int | None) -> dict:
    """CrabNet's settings (None epochs: its default, 300); one torch thread."""
    return {"epochs": epochs, "threads": 1}


def crabnet_style_params(epochs: int = 150, patience: int = 20) -> dict:
    """Settings of our CrabNet-style model (``CrabNetRegressor``) as ``benchmarks/bench_crabnet_style.py``
    fits it: its CPU widths and learning rate, early stopping on the validation split."""
    from benchmarks.bench_crabnet_style import PARAMS

    return {**PARAMS, "epochs": epochs, "early_stopping": "validation split", "patience": patience}


def _fit(model: str, X, y, split, seed: int, params: dict) -> dict:
    if model == "roost":
        return roost_fit(X, y, split, seed, params)
    if model == "crabnet-style":  # CrabNetRegressor on element rows, early stopping on split[1]
        from benchmarks.bench_crabnet_style import crabnet_style_fit

        return crabnet_style_fit(model, X, y, split, seed, params)
    if model == "crabnet":  # X: the formulas of all samples
        fit, why = crabnet_runner()
        if fit is None:
            raise RuntimeError(f"CrabNet cannot run: {why}")
        return fit(list(X), y, split, seed, params["epochs"], threads=params["threads"])
    return estimator_fit(model, X, y, split, seed, params)


@dataclass(frozen=True)
class Job:
    """One fit to run: ``model`` (roost, elemnet, flaml, autosklearn, crabnet, crabnet-style) on ``inputs`` (an
    :func:`~benchmarks.paper.data.embeddings` name) with ``seed``; ``params`` is the model's
    settings as canonical JSON (None for Roost: the run's :meth:`Settings.roost_params`)."""

    model: str
    inputs: str
    seed: int
    params: str | None = None

    def param_dict(self, settings: Settings) -> dict:
        """The model's settings."""
        return settings.roost_params() if self.params is None else json.loads(self.params)


def job(model: str, inputs: str, seed: int, params: dict | None = None) -> Job:
    """A :class:`Job` with ``params`` given as a dict."""
    return Job(model, inputs, int(seed), None if params is None else json.dumps(params, sort_keys=True))


class NotInLedger(LookupError):
    """A fit asked for with ``train=False`` that the ledger does not hold."""


def run_fits(ledger: Ledger, data: PropData, jobs, settings: Settings, cache: dict,
             fit=None, train: bool = True) -> dict[Job, dict]:
    """Ledger records of ``jobs`` on ``data``, training the missing ones (``settings.n_jobs`` in
    parallel) and storing each as it ends; with ``train=False`` a missing one raises
    :class:`NotInLedger` instead (before any embedding is computed). ``fit`` replaces the fit function (tests)."""
    fit = fit or _fit
    out, todo = {}, []
    for j in dict.fromkeys(jobs):
        identity = fit_identity(data, j.model, j.inputs, j.seed, j.param_dict(settings), settings)
        record = ledger.get(identity)
        if record is None:
            todo.append((j, identity))
        else:
            out[j] = record
    if todo and not train:
        raise NotInLedger(f"{len(todo)} fit(s) of {data.key} {data.subset} are not in the ledger, e.g. {todo[0][0]}")
    if todo:
        Xs = {j.inputs: embeddings(data, j.inputs, settings, cache) for j, _ in todo}
        results = Parallel(n_jobs=min(settings.n_jobs, len(todo)), return_as="generator")(
            delayed(fit)(j.model, Xs[j.inputs], data.y, data.split, j.seed, identity["params"])
            for j, identity in todo
        )
        for (j, identity), res in zip(todo, results):
            out[j] = ledger.put("fit", identity, res, settings)
            log(f"  {data.key} {data.subset} {j.model} {j.inputs} seed {j.seed}: test MAE {res['test_mae']:.4g} "
                f"({res['fit_s']:.0f} s)")
    return out


def fit_chosen(ledger: Ledger, data: PropData, names, select, rest, settings: Settings, cache: dict,
               train: bool = True):
    """Roost on each of ``names`` with the ``select`` seeds, the one with the lowest mean validation
    MAE then with the ``rest`` seeds too; returns (records by :class:`Job`, the chosen name).
    ``train``: as in :func:`run_fits`."""
    res = run_fits(ledger, data, [job("roost", n, seed) for n in names for seed in select], settings, cache,
                   train=train)
    chosen = pick_on_validation({n: [res[job("roost", n, seed)]["result"]["val_mae"] for seed in select]
                                 for n in names})
    return res | run_fits(ledger, data, [job("roost", chosen, seed) for seed in rest], settings, cache,
                          train=train), chosen


def collect(ledger: Ledger, data: PropData, jobs, settings: Settings, cache: dict, train: bool = True) -> dict[Job, dict]:
    """Ledger records of those of ``jobs`` the ledger holds, plus (``train``) the missing ones trained
    (as :func:`run_fits`); with ``train=False`` the missing ones are simply left out of the answer."""
    out = {}
    for j in jobs:
        try:
            out |= run_fits(ledger, data, [j], settings, cache, train=False)
        except NotInLedger:
            pass
    todo = [j for j in dict.fromkeys(jobs) if j not in out]
    if todo and train:
        out |= run_fits(ledger, data, todo, settings, cache)
    return out
