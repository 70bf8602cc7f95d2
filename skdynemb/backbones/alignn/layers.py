"""ALIGNN building blocks: Gaussian expansion, MLP layer, edge-gated graph convolution, ALIGNN layer.

Module and parameter names are those of the official ``alignn.models.alignn(_atomwise)``.
Message passing is gathers and ``index_add_`` over block-diagonal batches; every sum over edges
takes a per-edge weight, the edge's multiplicity in the official multigraph (see
:mod:`skdynemb.backbones.alignn.graphs`), so distinct edges are computed once.

Inference (eval mode, no autograd) takes a faster path with the same maths: on the CPU the
per-edge work runs over blocks of :data:`EDGE_BLOCK` edges that stay in the core's cache, on
other devices (GPU) over all of a batch's edges at once; means over the edges of one graph are
accumulated in float64. The layers' large temporaries (and, with pooled edges, the edge rows
themselves) live in a :class:`Workspace` that on the CPU each thread keeps between passes
(:func:`held_workspace`, up to :data:`KEEP_WORKSPACE_BYTES`), so a pass reuses memory instead of
faulting in fresh pages. The path
honours ``torch.autocast`` (bfloat16 matrix products, float32 sums and norms).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from skdynemb.backbones.alignn.graphs import AlignnBatch

#: Edges per block of the CPU inference path (1024 x 256 float32 = 1 MiB, the L2 cache of one core
#: of current x86 server CPUs); on other devices a batch's edges form one block.
EDGE_BLOCK = 1024


def edge_block(tensor: torch.Tensor, rows: int) -> int:
    """Rows per block of the inference path for ``rows`` rows on ``tensor``'s device: :data:`EDGE_BLOCK`
    on the CPU, all of them (one block per batch) elsewhere.

    Parameters
    ----------
    tensor : torch.Tensor
        Any tensor on the device the blocks will run on.
    rows : int
        Number of rows to process.

    Returns
    -------
    block : int
        Rows per block (at least 1).
    """
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

    Parameters
    ----------
    device : torch.device or str
        The device the computation runs on; only ``"cpu"`` changes the flush mode.
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
    """``BatchNorm1d`` (``"batch"``) or ``LayerNorm`` (``"layer"``, eps 1e-5, affine) over ``features``.

    Parameters
    ----------
    norm : {"batch", "layer"}
        Which normalisation.
    features : int
        Width of the normalised rows.

    Returns
    -------
    layer : torch.nn.Module
        A fresh normalisation layer.

    Raises
    ------
    ValueError
        ``norm`` is neither ``"batch"`` nor ``"layer"``.
    """
    if norm == "batch":
        return nn.BatchNorm1d(features)
    if norm == "layer":
        return nn.LayerNorm(features)
    raise ValueError(f"norm must be 'batch' or 'layer', got {norm!r}")


class RBFExpansion(nn.Module):
    """Gaussians ``exp(-gamma (v - c_k)^2)`` on ``bins`` centres over [vmin, vmax].

    ``gamma = 1 / mean(diff(centres))`` (not squared), as in the official code.

    Parameters
    ----------
    vmin, vmax : float
        First and last centre (Å for bond lengths, dimensionless for angle cosines).
    bins : int
        Number of Gaussians, the output width.
    """

    def __init__(self, vmin: float, vmax: float, bins: int):
        super().__init__()
        self.register_buffer("centers", torch.linspace(vmin, vmax, bins))
        self.gamma = 1.0 / float(np.diff(self.centers.numpy()).mean())

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return torch.exp(-self.gamma * (values.unsqueeze(1) - self.centers) ** 2)


class MLPLayer(nn.Module):
    """Linear -> norm -> SiLU (submodule ``layer``, as the official one).

    Parameters
    ----------
    in_features, out_features : int
        Input and output widths.
    norm : {"batch", "layer"}, default="batch"
        The normalisation, see :func:`norm_layer`.
    """

    def __init__(self, in_features: int, out_features: int, norm: str = "batch"):
        super().__init__()
        self.layer = nn.Sequential(nn.Linear(in_features, out_features), norm_layer(norm, out_features), nn.SiLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


def _add_matmul_(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``out += a @ b`` in place; one fused GEMM unless autocast asks for a lower-precision product."""
    if torch.is_autocast_enabled(out.device.type):
        return out.add_(torch.mm(a, b))
    return torch.addmm(out, a, b, out=out)


def _linear_into(out: torch.Tensor, linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``out[:] = linear(x)`` (float32) without a temporary: one GEMM writing ``out``, unless autocast
    asks for a lower-precision product (then the product is cast into ``out``)."""
    if torch.is_autocast_enabled(out.device.type):
        return out.copy_(linear(x))
    return torch.addmm(linear.bias, x, linear.weight.t(), out=out)


def _matmul_into(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``out[:] = a @ b`` (float32) without a temporary, unless autocast asks for a lower-precision
    product (then the product is cast into ``out``)."""
    if torch.is_autocast_enabled(out.device.type):
        return out.copy_(torch.mm(a, b))
    return torch.mm(a, b, out=out)


class Workspace:
    """Scratch memory shared by the layers of inference passes.

    A layer's large temporaries (node-level gate tables, the sums into nodes: for the line graph of
    64 MP structures ~20,000 nodes x 512 float32 = 40 MB each; the angle rows, ~270,000 x 256
    float32 = 270 MB) would otherwise be fresh memory in every layer and every pass, which the
    operating system maps and zeroes page by page on first touch (~0.3 s of page faults in a
    3.5 s ALIGNN-FF forward on one thread). Each named buffer grows to the largest size asked for
    and is handed out as a view; a layer's scratch is overwritten by the next layer, so nothing
    taken from a workspace may be returned from a pass.
    """

    def __init__(self):
        self._memory: dict[str, torch.Tensor] = {}

    def take(self, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """An uninitialised tensor of ``shape`` in buffer ``name``, with ``like``'s dtype and device.

        Parameters
        ----------
        name : str
            The buffer; tensors taken from one buffer share memory.
        shape : tuple of int
            Shape of the tensor.
        like : torch.Tensor
            Gives the dtype and device.

        Returns
        -------
        tensor : torch.Tensor
            A contiguous view of the buffer, contents undefined.
        """
        size = math.prod(shape)
        memory = self._memory.get(name)
        if memory is None or memory.numel() < size or memory.dtype != like.dtype or memory.device != like.device:
            self._memory.pop(name, None)  # free the old buffer before allocating its successor
            memory = self._memory[name] = like.new_empty(size)
        return memory[:size].view(shape)

    @property
    def nbytes(self) -> int:
        """Bytes the workspace holds.

        Returns
        -------
        nbytes : int
            Total size of its buffers.
        """
        return sum(m.numel() * m.element_size() for m in self._memory.values())


#: Scratch memory (bytes) a thread keeps between CPU passes; a larger workspace is freed when its pass
#: ends. ALIGNN-FF on 64 MP structures needs ~0.6 GB (mostly the pass's own angle rows).
KEEP_WORKSPACE_BYTES = 1 << 30

_held = threading.local()


@contextmanager
def held_workspace(device: torch.device | str) -> Iterator[Workspace]:
    """The workspace of one inference pass on ``device``, while open.

    On the CPU it is the calling thread's own, kept for the thread's next pass (the next batch
    reuses its memory) unless it has grown beyond :data:`KEEP_WORKSPACE_BYTES`, in which case it
    is emptied when the pass ends; elsewhere it is a fresh one (a GPU's caching allocator already
    reuses memory).

    Parameters
    ----------
    device : torch.device or str
        The device the pass runs on.

    Yields
    ------
    workspace : Workspace
        Scratch memory for one pass at a time.
    """
    if torch.device(device).type != "cpu":
        yield Workspace()
        return
    if not hasattr(_held, "workspace"):
        _held.workspace = Workspace()
    try:
        yield _held.workspace
    finally:
        if _held.workspace.nbytes > KEEP_WORKSPACE_BYTES:
            _held.workspace = Workspace()


class EdgeGatedGraphConv(nn.Module):
    """Edge-gated graph convolution (residual): updates node features x and edge features y.

    ``m_e = W_s x_src + W_d x_dst + W_e y_e``; ``x'_i = x_i + SiLU(N(U x_i + sum_e w_e sigma(m_e) V x_src /
    (sum_e w_e sigma(m_e) + 1e-6)))`` over edges e into i, with w_e the edge's multiplicity;
    ``y'_e = y_e + SiLU(N(m_e))``; N the norm.

    Parameters
    ----------
    input_features, output_features : int
        Widths of the input and output node / edge features (equal for the residual).
    norm : {"batch", "layer"}, default="batch"
        The normalisation N, see :func:`norm_layer`.
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

    def forward(self, src, dst, weight, x: torch.Tensor, y: torch.Tensor | None, reuse_y: bool = False,
                y_distinct: tuple[torch.Tensor, torch.Tensor] | None = None, workspace: Workspace | None = None,
                y_out: torch.Tensor | None = None):
        """New (x, y).

        Parameters
        ----------
        src, dst : Tensor of shape (E,), int64
            Edges, sorted by ``src``.
        weight : Tensor of shape (E,), float32
            Per-edge multiplicities.
        x : Tensor of shape (N, F)
            Node features.
        y : Tensor of shape (E, F) or None
            Edge features; None (inference with ``y_distinct`` only): ``rows[index]``, gathered block
            by block instead of held whole.
        reuse_y : bool
            Inference may write the new y into y's memory (y is then lost).
        y_distinct : tuple of Tensor, optional
            ``(rows, index)`` with ``y == rows[index]``: inference then computes the edge gate
            ``W_e y`` once per distinct row (the embedding stage's bonds and angles repeat).
        workspace : Workspace, optional
            Scratch memory for the inference path, shared with the pass's other layers; None: fresh.
        y_out : Tensor of shape (E, F), optional
            Inference: memory for the new y; None: y's own with ``reuse_y`` (and y given), else fresh.

        Returns
        -------
        x : Tensor of shape (N, F)
            Updated node features.
        y : Tensor of shape (E, F)
            Updated edge features.
        """
        if not self.training and not torch.is_grad_enabled():
            return self._inference(src, dst, weight, x, y, reuse_y, y_distinct,
                                   Workspace() if workspace is None else workspace, y_out)
        if y is None:
            rows, index = y_distinct
            y = rows.index_select(0, index)
        m = self.src_gate(x).index_select(0, src) + self.dst_gate(x).index_select(0, dst) + self.edge_gate(y)
        sigma = torch.sigmoid(m) * weight.unsqueeze(1)
        messages = self.dst_update(x).index_select(0, src) * sigma
        shape = (x.shape[0], m.shape[1])
        sum_sigma_h = m.new_zeros(shape).index_add_(0, dst, messages)
        sum_sigma = m.new_zeros(shape).index_add_(0, dst, sigma)
        h = self.src_update(x) + sum_sigma_h / (sum_sigma + 1e-6)
        return x + F.silu(self.bn_nodes(h)), y + F.silu(self.bn_edges(m))

    def _inference(self, src, dst, weight, x, y, reuse_y, y_distinct, workspace, y_out):
        """Same maths as :meth:`forward` (eval mode, no autograd), over blocks of edges.

        Per block: ``m`` is one ``embedding_bag`` sum over a table of the node-level gates
        (``W_s x + b_e`` and ``W_d x``; with ``y_distinct`` also ``W_e`` times each distinct y),
        then ``+= y W_e^T`` in place; sigma and sigma ``V x_src`` share one buffer and one
        ``index_add_``. On the CPU the blocks hold :data:`EDGE_BLOCK` edges, so the temporaries
        stay in cache and memory does not grow with the edges (line graphs of large batches
        have ~10^5-10^6 edges x 256 features); on a GPU one block holds them all. The node-level
        tables and sums live in ``workspace``.
        """
        n_nodes, width = x.shape[0], self.src_gate.out_features
        edge_weight = self.edge_gate.weight.t()
        rows, index = (x[:0], None) if y_distinct is None else y_distinct
        like = x.new_empty(0, dtype=torch.float32)
        table = workspace.take("table", (2 * n_nodes + len(rows), width), like)
        # the edge-gate bias is added once per node instead of once per edge
        _linear_into(table[:n_nodes], self.src_gate, x).add_(self.edge_gate.bias)
        _linear_into(table[n_nodes : 2 * n_nodes], self.dst_gate, x)
        columns = [src, dst + n_nodes]
        if index is not None:
            _matmul_into(table[2 * n_nodes :], rows, edge_weight)
            columns.append(index + 2 * n_nodes)
        bags = torch.stack(columns, 1)
        node_rows = _linear_into(workspace.take("node_rows", (n_nodes, width), like), self.dst_update, x)
        sums = workspace.take("sums", (n_nodes, 2 * width), like).zero_()  # [sum_e w sigma | sum_e w sigma V x_src]
        unit_weight = bool((weight == 1).all())
        step = edge_block(x, len(src))
        if y is None:  # y = rows[index], gathered per block into `residual`
            residual = workspace.take("residual", (min(step, len(src)), width), rows)
        if y_out is None:
            y_out = y if reuse_y and y is not None else like.new_empty((len(src), width))
        work = workspace.take("work", (min(step, len(src)), 2 * width), like)
        gathered = workspace.take("gathered", (len(work), width), like)  # V x_src of a block
        for start in range(0, len(src), step):
            block = slice(start, start + step)
            s, d = src[block], dst[block]
            y_block = y[block] if y is not None else torch.index_select(rows, 0, index[block], out=residual[: len(s)])
            m = F.embedding_bag(bags[block], table, mode="sum")
            if y_distinct is None:
                _add_matmul_(m, y_block, edge_weight)
            part = work[: len(s)]
            sigma, message = part[:, :width], part[:, width:]
            torch.sigmoid(m, out=sigma)
            if not unit_weight:
                sigma.mul_(weight[block].unsqueeze(1))
            torch.mul(torch.index_select(node_rows, 0, s, out=gathered[: len(s)]), sigma, out=message)
            sums.index_add_(0, d, part)
            torch.add(y_block, F.silu(self.bn_edges(m), inplace=True), out=y_out[block])
        # h = U x + sum_sigma_h / (sum_sigma + 1e-6)
        quotient = sums[:, width:].div_(sums[:, :width].add_(1e-6))
        h = torch.add(quotient, _linear_into(node_rows, self.src_update, x), out=node_rows)  # contiguous for the norm
        return F.silu(self.bn_nodes(h), inplace=True).add_(x), y_out


class ALIGNNConv(nn.Module):
    """One ALIGNN layer: edge-gated conv on the atom graph, then on the line graph.

    Parameters
    ----------
    in_features, out_features : int
        Input and output feature widths.
    norm : {"batch", "layer"}, default="batch"
        The normalisation, see :func:`norm_layer`.
    """

    def __init__(self, in_features: int, out_features: int, norm: str = "batch"):
        super().__init__()
        self.node_update = EdgeGatedGraphConv(in_features, out_features, norm)
        self.edge_update = EdgeGatedGraphConv(out_features, out_features, norm)

    def forward(self, batch: AlignnBatch, x, y, z, reuse_yz: bool = False, distinct=None,
                workspace: Workspace | None = None):
        """New (x, y, z); ``distinct``: ``(y_distinct, z_distinct)`` for the inference path (see
        :meth:`EdgeGatedGraphConv.forward`), valid for the embedding stage's y and z only.

        Parameters
        ----------
        batch : AlignnBatch
            The graphs (edges, line-graph edges and their multiplicities).
        x : Tensor of shape (N, F)
            Atom features.
        y : Tensor of shape (E, F) or None
            Bond features (None only with ``distinct``).
        z : Tensor of shape (T, F) or None
            Angle (line-graph edge) features (None only with ``distinct``).
        reuse_yz : bool, default=False
            Inference may overwrite y and z in place; the new y and z are then the pass's own (they
            may live in ``workspace``).
        distinct : tuple, optional
            ``(y_distinct, z_distinct)``, each ``(rows, index)`` as returned by :func:`rowwise_distinct`.
        workspace : Workspace, optional
            Scratch memory of the inference path, shared by both convolutions.

        Returns
        -------
        x, y, z : Tensor
            Updated atom, bond and angle features, same shapes as the inputs.
        """
        y_distinct, z_distinct = (None, None) if distinct is None else distinct
        workspace = Workspace() if workspace is None else workspace
        y_out = z_out = None
        if reuse_yz and y is None:  # the new rows are the pass's own: scratch memory holds them
            y_out = workspace.take("bonds", (len(batch.edge_src), self.node_update.src_gate.out_features), x)
            z_out = workspace.take("angles", (len(batch.lg_src), self.edge_update.src_gate.out_features), x)
        x, y = self.node_update(batch.edge_src, batch.edge_dst, batch.edge_weight, x, y, reuse_y=reuse_yz,
                                y_distinct=y_distinct, workspace=workspace, y_out=y_out)
        y, z = self.edge_update(batch.lg_src, batch.lg_dst, batch.lg_weight, y, z, reuse_y=reuse_yz,
                                y_distinct=z_distinct, workspace=workspace, y_out=z_out)
        return x, y, z


def segment_mean(values: torch.Tensor, index: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Mean of the rows of ``values`` per segment id in ``index`` -> (num_segments, d).

    Parameters
    ----------
    values : torch.Tensor of shape (n, d)
        Rows to average.
    index : torch.Tensor of shape (n,), int64
        Segment of each row, in ``[0, num_segments)``.
    num_segments : int
        Number of segments (e.g. graphs in a batch).

    Returns
    -------
    mean : torch.Tensor of shape (num_segments, d)
        Per-segment mean; 0 for an empty segment.
    """
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

    Parameters
    ----------
    values : torch.Tensor of shape (n, d)
        Rows to average.
    index : torch.Tensor of shape (n,), int64
        Segment of each row, in ``[0, num_segments)``.
    num_segments : int
        Number of segments.
    weight : torch.Tensor of shape (n,)
        Times each row counts (edge multiplicities).

    Returns
    -------
    mean : torch.Tensor of shape (num_segments, d)
        Per-segment weighted mean in the dtype of ``values``; 0 for an empty segment.
    """
    weight = weight.to(torch.float64)
    total = values.new_zeros((num_segments, values.shape[1]), dtype=torch.float64)
    step = edge_block(values, len(values))
    for start in range(0, len(values), step):
        block = slice(start, start + step)
        # float32 rows times float64 weights: the products are float64, formed in one pass
        total.index_add_(0, index[block], torch.mul(values[block], weight[block].unsqueeze(1)))
    count = weight.new_zeros(num_segments).index_add_(0, index, weight).clamp(min=1)
    return (total / count.unsqueeze(1)).to(values.dtype)


def distinct_weighted_segment_mean(rows: torch.Tensor, index: torch.Tensor, segment: torch.Tensor,
                                   num_segments: int, weight: torch.Tensor,
                                   workspace: Workspace | None = None) -> torch.Tensor:
    """:func:`weighted_segment_mean` of ``rows[index]`` without forming it: each distinct row is
    weighted once per segment by the summed weight of its copies there (float64).

    Parameters
    ----------
    rows : Tensor of shape (D, F)
        Distinct rows.
    index : Tensor of shape (R,), int64
        Row r of the implicit values is ``rows[index[r]]``.
    segment : Tensor of shape (R,), int64
        Segment id of row r.
    num_segments : int
    weight : Tensor of shape (R,)
        Times row r counts.
    workspace : Workspace, optional
        Holds the gathered rows of the distinct (segment, row) pairs; None: fresh memory.

    Returns
    -------
    Tensor of shape (num_segments, F), dtype of ``rows``
    """
    pairs, inverse = torch.unique(segment * len(rows) + index, return_inverse=True)
    pair_weight = weight.to(torch.float64).new_zeros(len(pairs)).index_add_(0, inverse, weight.to(torch.float64))
    # one row per distinct (segment, row) pair, weighted by its copies: far fewer rows than R
    memory = None if workspace is None else workspace.take("pair rows", (len(pairs), rows.shape[1]), rows)
    pair_rows = torch.index_select(rows, 0, pairs % len(rows), out=memory)
    return weighted_segment_mean(pair_rows, torch.div(pairs, len(rows), rounding_mode="floor"), num_segments,
                                 pair_weight)


def rowwise(module: nn.Module, values: torch.Tensor, width: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """``module(values)`` for a row-wise module; in inference, block by block into one output.

    Avoids the large temporaries of the full call (for a line graph of 3e5 edges, ~1 GB of
    fresh memory and its page faults).

    Parameters
    ----------
    module : torch.nn.Module
        A module acting on each row independently.
    values : torch.Tensor of shape (n, ...)
        Its input.
    width : int
        Width of its output rows.
    out : torch.Tensor of shape (n, width), optional
        Inference: memory for the result (e.g. from a :class:`Workspace`); None: fresh memory.

    Returns
    -------
    out : torch.Tensor of shape (n, width)
        ``module(values)``.
    """
    if module.training or torch.is_grad_enabled():
        return module(values)
    if out is None:
        out = values.new_empty((len(values), width))
    step = edge_block(values, len(values))
    for start in range(0, len(values), step):
        out[start : start + step] = module(values[start : start + step])
    return out


def rowwise_distinct(module: nn.Module, values: torch.Tensor, width: int, workspace: Workspace | None = None,
                     name: str = "distinct rows") -> tuple[torch.Tensor, torch.Tensor]:
    """``(rows, index)`` with ``module(values) == rows[index]``: a row-wise module of 1-d values
    (an embedding of bond lengths or angle cosines) computed once per distinct value.

    Inference only (eval mode, no autograd): in training, a batch norm's statistics would see
    each value once instead of once per row.

    Parameters
    ----------
    module : torch.nn.Module
        A row-wise module in eval mode.
    values : torch.Tensor of shape (n,)
        1-d input values.
    width : int
        Width of the module's output rows.
    workspace : Workspace, optional
        Holds the rows (then valid until ``name`` is taken again); None: fresh memory.
    name : str, default="distinct rows"
        The workspace buffer.

    Returns
    -------
    rows : torch.Tensor of shape (u, width)
        ``module`` applied to the u distinct values, in sorted order.
    index : torch.Tensor of shape (n,), int64
        Row of ``rows`` for each input value.

    Raises
    ------
    RuntimeError
        Called in training mode or with autograd enabled.
    """
    if module.training or torch.is_grad_enabled():
        raise RuntimeError("rowwise_distinct is for inference (eval mode, no autograd)")
    distinct, index = torch.unique(values, return_inverse=True)
    out = None if workspace is None else workspace.take(name, (len(distinct), width), values)
    return rowwise(module, distinct, width, out), index


def cutoff_envelope(length: torch.Tensor, inner_cutoff: float, exponent: int = 3) -> torch.Tensor:
    """The official smooth cutoff of alignn_atomwise: with t = length / inner_cutoff and p = exponent,
    ``1 - (p+1)(p+2)/2 t^p + p(p+2) t^(p+1) - p(p+1)/2 t^(p+2)`` (p = 3: ``1 - 10t^3 + 15t^4 - 6t^5``),
    0 beyond.

    Parameters
    ----------
    length : torch.Tensor
        Bond lengths in Å.
    inner_cutoff : float
        Length (Å) at which the envelope reaches 0.
    exponent : int, default=3
        p.

    Returns
    -------
    envelope : torch.Tensor
        Same shape as ``length``, 1 at 0 Å falling smoothly to 0 at ``inner_cutoff``.
    """
    t = length / inner_cutoff
    p = exponent
    envelope = 1 - (p + 1) * (p + 2) / 2 * t**p + p * (p + 2) * t ** (p + 1) - p * (p + 1) / 2 * t ** (p + 2)
    return torch.where(t <= 1, envelope, torch.zeros_like(length))
