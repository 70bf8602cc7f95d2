"""The one device resolver of the package (transformers, regressors, pretraining)."""

from __future__ import annotations

import torch


def resolve_device(device: str) -> str:
    """The torch device to use for ``device``.

    Parameters
    ----------
    device : str
        ``"auto"`` (a CUDA GPU when present, else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...

    Returns
    -------
    device : str
        ``"auto"`` resolved; other names unchanged.

    Raises
    ------
    ValueError
        A CUDA device is asked for but no CUDA GPU is available, or ``device`` is not a string.
    """
    if not isinstance(device, str):
        raise ValueError(f"device must be a string such as 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but no CUDA GPU is available (device='auto' picks one when present)")
    return device
