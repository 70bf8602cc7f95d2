"""An attention-based composition model in the spirit of CrabNet, as a scikit-learn regressor over skorch.

Written from the description in Wang, Kauwe, Murdock & Sparks, "Compositionally restricted
attention-based network for materials property predictions", npj Comput. Mater. 7, 77 (2021);
no code of the ``crabnet`` package is used. The ingredients the paper describes:

- each element of a compound is a row (any per-element embedding: a static table such as
  mat2vec, or dynamic rows from a pretrained GNN), projected linearly to ``d_model``;
- its fractional amount is encoded with sinusoids, half of ``d_model`` on a linear scale of the
  fraction and half on a log scale, and added to the projected row (each of the three parts with
  a learned ``2**s`` scale);
- a transformer encoder (multi-head self-attention over the elements of one compound, no
  positional encoding, so the model is invariant to the order of the elements);
- a residual network applied to every element's encoded vector, whose outputs are averaged over
  the elements of the compound (weighted by atomic fraction, or uniformly);
- an optional robust loss (Laplace likelihood: L1 scaled by a learned log std per compound).

Differences from the published model, on purpose: AdamW (any skorch callback, e.g. a learning
rate schedule, can be added) instead of Lamb + Lookahead + cyclic learning rate + stochastic
weight averaging; a continuous fraction encoding instead of a lookup table of 5000 fraction
bins; optional standardisation of the input rows; the L1 loss by default.

Batches are the concatenated compounds of :mod:`skdynemb.models.batching` (the same collate
function and skorch net as Roost); the module pads them to (compounds, max elements, width)
for the attention.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
from pymatgen.core import Composition
from torch import nn

from skdynemb._deprecation import NOT_GIVEN, renamed_parameter
from skdynemb.models._common import TorchRegressor, call_in_float64, check_compounds, check_target
from skdynemb.models._common import is_compound_input, validate_array
from skdynemb.models.batching import CompoundBatchNet, CompoundDataset, collate_compounds
from skdynemb.static_tables import TABLES

#: ways of averaging the per-element outputs into the compound's output
POOLINGS = ("fraction", "mean")


def fraction_encoding(fractions: torch.Tensor, width: int, resolution: float, log_scale: bool) -> torch.Tensor:
    """Sinusoidal encoding (n, width) of atomic fractions (n,) in (0, 1].

    The fraction is mapped to a position ``p`` in [0, resolution]: ``p = resolution * x`` on the
    linear scale, ``p = resolution * min(1, -log2(x) / log2(resolution))`` on the log scale (so
    fractions from 1 down to 1/resolution spread over the whole range). Column ``2i`` is
    ``sin(p / 10000**(2i / width))`` and column ``2i + 1`` the matching cosine.

    Parameters
    ----------
    fractions : torch.Tensor of shape (n,)
        Atomic fractions in (0, 1] (dimensionless).
    width : int
        Number of encoding columns.
    resolution : float
        Largest position: fractions are resolved down to about ``1 / resolution``.
    log_scale : bool
        Map the fractions to positions on the log scale instead of the linear one.

    Returns
    -------
    encoding : torch.Tensor of shape (n, width)
        The encodings, in [-1, 1], of the dtype of ``fractions``.
    """
    x = fractions.clamp(min=1e-12)
    if log_scale:
        pos = resolution * torch.clamp(-torch.log2(x) / math.log2(resolution), 0.0, 1.0)
    else:
        pos = resolution * x
    n_pairs = (width + 1) // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(n_pairs, dtype=x.dtype, device=x.device) * 2 / width)
    angle = pos[:, None] * freq[None, :]
    return torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1).flatten(1)[:, :width]


class _ResidualHead(nn.Module):
    """Hidden layers ``leaky_relu(W x + b) + P x`` (P identity or a bias-free projection), then linear."""

    def __init__(self, n_in, n_out, hidden):
        super().__init__()
        dims = [n_in, *hidden]
        pairs = list(zip(dims[:-1], dims[1:]))
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairs)
        self.skips = nn.ModuleList(nn.Identity() if a == b else nn.Linear(a, b, bias=False) for a, b in pairs)
        self.out = nn.Linear(dims[-1], n_out)

    def forward(self, x):
        for layer, skip in zip(self.layers, self.skips):
            x = nn.functional.leaky_relu(layer(x)) + skip(x)
        return self.out(x)


class _EncoderLayer(nn.Module):
    """One transformer encoder layer (post-norm, as in Vaswani et al. 2017) over the elements of each compound.

    Rows come concatenated (N, d_model); only the attention scores are computed on a padded
    (compounds, heads, max elements, max elements) block, with padded keys masked out, so an
    element's result does not depend on the other compounds of its batch.
    """

    def __init__(self, d_model, n_heads, dim_feedforward, dropout):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, dim_feedforward), nn.ReLU(), nn.Dropout(dropout),
                                nn.Linear(dim_feedforward, d_model))
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop_attn, self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x, layout):
        idx, pos, n_compounds, width, padding = layout
        n, d = x.shape
        head = d // self.n_heads

        def dense(t):  # (N, d) -> (compounds, heads, width, head)
            out = t.new_zeros((n_compounds, width, d))
            out[idx, pos] = t
            return out.view(n_compounds, width, self.n_heads, head).transpose(1, 2)

        q, k, v = (dense(t) for t in self.qkv(x).chunk(3, dim=1))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(head)
        scores = scores.masked_fill(padding[:, None, None, :], -torch.inf)
        mixed = self.drop_attn(torch.softmax(scores, dim=-1)) @ v
        mixed = mixed.transpose(1, 2).reshape(n_compounds, width, d)[idx, pos]
        x = self.norm1(x + self.drop1(self.proj(mixed)))
        return self.norm2(x + self.drop2(self.ff(x)))


class CrabNetModule(nn.Module):
    """The network on a :class:`~skdynemb.models.batching.CompoundBatch`: element rows + fraction
    encoding -> transformer encoder over each compound's elements -> residual head per element ->
    (fraction-weighted) average per compound.

    Parameters
    ----------
    n_features : int
        Width of the input element rows.
    d_model : int, default=512
        Width of the element vectors inside the network.
    n_layers : int, default=3
        Transformer encoder layers.
    n_heads : int, default=4
        Attention heads per layer; must divide ``d_model``.
    dim_feedforward : int, default=2048
        Hidden width of each encoder layer's feed-forward network.
    dropout : float, default=0.1
        Dropout probability inside the encoder layers.
    out_hidden : tuple of int, default=(1024, 512, 256, 128)
        Hidden sizes of the residual head applied to every element.
    frac_resolution : float, default=5000.0
        Range of the fraction encodings' positions (see :func:`fraction_encoding`).
    pooling : {"fraction", "mean"}, default="fraction"
        Per-element outputs to the compound's: fraction-weighted or plain mean.
    n_outputs : int, default=1
        Outputs per compound (2 with the robust loss: mean and log std).
    """

    def __init__(
        self,
        n_features,
        d_model=512,
        n_layers=3,
        n_heads=4,
        dim_feedforward=2048,
        dropout=0.1,
        out_hidden=(1024, 512, 256, 128),
        frac_resolution=5000.0,
        pooling="fraction",
        n_outputs=1,
    ):
        super().__init__()
        self.d_model = d_model
        self.frac_resolution = float(frac_resolution)
        self.pooling = pooling
        self.embed = nn.Linear(n_features, d_model)
        # log2 of the scales of the row projection, the linear and the log fraction encodings
        self.log2_scales = nn.Parameter(torch.zeros(3))
        self.encoder = nn.ModuleList(
            _EncoderLayer(d_model, n_heads, dim_feedforward, dropout) for _ in range(n_layers)
        )
        self.head = _ResidualHead(d_model, n_outputs, out_hidden)

    def element_inputs(self, elem_fea, fractions):
        """Rows projected to ``d_model`` plus the fraction encodings.

        Parameters
        ----------
        elem_fea : torch.Tensor of shape (N, n_features)
            Element rows (standardised).
        fractions : torch.Tensor of shape (N,)
            Their atomic fractions.

        Returns
        -------
        inputs : torch.Tensor of shape (N, d_model)
            The encoder's input vectors.
        """
        half = self.d_model // 2
        lin = fraction_encoding(fractions, half, self.frac_resolution, log_scale=False)
        log = fraction_encoding(fractions, self.d_model - half, self.frac_resolution, log_scale=True)
        s = torch.exp2(self.log2_scales)
        return self.embed(elem_fea) * s[0] + torch.cat([lin * s[1], log * s[2]], dim=1)

    def encode(self, batch):
        """Encoded element vectors, in the order of ``batch.elem_fea``.

        Parameters
        ----------
        batch : CompoundBatch
            Compounds concatenated into one graph.

        Returns
        -------
        encoded : torch.Tensor of shape (N, d_model)
            One vector per element row, after the encoder layers.
        """
        fractions = batch.elem_weights[:, 0]
        x = self.element_inputs(batch.elem_fea, fractions)
        if not len(self.encoder):
            return x
        idx = batch.compound_idx
        counts = torch.bincount(idx, minlength=batch.n_compounds)
        starts = torch.cumsum(counts, 0) - counts
        pos = torch.arange(len(idx), device=idx.device) - starts[idx]
        width = int(counts.max())
        padding = torch.ones((batch.n_compounds, width), dtype=torch.bool, device=x.device)
        padding[idx, pos] = False
        layout = (idx, pos, batch.n_compounds, width, padding)
        for layer in self.encoder:
            x = layer(x, layout)
        return x

    def forward(self, batch):
        """Outputs of the network for a batch of compounds.

        In evaluation mode the network runs in float64 (on float64 copies of the weights; the
        float32 weights are untouched), so a compound's prediction does not depend on the other
        compounds of its batch: float32 matrix products round differently with their number of
        rows (last bits), float64 ones far below float32 precision.

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
            return self._forward(batch)
        return call_in_float64(self, batch.double())

    def _forward(self, batch):
        out = self.head(self.encode(batch))
        idx = batch.compound_idx
        if self.pooling == "fraction":
            w = batch.elem_weights
        else:
            counts = torch.bincount(idx, minlength=batch.n_compounds).to(out.dtype)
            w = (1.0 / counts)[idx, None]
        return out.new_zeros((batch.n_compounds, out.shape[1])).index_add_(0, idx, w * out)


def _is_formula_input(X) -> bool:
    """True for a non-empty 1-D sequence (list, tuple, array, pandas Series) of formula strings or Compositions."""
    if isinstance(X, str):
        return True  # a single formula: the composition parser says to wrap it in a list
    if getattr(X, "ndim", 1) != 1 or is_compound_input(X):
        return False
    try:
        if len(X) == 0:
            return False
        first = X.iloc[0] if hasattr(X, "iloc") else X[0]
    except (TypeError, KeyError, IndexError):
        return False
    return isinstance(first, (str, Composition))


class CrabNetRegressor(TorchRegressor):
    """Attention-based composition regressor in the spirit of CrabNet, on per-element rows or formulas.

    Our own implementation from the CrabNet paper's description (Wang et al., npj Comput. Mater.
    7, 77 (2021)); see :mod:`skdynemb.models.crabnet` for what it does and how it differs. X is one
    of

    - an :class:`~skdynemb.embeddings.ElementEmbeddings` (or a sequence of CompoundEmbedding):
      static or dynamic element rows, e.g. from
      :class:`~skdynemb.transformers.StaticEmbeddingTransformer` or
      :class:`~skdynemb.transformers.DynamicEmbeddingTransformer`;
    - formulas (strings or pymatgen Compositions): the rows of the static table ``embedding``
      are looked up (mat2vec by default, as in CrabNet);
    - a plain 2-D float array whose rows are compounds of a single pseudo-element of fraction 1.

    Predict with the same kind of input as fit. y: one target per compound, in any unit.

    Parameters
    ----------
    embedding : str, default="mat2vec"
        Static table (one of :data:`skdynemb.static_tables.TABLES`) that turns formulas into
        element rows; used only when X holds formulas. ``"mat2vec"`` needs the ``mat2vec`` extra.
    d_model : int, default=512
        Width of the element vectors inside the network (the paper's value).
    n_layers : int, default=3
        Transformer encoder layers (0: no attention, each element on its own).
    n_heads : int, default=4
        Attention heads per layer; must divide ``d_model``.
    dim_feedforward : int, default=2048
        Hidden width of each encoder layer's feed-forward network.
    dropout : float in [0, 1), default=0.1
        Dropout probability inside the encoder layers.
    out_hidden : tuple of int, default=(1024, 512, 256, 128)
        Hidden sizes of the residual network applied to every element's encoded vector.
    frac_resolution : float, default=5000
        Range of the fraction encodings' positions (dimensionless): fractions are resolved
        down to about ``1 / frac_resolution``.
    pooling : {"fraction", "mean"}, default="fraction"
        How the per-element outputs become the compound's output: weighted by atomic
        fraction, or the plain mean over its elements (CrabNet's choice).
    scale_features : bool, default=True
        Scale every input row feature to zero mean and unit variance over the training
        compounds' element rows (``x_mean_``, ``x_scale_``; constant features keep scale 1), so
        static and dynamic rows of any magnitude enter on the same footing.
    loss : {"mae", "mse", "robust"}, default="mae"
        Mean absolute error (L1), mean squared error, or "robust" (Laplace likelihood with a
        predicted log std, CrabNet's loss; enables ``predict(X, return_std=True)``).
    lr : float, default=5e-4
        AdamW learning rate.
    weight_decay : float, default=1e-6
        AdamW weight decay.
    batch_size : int, default=128
        Compounds per batch.
    max_epochs : int, default=300
        Training epochs (fewer when early stopping ends training).
    validation_fraction : float in (0, 1) or None, default=None
        None trains on all data; a fraction holds that share out for early stopping after
        ``patience`` epochs without improvement, restoring the best epoch. Ignored when ``fit``
        gets an explicit ``X_valid, y_valid``.
    patience : int, default=30
        Epochs without a better validation loss before training stops.
    swa_start : int or None, default=None
        Stochastic weight averaging: the network ends with the mean of its parameters after
        epochs ``swa_start``, ..., ``max_epochs`` (1-based) instead of the last epoch's. All
        ``max_epochs`` then run: there is no early stopping (a validation set, if any, is only
        scored each epoch in ``history_``; pass ``validation_fraction=None`` to train on all
        samples). None: off.
    callbacks : list of skorch callbacks or (name, callback) tuples, optional
        Passed to every skorch network (each ensemble member gets its own copy), e.g. a
        learning-rate schedule ``[("lr", skorch.callbacks.LRScheduler("CosineAnnealingLR", T_max=300))]``.
    n_estimators : int, default=1
        Ensemble size (members differ by their seed); ``return_std`` then includes the spread
        of the members.
    device : str, default="cpu"
        ``"auto"`` (a CUDA GPU when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    random_state : int, RandomState or None, default=0
        Seed of initialisation, dropout, shuffling and the validation split; the same seed gives
        the same predictions (bitwise on CPU).
    verbose : int, default=0
        skorch's per-epoch log when > 0.
    warm_start : bool, default=False
        When True, ``fit`` on a fitted estimator trains its networks ``max_epochs`` more epochs
        (weights, optimiser state and ``history_`` carry on) instead of starting afresh; see
        ``partial_fit`` for what may change between calls.
    standardize : bool
        Deprecated since 0.2 (removed in 0.3): the old name of ``scale_features``; gives a
        FutureWarning. Passing both is an error.

    Attributes
    ----------
    nets_ : list of skorch.NeuralNet
        The trained networks, one per ensemble member.
    history_ : list of skorch.History
        Per member, skorch's per-epoch record (``history_[0][:, "valid_loss"]`` with a
        validation set), in standardised target units.
    input_kind_ : {"formulas", "rows"}
        What ``fit`` was given: formulas, or element rows (ElementEmbeddings or a 2-D array).
    n_features_in_ : int
        Width of the element rows (for formulas: the width of the ``embedding`` table).
    x_mean_, x_scale_ : ndarray of shape (n_features_in_,)
        Input row standardisation (unit of each row feature); zeros and ones when
        ``scale_features=False``.
    y_mean_, y_std_ : float
        Target mean and standard deviation used to standardise y (unit of y).
    device_ : str
        The device used (``"auto"`` resolved).

    Examples
    --------
    >>> from skdynemb import CrabNetRegressor
    >>> model = CrabNetRegressor(embedding="megnet16", d_model=32, dim_feedforward=64, out_hidden=(32,),
    ...                          max_epochs=3)
    >>> model.fit(["LiCoO2", "Co3O4", "NaCl", "MgO"], [-1.8, -1.3, -2.1, -3.0]).predict(["LiCoO2"]).shape
    (1,)
    """

    _collate = staticmethod(collate_compounds)
    _net_class = CompoundBatchNet

    def __init__(
        self,
        embedding="mat2vec",
        d_model=512,
        n_layers=3,
        n_heads=4,
        dim_feedforward=2048,
        dropout=0.1,
        out_hidden=(1024, 512, 256, 128),
        frac_resolution=5000.0,
        pooling="fraction",
        scale_features=True,
        loss="mae",
        lr=5e-4,
        weight_decay=1e-6,
        batch_size=128,
        max_epochs=300,
        validation_fraction=None,
        patience=30,
        swa_start=None,
        callbacks=None,
        n_estimators=1,
        device="cpu",
        random_state=0,
        verbose=0,
        warm_start=False,
        standardize=NOT_GIVEN,
    ):
        self.embedding = embedding
        self.d_model = d_model
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.dim_feedforward = dim_feedforward
        self.dropout = dropout
        self.out_hidden = out_hidden
        self.frac_resolution = frac_resolution
        self.pooling = pooling
        self.scale_features = scale_features
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
        self.standardize = standardize

    def _check_params(self):
        if not isinstance(self.embedding, str) or self.embedding not in TABLES:
            raise ValueError(f"embedding must be one of {TABLES}, got {self.embedding!r}")
        for name, low in (("d_model", 2), ("n_layers", 0), ("n_heads", 1), ("dim_feedforward", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads={self.n_heads} must divide d_model={self.d_model}")
        if not isinstance(self.dropout, numbers.Real) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        hidden = self.out_hidden
        if not isinstance(hidden, (tuple, list)) or not all(
            isinstance(h, numbers.Integral) and not isinstance(h, bool) and h >= 1 for h in hidden
        ):
            raise ValueError(f"out_hidden must be a tuple of positive integers, got {hidden!r}")
        r = self.frac_resolution
        if isinstance(r, bool) or not isinstance(r, numbers.Real) or not (math.isfinite(r) and r > 1):
            raise ValueError(f"frac_resolution must be a finite number > 1, got {r!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")

    def _rows(self, X):
        """Element rows of formulas (the ``embedding`` table), as ElementEmbeddings."""
        from skdynemb.transformers.static import StaticEmbeddingTransformer

        return StaticEmbeddingTransformer(self.embedding).fit().transform(X)

    def _validate(self, X, y, reset):
        name = type(self).__name__
        kind = "formulas" if _is_formula_input(X) else "rows"
        if not reset and kind != self.input_kind_:
            if kind == "formulas":
                raise ValueError(
                    f"{name} was fitted on element rows of width {self.n_features_in_}, not formulas; "
                    "turn the formulas into rows the way the training rows were made "
                    "(e.g. StaticEmbeddingTransformer or DynamicEmbeddingTransformer in a pipeline)"
                )
            raise ValueError(
                f"{name} was fitted on formulas (rows of the {self.embedding!r} table); pass formulas "
                "here too, or fit on the element rows you want to predict from"
            )
        if kind == "formulas":
            X = self._rows(X)
        if is_compound_input(X):
            feats, fracs = check_compounds(X, None if reset else self.n_features_in_)
            if reset:
                y = check_target(y, len(feats), name)
                self.n_features_in_ = feats[0].shape[1]
                if hasattr(self, "feature_names_in_"):
                    del self.feature_names_in_
        else:
            X, y = validate_array(self, X, y, reset=reset)
            feats, fracs = [row[None, :] for row in X], [np.ones(1, np.float32)] * len(X)
        if reset:
            self.input_kind_ = kind
            d = self.n_features_in_
            if renamed_parameter(self.scale_features, self.standardize, "scale_features", "standardize", True):
                rows = np.concatenate(feats).astype(np.float64)
                scale = rows.std(axis=0)
                self.x_mean_ = rows.mean(axis=0).astype(np.float32)
                self.x_scale_ = np.where(scale > 0, scale, 1.0).astype(np.float32)
            else:
                self.x_mean_, self.x_scale_ = np.zeros(d, np.float32), np.ones(d, np.float32)
        feats = [((f - self.x_mean_) / self.x_scale_).astype(np.float32) for f in feats]  # zeros/ones: unscaled
        return (feats, fracs), y

    def _n_samples(self, data):
        return len(data[0])

    def _dataset(self, data, y, idx):
        return CompoundDataset(data[0], data[1], y, idx)

    def _module(self):
        kwargs = dict(
            n_features=self.n_features_in_,
            d_model=int(self.d_model),
            n_layers=int(self.n_layers),
            n_heads=int(self.n_heads),
            dim_feedforward=int(self.dim_feedforward),
            dropout=float(self.dropout),
            out_hidden=tuple(int(h) for h in self.out_hidden),
            frac_resolution=float(self.frac_resolution),
            pooling=self.pooling,
            n_outputs=self._n_outputs(),
        )
        return CrabNetModule, kwargs

    def _net_kwargs(self):
        return {"optimizer": torch.optim.AdamW, "optimizer__weight_decay": self.weight_decay}
