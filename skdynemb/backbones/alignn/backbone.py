"""ALIGNN as a stage extractor: :class:`AlignnBackbone` and :func:`load`.

Stages (all ``hidden_features`` = 256-d for the official models): ``"embedding"`` (atom MLP),
``"alignn1"``..``"alignn4"`` (atom + line graph updates), ``"gcn1"``..``"gcn4"`` (atom graph only).
Bond features exist after the embedding and after every layer; angle features after the
embedding and after each ALIGNN layer.

Precision (:attr:`AlignnBackbone.precision`): ``"fp32"`` (the default: float32 throughout, TF32
off on CUDA), ``"tf32"`` (CUDA matrix products in TensorFloat-32; the same as fp32 on a CPU,
which has no TF32) or ``"bf16"`` (``torch.autocast`` to bfloat16: matrix products in bfloat16,
sums, means and norms in float32; on a CPU too). The rows it gives are float32 in every case.
``benchmarks/bench_gpu.py`` measures each choice's error per stage against fp32.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from skdynemb.backbones.alignn.checkpoints import load_checkpoint
from skdynemb.backbones.alignn.config import ALIGNNConfig
from skdynemb.backbones.alignn.model import ALIGNN
from skdynemb.backbones.alignn.names import official_names, resolve
from skdynemb.backbones.base import Backbone, StageOutput, atom_rows
from skdynemb.backbones.alignn.graphs import AlignnBatch, KNearestGraph, batch_graphs

#: The precision choices of :class:`AlignnBackbone` (see the module docstring).
PRECISIONS = ("fp32", "tf32", "bf16")


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else a ``ValueError`` naming them.

    Parameters
    ----------
    precision : str
        The requested precision.

    Returns
    -------
    precision : str
        ``precision`` unchanged.

    Raises
    ------
    ValueError
        ``precision`` is not ``"fp32"``, ``"tf32"`` or ``"bf16"``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


@contextmanager
def precision_context(precision: str, device: torch.device | str) -> Iterator[None]:
    """Run the forward passes inside it at ``precision`` on ``device`` (then restore the settings).

    ``"fp32"``: autocast off and, on CUDA, TF32 matrix products off; ``"tf32"``: TF32 matrix
    products on CUDA (nothing changes on a CPU); ``"bf16"``: ``torch.autocast(device type,
    torch.bfloat16)``.

    Parameters
    ----------
    precision : {"fp32", "tf32", "bf16"}
        The arithmetic of the forward passes.
    device : torch.device or str
        The device they run on.
    """
    check_precision(precision)
    device_type = torch.device(device).type
    if precision == "bf16":
        with torch.autocast(device_type, dtype=torch.bfloat16):
            yield
        return
    if device_type != "cuda":
        with torch.autocast(device_type, enabled=False):
            yield
        return
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    try:
        with torch.autocast(device_type, enabled=False):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


@dataclass
class AlignnBackbone(Backbone):
    """An :class:`ALIGNN` exposed stage by stage (build it with :func:`load`).

    ``rule`` is the graph rule the network was trained on (from its checkpoint's config).
    :meth:`forward_stages` runs the structures it is given as one block-diagonal batch, at
    ``precision`` (``"fp32"``, ``"tf32"`` or ``"bf16"``; see the module docstring). Both are
    dataclass fields, so they are part of the cache key.

    Attributes
    ----------
    rule : KNearestGraph
        The graph rule of the checkpoint's training config (cutoff in Å, k neighbours, canonize).
    known_elements : int
        Highest atomic number with CGCNN atom features (100); structures with others are refused.
    precision : {"fp32", "tf32", "bf16"}
        Arithmetic of the forward passes.
    """

    rule: KNearestGraph = field(default_factory=KNearestGraph)
    known_elements: int = field(default=100, repr=False)
    precision: str = "fp32"

    def __post_init__(self):
        check_precision(self.precision)

    def check_elements(self, crystal, index: int) -> None:
        bad = sorted({int(z) for z in np.asarray(crystal.numbers) if not 1 <= z <= self.known_elements})
        if bad:
            raise ValueError(
                f"sample {index} (id={crystal.id!r}): {self.name} has no CGCNN atom features for "
                f"atomic number(s) {bad} (covers Z = 1..{self.known_elements})"
            )

    def batch(self, crystals: Sequence, first: int = 0) -> AlignnBatch:
        """The block-diagonal graph batch of ``crystals`` under :attr:`rule` (elements checked;
        ``first``: the sample index of ``crystals[0]``, for messages).

        Parameters
        ----------
        crystals : sequence of Crystal or structure
            The structures; non-:class:`~skdynemb.structures.Crystal` ones are coerced.
        first : int, default=0
            Global sample index of ``crystals[0]``, for error messages.

        Returns
        -------
        batch : AlignnBatch
            Their graphs as one block-diagonal graph (CPU tensors).
        """
        from skdynemb.structures import Crystal, to_crystal

        crystals = [c if isinstance(c, Crystal) else to_crystal(c, index=i) for i, c in enumerate(crystals, first)]
        for i, crystal in enumerate(crystals, first):
            self.check_elements(crystal, i)
        return batch_graphs([self.rule.build(c) for c in crystals])

    def forward_stages(self, crystals: Sequence) -> list[StageOutput]:
        """Per crystal: atom features per stage (site order), mean bond and angle features per stage.

        Parameters
        ----------
        crystals : sequence of Crystal or structure
            One batch of structures.

        Returns
        -------
        outputs : list of StageOutput
            One per crystal, float32: ``atom[s]`` of shape (n_atoms, d_s), ``bond[s]`` and
            ``angle[s]`` of shape (d_s,).
        """
        if len(crystals) == 0:
            return []
        self.module.eval()
        batch = self.batch(crystals)
        with torch.no_grad(), precision_context(self.precision, self.device):
            stages = self.module.stages(batch.to(self.device), pool_edges=True)
        sizes = torch.diff(batch.node_offsets).tolist()
        bonds = [y.float().cpu().numpy() for y in stages.y]
        angles = [z.float().cpu().numpy() for z in stages.z]
        return [
            StageOutput(atom=rows, bond=[b[i].copy() for b in bonds], angle=[a[i].copy() for a in angles])
            for i, rows in enumerate(atom_rows(stages.x, sizes))
        ]

    def predict_batch(self, crystals: Sequence, first: int = 0) -> np.ndarray:
        """The network's own prediction per crystal of this one batch (float32, units of the
        checkpoint's target; ALIGNN-FF: eV/atom).

        Parameters
        ----------
        crystals : sequence of Crystal or structure
            One batch of structures.
        first : int, default=0
            Global sample index of ``crystals[0]``, for error messages.

        Returns
        -------
        prediction : ndarray of shape (n_crystals,) or (n_crystals, k), float32
            The network's output per crystal.
        """
        if len(crystals) == 0:
            return np.empty(0, dtype=np.float32)
        self.module.eval()
        batch = self.batch(crystals, first)
        with torch.no_grad(), precision_context(self.precision, self.device):
            return self.module(batch.to(self.device)).float().cpu().numpy()


def _random_model(seed: int = 0) -> ALIGNN:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ALIGNN(ALIGNNConfig()).eval()


def load(weights: str | Path | None = None, precision: str = "fp32") -> AlignnBackbone:
    """An :class:`AlignnBackbone` from ``weights``.

    Parameters
    ----------
    weights : str or Path
        A checkpoint folder / zip / ``.pt`` path; an official model name
        (:func:`~skdynemb.backbones.alignn.names.official_names`, fetched once into the cache); or
        ``"random"`` for an untrained, seeded network (tests only). There is no implicit default:
        None raises.
    precision : {"fp32", "tf32", "bf16"}, default="fp32"
        :attr:`AlignnBackbone.precision`; it can also be set on the backbone afterwards.

    Returns
    -------
    backbone : AlignnBackbone
        The network on the CPU with its graph rule and stage names.

    Raises
    ------
    ValueError
        ``weights`` is None, or neither an existing path nor an official name; or ``precision`` is unknown.
    """
    check_precision(precision)
    if weights is None:
        raise ValueError(
            "ALIGNN needs weights: pass a checkpoint path (folder, zip or .pt), an official model name "
            "(e.g. 'alignnff_wt10', 'mp_e_form_alignn'; all in skdynemb.backbones.alignn.official_names()), "
            "or 'random' for an untrained seeded network (tests only)"
        )
    rule = KNearestGraph()
    if str(weights) == "random":
        model, name = _random_model(), "alignn:random"
    elif Path(weights).exists():
        model, rule = load_checkpoint(weights)
        name = f"alignn:{Path(weights).name}"
    elif str(weights) in official_names():
        path, pins = resolve(str(weights))
        model, rule = load_checkpoint(path, pins)
        name = f"alignn:{weights}"
    else:
        raise ValueError(
            f"ALIGNN weights {str(weights)!r}: no such file or folder, and not an official model name "
            "(skdynemb.backbones.alignn.official_names())"
        )
    config = model.config
    n_stages = 1 + config.alignn_layers + config.gcn_layers
    return AlignnBackbone(
        name=name,
        module=model,
        stage_names=["embedding"]
        + [f"alignn{k}" for k in range(1, config.alignn_layers + 1)]
        + [f"gcn{k}" for k in range(1, config.gcn_layers + 1)],
        stage_dims=[config.hidden_features] * n_stages,
        bond_dims=[config.hidden_features] * n_stages,
        angle_dims=[config.hidden_features] * (1 + config.alignn_layers),
        known_elements=len(model.atom_features) - 1,
        rule=rule,
        precision=precision,
    )
