"""ALIGNN building blocks: Gaussian expansion, MLP layer, edge-gated graph convolution, ALIGNN layer.

Module and parameter names are those of the official ``alignn.models.alignn(_atomwise)``.
Message passing is gathers and ``index_add_`` over block-diagonal batches; every sum over edges
takes a per-edge weight, the edge's multiplicity in the official multigraph (see
:mod:`skdynemb.graphs`), so distinct edges are computed once.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from skdynemb.graphs import AlignnBatch

EDGE_BLOCK = 8192  # edges per block in inference (8192 x 256 float32 = 8 MiB)


def norm_layer(norm: str, features: int) -> nn.Module:
    """``BatchNorm1d`` (``"batch"``) or ``LayerNorm`` (``"layer"``, eps 1e-5, affine) over ``features``."""
    if norm == "batch":
        return nn.BatchNorm1d(features)
    if norm == "layer":
        return nn.LayerNorm(features)
    raise ValueError(f"norm must be 'batch' or 'layer', got {norm!r}")


class RBFExpansion(nn.Module):
    """Gaussians ``exp(-gamma (v - c_k)^2)`` on ``bins`` centres over [vmin, vmax].

    ``gamma = 1 / mean(diff(centres))`` (not squared), as in the official code.
    """

    def __init__(self, vmin: float, vmax: float, bins: int):
        super().__init__()
        self.register_buffer("centers", torch.linspace(vmin, vmax, bins))
        self.gamma = 1.0 / float(np.diff(self.centers.numpy()).mean())

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return torch.exp(-self.gamma * (values.unsqueeze(1) - self.centers) ** 2)


class MLPLayer(nn.Module):
    """Linear -> norm -> SiLU (submodule ``layer``, as the official one)."""

    def __init__(self, in_features: int, out_features: int, norm: str = "batch"):
        super().__init__()
        self.layer = nn.Sequential(nn.Linear(in_features, out_features), norm_layer(norm, out_features), nn.SiLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class EdgeGatedGraphConv(nn.Module):
    """Edge-gated graph convolution (residual): updates node features x and edge features y.

    ``m_e = W_s x_src + W_d x_dst + W_e y_e``; ``x'_i = x_i + SiLU(N(U x_i + sum_e w_e sigma(m_e) V x_src /
    (sum_e w_e sigma(m_e) + 1e-6)))`` over edges e into i, with w_e the edge's multiplicity;
    ``y'_e = y_e + SiLU(N(m_e))``; N the norm.
    """

    def __init__(self, input_features: int, output_features: int, norm: str = "batch"):
        super().__init__()
        self.src_gate = nn.Linear(input_features, output_features)
        self.dst_gate = nn.Linear(input_features, output_features)
        self.edge_gate = nn.Linear(input_features, output_features)
        self.bn_edges = norm_layer(norm, output_features)
        self.src_update = nn.Linear(input_features, output_features)
        self.dst_update = nn.Linear(input_features, output_features)
        self.bn_nodes = norm_layer(norm, output_features)

    def forward(self, src, dst, weight, x: torch.Tensor, y: torch.Tensor, reuse_y: bool = False):
        """New (x, y); ``weight`` (E,) per-edge multiplicities; ``reuse_y`` lets inference write the
        new y into y's memory (y is then lost)."""
        if not self.training and not torch.is_grad_enabled():
            return self._inference(src, dst, weight, x, y, reuse_y)
        m = self.src_gate(x).index_select(0, src) + self.dst_gate(x).index_select(0, dst) + self.edge_gate(y)
        sigma = torch.sigmoid(m) * weight.unsqueeze(1)
        messages = self.dst_update(x).index_select(0, src) * sigma
        shape = (x.shape[0], m.shape[1])
        sum_sigma_h = m.new_zeros(shape).index_add_(0, dst, messages)
        sum_sigma = m.new_zeros(shape).index_add_(0, dst, sigma)
        h = self.src_update(x) + sum_sigma_h / (sum_sigma + 1e-6)
        return x + F.silu(self.bn_nodes(h)), y + F.silu(self.bn_edges(m))

    def _inference(self, src, dst, weight, x, y, reuse_y):
        """Same maths as :meth:`forward` (eval mode, no autograd), over blocks of edges.

        The per-edge work runs on ``EDGE_BLOCK`` edges at a time, in place, so the temporaries
        stay in cache and memory does not grow with the number of edges (line graphs of large
        batches have ~10^5-10^6 edges x 256 features).
        """
        # the edge-gate bias is added once per node instead of once per edge
        src_gate = self.src_gate(x) + self.edge_gate.bias
        dst_gate, dst_update = self.dst_gate(x), self.dst_update(x)
        edge_weight = self.edge_gate.weight.t()
        shape = (x.shape[0], src_gate.shape[1])
        sum_sigma_h, sum_sigma = src_gate.new_zeros(shape), src_gate.new_zeros(shape)
        y_out = y if reuse_y else torch.empty_like(y)  # fresh memory costs page faults
        for start in range(0, len(src), EDGE_BLOCK):
            block = slice(start, start + EDGE_BLOCK)
            s, d = src[block], dst[block]
            m = src_gate.index_select(0, s)
            m += dst_gate.index_select(0, d)
            torch.addmm(m, y[block], edge_weight, out=m)
            sigma = torch.sigmoid(m).mul_(weight[block].unsqueeze(1))
            sum_sigma.index_add_(0, d, sigma)
            sum_sigma_h.index_add_(0, d, sigma.mul_(dst_update.index_select(0, s)))
            torch.add(y[block], F.silu(self.bn_edges(m), inplace=True), out=y_out[block])
        h = self.src_update(x) + sum_sigma_h / (sum_sigma + 1e-6)
        return x + F.silu(self.bn_nodes(h)), y_out


class ALIGNNConv(nn.Module):
    """One ALIGNN layer: edge-gated conv on the atom graph, then on the line graph."""

    def __init__(self, in_features: int, out_features: int, norm: str = "batch"):
        super().__init__()
        self.node_update = EdgeGatedGraphConv(in_features, out_features, norm)
        self.edge_update = EdgeGatedGraphConv(out_features, out_features, norm)

    def forward(self, batch: AlignnBatch, x, y, z, reuse_yz: bool = False):
        x, y = self.node_update(batch.edge_src, batch.edge_dst, batch.edge_weight, x, y, reuse_y=reuse_yz)
        y, z = self.edge_update(batch.lg_src, batch.lg_dst, batch.lg_weight, y, z, reuse_y=reuse_yz)
        return x, y, z


def segment_mean(values: torch.Tensor, index: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Mean of the rows of ``values`` per segment id in ``index`` -> (num_segments, d)."""
    total = values.new_zeros((num_segments, values.shape[1])).index_add_(0, index, values)
    count = torch.bincount(index, minlength=num_segments).clamp(min=1).to(values.dtype)
    return total / count.unsqueeze(1)


def weighted_segment_mean(values: torch.Tensor, index: torch.Tensor, num_segments: int,
                          weight: torch.Tensor) -> torch.Tensor:
    """Mean of the rows of ``values`` per segment, row r counted ``weight[r]`` times, accumulated in
    float64 (a structure's line graph has up to ~10^5 rows; float32 sums of that many drift by
    ~1e-5 relative, more than the multigraph and distinct-edge orders of summation differ)."""
    weight = weight.to(torch.float64)
    total = values.new_zeros((num_segments, values.shape[1]), dtype=torch.float64)
    for start in range(0, len(values), EDGE_BLOCK):
        block = slice(start, start + EDGE_BLOCK)
        total.index_add_(0, index[block], values[block].to(torch.float64) * weight[block].unsqueeze(1))
    count = weight.new_zeros(num_segments).index_add_(0, index, weight).clamp(min=1)
    return (total / count.unsqueeze(1)).to(values.dtype)


def rowwise(module: nn.Module, values: torch.Tensor, width: int) -> torch.Tensor:
    """``module(values)`` for a row-wise module; in inference, block by block into one output.

    Avoids the large temporaries of the full call (for a line graph of 3e5 edges, ~1 GB of
    fresh memory and its page faults).
    """
    if module.training or torch.is_grad_enabled():
        return module(values)
    out = values.new_empty((len(values), width))
    for start in range(0, len(values), EDGE_BLOCK):
        out[start : start + EDGE_BLOCK] = module(values[start : start + EDGE_BLOCK])
    return out


def cutoff_envelope(length: torch.Tensor, inner_cutoff: float, exponent: int = 3) -> torch.Tensor:
    """The official smooth cutoff of alignn_atomwise: with t = length / inner_cutoff and p = exponent,
    ``1 - (p+1)(p+2)/2 t^p + p(p+2) t^(p+1) - p(p+1)/2 t^(p+2)`` (p = 3: ``1 - 10t^3 + 15t^4 - 6t^5``),
    0 beyond."""
    t = length / inner_cutoff
    p = exponent
    envelope = 1 - (p + 1) * (p + 2) / 2 * t**p + p * (p + 2) * t ** (p + 1) - p * (p + 1) / 2 * t ** (p + 2)
    return torch.where(t <= 1, envelope, torch.zeros_like(length))
