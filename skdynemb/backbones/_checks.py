"""Checks every loaded backbone goes through (called by :func:`skdynemb.backbones.load_backbone`)."""

from __future__ import annotations

import pickle
import zipfile
from contextlib import contextmanager

import torch

#: What reading a damaged or foreign weights file raises (torch, zip, pickle, JSON, OS).
_UNREADABLE = (OSError, EOFError, RuntimeError, ValueError, KeyError, pickle.UnpicklingError, zipfile.BadZipFile)


@contextmanager
def naming_the_file(source):
    """Re-raise a failure to read ``source`` (weights file or folder) with its path in the message.

    Errors that already name it pass unchanged.
    """
    try:
        yield
    except _UNREADABLE as exc:
        if source is None or str(source) in str(exc):
            raise
        raise ValueError(f"{source}: could not load these weights ({type(exc).__name__}: {exc})") from exc


def check_statistics(module: torch.nn.Module, source) -> None:
    """Raise ValueError naming every normalisation buffer that no trained network can hold.

    A batch-norm running variance must be positive (a zero or negative one turns every
    activation into NaN or nonsense); running means and variances must be finite.
    """
    bad = []
    for name, sub in module.named_modules():
        var = getattr(sub, "running_var", None)
        if isinstance(sub, torch.nn.modules.batchnorm._NormBase) and isinstance(var, torch.Tensor):
            if not bool((var > 0).all()) or not bool(torch.isfinite(var).all()):
                bad.append(f"{name}.running_var")
            mean = getattr(sub, "running_mean", None)
            if isinstance(mean, torch.Tensor) and not bool(torch.isfinite(mean).all()):
                bad.append(f"{name}.running_mean")
    if bad:
        raise ValueError(
            f"{source}: invalid normalisation statistics in {bad} (running variances must be positive and "
            "finite); the checkpoint is damaged or was not produced by training"
        )
