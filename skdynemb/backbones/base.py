"""The small interface every structure-aware backbone implements.

A backbone turns a batch of :class:`~skdynemb.structures.Crystal` into per-atom hidden
vectors at each of its *stages* (e.g. ALIGNN: embedding + 4 ALIGNN + 4 GCN layers), plus,
where it has them, compound-level mean bond and angle features per stage.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

if TYPE_CHECKING:
    from skdynemb.structures import Crystal


@contextmanager
def capture_outputs(modules: Sequence[torch.nn.Module]):
    """Collect each module's forward output (keyed by position) while the context is open."""
    outputs: dict[int, torch.Tensor] = {}
    handles = [
        m.register_forward_hook(lambda _m, _in, out, k=k: outputs.__setitem__(k, out))
        for k, m in enumerate(modules)
    ]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


@dataclass
class StageOutput:
    """Hidden features of one structure.

    Attributes
    ----------
    atom : list of ndarray
        One (n_atoms, d_s) float32 array per stage, rows in site order.
    bond : list of ndarray or None
        Per stage, the (d_b,) float32 mean over the structure's bonds (edges) of the bond
        features; None if the backbone has no bond features.
    angle : list of ndarray or None
        The same for angle (line-graph) features; may be shorter than ``atom`` (ALIGNN updates
        angles only in its ALIGNN layers) or None.
    """

    atom: list[np.ndarray]
    bond: list[np.ndarray] | None = None
    angle: list[np.ndarray] | None = None


@dataclass
class Backbone:
    """Base class: a pretrained GNN exposed as a stage extractor.

    Subclasses set ``name``, ``stage_names``, ``stage_dims`` (and ``bond_dims`` /
    ``angle_dims`` when they have compound features), hold a ``torch.nn.Module`` in ``module``,
    and implement :meth:`forward_stages`.
    """

    name: str
    module: torch.nn.Module
    stage_names: list[str]
    stage_dims: list[int]
    bond_dims: list[int] | None = None
    angle_dims: list[int] | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    #: structures per forward pass that runs fastest on CPU (the transformer's batch_size=None)
    default_batch_size: int = 64

    def to(self, device: str | torch.device) -> "Backbone":
        self.device = torch.device(device)
        self.module.to(self.device)
        return self

    def fingerprint(self) -> str:
        """SHA-256 over the backbone's name and every weight, for cache keys."""
        h = hashlib.sha256(self.name.encode())
        for key, tensor in sorted(self.module.state_dict().items()):
            h.update(key.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def check_elements(self, crystal: "Crystal", index: int) -> None:
        """Raise ValueError naming sample ``index`` if it has an element the backbone lacks."""

    def forward_stages(self, crystals: Sequence["Crystal"]) -> list[StageOutput]:
        """Run one batch (block-diagonal, in eval mode, no grad) and split per structure."""
        raise NotImplementedError
