"""ALIGNN building blocks: Gaussian expansion, MLP layer, edge-gated graph convolution, ALIGNN layer.

Module and parameter names are those of the official ``alignn.models.alignn(_atomwise)``.
Message passing is gathers and ``index_add_`` over block-diagonal batches; every sum over edges
takes a per-edge weight, the edge's multiplicity in the official multigraph (see
:mod:`skdynemb.graphs`), so distinct edges are computed once.

Inference (eval mode, no autograd) takes a faster path with the same maths: on the CPU the
per-edge work runs over blocks of :data:`EDGE_BLOCK` edges that stay in the core's cache, on
other devices (GPU) over all of a batch's edges at once; sums over the edges of one graph are
float32 cascade sums, accumulated across blocks in float64. The path honours
``torch.autocast`` (bfloat16 matrix products, float32 sums and norms).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from skdynemb.graphs import AlignnBatch

#: Edges per block of the CPU inference path (1024 x 256 float32 = 1 MiB, the L2 cache of one core
#: of current x86 server CPUs); on other devices a batch's edges form one block.
EDGE_BLOCK = 1024


def edge_block(tensor: torch.Tensor, rows: int) -> int:
    """Rows per block of the inference path for ``rows`` rows on ``tensor``'s device: :data:`EDGE_BLOCK`
    on the CPU, all of them (one block per batch) elsewhere."""
    return EDGE_BLOCK if tensor.device.type == "cpu" else max(int(rows), 1)


def _denormals_flushed() -> bool:
    """Whether this thread flushes float32 denormals to zero (a denormal times 1 reads as 0)."""
    return (torch.tensor([1e-39], dtype=torch.float32) * 1.0).item() == 0.0


@contextmanager
def flush_denormals(device: torch.device | str) -> Iterator[None]:
    """Flush float32 denormals to zero on this CPU thread while open, then restore the previous mode.

    The edge gates of trained ALIGNN models are mostly saturated (``|m| > 87`` for most entries of
    ALIGNN-FF), and a sigmoid whose result is a denormal (< 1.2e-38) takes the processor's slow
    path: flushing halves its time. Numbers this small vanish next to the ``1e-6`` of the gate
    normalisation and the O(1) features, so the outputs do not change (checked bit for bit on MP
    structures in ``tests/backbones/test_alignn.py``). Other devices: no-op.
    """
    if torch.device(device).type != "cpu":
        yield
        return
    before = _denormals_flushed()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)


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


def _matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` as float32 (under ``torch.autocast`` the product itself runs in the autocast dtype)."""
    return torch.mm(a, b).float()


def _add_matmul_(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``out += a @ b`` in place; one fused GEMM unless autocast asks for a lower-precision product."""
    if torch.is_autocast_enabled(out.device.type):
        return out.add_(torch.mm(a, b))
    return torch.addmm(out, a, b, out=out)


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

    def forward(self, src, dst, weight, x: torch.Tensor, y: torch.Tensor, reuse_y: bool = False,
                y_distinct: tuple[torch.Tensor, torch.Tensor] | None = None):
        """New (x, y).

        Parameters
        ----------
        src, dst : Tensor of shape (E,), int64
            Edges, sorted by ``src``.
        weight : Tensor of shape (E,), float32
            Per-edge multiplicities.
        x : Tensor of shape (N, F)
            Node features.
        y : Tensor of shape (E, F)
            Edge features.
        reuse_y : bool
            Inference may write the new y into y's memory (y is then lost).
        y_distinct : tuple of Tensor, optional
            ``(rows, index)`` with ``y == rows[index]``: inference then computes the edge gate
            ``W_e y`` once per distinct row (the embedding stage's bonds and angles repeat).
        """
        if not self.training and not torch.is_grad_enabled():
            return self._inference(src, dst, weight, x, y, reuse_y, y_distinct)
        m = self.src_gate(x).index_select(0, src) + self.dst_gate(x).index_select(0, dst) + self.edge_gate(y)
        sigma = torch.sigmoid(m) * weight.unsqueeze(1)
        messages = self.dst_update(x).index_select(0, src) * sigma
        shape = (x.shape[0], m.shape[1])
        sum_sigma_h = m.new_zeros(shape).index_add_(0, dst, messages)
        sum_sigma = m.new_zeros(shape).index_add_(0, dst, sigma)
        h = self.src_update(x) + sum_sigma_h / (sum_sigma + 1e-6)
        return x + F.silu(self.bn_nodes(h)), y + F.silu(self.bn_edges(m))

    def _inference(self, src, dst, weight, x, y, reuse_y, y_distinct=None):
        """Same maths as :meth:`forward` (eval mode, no autograd), over blocks of edges.

        Per block: ``m`` is one ``embedding_bag`` sum over a table of the node-level gates
        (``W_s x + b_e`` and ``W_d x``; with ``y_distinct`` also ``W_e`` times each distinct y),
        then ``+= y W_e^T`` in place; sigma and sigma ``V x_src`` share one buffer and one
        ``index_add_``. On the CPU the blocks hold :data:`EDGE_BLOCK` edges, so the temporaries
        stay in cache and memory does not grow with the edges (line graphs of large batches
        have ~10^5-10^6 edges x 256 features); on a GPU one block holds them all.
        """
        n_nodes, width = x.shape[0], self.src_gate.out_features
        edge_weight = self.edge_gate.weight.t()
        # the edge-gate bias is added once per node instead of once per edge
        tables = [self.src_gate(x).float() + self.edge_gate.bias, self.dst_gate(x).float()]
        columns = [src, dst + n_nodes]
        if y_distinct is not None:
            rows, index = y_distinct
            tables.append(_matmul(rows, edge_weight))
            columns.append(index + 2 * n_nodes)
        table, bags = torch.cat(tables), torch.stack(columns, 1)
        dst_update = self.dst_update(x).float()
        sums = table.new_zeros((n_nodes, 2 * width))  # [sum_e w sigma | sum_e w sigma V x_src]
        unit_weight = bool((weight == 1).all())
        y_out = y if reuse_y else torch.empty_like(y)  # fresh memory costs page faults
        step = edge_block(x, len(src))
        work = table.new_empty((min(step, len(src)), 2 * width))
        for start in range(0, len(src), step):
            block = slice(start, start + step)
            s, d = src[block], dst[block]
            m = F.embedding_bag(bags[block], table, mode="sum")
            if y_distinct is None:
                _add_matmul_(m, y[block], edge_weight)
            part = work[: len(s)]
            sigma, message = part[:, :width], part[:, width:]
            torch.sigmoid(m, out=sigma)
            if not unit_weight:
                sigma.mul_(weight[block].unsqueeze(1))
            torch.mul(dst_update.index_select(0, s), sigma, out=message)
            sums.index_add_(0, d, part)
            torch.add(y[block], F.silu(self.bn_edges(m), inplace=True), out=y_out[block])
        h = self.src_update(x).float() + sums[:, width:] / (sums[:, :width] + 1e-6)
        return x + F.silu(self.bn_nodes(h)), y_out


class ALIGNNConv(nn.Module):
    """One ALIGNN layer: edge-gated conv on the atom graph, then on the line graph."""

    def __init__(self, in_features: int, out_features: int, norm: str = "batch"):
        super().__init__()
        self.node_update = EdgeGatedGraphConv(in_features, out_features, norm)
        self.edge_update = EdgeGatedGraphConv(out_features, out_features, norm)

    def forward(self, batch: AlignnBatch, x, y, z, reuse_yz: bool = False, distinct=None):
        """New (x, y, z); ``distinct``: ``(y_distinct, z_distinct)`` for the inference path (see
        :meth:`EdgeGatedGraphConv.forward`), valid for the embedding stage's y and z only."""
        y_distinct, z_distinct = (None, None) if distinct is None else distinct
        x, y = self.node_update(batch.edge_src, batch.edge_dst, batch.edge_weight, x, y, reuse_y=reuse_yz,
                                y_distinct=y_distinct)
        y, z = self.edge_update(batch.lg_src, batch.lg_dst, batch.lg_weight, y, z, reuse_y=reuse_yz,
                                y_distinct=z_distinct)
        return x, y, z


def segment_mean(values: torch.Tensor, index: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Mean of the rows of ``values`` per segment id in ``index`` -> (num_segments, d)."""
    total = values.new_zeros((num_segments, values.shape[1])).index_add_(0, index, values)
    count = torch.bincount(index, minlength=num_segments).clamp(min=1).to(values.dtype)
    return total / count.unsqueeze(1)


def weighted_segment_mean(values: torch.Tensor, index: torch.Tensor, num_segments: int,
                          weight: torch.Tensor) -> torch.Tensor:
    """Mean of the rows of ``values`` per segment, row r counted ``weight[r]`` times.

    Accumulated in float64 (a structure's line graph has up to ~10^5 rows; float32 sums of that
    many drift by ~1e-5 relative, more than the multigraph and distinct-edge orders of summation
    differ), over blocks of :func:`edge_block` rows (on the CPU the float64 copy of a block stays
    in cache).
    """
    weight = weight.to(torch.float64)
    total = values.new_zeros((num_segments, values.shape[1]), dtype=torch.float64)
    step = edge_block(values, len(values))
    for start in range(0, len(values), step):
        block = slice(start, start + step)
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
    step = edge_block(values, len(values))
    for start in range(0, len(values), step):
        out[start : start + step] = module(values[start : start + step])
    return out


def rowwise_distinct(module: nn.Module, values: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rows, index)`` with ``module(values) == rows[index]``: a row-wise module of 1-d values
    (an embedding of bond lengths or angle cosines) computed once per distinct value.

    Inference only (eval mode, no autograd): in training, a batch norm's statistics would see
    each value once instead of once per row.
    """
    if module.training or torch.is_grad_enabled():
        raise RuntimeError("rowwise_distinct is for inference (eval mode, no autograd)")
    distinct, index = torch.unique(values, return_inverse=True)
    return rowwise(module, distinct, width), index


def cutoff_envelope(length: torch.Tensor, inner_cutoff: float, exponent: int = 3) -> torch.Tensor:
    """The official smooth cutoff of alignn_atomwise: with t = length / inner_cutoff and p = exponent,
    ``1 - (p+1)(p+2)/2 t^p + p(p+2) t^(p+1) - p(p+1)/2 t^(p+2)`` (p = 3: ``1 - 10t^3 + 15t^4 - 6t^5``),
    0 beyond."""
    t = length / inner_cutoff
    p = exponent
    envelope = 1 - (p + 1) * (p + 2) / 2 * t**p + p * (p + 2) * t ** (p + 1) - p * (p + 1) / 2 * t ** (p + 2)
    return torch.where(t <= 1, envelope, torch.zeros_like(length))
