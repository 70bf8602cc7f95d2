"""The ALIGNN network (Choudhary & DeCost, npj Comput. Mater. 7, 185, 2021) in pure PyTorch.

The module tree, parameter names and shapes are those of the official
``alignn.models.alignn.ALIGNN`` (``norm="batch"``) and ``alignn.models.alignn_atomwise.ALIGNNAtomWise``
(``norm="layer"``), so their checkpoints load with ``strict=True``. Inputs: 92-d CGCNN atom
features (jarvis-tools' table), bond lengths on 80 Gaussians over 0–8 Å, bond-angle cosines on 40
Gaussians over -1..1, on the block-diagonal batches of :mod:`skdynemb.backbones.alignn.graphs`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from skdynemb.backbones.alignn.config import ALIGNNConfig
from skdynemb.backbones.alignn.layers import (ALIGNNConv, EdgeGatedGraphConv, MLPLayer, RBFExpansion, Workspace,
                                              cutoff_envelope, distinct_weighted_segment_mean, flush_denormals,
                                              held_workspace, rowwise, rowwise_distinct, segment_mean,
                                              weighted_segment_mean)
from skdynemb.backbones.alignn.graphs import AlignnBatch


def cgcnn_feature_table() -> torch.Tensor:
    """(101, 92) float32: row Z = the CGCNN one-hot features of element Z (jarvis-tools), row 0 zeros.

    Returns
    -------
    table : torch.Tensor of shape (101, 92), float32
        Row Z holds element Z's CGCNN features; row 0 is zeros.
    """
    from jarvis.core.specie import cgcnn_feature_json

    with open(cgcnn_feature_json) as f:
        raw = {int(z): row for z, row in json.load(f).items()}
    table = torch.zeros(max(raw) + 1, len(raw[1]), dtype=torch.float32)
    for z, row in raw.items():  # ~100 elements, once
        table[z] = torch.tensor(row, dtype=torch.float32)
    return table


@dataclass
class AlignnStages:
    """Everything one forward pass computes.

    Attributes
    ----------
    x : list of Tensor
        1 + alignn_layers + gcn_layers node-feature tensors (N, hidden).
    y : list of Tensor
        The same number of bond-feature tensors (E, hidden) over the batch's distinct edges, or
        (B, hidden) per-graph means over the multigraph's edges.
    z : list of Tensor
        1 + alignn_layers angle-feature tensors (T, hidden) over distinct line-graph edges, or
        (B, hidden) per-graph means over the multigraph's line graph.
    readout : Tensor of shape (B, hidden)
        Mean node features after the last layer.
    output : Tensor of shape (B,) or (B, k)
        The prediction.
    """

    x: list[torch.Tensor]
    y: list[torch.Tensor]
    z: list[torch.Tensor]
    readout: torch.Tensor
    output: torch.Tensor


class ALIGNN(nn.Module):
    """The official ALIGNN architecture on :class:`~skdynemb.backbones.alignn.graphs.AlignnBatch` inputs.

    Parameters
    ----------
    config : ALIGNNConfig, optional
        Architecture settings; None: :class:`ALIGNNConfig`'s defaults.
    """

    def __init__(self, config: ALIGNNConfig | None = None):
        super().__init__()
        config = ALIGNNConfig() if config is None else config
        self.config = config
        hidden, norm = config.hidden_features, config.norm
        self.atom_embedding = MLPLayer(config.atom_input_features, hidden, norm)
        self.edge_embedding = nn.Sequential(
            RBFExpansion(0.0, 8.0, config.edge_input_features),
            MLPLayer(config.edge_input_features, config.embedding_features, norm),
            MLPLayer(config.embedding_features, hidden, norm),
        )
        self.angle_embedding = nn.Sequential(
            RBFExpansion(-1.0, 1.0, config.triplet_input_features),
            MLPLayer(config.triplet_input_features, config.embedding_features, norm),
            MLPLayer(config.embedding_features, hidden, norm),
        )
        self.alignn_layers = nn.ModuleList([ALIGNNConv(hidden, hidden, norm) for _ in range(config.alignn_layers)])
        self.gcn_layers = nn.ModuleList([EdgeGatedGraphConv(hidden, hidden, norm) for _ in range(config.gcn_layers)])
        self.fc = nn.Linear(hidden, config.num_classes if config.classification else config.output_features)
        if config.link == "log":
            # The official model replaces the bias by a 0-d tensor log(0.7) (mean band gap), so its
            # checkpoints store fc.bias with shape (); keep that shape for strict loading.
            self.fc.bias = nn.Parameter(torch.tensor(np.log(0.7), dtype=torch.float32))
        self.register_buffer("atom_features", cgcnn_feature_table(), persistent=False)

    def stages(self, batch: AlignnBatch, pool_edges: bool = False) -> AlignnStages:
        """Run the network, keeping every stage; ``pool_edges`` stores y, z as per-graph means.

        In inference (eval mode, no autograd) the embedding stage embeds each distinct bond length
        and angle cosine once, and on the CPU float32 denormals are flushed to zero during the pass
        (:func:`~skdynemb.backbones.alignn.layers.flush_denormals`; the caller's mode is restored)
        and the pass's scratch memory is the calling thread's workspace, kept for its next pass up to
        a size (:func:`~skdynemb.backbones.alignn.layers.held_workspace`).

        Parameters
        ----------
        batch : AlignnBatch
            The graphs, on the model's device.
        pool_edges : bool, default=False
            Store bond and angle features as (B, hidden) per-graph means instead of per edge.

        Returns
        -------
        stages : AlignnStages
            Node, bond and angle features of every stage, the readout and the prediction.

        Raises
        ------
        ValueError
            An atomic number is outside 1..100 (the CGCNN feature table).
        """
        if self.training or torch.is_grad_enabled():
            return self._stages(batch, pool_edges)
        device = batch.atomic_numbers.device
        with flush_denormals(device), held_workspace(device) as workspace:
            return self._stages(batch, pool_edges, workspace)

    def _stages(self, batch: AlignnBatch, pool_edges: bool, workspace: Workspace | None = None) -> AlignnStages:
        n_graphs = batch.num_graphs
        max_z = int(batch.atomic_numbers.max())
        if max_z >= len(self.atom_features) or int(batch.atomic_numbers.min()) < 1:
            raise ValueError(
                f"atomic numbers must be in 1..{len(self.atom_features) - 1} (CGCNN features); got up to {max_z}"
            )

        def keep_y(y):
            return weighted_segment_mean(y, batch.edge_graph_index, n_graphs, batch.edge_weight) if pool_edges else y

        def keep_z(z):
            return weighted_segment_mean(z, batch.lg_graph_index, n_graphs, batch.lg_count) if pool_edges else z

        length = torch.norm(batch.edge_r, dim=1)
        if self.config.use_cutoff_function:
            length = cutoff_envelope(length, self.config.inner_cutoff, self.config.exponent)
        hidden = self.config.hidden_features
        x = self.atom_embedding(self.atom_features.index_select(0, batch.atomic_numbers)).float()
        if self.training or torch.is_grad_enabled():
            y = rowwise(self.edge_embedding, length, hidden)
            z = rowwise(self.angle_embedding, batch.lg_h, hidden)
            distinct = None
        else:  # embed each distinct bond length and angle cosine once (~20 % of them in MP crystals)
            distinct = (rowwise_distinct(self.edge_embedding, length, hidden, workspace, "bond rows"),
                        rowwise_distinct(self.angle_embedding, batch.lg_h, hidden, workspace, "angle rows"))
            (y_rows, y_index), (z_rows, z_index) = distinct
            if pool_edges and len(self.alignn_layers):  # the first layer gathers y and z block by block;
                # the embedding stage's means come from the distinct rows
                y = z = None
                ys = [distinct_weighted_segment_mean(y_rows, y_index, batch.edge_graph_index, n_graphs,
                                                     batch.edge_weight, workspace)]
                zs = [distinct_weighted_segment_mean(z_rows, z_index, batch.lg_graph_index, n_graphs,
                                                     batch.lg_count, workspace)]
            else:
                y, z = y_rows.index_select(0, y_index), z_rows.index_select(0, z_index)
        xs = [x]
        if y is not None:
            ys, zs = [keep_y(y)], [keep_z(z)]
        for layer in self.alignn_layers:
            x, y, z = layer(batch, x, y, z, reuse_yz=pool_edges, distinct=distinct, workspace=workspace)
            distinct = None  # the distinct rows are those of the embedding stage only
            xs.append(x)
            ys.append(keep_y(y))
            zs.append(keep_z(z))
        for layer in self.gcn_layers:
            x, y = layer(batch.edge_src, batch.edge_dst, batch.edge_weight, x, y, reuse_y=pool_edges,
                         workspace=workspace)
            xs.append(x)
            ys.append(keep_y(y))
        readout = segment_mean(x, batch.graph_index, n_graphs)
        return AlignnStages(xs, ys, zs, readout, self._head(readout))

    def _head(self, readout: torch.Tensor) -> torch.Tensor:
        out = self.fc(readout)
        if self.config.link == "log":
            out = torch.exp(out)
        elif self.config.link == "logit":
            out = torch.sigmoid(out)
        if self.config.classification:
            out = torch.log_softmax(out, dim=1)
        return out.squeeze(-1) if out.shape[-1] == 1 else out

    def forward(self, batch: AlignnBatch) -> torch.Tensor:
        """Prediction per graph: (B,) for one output, else (B, output_features or num_classes).

        ``alignn_atomwise`` models predict the energy per atom (eV/atom).

        Parameters
        ----------
        batch : AlignnBatch
            The graphs, on the model's device.

        Returns
        -------
        output : torch.Tensor of shape (B,) or (B, k)
            The prediction per graph.
        """
        return self.stages(batch, pool_edges=True).output
