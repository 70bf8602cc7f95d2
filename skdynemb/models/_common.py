"""Shared parts of the neural regressors: input checks, seeding and the skorch training loop."""

from __future__ import annotations

import math
import numbers
import warnings
from contextlib import contextmanager

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import EarlyStopping
from skorch.helper import predefined_split
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data
from torch import nn

from skdynemb._device import resolve_device
from skdynemb.embeddings import CompoundEmbedding, ElementEmbeddings
from skdynemb.models.weight_averaging import WeightAverage

#: largest accepted |sum(fractions) - 1| of a compound
FRACTION_TOL = 1e-4
#: largest accepted |target| (the float32 range: models cast targets to float32)
FLOAT32_MAX = float(np.finfo(np.float32).max)


def is_compound_input(X) -> bool:
    """True for ElementEmbeddings or a non-empty list/tuple/1-D object array of CompoundEmbedding."""
    if isinstance(X, ElementEmbeddings):
        return True
    if isinstance(X, np.ndarray):
        return X.dtype == object and X.ndim == 1 and X.size > 0 and isinstance(X[0], CompoundEmbedding)
    return isinstance(X, (list, tuple)) and len(X) > 0 and isinstance(X[0], CompoundEmbedding)


def _where(i: int, c: CompoundEmbedding) -> str:
    return f"sample {i}" + (f" (id {c.id!r})" if c.id is not None else "")


def check_compounds(X, n_features: int | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Validate a sequence of CompoundEmbedding; return float32 feature matrices and fractions.

    Raises ValueError naming the first bad sample: no elements, repeated elements, a feature
    width other than ``n_features`` (or the first sample's), non-finite features, fractions that
    are not finite and positive or do not sum to 1 within :data:`FRACTION_TOL`.
    """
    if len(X) == 0:
        raise ValueError("X holds no compounds (0 samples)")
    feats, fracs = [], []
    for i, c in enumerate(X):
        if not isinstance(c, CompoundEmbedding):
            raise TypeError(f"sample {i}: expected a CompoundEmbedding, got {type(c).__name__}")
        where, n = _where(i, c), len(c.elements)
        if n == 0:
            raise ValueError(f"{where}: empty compound (no elements)")
        if len(set(c.elements)) != n:
            raise ValueError(f"{where}: repeated elements in {list(c.elements)}")
        d = c.features.shape[1]
        n_features = d if n_features is None else n_features
        if d != n_features:
            raise ValueError(f"{where}: {d} features per element, expected {n_features}")
        f = np.array(c.features, dtype=np.float32)
        bad = ~np.isfinite(f).all(axis=1)
        if bad.any():
            names = [c.elements[k] for k in np.flatnonzero(bad)]
            raise ValueError(f"{where}: non-finite (NaN/inf or beyond float32) features for {names}")
        w = np.asarray(c.fractions, dtype=np.float64)
        if not (np.isfinite(w).all() and (w > 0).all()):
            raise ValueError(f"{where}: fractions must be finite and positive, got {w.tolist()}")
        if abs(w.sum() - 1.0) > FRACTION_TOL:
            raise ValueError(f"{where}: fractions sum to {w.sum():.6g}, expected 1")
        feats.append(f)
        fracs.append(w.astype(np.float32))
    return feats, fracs


def check_numeric_target(y, name: str) -> None:
    """Raise ValueError naming the first sample whose target is not a number (a label, a string).

    ``y`` of a numeric dtype (and None) passes unchanged: scikit-learn's checks handle the rest
    (complex values included).
    """
    if y is None or (isinstance(y, np.ndarray) and y.dtype.kind not in "OUSb"):
        return
    for i, v in enumerate(np.asarray(y, dtype=object).reshape(-1)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Real, np.number)):
            raise ValueError(
                f"sample {i}: target {v!r} is not a number; {name} is a regressor and needs numeric targets"
            )


def check_target(y, n_samples: int | None, name: str) -> np.ndarray:
    """The one target check of every regressor: 1-D finite float64 targets, bad ones named by index.

    Parameters
    ----------
    y : array-like of shape (n_samples,) or (n_samples, 1)
        Targets, in any unit.
    n_samples : int or None
        Number of samples of X (None: not checked here).
    name : str
        The estimator's name, for messages.

    Returns
    -------
    y : ndarray of shape (n_samples,), float64
        Every value finite and within the float32 range (the networks train in float32).

    Raises
    ------
    ValueError
        ``y`` is None, or naming the first sample (``"sample i: ..."``) whose target is not a
        number (None, a string such as ``"1"``, a bool), NaN, infinite, or beyond the float32
        range (e.g. 1.7e308, which the float32 cast would turn into inf).
    """
    if y is None:
        raise ValueError(f"{name} requires y to be passed, but the target y is None")
    check_numeric_target(y, name)
    y = column_or_1d(
        check_array(y, ensure_2d=False, dtype="numeric", ensure_all_finite=False, input_name="y"), warn=True
    )
    if n_samples is not None and len(y) != n_samples:
        raise ValueError(f"X has {n_samples} samples but y has {len(y)}")
    y64 = y.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(y64))
    if bad.size:
        raise ValueError(f"sample {bad[0]}: target is {y64[bad[0]]} (NaN or infinity); {name} needs finite targets")
    big = np.flatnonzero(np.abs(y64) > FLOAT32_MAX)
    if big.size:
        raise ValueError(
            f"sample {big[0]}: target {y64[big[0]]:.6g} is beyond the float32 range (|y| <= {FLOAT32_MAX:.4g}), "
            f"where {name} would see infinity"
        )
    return y64


def validate_array(estimator, X, y=None, reset: bool = True):
    """sklearn validation of a 2-D float array (and y when ``reset``); X comes back float32."""
    if is_compound_input(X):
        raise TypeError(
            f"{type(estimator).__name__} takes a 2-D array of per-compound features, got per-element "
            "embeddings; pool them first (e.g. ElementEmbeddings.mean(), the fraction-weighted mean)"
        )
    kw = dict(reset=reset, dtype=[np.float64, np.float32], ensure_all_finite=False)
    if reset:
        y = check_target(y, None, type(estimator).__name__)
        X, y = validate_data(estimator, X, y, y_numeric=True, **kw)
        y = np.asarray(y, dtype=np.float64)
    else:
        X = validate_data(estimator, X, **kw)
    bad = np.argwhere(~np.isfinite(X))
    if bad.size:
        raise ValueError(f"sample {bad[0, 0]}: NaN or inf in feature {bad[0, 1]}")
    X32 = X.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(X32).all(axis=1))
    if bad.size:
        raise ValueError(f"sample {bad[0]}: feature value beyond the float32 range")
    return X32, y


class RobustL1Loss(nn.Module):
    """Laplace negative log-likelihood: output[:, 0] is the mean, output[:, 1] the log std."""

    def forward(self, output, target):
        mean, log_std = output[:, :1], output[:, 1:2]
        return (math.sqrt(2.0) * (target - mean).abs() * torch.exp(-log_std) + log_std).mean()


#: the package's loss names (also those of :func:`skdynemb.pretrain.pretrain_alignn`)
LOSSES = {"mae": nn.L1Loss, "mse": nn.MSELoss, "robust": RobustL1Loss}
#: deprecated spellings -> current name
_LOSS_ALIASES = {"l1": "mae"}


def call_in_float64(module: nn.Module, inputs):
    """``module(inputs)`` on float64 copies of the module's floating-point weights (its own are untouched).

    The regressors' networks evaluate through this (their ``forward`` in eval mode calls it with
    ``inputs`` already float64, which selects their plain path), so that a compound's prediction
    does not depend on the other samples of its batch: float32 matrix products round differently
    with their number of rows (the last bits: up to 3e-7 relative measured for Roost and 8e-8 for
    ElemNet on one CPU), float64 ones far below float32 precision. Training stays float32.

    Parameters
    ----------
    module : torch.nn.Module
        The network (in eval mode).
    inputs : object
        Its single forward argument, with float64 tensors.

    Returns
    -------
    output : torch.Tensor
        The module's float64 output.
    """
    weights = {name: t.double() if t.is_floating_point() else t
               for name, t in [*module.named_parameters(), *module.named_buffers()]}
    return torch.func.functional_call(module, weights, (inputs,))


@contextmanager
def seeded_torch(seed: int, device: str):
    """Run the body with torch's global RNG seeded, restoring the caller's RNG state afterwards."""
    dev = torch.device(device)
    devices = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class TorchRegressor(RegressorMixin, BaseEstimator):
    """Target scaling, validation split, seeded skorch training, ensembling and ``return_std``.

    Subclasses set the parameters ``loss, lr, batch_size, max_epochs, validation_fraction,
    patience, swa_start, callbacks, n_estimators, device, random_state, verbose, warm_start`` and implement
    ``_validate``, ``_n_samples``, ``_dataset``, ``_module`` and ``_net_kwargs``.
    """

    _collate = None  # collate function of the data loaders (None: torch's default)
    _net_class = NeuralNet

    def _loss(self) -> str:
        """The loss name, deprecated spellings ("l1") mapped to the current one ("mae")."""
        return _LOSS_ALIASES.get(self.loss, self.loss)

    def _check_common_params(self):
        if self.loss in _LOSS_ALIASES:
            warnings.warn(
                f"loss={self.loss!r} is deprecated and will be removed; use loss={_LOSS_ALIASES[self.loss]!r} "
                "(the same L1 loss, the name used across skdynemb)", FutureWarning, stacklevel=3,
            )
        elif self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {self.loss!r}")
        for name in ("batch_size", "max_epochs", "n_estimators", "patience"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        swa = self.swa_start
        if swa is not None and (not isinstance(swa, numbers.Integral) or isinstance(swa, bool) or swa < 1):
            raise ValueError(f"swa_start must be None or a positive integer (an epoch, 1-based), got {swa!r}")
        vf = self.validation_fraction
        if vf is not None and not 0 < vf < 1:
            raise ValueError(f"validation_fraction must be None or in (0, 1), got {vf!r}")
        if self.callbacks is not None and not isinstance(self.callbacks, (list, tuple)):
            raise ValueError(f"callbacks must be None or a list of skorch callbacks, got {self.callbacks!r}")

    def _split(self, n: int, rng) -> tuple[np.ndarray, np.ndarray | None]:
        if not self.validation_fraction:
            return np.arange(n), None
        n_valid = max(1, round(self.validation_fraction * n))
        if n - n_valid < 1:
            raise ValueError(
                f"validation_fraction={self.validation_fraction} leaves no training data "
                f"with {n} sample(s)"
            )
        perm = rng.permutation(n)
        return np.sort(perm[n_valid:]), np.sort(perm[:n_valid])

    def fit(self, X, y, X_valid=None, y_valid=None):
        """Train ``n_estimators`` networks on (X, y).

        With ``warm_start=True`` and a fitted estimator, the fitted networks train ``max_epochs``
        more epochs instead (see :meth:`partial_fit`).

        Parameters
        ----------
        X : ElementEmbeddings, sequence of CompoundEmbedding or array of shape (n_samples, n_features)
            Training inputs (the kinds the subclass accepts).
        y : array-like of shape (n_samples,)
            Targets in any unit (standardised internally with ``y_mean_`` / ``y_std_``).
        X_valid, y_valid : same kinds as X and y, optional
            An explicit validation set: skorch reports ``valid_loss`` on it every epoch and early
            stopping (``patience``) watches it; all of X is then used for training and
            ``validation_fraction`` is ignored. Through ``GridSearchCV.fit(X, y, X_valid=...,
            y_valid=...)`` every candidate and fold gets this same set (scikit-learn passes fit
            parameters whole unless they have as many samples as X).

        Returns
        -------
        self : TorchRegressor
            The fitted estimator.
        """
        return self._train(X, y, X_valid, y_valid, more=bool(self.warm_start) and hasattr(self, "nets_"))

    def partial_fit(self, X, y, X_valid=None, y_valid=None):
        """Train the fitted networks ``max_epochs`` more epochs on (X, y) (skorch's ``partial_fit``).

        The networks keep their weights, optimiser state (Adam/AdamW moments), callbacks and
        ``history_`` (which grows by the new epochs); the input and target standardisation of the
        first fit is kept, since the networks were trained in its units. ``lr``, ``max_epochs``,
        ``batch_size``, ``weight_decay`` and ``verbose`` may change between calls (the current
        values apply to the new epochs; the callbacks of the first fit carry on, a new
        ``callbacks`` value applies to the next fresh fit); any other change (architecture, loss,
        ``n_estimators``, ``device``, a validation set where the first fit had none or the
        reverse) raises ValueError. On an estimator not fitted yet it is :meth:`fit`.

        Parameters
        ----------
        X : ElementEmbeddings, sequence of CompoundEmbedding or array of shape (n_samples, n_features)
            Training inputs of the kind and width of the first fit (else ValueError).
        y : array-like of shape (n_samples,)
            Targets, in the unit of the first fit's.
        X_valid, y_valid : same kinds as X and y, optional
            Validation set for early stopping, as in :meth:`fit`.

        Returns
        -------
        self : TorchRegressor
            The estimator, trained further.
        """
        return self._train(X, y, X_valid, y_valid, more=hasattr(self, "nets_"))

    def _train(self, X, y, X_valid, y_valid, more: bool):
        """Fit afresh (``more=False``) or train the fitted networks further (``more=True``)."""
        self._check_common_params()
        self._check_params()
        if (X_valid is None) != (y_valid is None):
            raise ValueError("pass both X_valid and y_valid, or neither")
        name = type(self).__name__
        device = resolve_device(self.device)
        if more:  # the first fit's feature width, input kind and standardisation
            data, _ = self._validate(X, None, reset=False)
            y = check_target(y, self._n_samples(data), name)
        else:
            data, y = self._validate(X, y, reset=True)
            self.y_mean_ = float(y.mean())
            std = float(y.std())
            self.y_std_ = std if std > 0 else 1.0
        y_scaled = ((y - self.y_mean_) / self.y_std_).astype(np.float32)[:, None]
        rng = check_random_state(self.random_state)
        if X_valid is None:
            train, valid = self._split(len(y), rng)
            train_ds = self._dataset(data, y_scaled, train)
            valid_ds = None if valid is None else self._dataset(data, y_scaled, valid)
        else:
            train_ds = self._dataset(data, y_scaled, np.arange(len(y)))
            valid_data, _ = self._validate(X_valid, None, reset=False)
            y_valid = check_target(y_valid, self._n_samples(valid_data), name)
            y_valid_scaled = ((y_valid - self.y_mean_) / self.y_std_).astype(np.float32)[:, None]
            valid_ds = self._dataset(valid_data, y_valid_scaled, np.arange(len(y_valid)))
        seeds = rng.randint(np.iinfo(np.int32).max, size=self.n_estimators)
        if not more and self.swa_start is not None and self.swa_start > self.max_epochs:
            raise ValueError(
                f"swa_start={self.swa_start} is beyond max_epochs={self.max_epochs}: no epoch would be averaged"
            )
        if more:
            if len(self.nets_) != self.n_estimators:
                raise ValueError(
                    f"{name} was fitted with n_estimators={len(self.nets_)}; a warm start (warm_start=True or "
                    f"partial_fit) continues those networks, so n_estimators={self.n_estimators} cannot apply; "
                    "fit with warm_start=False to train afresh"
                )
            for net, seed in zip(self.nets_, seeds):
                self._continue_net(net, self._make_net(valid_ds, device))
                # a seed of its own for every continuation: shuffling and dropout differ from earlier epochs
                with seeded_torch(int((seed + len(net.history)) % np.iinfo(np.int32).max), device):
                    net.partial_fit(train_ds, y=None)
        else:
            self.nets_ = []
            for seed in seeds:
                net = self._make_net(valid_ds, device)
                with seeded_torch(int(seed), device):
                    net.fit(train_ds, y=None)
                self.nets_.append(net)
        self.history_ = [net.history for net in self.nets_]
        self.device_ = device
        return self

    def _continue_net(self, net: NeuralNet, fresh: NeuralNet) -> None:
        """Give the fitted ``net`` the training-loop settings of ``fresh`` (built from the current parameters).

        Raises ValueError when a setting that defines the network (its module's arguments, the
        loss, the optimiser, the device, whether there is a validation set) differs.
        """
        old, new = net.get_params(deep=False), fresh.get_params(deep=False)
        loop = {"lr", "max_epochs", "batch_size", "verbose", "train_split", "callbacks"}
        changed = sorted(
            k for k in set(old) | set(new)
            if not k.startswith("_") and k not in loop and not k.startswith("optimizer__")
            and old.get(k) != new.get(k)
        )
        if (old["train_split"] is None) != (new["train_split"] is None):
            changed.append("validation set (validation_fraction, X_valid)")
        if changed:
            names = sorted({"loss" if k in ("criterion", "module__n_outputs") else k.removeprefix("module__")
                            for k in changed})
            raise ValueError(
                f"{type(self).__name__}: a warm start (warm_start=True or partial_fit) continues the fitted "
                f"networks, so {names} must keep the values of the first fit; fit with warm_start=False "
                "to train afresh"
            )
        first = dict(net.callbacks_).get("weight_average")
        if (None if first is None else first.start) != self.swa_start:
            raise ValueError(
                f"{type(self).__name__}: a warm start (warm_start=True or partial_fit) continues the fitted "
                f"networks and their weight average, so swa_start must keep the value of the first fit "
                f"({None if first is None else first.start}); fit with warm_start=False to train afresh"
            )
        optimizer = {k: v for k, v in new.items() if k.startswith("optimizer__")}
        net.set_params(**{k: new[k] for k in loop - {"callbacks"}}, **optimizer)

    def _user_callbacks(self) -> list:
        """Fresh copies of ``callbacks`` for one network (ensemble members share no state)."""
        out = []
        for item in self.callbacks or ():
            name, callback = item if isinstance(item, tuple) else (None, item)
            callback = clone(callback, safe=False)
            out.append(callback if name is None else (name, callback))
        return out

    def _make_net(self, valid_ds, device: str) -> NeuralNet:
        module, module_kwargs = self._module()
        callbacks = self._user_callbacks()
        if self.swa_start is not None:  # all max_epochs run; a validation set is only scored
            callbacks.append(("weight_average", WeightAverage(self.swa_start)))
        elif valid_ds is not None:
            stop = EarlyStopping(patience=self.patience, threshold=0.0, load_best=True)
            callbacks.append(("early_stopping", stop))
        return self._net_class(
            module=module,
            **{f"module__{k}": v for k, v in module_kwargs.items()},
            criterion=LOSSES[self._loss()],
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            train_split=None if valid_ds is None else predefined_split(valid_ds),
            iterator_train__shuffle=True,
            iterator_train__collate_fn=self._collate,
            iterator_valid__collate_fn=self._collate,
            callbacks=callbacks,
            device=device,
            verbose=self.verbose,
            **self._net_kwargs(),
        )

    def _n_outputs(self) -> int:
        return 2 if self._loss() == "robust" else 1

    def predict(self, X, return_std: bool = False):
        """Predicted targets, in the unit of y.

        Parameters
        ----------
        X : ElementEmbeddings, sequence of CompoundEmbedding or array of shape (n_samples, n_features)
            Inputs of the kind and width ``fit`` was given.
        return_std : bool, default=False
            Also return a standard deviation (same unit): the predicted one (loss="robust") and/or
            the spread of the ensemble members (n_estimators > 1), combined as
            sqrt(mean aleatoric variance + ensemble variance).

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Predictions (float64; the networks evaluate in float64, so a sample's prediction does
            not depend on the rest of its batch).
        y_std : ndarray of shape (n_samples,)
            The standard deviations; only with ``return_std=True``.
        """
        check_is_fitted(self)
        if return_std and self._loss() != "robust" and len(self.nets_) == 1:
            raise ValueError("return_std=True needs loss='robust' or n_estimators > 1")
        data, _ = self._validate(X, None, reset=False)
        ds = self._dataset(data, None, np.arange(self._n_samples(data)))
        out = np.stack([net.forward(ds, training=False).numpy() for net in self.nets_])
        out = out.astype(np.float64)
        mean = out[:, :, 0].mean(axis=0) * self.y_std_ + self.y_mean_
        if not return_std:
            return mean
        var = out[:, :, 0].var(axis=0)
        if self._loss() == "robust":
            var = var + np.exp(2.0 * out[:, :, 1]).mean(axis=0)
        return mean, np.sqrt(var) * self.y_std_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # scatter sums on GPU
        tags.non_deterministic = str(self.device).startswith("cuda") or (
            self.device == "auto" and torch.cuda.is_available()
        )
        return tags
