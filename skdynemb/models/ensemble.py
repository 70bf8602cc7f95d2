"""SeedEnsembleRegressor: n copies of one regressor that differ only by their seed, averaged.

A small training set makes a neural regressor's test error depend on its seed (Roost on a few
hundred compounds scatters by about +-15% between seeds); the mean prediction of a few seeds
is both better and steadier than one of them, and the spread of the members is an
uncertainty. The members all see the same X, so in a pipeline the embedding step runs once,
before the ensemble:

``make_pipeline(DynamicEmbeddingTransformer(...), SeedEnsembleRegressor(RoostRegressor(), n_seeds=5))``
"""

from __future__ import annotations

import numbers

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, MetaEstimatorMixin, RegressorMixin, clone
from sklearn.utils import check_random_state, get_tags
from sklearn.utils.validation import check_is_fitted


def seed_parameters(estimator) -> list[str]:
    """Names of the parameters of ``estimator`` (nested ones included) that set a seed.

    These are ``random_state`` and every ``<step>__random_state`` of a pipeline or other
    composite estimator.

    Parameters
    ----------
    estimator : estimator
        Any scikit-learn estimator (a pipeline included).

    Returns
    -------
    names : list of str
        The seed parameters, sorted (empty when the estimator takes no seed).
    """
    return sorted(k for k in estimator.get_params(deep=True) if k == "random_state" or k.endswith("__random_state"))


def _fit_member(estimator, X, y, fit_params):
    return estimator.fit(X, y, **fit_params)


class SeedEnsembleRegressor(MetaEstimatorMixin, RegressorMixin, BaseEstimator):
    """Mean of ``n_seeds`` clones of a regressor, each fitted with its own seed.

    Member *k* is ``clone(estimator)`` with every seed parameter (``random_state``, and
    ``<step>__random_state`` inside a pipeline) set to ``seeds_[k]``; the member seeds are drawn
    from ``random_state``, so the ensemble is as reproducible as its members. All members are
    fitted on the same ``X, y`` (in parallel with ``n_jobs``); ``predict`` returns their mean and,
    with ``return_std=True``, their spread.

    Parameters
    ----------
    estimator : regressor, default=None
        The regressor to repeat; it must have a seed parameter. None means
        :class:`~skdynemb.models.roost.RoostRegressor` with its defaults.
    n_seeds : int, default=5
        Number of members.
    n_jobs : int, optional
        joblib workers fitting the members (None or 1: one after the other in this process;
        -1: all cores). Each worker gets a copy of X. With the ``loky`` backend each worker
        runs torch with its share of the cores, so parallel members can differ from sequential
        ones in the last float32 bits.
    random_state : int, RandomState or None, default=0
        Seed of the draw of the members' seeds (``seeds_``).

    Attributes
    ----------
    estimators_ : list of estimators
        The fitted members.
    seeds_ : ndarray of int, shape (n_seeds,)
        The seed each member was given.
    seed_parameters_ : list of str
        The parameters of ``estimator`` that were set to the member seed.
    n_features_in_ : int
        Number of input features, as the first member saw them (only when it records it).
    feature_names_in_ : ndarray of str
        Names of the input columns of a DataFrame X (only when the first member records them).

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from skdynemb import RoostRegressor, SeedEnsembleRegressor, StaticEmbeddingTransformer
    >>> model = make_pipeline(StaticEmbeddingTransformer("megnet16"),
    ...                       SeedEnsembleRegressor(RoostRegressor(max_epochs=5), n_seeds=3))
    >>> mean, std = model.fit(["LiCoO2", "Co3O4", "NaCl", "MgO"], [-1.8, -1.3, -2.1, -3.0]).predict(
    ...     ["LiCoO2"], return_std=True)
    >>> mean.shape, std.shape
    ((1,), (1,))
    """

    def __init__(self, estimator=None, n_seeds=5, n_jobs=None, random_state=0):
        self.estimator = estimator
        self.n_seeds = n_seeds
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _base(self):
        if self.estimator is not None:
            return self.estimator
        from skdynemb.models.roost import RoostRegressor

        return RoostRegressor()

    def fit(self, X, y, **fit_params):
        """Fit ``n_seeds`` seeded clones of ``estimator`` on (X, y).

        Parameters
        ----------
        X : any input the estimator takes
            e.g. :class:`~skdynemb.embeddings.ElementEmbeddings` for Roost, a 2-D array for
            ElemNet, structures for a whole pipeline.
        y : array-like of shape (n_samples,)
            Targets, in any unit.
        **fit_params : dict
            Passed to every member's ``fit`` (e.g. ``X_valid=..., y_valid=...`` of Roost).

        Returns
        -------
        self : SeedEnsembleRegressor
            The fitted ensemble.
        """
        if isinstance(self.n_seeds, bool) or not isinstance(self.n_seeds, numbers.Integral) or self.n_seeds < 1:
            raise ValueError(f"n_seeds must be a positive integer, got {self.n_seeds!r}")
        base = self._base()
        names = seed_parameters(base)
        if not names:
            raise ValueError(
                f"{type(base).__name__} has no random_state parameter, so its members would all be the "
                "same model; SeedEnsembleRegressor needs an estimator whose seed changes its fit"
            )
        rng = check_random_state(self.random_state)
        seeds = rng.randint(np.iinfo(np.int32).max, size=self.n_seeds)
        members = [clone(base).set_params(**dict.fromkeys(names, int(s))) for s in seeds]
        self.estimators_ = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_member)(member, X, y, fit_params) for member in members
        )
        self.seeds_ = seeds
        self.seed_parameters_ = names
        first = self.estimators_[0]
        for attr in ("n_features_in_", "feature_names_in_"):
            if hasattr(first, attr):
                setattr(self, attr, getattr(first, attr))
            elif attr in vars(self):
                delattr(self, attr)
        return self

    def predict_members(self, X) -> np.ndarray:
        """Each member's prediction, in the unit of y.

        Parameters
        ----------
        X : object
            Inputs of the kind the member estimator takes.

        Returns
        -------
        predictions : ndarray of shape (n_seeds, n_samples) or (n_seeds, n_samples, n_targets)
            One row per member (the last axis for a multi-output member), float64.
        """
        check_is_fitted(self, "estimators_")
        return np.stack([np.asarray(est.predict(X), dtype=np.float64) for est in self.estimators_])

    def predict(self, X, return_std: bool = False):
        """Mean prediction of the members, shape (n_samples,), in the unit of y.

        Parameters
        ----------
        X : any input the estimator takes
            Samples to predict.
        return_std : bool, default=False
            Also return the members' standard deviation per sample (ddof=0, unit of y): the seed
            spread, an uncertainty of the mean. 0 with a single member.

        Returns
        -------
        y_mean : ndarray of shape (n_samples,) or (n_samples, n_targets)
            Mean of the members' predictions.
        y_std : ndarray of the same shape
            Only with ``return_std=True``: their standard deviation.
        """
        out = self.predict_members(X)
        mean = out.mean(axis=0)
        return (mean, out.std(axis=0)) if return_std else mean

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = get_tags(self._base())
        tags.input_tags = inner.input_tags
        tags.target_tags.single_output = inner.target_tags.single_output
        tags.target_tags.multi_output = inner.target_tags.multi_output
        tags.non_deterministic = inner.non_deterministic
        return tags
