"""The one device resolver of the package (transformers, regressors, pretraining)."""

from __future__ import annotations

import torch

#: torch device types the package runs on
_DEVICE_TYPES = ("cpu", "cuda", "mps")


def resolve_device(device: str) -> str:
    """The torch device to use for ``device``.

    Parameters
    ----------
    device : str
        ``"auto"`` (a CUDA GPU when present, else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.

    Returns
    -------
    device : str
        ``"auto"`` resolved; other names unchanged.

    Raises
    ------
    ValueError
        ``device`` is not a string, not a device type skdynemb runs on (e.g. ``"tpu"``, ``"gpu"``),
        or names a CUDA (MPS) device where none is available.
    """
    if not isinstance(device, str):
        raise ValueError(f"device must be a string such as 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError):
        kind = None
    if kind not in _DEVICE_TYPES:
        raise ValueError(
            f"device={device!r} is not a device skdynemb can use; use 'auto', 'cpu', 'cuda' or 'cuda:<n>' "
            "(or 'mps' on Apple silicon)"
        )
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            f"device={device!r} but no Apple MPS device is available (device='auto' picks a GPU when present)"
        )
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but no CUDA GPU is available (device='auto' picks one when present)")
    return device
