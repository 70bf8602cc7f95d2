"""AutoML regression (FLAML, or auto-sklearn in its own interpreter) as a scikit-learn estimator."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from skdynemb._optional import needs_extra
from skdynemb.models._common import check_target, is_compound_input
from skdynemb.models.autosklearn import AutoSklearnRegressor


class AutoMLRegressor(RegressorMixin, BaseEstimator):
    """Automated model selection and tuning on a 2-D float array.

    Parameters
    ----------
    time_budget : float
        Search time in seconds (FLAML: -1 for no limit, then set ``max_iter``).
    backend : {"flaml", "autosklearn", "auto-sklearn"}
        "flaml": FLAML's AutoML, in this environment. "autosklearn" (also spelt "auto-sklearn"):
        auto-sklearn 0.15 run out of process by :class:`AutoSklearnRegressor`, whose side env
        ``bash scripts/setup-autosklearn.sh`` creates.
    metric : str
        Metric the search optimises: "mae", "mse", "rmse", "r2" (FLAML also takes its other
        metric names).
    estimator_list : list of str or None
        Learner names to search (FLAML: e.g. ["lgbm", "xgboost", "rf"]; auto-sklearn: its
        regressor names, e.g. ["random_forest", "gradient_boosting"]); None searches the
        backend's default set.
    random_state : int, RandomState or None
        Seed of the search. With FLAML the search is reproducible when it is ended by
        ``max_iter`` (``time_budget=-1``): FLAML's data splits use a fixed seed and its learners
        are seeded, so the same seed gives the same model. When the time budget ends the search,
        the number of trials depends on machine speed and load, and so may the chosen model.
        auto-sklearn is reproducible likewise when ``max_iter`` ends its search and no run hits
        a time or memory limit (see :class:`AutoSklearnRegressor`).
    n_jobs : int
        Parallel jobs of the learners (FLAML) or of the search (auto-sklearn).
    max_iter : int or None
        Trial limit (FLAML), pipeline-fit limit (auto-sklearn's ``max_runs``); None: no limit.
    fit_kwargs : dict or None
        Further keyword arguments for FLAML's ``fit``, e.g. {"eval_method": "cv", "n_splits": 5},
        or further :class:`AutoSklearnRegressor` parameters, e.g. {"per_run_time_limit": 10,
        "ensemble_size": 20, "python": "/path/to/env/bin/python"}.

    Attributes
    ----------
    model_ : flaml.AutoML or AutoSklearnRegressor
        The fitted search.
    best_estimator_ : str or None
        Name of the chosen learner (FLAML) or None.
    n_iter_ : int
        Number of trials run.
    """

    def __init__(
        self,
        time_budget=60,
        backend="flaml",
        metric="mae",
        estimator_list=None,
        random_state=0,
        n_jobs=1,
        max_iter=None,
        fit_kwargs=None,
    ):
        self.time_budget = time_budget
        self.backend = backend
        self.metric = metric
        self.estimator_list = estimator_list
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.max_iter = max_iter
        self.fit_kwargs = fit_kwargs

    def _check_X(self, X):
        if is_compound_input(X):
            raise TypeError(
                "AutoMLRegressor takes a 2-D array of per-compound features, got per-element "
                "embeddings; pool them first (e.g. ElementEmbeddings.mean())"
            )

    def fit(self, X, y):
        """Search learners and hyper-parameters on (X, y) within the budget; refit the best.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Per-compound features (e.g. pooled embeddings).
        y : array-like of shape (n_samples,)
            Targets, in any unit.

        Returns
        -------
        self : AutoMLRegressor
            The fitted estimator.
        """
        if self.backend not in ("flaml", "autosklearn", "auto-sklearn"):
            raise ValueError(f"backend must be 'flaml' or 'autosklearn', got {self.backend!r}")
        self._check_X(X)
        y = check_target(y, None, type(self).__name__)  # the one target check: named, finite, float32 range
        if self.backend != "flaml":
            self._fit_autosklearn(X, y)
            return self
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        if isinstance(self.random_state, numbers.Integral):
            seed = int(self.random_state)
        else:
            seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        self._fit_flaml(X, y, seed)
        return self

    def _fit_flaml(self, X, y, seed):
        with needs_extra("AutoMLRegressor(backend='flaml')"):
            from flaml import AutoML

        model = AutoML()
        model.fit(
            X,
            y,
            task="regression",
            time_budget=self.time_budget,
            metric=self.metric,
            estimator_list=self.estimator_list or "auto",
            seed=seed,
            n_jobs=self.n_jobs,
            max_iter=self.max_iter,
            verbose=0,
            **(self.fit_kwargs or {}),
        )
        self.model_ = model
        self.best_estimator_ = model.best_estimator
        # flaml 2.7 exposes the trial count only as this private per-learner tally
        self.n_iter_ = int(sum(model._iter_per_learner.values()))

    def _fit_autosklearn(self, X, y):
        if self.time_budget is None or self.time_budget <= 0:
            raise ValueError(f"auto-sklearn needs a positive time_budget (seconds), got {self.time_budget!r}")
        model = AutoSklearnRegressor(
            time_left_for_this_task=self.time_budget,
            max_runs=self.max_iter,
            metric=self.metric,
            include={"regressor": list(self.estimator_list)} if self.estimator_list else None,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
            **(self.fit_kwargs or {}),
        )
        model.fit(X, y)
        self.model_ = model
        self.n_features_in_ = model.n_features_in_
        self.best_estimator_ = None
        self.n_iter_ = model.n_runs_

    def predict(self, X):
        """Predictions of the best model found.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Per-compound features, as in ``fit``.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Predicted targets, in the unit of y.
        """
        check_is_fitted(self)
        self._check_X(X)
        if isinstance(self.model_, AutoSklearnRegressor):
            return self.model_.predict(X)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return np.asarray(self.model_.predict(X), dtype=np.float64).reshape(-1)
