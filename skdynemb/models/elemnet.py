"""ElemNet (Jha et al., Sci. Rep. 8, 17593 (2018)) as a scikit-learn regressor over skorch.

A 17-layer fully connected ReLU network (1024×4, 512×3, 256×3, 128×3, 64×2, 32, 1) with
dropout after the 1024, 512, 256 and 128 blocks (keep probabilities 0.8, 0.9, 0.7, 0.8), trained
with Adam (lr 1e-4, batch 32) and early stopping on a validation split. Here it takes any 2-D
float input, e.g. atom-averaged dynamic embeddings or element fractions.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
from skorch.dataset import Dataset
from torch import nn

from skdynemb._deprecation import NOT_GIVEN, renamed_parameter
from skdynemb.models._common import TorchRegressor, call_in_float64, validate_array

#: (width, number of layers, dropout probability after the block) of ElemNet's hidden layers
ELEMNET_BLOCKS = ((1024, 4, 0.2), (512, 3, 0.1), (256, 3, 0.3), (128, 3, 0.2), (64, 2, 0.0), (32, 1, 0.0))


class ElemNetModule(nn.Module):
    """Blocks of Linear+ReLU layers, each block followed by dropout, then a linear output.

    Parameters
    ----------
    n_features : int
        Width of the input rows.
    blocks : tuple of (int, int, float), default=ELEMNET_BLOCKS
        Hidden layers as (width, number of layers, dropout probability after the block).
    n_outputs : int, default=1
        Outputs per sample (2 for the "robust" loss: mean and log std).
    """

    def __init__(self, n_features, blocks=ELEMNET_BLOCKS, n_outputs=1):
        super().__init__()
        layers, width_in = [], n_features
        for width, n_layers, dropout in blocks:
            for _ in range(n_layers):
                layers += [nn.Linear(width_in, width), nn.ReLU()]
                width_in = width
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(width_in, n_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, X):
        """Outputs of the network; float64 in eval mode.

        Parameters
        ----------
        X : torch.Tensor of shape (n_samples, n_features)
            Standardised input rows.

        Returns
        -------
        output : torch.Tensor of shape (n_samples, n_outputs)
            float32 in training, float64 in eval mode (so that a sample's output does not depend
            on the rest of its batch; see :func:`~skdynemb.models._common.call_in_float64`).
        """
        if self.training or X.dtype == torch.float64:
            return self.net(X)
        return call_in_float64(self, X.double())


class ElemNetRegressor(TorchRegressor):
    """ElemNet regressor on a 2-D float array (n_samples, n_features).

    Parameters
    ----------
    blocks : tuple of (int, int, float), default=ELEMNET_BLOCKS
        Hidden layers as (width, number of layers, dropout probability after the block); the
        default is ElemNet's.
    scale_features : bool, default=True
        Scale each input feature to zero mean, unit variance (``x_mean_``, ``x_scale_``;
        constant features keep scale 1). The target is always standardised internally.
    loss : {"mae", "mse", "robust"}, default="mae"
        Mean absolute error (L1), mean squared error, or "robust" (predicted std;
        ``predict(X, return_std=True)``). "l1" is a deprecated spelling of "mae".
    lr : float, default=1e-4
        Adam learning rate.
    batch_size : int, default=32
        Samples per batch.
    max_epochs : int, default=1000
        Epoch limit.
    validation_fraction : float in (0, 1) or None, default=0.1
        Share of the data held out for early stopping (None: no hold-out, all ``max_epochs``
        run). Ignored when ``fit`` gets an explicit ``X_valid, y_valid``.
    patience : int, default=100
        Epochs without a better validation loss before training stops; the best epoch's
        weights are restored.
    swa_start : int or None, default=None
        Stochastic weight averaging: the network ends with the mean of its parameters after
        epochs ``swa_start``, ..., ``max_epochs`` (1-based) instead of the last epoch's. All
        ``max_epochs`` then run: there is no early stopping (a validation set, if any, is only
        scored each epoch in ``history_``; pass ``validation_fraction=None`` to train on all
        samples). None: off.
    callbacks : list of skorch callbacks or (name, callback) tuples, optional
        Passed to every skorch network (each ensemble member gets its own copy).
    n_estimators : int, default=1
        Ensemble size (members differ by their seed).
    device : str, default="cpu"
        ``"auto"`` (a CUDA GPU when present), ``"cpu"``, ``"cuda"``, ...
    random_state : int, RandomState or None, default=0
        Seed of split, initialisation, shuffling and dropout.
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
        Per member, skorch's per-epoch record (``history_[0][:, "valid_loss"]``).
    n_features_in_ : int
        Number of input features.
    x_mean_, x_scale_ : ndarray of shape (n_features,)
        Input standardisation (unit of each feature).
    y_mean_, y_std_ : float
        Target standardisation (unit of y).
    device_ : str
        The device used (``"auto"`` resolved).
    """

    def __init__(
        self,
        blocks=ELEMNET_BLOCKS,
        scale_features=True,
        loss="mae",
        lr=1e-4,
        batch_size=32,
        max_epochs=1000,
        validation_fraction=0.1,
        patience=100,
        swa_start=None,
        callbacks=None,
        n_estimators=1,
        device="cpu",
        random_state=0,
        verbose=0,
        warm_start=False,
        standardize=NOT_GIVEN,
    ):
        self.blocks = blocks
        self.scale_features = scale_features
        self.loss = loss
        self.lr = lr
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
        for block in self.blocks:
            ok = len(block) == 3 and all(isinstance(v, numbers.Integral) and v >= 1 for v in block[:2])
            if not (ok and 0 <= block[2] < 1):
                raise ValueError(
                    f"blocks must hold (width >= 1, n_layers >= 1, 0 <= dropout < 1), got {block!r}"
                )

    def _validate(self, X, y, reset):
        X, y = validate_array(self, X, y, reset=reset)
        if reset:
            scaled = renamed_parameter(self.scale_features, self.standardize, "scale_features", "standardize", True)
            scale = X.std(axis=0) if scaled else np.ones(X.shape[1], np.float32)
            self.x_mean_ = X.mean(axis=0) if scaled else np.zeros(X.shape[1], np.float32)
            self.x_scale_ = np.where(scale > 0, scale, 1).astype(np.float32)
        return ((X - self.x_mean_) / self.x_scale_).astype(np.float32), y

    def _n_samples(self, data):
        return len(data)

    def _dataset(self, data, y, idx):
        return Dataset(data[idx], None if y is None else y[idx])

    def _module(self):
        blocks = tuple((int(w), int(n), float(p)) for w, n, p in self.blocks)
        kwargs = {"n_features": self.n_features_in_, "blocks": blocks, "n_outputs": self._n_outputs()}
        return ElemNetModule, kwargs

    def _net_kwargs(self):
        return {"optimizer": torch.optim.Adam}
