"""What a backbone's output depends on, as plain data: the identity behind cache keys and resumes.

:func:`backbone_identity` collects everything that changes the rows a backbone computes for a
structure, so that cached or resumed results are only ever reused for the same computation:

- the weights (every tensor of the module's state dict, by SHA-256) and the module's own
  configuration (the scalar attributes of every sub-module, e.g. CHGNet's graph cutoffs);
- the backbone's settings (its dataclass fields: graph rule, ``cutoff`` / ``max_neighbors``
  read from a checkpoint's ``config.json``, atom-feature tables by hash), except the batch sizes;
- the stage layout (names and widths of the atom, bond and angle stages);
- the code path: the backbone's class and module, and the versions of skdynemb and of the
  package the backbone's model comes from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from importlib import metadata

import numpy as np
import torch

#: Backbone fields that change how work is batched, not what a structure's rows are.
_NOT_RESULTS = {"module", "device", "batch_size", "default_batch_size"}


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _plain(value):
    """A JSON-able stand-in for one setting (arrays and tensors by their SHA-256)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        data = np.ascontiguousarray(value)
        sha = hashlib.sha256(data.tobytes()).hexdigest()
        return {"dtype": str(data.dtype), "shape": list(data.shape), "sha256": sha}
    if isinstance(value, (np.generic,)):
        return value.item()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return None  # an object without a plain value (a callable, a module): not a setting


def module_configuration(module: torch.nn.Module) -> dict:
    """Scalar settings of every sub-module (public attributes: numbers, strings, dataclasses).

    Parameters
    ----------
    module : torch.nn.Module
        The network.

    Returns
    -------
    settings : dict
        Sub-module name (``"."`` for the root) -> its settings as JSON-able values; arrays and
        tensors as their dtype, shape and SHA-256.
    """
    out = {}
    for name, sub in module.named_modules():
        settings = {
            key: _plain(value)
            for key, value in sorted(vars(sub).items())
            if not key.startswith("_") and key != "training"
        }
        settings = {k: v for k, v in settings.items() if v is not None}
        if settings:
            out[name or "."] = settings
    return out


def backbone_identity(backbone, fingerprint: str | None = None) -> dict:
    """Everything that determines ``backbone``'s rows for a given structure, as JSON-able data.

    Parameters
    ----------
    backbone : Backbone
        The backbone.
    fingerprint : str, optional
        The weights hash (:meth:`Backbone.fingerprint`) when already computed.

    Returns
    -------
    identity : dict
        JSON-able: the backbone class and fields, weights and buffer hashes, the module's class
        and configuration, and the versions of skdynemb and of the model's package.
    """
    cls = type(backbone)
    root = cls.__module__.split(".")[0]
    fields = {
        f.name: _plain(getattr(backbone, f.name))
        for f in dataclasses.fields(backbone)
        if f.name not in _NOT_RESULTS
    }
    model_package = type(backbone.module).__module__.split(".")[0]
    return {
        "backbone": f"{cls.__module__}.{cls.__qualname__}",
        "settings": fields,
        "weights_sha256": fingerprint if fingerprint is not None else backbone.fingerprint(),
        "module": f"{type(backbone.module).__module__}.{type(backbone.module).__qualname__}",
        "module_configuration": module_configuration(backbone.module),
        # non-persistent buffers (e.g. ALIGNN's atom-feature table) are not in the state dict
        "buffers_sha256": {name: _plain(b)["sha256"] for name, b in backbone.module.named_buffers()},
        "versions": {root: _version(root), model_package: _version(model_package)},
    }


def digest(obj) -> str:
    """SHA-256 of a JSON-able object (keys sorted), as hex.

    Parameters
    ----------
    obj : object
        JSON-able data (other values are written with ``str``).

    Returns
    -------
    digest : str
        64 hexadecimal digits.
    """
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
