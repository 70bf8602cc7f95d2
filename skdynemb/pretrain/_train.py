"""Train an ALIGNN on (structure, scalar target) pairs and write checkpoints the ``"alignn"`` backbone loads.

Output folder layout (``output_dir``)::

    best/config.json, best/best_model.pt   best-validation model, official ALIGNN layout, target units
    state.pt       resume state after the last finished epoch (model, optimiser, scheduler, history)
    log.jsonl      one line per epoch: epoch, train_mae, val_mae (target units), lr, seconds
    summary.json   settings, split sizes, best epoch, val / test MAE of ``best/``
    graphs.npz     the graph cache (:class:`~skdynemb.pretrain._store.GraphStore`)

Every file is replaced atomically, so an interrupted run (Ctrl-C, kill, crash) resumes from its
last finished epoch when called again with the same arguments. The shuffling of epoch ``e`` is
a function of ``(random_state, e)`` alone and ALIGNN has no dropout, so the state needs no RNG
state: on CPU a resumed run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from skdynemb._batches import batched
from skdynemb._device import resolve_device
from skdynemb._files import atomic_write
from skdynemb.backbones.alignn import ALIGNN, ALIGNNConfig, load_checkpoint, save_checkpoint
from skdynemb.datasets.splits import train_val_test_split
from skdynemb.errors import InvalidSampleError
from skdynemb.backbones.alignn.graphs import KNearestGraph
from skdynemb.pretrain._store import GraphStore

LOSSES = {"mae": F.l1_loss, "mse": F.mse_loss}
SCHEDULERS = ("onecycle", "none")
BEST_DIR, STATE_FILE, LOG_FILE = "best", "state.pt", "log.jsonl"
SUMMARY_FILE, GRAPHS_FILE = "summary.json", "graphs.npz"


@dataclass
class PretrainResult:
    """What :func:`pretrain_alignn` produced.

    Attributes
    ----------
    output_dir : Path
        The run's folder.
    checkpoint : Path
        The best-validation model folder (load with ``skdynemb.backbones.alignn.load(checkpoint)``).
    best_epoch : int
        The epoch of that model.
    val_mae, test_mae : float
        Its validation and test MAE, in target units (``test_mae`` None without a test set).
    history : list of dict
        One dict per epoch (as ``log.jsonl``).
    split : tuple of 3 ndarray
        The (train, val, test) index arrays into the inputs.
    target_mean, target_std : float
        The standardisation used in training (folded into the checkpoint's output layer).
    """

    output_dir: Path
    checkpoint: Path
    best_epoch: int
    val_mae: float
    test_mae: float | None
    history: list[dict] = field(repr=False)
    split: tuple[np.ndarray, np.ndarray, np.ndarray] = field(repr=False)
    target_mean: float = 0.0
    target_std: float = 1.0


# ----------------------------------------------------------------------------- small helpers
def _write_json(path: Path, obj) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2) + "\n"))


def _write_lines(path: Path, rows: list[dict]) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in rows)))


def _device(device: str) -> torch.device:
    return torch.device(resolve_device(device))


def _check_inputs(structures, targets, ids):
    from skdynemb.structures import to_crystals

    crystals = to_crystals(structures, ids=ids)
    y = np.asarray(targets, dtype=np.float64)
    if y.shape != (len(crystals),):
        raise ValueError(f"targets must be one number per structure: shape {y.shape} for {len(crystals)} structures")
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        i = int(bad[0])
        raise InvalidSampleError(i, crystals[i].id, f"target is {y[i]} ({bad.size} non-finite targets in all)")
    return crystals, y


def _check_config(config: ALIGNNConfig) -> None:
    if config.classification or config.link != "identity" or config.output_features != 1:
        raise ValueError(
            "pretrain_alignn fits one scalar target: the config needs classification=False, link='identity', "
            f"output_features=1 (got {config.classification}, {config.link!r}, {config.output_features})"
        )


def folded_model(model: ALIGNN, mean: float, std: float) -> ALIGNN:
    """A copy of ``model`` whose output is ``std * output + mean`` (standardisation folded into ``fc``).

    Parameters
    ----------
    model : ALIGNN
        A network trained on standardised targets.
    mean, std : float
        The standardisation (target units).

    Returns
    -------
    model : ALIGNN
        A new network, in eval mode, predicting in target units.
    """
    out = ALIGNN(model.config)
    out.load_state_dict(model.state_dict())
    with torch.no_grad():
        out.fc.weight.mul_(std)
        out.fc.bias.mul_(std).add_(mean)
    return out.eval()


def _save_best(model: ALIGNN, mean: float, std: float, folder: Path, rule: KNearestGraph) -> None:
    """Write the folded model to ``folder`` via a sibling temporary folder, file by file atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        save_checkpoint(folded_model(model, mean, std).cpu(), model.config, tmp, rule)
        for item in tmp.iterdir():
            os.replace(item, folder / item.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _predict(model: ALIGNN, store: GraphStore, indices: np.ndarray, batch_size: int, device) -> np.ndarray:
    """Network outputs for ``indices`` (eval mode, no autograd), float64."""
    model.eval()
    out = []
    with torch.no_grad():
        for idx in batched(indices, batch_size):
            batch = store.batch(np.asarray(idx)).to(device)
            out.append(model(batch).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def _run_epoch(model, optimizer, scheduler, store, order, y_std, batch_size, loss_fn, device, bar) -> float:
    """One pass over ``order`` in batches; returns the mean absolute error in standardised units."""
    model.train()
    total, count = 0.0, 0
    for idx in map(np.asarray, batched(order, batch_size)):
        batch = store.batch(idx, expand=model.config.norm == "batch").to(device)
        target = torch.as_tensor(y_std[idx], dtype=torch.float32, device=device)
        pred = model.stages(batch, pool_edges=False).output  # no per-graph bond/angle means to compute
        loss = loss_fn(pred, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total += float((pred.detach() - target).abs().sum())
        count += len(idx)
        bar.update(len(idx))
        bar.set_postfix(loss=f"{loss.item():.4f}")
    return total / count


# ----------------------------------------------------------------------------- training
def pretrain_alignn(
    structures: Sequence,
    targets,
    *,
    output_dir: str | Path,
    ids: Sequence | None = None,
    config: ALIGNNConfig | None = None,
    graph: KNearestGraph = KNearestGraph(),
    epochs: int = 300,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 1e-5,
    loss: str = "mae",
    scheduler: str = "onecycle",
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    random_state: int = 123,
    standardize: bool = True,
    resume: bool = True,
    device: str = "auto",
    num_threads: int | None = None,
    progress: bool = True,
) -> PretrainResult:
    """Train an ALIGNN regressor from scratch, keeping the best-validation checkpoint.

    Parameters
    ----------
    structures : sequence
        Crystals (anything :func:`~skdynemb.structures.to_crystals` reads).
    targets : array-like of shape (n_samples,)
        One finite number per structure, in the target's units (e.g. formation energy, eV/atom).
    output_dir : str or Path
        Folder for checkpoints, logs and the graph cache (layout in the module docstring).
    ids : sequence of str, optional
        Sample ids, used in error messages.
    config : ALIGNNConfig, optional
        Network hyper-parameters (default: the official ``ALIGNNConfig()``, 4 + 4 layers, 256
        wide); a scalar regression head is required.
    graph : KNearestGraph, optional
        The graph rule (:class:`~skdynemb.backbones.alignn.graphs.KNearestGraph`), stored in the checkpoint
        (default: ``KNearestGraph()``, the official canonical 8 Å / 12-neighbour rule).
    epochs : int, default=300
        Training epochs.
    batch_size : int, default=64
        Structures per batch.
    lr, weight_decay : float
        AdamW learning rate (the peak of the one-cycle schedule) and weight decay.
    loss : {"mae", "mse"}, default="mae"
        Mean absolute error (L1) or mean squared error, on standardised targets (the loss names
        of the regressors too).
    scheduler : {"onecycle", "none"}, default="onecycle"
        One-cycle LR peaking at ``lr`` (as the official ALIGNN), or a constant ``lr`` (then a
        finished run can be extended by calling again with more ``epochs``).
    val_fraction, test_fraction : float
        Shares of the seeded random hold-out split
        (:func:`~skdynemb.datasets.train_val_test_split`).
    random_state : int, default=123
        Seed of the split, the weights and the per-epoch shuffling.
    standardize : bool, default=True
        Train on ``(y - mean) / std`` of the training targets; the checkpoint's output layer
        absorbs it, so the saved model predicts in target units.
    resume : bool, default=True
        Continue from ``output_dir/state.pt`` when it holds a run with the same settings and
        data (a different one raises); False starts afresh, overwriting.
    device : str, default="auto"
        ``"auto"`` (a CUDA GPU when present), ``"cpu"``, ``"cuda"``, ...
    num_threads : int, optional
        torch CPU threads during the call (restored after); None leaves the setting.
    progress : bool, default=True
        tqdm progress bars and one line per epoch.

    Returns
    -------
    result : PretrainResult
        The best checkpoint's folder, its epoch and MAEs, the history and the split.
    """
    from tqdm.auto import tqdm

    config = ALIGNNConfig() if config is None else config
    _check_config(config)
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {scheduler!r}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not (lr > 0 and weight_decay >= 0):
        raise ValueError(f"need lr > 0 and weight_decay >= 0, got lr={lr!r}, weight_decay={weight_decay!r}")
    if not (0 < val_fraction and 0 <= test_fraction and val_fraction + test_fraction < 1):
        raise ValueError(f"need 0 < val_fraction, 0 <= test_fraction, sum < 1; got {val_fraction}, {test_fraction}")

    crystals, y = _check_inputs(structures, targets, ids)
    train, val, test = train_val_test_split(
        len(crystals), (1.0 - val_fraction - test_fraction, val_fraction, test_fraction), random_state
    )
    if len(train) == 0 or len(val) == 0:
        raise ValueError(
            f"{len(crystals)} structures give {len(train)} training / {len(val)} validation samples; need >= 1 each"
        )
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = _device(device)
    old_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    try:
        store = GraphStore.cached(crystals, graph, out / GRAPHS_FILE, progress)
        mean, std = (float(y[train].mean()), float(y[train].std())) if standardize else (0.0, 1.0)
        std = std if std > 0 else 1.0
        settings = {
            "model": config.to_dict(), "graph_rule": graph.key,
            "epochs": int(epochs), "batch_size": int(batch_size), "lr": float(lr), "weight_decay": float(weight_decay),
            "loss": loss, "scheduler": scheduler, "val_fraction": float(val_fraction),
            "test_fraction": float(test_fraction), "random_state": int(random_state), "standardize": bool(standardize),
            "graphs": store.key, "targets_sha256": _sha256(y),
        }

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(random_state)
            model = ALIGNN(config).to(dev)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        steps = math.ceil(len(train) / batch_size)
        sched = (
            torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps)
            if scheduler == "onecycle" else None
        )
        start, history, best = _restore(out, resume, settings, model, optimizer, sched, dev)
        y_std = (y - mean) / std
        for epoch in range(start + 1, epochs + 1):
            tic = time.perf_counter()
            order = train[np.random.default_rng([random_state, epoch]).permutation(len(train))]
            with tqdm(total=len(order), desc=f"epoch {epoch}/{epochs}", disable=not progress, leave=False,
                      unit="structure") as bar:
                train_mae = std * _run_epoch(model, optimizer, sched, store, order, y_std, batch_size,
                                             LOSSES[loss], dev, bar)
            val_mae = float(np.mean(np.abs(std * _predict(model, store, val, batch_size, dev) + mean - y[val])))
            row = {"epoch": epoch, "train_mae": train_mae, "val_mae": val_mae,
                   "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - tic}
            history.append(row)
            if best is None or val_mae < best["val_mae"]:
                best = {"epoch": epoch, "val_mae": val_mae}
                _save_best(model, mean, std, out / BEST_DIR, graph)
            _save_state(out, epoch, model, optimizer, sched, history, best, settings)
            _write_lines(out / LOG_FILE, history)
            if progress:
                tqdm.write(f"epoch {epoch}/{epochs}: train MAE {train_mae:.4f}, val MAE {val_mae:.4f}, "
                           f"{row['seconds']:.0f} s{' (best)' if best['epoch'] == epoch else ''}")
        best_model, _ = load_checkpoint(out / BEST_DIR)
        test_mae = (
            float(np.mean(np.abs(_predict(best_model.to(dev), store, test, batch_size, dev) - y[test])))
            if len(test) else None
        )
    finally:
        torch.set_num_threads(old_threads)

    _write_json(out / SUMMARY_FILE, {
        "settings": settings, "n_train": len(train), "n_val": len(val), "n_test": len(test),
        "target_mean": mean, "target_std": std, "best_epoch": best["epoch"], "val_mae": best["val_mae"],
        "test_mae": test_mae,
        "baseline_test_mae": float(np.mean(np.abs(y[test] - y[train].mean()))) if len(test) else None,
        "train_seconds": float(sum(r["seconds"] for r in history)), "device": str(dev),
    })
    return PretrainResult(out, out / BEST_DIR, best["epoch"], best["val_mae"], test_mae, history,
                          (train, val, test), mean, std)


def _sha256(y: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(y, dtype=np.float64).tobytes()).hexdigest()


def _save_state(out: Path, epoch, model, optimizer, sched, history, best, settings) -> None:
    state = {
        "epoch": epoch, "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(), "scheduler": None if sched is None else sched.state_dict(),
        "history": history, "best": best, "settings": settings,
    }
    atomic_write(out / STATE_FILE, lambda tmp: torch.save(state, tmp))


def _restore(out: Path, resume: bool, settings: dict, model, optimizer, sched, device):
    """(last finished epoch, history, best) from ``out/state.pt``, loading the states in place."""
    path = out / STATE_FILE
    if not resume or not path.is_file():
        return 0, [], None
    state = torch.load(path, map_location=device, weights_only=True)
    saved = state["settings"]
    extendable = {"epochs"} if settings["scheduler"] == "none" else set()
    differ = sorted(
        k for k in settings.keys() | saved.keys() if k not in extendable and saved.get(k) != settings.get(k)
    )
    if differ:
        raise ValueError(
            f"{out} holds a run with other settings or data ({', '.join(differ)} differ); "
            "pass resume=False to start afresh there, or use another output folder"
        )
    if state["epoch"] > settings["epochs"]:
        raise ValueError(f"{out} already holds {state['epoch']} epochs, more than epochs={settings['epochs']}")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if sched is not None:
        sched.load_state_dict(state["scheduler"])
    return state["epoch"], list(state["history"]), state["best"]
