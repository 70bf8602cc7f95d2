"""Batching of compounds for per-element models: variable-size compounds -> one concatenated graph.

A compound is a set of element rows (features (n_el, d) and fractions (n_el,)); a batch of
compounds is concatenated without padding into a :class:`CompoundBatch`, with the index pairs
of a fully connected graph (self loops included) within each compound. Any per-element model
on skorch (Roost, :mod:`skdynemb.models.roost`) uses :class:`CompoundDataset`,
:func:`collate_compounds` and :class:`CompoundBatchNet`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from skorch import NeuralNet
from torch.utils.data import Dataset


class CompoundDataset(Dataset):
    """Items ((features (n_el, d), fractions (n_el,)), target (1,)) of the selected compounds.

    Parameters
    ----------
    feats : list of ndarray of shape (n_el, d), float32
        Element rows of every compound.
    fracs : list of ndarray of shape (n_el,), float32
        Atomic fractions of every compound's elements (each sums to 1).
    y : ndarray of shape (n_compounds, 1), float32, or None
        Standardised targets; None (prediction) gives zero targets.
    idx : ndarray of int
        The compounds (indices into ``feats``) this dataset holds, in order.
    """

    def __init__(self, feats, fracs, y, idx):
        self.feats, self.fracs, self.y, self.idx = feats, fracs, y, idx

    def __len__(self):
        return len(self.idx)

    def __getitem__(self, i):
        j = self.idx[i]
        target = np.zeros(1, np.float32) if self.y is None else self.y[j]
        return (self.feats[j], self.fracs[j]), target


@dataclass(frozen=True)
class CompoundBatch:
    """Compounds concatenated into one graph: N element rows, E = sum of n_el**2 pair edges.

    ``len()`` is the number of compounds (skorch's batch size).

    Attributes
    ----------
    elem_fea : torch.Tensor of shape (N, d)
        Element rows.
    elem_weights : torch.Tensor of shape (N, 1)
        Their atomic fractions.
    self_idx, nbr_idx : torch.Tensor of shape (E,)
        Row indices of each (element, neighbour) pair within the same compound.
    compound_idx : torch.Tensor of shape (N,)
        Compound of each row.
    n_compounds : int
        Number of compounds.
    """

    elem_fea: torch.Tensor
    elem_weights: torch.Tensor
    self_idx: torch.Tensor
    nbr_idx: torch.Tensor
    compound_idx: torch.Tensor
    n_compounds: int

    def __len__(self):
        return self.n_compounds

    def to(self, device):
        """The batch on ``device``.

        Parameters
        ----------
        device : str or torch.device
            Target device.

        Returns
        -------
        batch : CompoundBatch
            A new batch whose tensors are on ``device``.
        """
        names = ("elem_fea", "elem_weights", "self_idx", "nbr_idx", "compound_idx")
        return CompoundBatch(**{k: getattr(self, k).to(device) for k in names}, n_compounds=self.n_compounds)

    def double(self):
        """The batch with float64 element rows and fractions (index tensors unchanged).

        Returns
        -------
        batch : CompoundBatch
            A new batch, for a network evaluated in float64.
        """
        return replace(self, elem_fea=self.elem_fea.double(), elem_weights=self.elem_weights.double())


def collate_compounds(batch):
    """Items of :class:`CompoundDataset` -> (CompoundBatch, y (B, 1)); no padding.

    Parameters
    ----------
    batch : list of tuple
        ``((features, fractions), target)`` items of a :class:`CompoundDataset`.

    Returns
    -------
    X : CompoundBatch
        The compounds concatenated into one graph.
    y : torch.Tensor of shape (B, 1)
        Their targets.
    """
    items, ys = zip(*batch)
    sizes = np.array([len(w) for _, w in items])
    starts = np.cumsum(sizes) - sizes
    self_idx = np.concatenate([s + np.repeat(np.arange(n), n) for s, n in zip(starts, sizes)])
    nbr_idx = np.concatenate([s + np.tile(np.arange(n), n) for s, n in zip(starts, sizes)])
    X = CompoundBatch(
        elem_fea=torch.from_numpy(np.concatenate([f for f, _ in items])),
        elem_weights=torch.from_numpy(np.concatenate([w for _, w in items]))[:, None],
        self_idx=torch.from_numpy(self_idx),
        nbr_idx=torch.from_numpy(nbr_idx),
        compound_idx=torch.from_numpy(np.repeat(np.arange(len(sizes)), sizes)),
        n_compounds=len(sizes),
    )
    return X, torch.from_numpy(np.stack(ys))


class CompoundBatchNet(NeuralNet):
    """skorch net whose batches are :class:`CompoundBatch` objects (moved, not converted)."""

    def infer(self, x, **fit_params):
        """The module's output on batch ``x``, moved to the net's device first.

        Parameters
        ----------
        x : CompoundBatch
            A batch of compounds.
        **fit_params
            Passed to the module's ``forward``.

        Returns
        -------
        output : torch.Tensor of shape (n_compounds, n_outputs)
            The module's output.
        """
        return self.module_(x.to(self.device), **fit_params)
