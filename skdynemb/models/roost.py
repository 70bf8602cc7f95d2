"""Roost (Goodall & Lee, Nat. Commun. 11, 6280 (2020)) as a scikit-learn regressor over skorch.

Each compound is a fully connected graph of its elements (self loops included). Element rows
are projected to ``elem_fea_len - 1`` features plus the element's fraction, updated by
``n_graph`` residual layers of weighted soft attention (attention ∝ fraction**p · exp(gate)),
pooled to one compound vector by weighted attention and mapped to the target by a residual
network. The input rows can be any per-element embedding: static tables or dynamic rows.

The network is written here (torch only) rather than imported from aviary-models, whose
``aviary.roost.model`` pulls wandb/tensorboard at import, builds its element table from JSON
files by symbol, and whose scatter "amax" keeps the last value instead of the maximum. The test
suite checks this implementation against aviary's modules with shared weights.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
from torch import nn

from skdynemb.models._common import TorchRegressor, call_in_float64, check_compounds, check_target
from skdynemb.models._common import is_compound_input, validate_array
from skdynemb.models.batching import CompoundBatchNet, CompoundDataset, collate_compounds


def _segment_sum(src, index, n_segments):
    return src.new_zeros((n_segments, src.shape[1])).index_add_(0, index, src)


class _FeedForward(nn.Module):
    """Linear layers with LeakyReLU between them (the gate and message networks)."""

    def __init__(self, n_in, n_out, hidden):
        super().__init__()
        dims = [n_in, *hidden]
        layers = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.LeakyReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(dims[-1], n_out))

    def forward(self, x):
        return self.net(x)


class _ResidualFeedForward(nn.Module):
    """Output network: each hidden layer is relu(W x + b) + P x, P identity or bias-free linear."""

    def __init__(self, n_in, n_out, hidden):
        super().__init__()
        dims = [n_in, *hidden]
        pairs = list(zip(dims[:-1], dims[1:]))
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairs)
        self.skips = nn.ModuleList(nn.Identity() if a == b else nn.Linear(a, b, bias=False) for a, b in pairs)
        self.out = nn.Linear(dims[-1], n_out)

    def forward(self, x):
        for layer, skip in zip(self.layers, self.skips):
            x = torch.relu(layer(x)) + skip(x)
        return self.out(x)


class _WeightedAttention(nn.Module):
    """One attention head: per segment, softmax of gate(x) reweighted by weight**power, sum of message(x)."""

    def __init__(self, n_in, n_out, gate_hidden, msg_hidden):
        super().__init__()
        self.gate = _FeedForward(n_in, 1, gate_hidden)
        self.message = _FeedForward(n_in, n_out, msg_hidden)
        self.power = nn.Parameter(torch.randn(1))

    def forward(self, x, weights, segment, n_segments):
        gate = self.gate(x)
        top = gate.new_full((n_segments, 1), -torch.inf)
        top = top.scatter_reduce(0, segment[:, None], gate, reduce="amax")
        attn = weights**self.power * torch.exp(gate - top[segment])
        attn = attn / (_segment_sum(attn, segment, n_segments)[segment] + 1e-10)
        return _segment_sum(attn * self.message(x), segment, n_segments)


class _MessageLayer(nn.Module):
    """Residual update of every element from all elements of its compound (itself included)."""

    def __init__(self, width, heads, gate_hidden, msg_hidden):
        super().__init__()
        self.heads = nn.ModuleList(
            _WeightedAttention(2 * width, width, gate_hidden, msg_hidden) for _ in range(heads)
        )

    def forward(self, x, weights, self_idx, nbr_idx):
        pairs = torch.cat([x[self_idx], x[nbr_idx]], dim=1)
        update = torch.stack([h(pairs, weights[nbr_idx], self_idx, len(x)) for h in self.heads]).mean(0)
        return x + update


class RoostModule(nn.Module):
    """The Roost network on a batch of concatenated element rows.

    Batches are :class:`~skdynemb.models.batching.CompoundBatch` objects
    (:func:`~skdynemb.models.batching.collate_compounds`). The parameters are those of
    :class:`RoostRegressor` of the same names.

    Parameters
    ----------
    n_features : int
        Width of the input element rows.
    elem_fea_len : int, default=64
        Width of the element features inside the network.
    n_graph : int, default=3
        Number of message-passing layers.
    elem_heads : int, default=3
        Attention heads of each message-passing layer.
    elem_gate, elem_msg : tuple of int, default=(256,)
        Hidden sizes of the gate and message networks of each message-passing layer.
    cry_heads : int, default=3
        Attention heads of the pooling of elements into the compound vector.
    cry_gate, cry_msg : tuple of int, default=(256,)
        Hidden sizes of the pooling's gate and message networks.
    out_hidden : tuple of int, default=(1024, 512, 256, 128, 64)
        Hidden sizes of the residual output network.
    n_outputs : int, default=1
        Outputs per compound (2 for the "robust" loss: mean and log std).
    """

    def __init__(
        self,
        n_features,
        elem_fea_len=64,
        n_graph=3,
        elem_heads=3,
        elem_gate=(256,),
        elem_msg=(256,),
        cry_heads=3,
        cry_gate=(256,),
        cry_msg=(256,),
        out_hidden=(1024, 512, 256, 128, 64),
        n_outputs=1,
    ):
        super().__init__()
        self.embed = nn.Linear(n_features, elem_fea_len - 1)
        self.graphs = nn.ModuleList(
            _MessageLayer(elem_fea_len, elem_heads, elem_gate, elem_msg) for _ in range(n_graph)
        )
        self.pool = nn.ModuleList(
            _WeightedAttention(elem_fea_len, elem_fea_len, cry_gate, cry_msg) for _ in range(cry_heads)
        )
        self.output = _ResidualFeedForward(elem_fea_len, n_outputs, out_hidden)

    def descriptor(self, batch):
        """Compound vectors of a batch, before the output network.

        Parameters
        ----------
        batch : CompoundBatch
            Compounds concatenated into one graph
            (:class:`~skdynemb.models.batching.CompoundBatch`).

        Returns
        -------
        descriptor : torch.Tensor of shape (n_compounds, elem_fea_len)
            The pooled compound vectors.
        """
        weights = batch.elem_weights
        x = torch.cat([self.embed(batch.elem_fea), weights], dim=1)
        for graph in self.graphs:
            x = graph(x, weights, batch.self_idx, batch.nbr_idx)
        heads = [head(x, weights, batch.compound_idx, batch.n_compounds) for head in self.pool]
        return torch.stack(heads).mean(0)

    def forward(self, batch):
        """Outputs of the network for a batch of compounds.

        In eval mode the network runs in float64 (:func:`~skdynemb.models._common.call_in_float64`),
        so a compound's prediction does not depend on the other compounds of its batch.

        Parameters
        ----------
        batch : CompoundBatch
            Compounds concatenated into one graph
            (:class:`~skdynemb.models.batching.CompoundBatch`).

        Returns
        -------
        output : torch.Tensor of shape (n_compounds, n_outputs)
            float32 in training, float64 in eval mode.
        """
        if self.training or batch.elem_fea.dtype == torch.float64:
            return self.output(self.descriptor(batch))
        return call_in_float64(self, batch.double())


class RoostRegressor(TorchRegressor):
    """Roost regressor on per-element embeddings.

    X is an :class:`~skdynemb.embeddings.ElementEmbeddings` (or any sequence of
    CompoundEmbedding), or a plain 2-D float array whose rows are compounds made of a single
    pseudo-element of fraction 1. y: one target per compound, in any unit.

    Parameters
    ----------
    elem_fea_len : int, default=64
        Width of the element features inside the network (the input rows are projected to
        ``elem_fea_len - 1`` and the fraction is appended).
    n_graph : int, default=3
        Number of message-passing layers.
    elem_heads : int, default=3
        Attention heads of each message-passing layer.
    elem_gate, elem_msg : tuple of int, default=(256,)
        Hidden sizes of the gate and message networks of each message-passing layer.
    cry_heads : int, default=3
        Attention heads of the pooling of elements into the compound vector.
    cry_gate, cry_msg : tuple of int, default=(256,)
        Hidden sizes of the pooling's gate and message networks.
    out_hidden : tuple of int, default=(1024, 512, 256, 128, 64)
        Hidden sizes of the residual output network.
    loss : {"mae", "mse", "robust"}, default="mae"
        Training loss: mean absolute error (L1), mean squared error, or "robust" (Laplace
        likelihood with a predicted std; enables ``predict(X, return_std=True)``). "l1" is a
        deprecated spelling of "mae".
    lr : float, default=3e-4
        AdamW learning rate.
    weight_decay : float, default=1e-6
        AdamW weight decay.
    batch_size : int, default=128
        Compounds per batch.
    max_epochs : int, default=250
        Training epochs (fewer when early stopping ends training).
    validation_fraction : float in (0, 1) or None, default=None
        None trains on all data; a fraction holds that share out for early stopping after
        ``patience`` epochs without improvement, restoring the best epoch. Ignored when ``fit``
        gets an explicit ``X_valid, y_valid``.
    patience : int, default=20
        Epochs without a better validation loss before training stops.
    swa_start : int or None, default=None
        Stochastic weight averaging: the network ends with the mean of its parameters after
        epochs ``swa_start``, ..., ``max_epochs`` (1-based) instead of the last epoch's. All
        ``max_epochs`` then run: there is no early stopping (a validation set, if any, is only
        scored each epoch in ``history_``; pass ``validation_fraction=None`` to train on all
        samples). None: off.
    callbacks : list of skorch callbacks or (name, callback) tuples, optional
        Passed to every skorch network (each ensemble member gets its own copy), e.g.
        ``[("lr", skorch.callbacks.LRScheduler("StepLR", step_size=50))]``; searchable with
        ``GridSearchCV`` like any parameter.
    n_estimators : int, default=1
        Ensemble size (members differ by their seed); ``return_std`` then includes the spread
        of the members.
    device : str, default="cpu"
        ``"auto"`` (a CUDA GPU when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    random_state : int, RandomState or None, default=0
        Seed of initialisation, shuffling and the validation split; the same seed gives the same
        predictions (bitwise on CPU).
    verbose : int, default=0
        skorch's per-epoch log when > 0.
    warm_start : bool, default=False
        When True, ``fit`` on a fitted estimator trains its networks ``max_epochs`` more epochs
        (weights, optimiser state and ``history_`` carry on) instead of starting afresh; see
        ``partial_fit`` for what may change between calls.

    Attributes
    ----------
    nets_ : list of skorch.NeuralNet
        The trained networks, one per ensemble member.
    history_ : list of skorch.History
        Per member, skorch's per-epoch record: ``history_[0][:, "train_loss"]`` (and
        ``"valid_loss"`` with a validation set), in standardised target units.
    n_features_in_ : int
        Width of the input element rows.
    y_mean_, y_std_ : float
        Target mean and standard deviation used to standardise y (unit of y).
    device_ : str
        The device used (``"auto"`` resolved).

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from skdynemb import RoostRegressor, StaticEmbeddingTransformer
    >>> model = make_pipeline(StaticEmbeddingTransformer("megnet16"), RoostRegressor(max_epochs=5))
    >>> model.fit(["LiCoO2", "Co3O4", "NaCl", "MgO"], [-1.8, -1.3, -2.1, -3.0]).predict(["LiCoO2"]).shape
    (1,)
    """

    _collate = staticmethod(collate_compounds)
    _net_class = CompoundBatchNet

    def __init__(
        self,
        elem_fea_len=64,
        n_graph=3,
        elem_heads=3,
        elem_gate=(256,),
        elem_msg=(256,),
        cry_heads=3,
        cry_gate=(256,),
        cry_msg=(256,),
        out_hidden=(1024, 512, 256, 128, 64),
        loss="mae",
        lr=3e-4,
        weight_decay=1e-6,
        batch_size=128,
        max_epochs=250,
        validation_fraction=None,
        patience=20,
        swa_start=None,
        callbacks=None,
        n_estimators=1,
        device="cpu",
        random_state=0,
        verbose=0,
        warm_start=False,
    ):
        self.elem_fea_len = elem_fea_len
        self.n_graph = n_graph
        self.elem_heads = elem_heads
        self.elem_gate = elem_gate
        self.elem_msg = elem_msg
        self.cry_heads = cry_heads
        self.cry_gate = cry_gate
        self.cry_msg = cry_msg
        self.out_hidden = out_hidden
        self.loss = loss
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.swa_start = swa_start
        self.callbacks = callbacks
        self.n_estimators = n_estimators
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start

    def _check_params(self):
        if not isinstance(self.elem_fea_len, numbers.Integral) or self.elem_fea_len < 2:
            raise ValueError(f"elem_fea_len must be an integer >= 2, got {self.elem_fea_len!r}")
        for name, low in (("n_graph", 0), ("elem_heads", 1), ("cry_heads", 1)):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")

    def _validate(self, X, y, reset):
        name = type(self).__name__
        if not is_compound_input(X):
            X, y = validate_array(self, X, y, reset=reset)
            return ([row[None, :] for row in X], [np.ones(1, np.float32)] * len(X)), y
        feats, fracs = check_compounds(X, None if reset else self.n_features_in_)
        if reset:
            y = check_target(y, len(feats), name)
            self.n_features_in_ = feats[0].shape[1]
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        return (feats, fracs), y

    def _n_samples(self, data):
        return len(data[0])

    def _dataset(self, data, y, idx):
        return CompoundDataset(data[0], data[1], y, idx)

    def _module(self):
        kwargs = dict(
            n_features=self.n_features_in_,
            elem_fea_len=self.elem_fea_len,
            n_graph=self.n_graph,
            elem_heads=self.elem_heads,
            elem_gate=tuple(self.elem_gate),
            elem_msg=tuple(self.elem_msg),
            cry_heads=self.cry_heads,
            cry_gate=tuple(self.cry_gate),
            cry_msg=tuple(self.cry_msg),
            out_hidden=tuple(self.out_hidden),
            n_outputs=self._n_outputs(),
        )
        return RoostModule, kwargs

    def _net_kwargs(self):
        return {"optimizer": torch.optim.AdamW, "optimizer__weight_decay": self.weight_decay}
