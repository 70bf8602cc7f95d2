"""Stochastic weight averaging (SWA) of a skorch network's parameters, the engine of ``swa_start``.

The regressors' networks train at a constant learning rate; from epoch ``swa_start`` on, the
parameters after every epoch enter a running mean, and the network ends with that mean instead
of its last weights (Izmailov et al., "Averaging Weights Leads to Wider Optima and Better
Generalization", UAI 2018). On small training sets this cuts the scatter between seeds without
holding out validation data (``benchmarks/results/swa.md``).

Only parameters are averaged: buffers keep their last values, which is exact for networks
without batch normalisation (Roost, ElemNet and the CrabNet-style model have none).
"""

from __future__ import annotations

import torch
from skorch.callbacks import Callback


class WeightAverage(Callback):
    """skorch callback: the network ends each training call with the mean of its parameters over
    the epochs from ``start`` on.

    Epochs are counted by the network's history (1-based), so a continued training
    (``partial_fit``) extends the same average; it resumes from the last trained weights, not from
    their mean (the optimiser state belongs to the former).

    Parameters
    ----------
    start : int
        First epoch (1-based) whose weights enter the mean.

    Attributes
    ----------
    mean_ : dict of str to torch.Tensor or None
        Running mean of the parameters (float64), None before epoch ``start``.
    count_ : int
        Number of epochs averaged.
    last_ : dict of str to torch.Tensor or None
        The parameters after the last epoch, kept while the network holds the mean.
    """

    def __init__(self, start: int):
        self.start = start

    def initialize(self):
        """Forget any average (a fresh fit).

        Returns
        -------
        self : WeightAverage
            This callback, reset.
        """
        self.mean_, self.count_, self.last_ = None, 0, None
        return self

    def on_train_begin(self, net, **kwargs):
        """Put the last trained weights back before training goes on.

        Parameters
        ----------
        net : skorch.NeuralNet
            The network being trained.
        **kwargs : dict
            skorch's other callback arguments (unused).
        """
        if self.last_ is not None:
            _assign(net.module_, self.last_)
            self.last_ = None

    def on_epoch_end(self, net, **kwargs):
        """Add this epoch's parameters to the running mean (from epoch ``start`` on).

        Parameters
        ----------
        net : skorch.NeuralNet
            The network being trained.
        **kwargs : dict
            skorch's other callback arguments (unused).
        """
        if len(net.history) < self.start:
            return
        self.count_ += 1
        with torch.no_grad():
            params = {name: p.detach().double() for name, p in net.module_.named_parameters()}
            if self.mean_ is None:
                self.mean_ = {name: p.clone() for name, p in params.items()}
            else:
                for name, p in params.items():
                    self.mean_[name] += (p - self.mean_[name]) / self.count_

    def on_train_end(self, net, **kwargs):
        """Keep the last weights aside and give the network the mean.

        Parameters
        ----------
        net : skorch.NeuralNet
            The network being trained.
        **kwargs : dict
            skorch's other callback arguments (unused).
        """
        if not self.count_:
            return
        self.last_ = {name: p.detach().clone() for name, p in net.module_.named_parameters()}
        _assign(net.module_, self.mean_)


def _assign(module: torch.nn.Module, values: dict) -> None:
    """Copy ``values`` (name -> tensor, any float dtype) into ``module``'s parameters, in their dtype."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(values[name])
