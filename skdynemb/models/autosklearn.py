"""auto-sklearn 0.15 as a scikit-learn regressor, run out of process in its own Python 3.9 env.

auto-sklearn's last release needs scikit-learn 0.24 and Python <= 3.9, so it cannot live in
skdynemb's environment. :class:`AutoSklearnRegressor` writes the data as ``.npy`` files to a
temporary folder and runs ``_autosklearn_worker.py`` under the side interpreter; the worker fits
and returns the fitted model as opaque bytes, which this estimator keeps (and hands back to the
worker to predict). Nothing the side env pickled is ever unpickled here.
"""

from __future__ import annotations

import json
import numbers
import tempfile
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from skdynemb._side_env import SideEnv
from skdynemb.models._common import check_target, is_compound_input

#: environment variable naming the side interpreter (when the ``python`` parameter is None)
PYTHON_ENV_VAR = "SKDYNEMB_AUTOSKLEARN_PYTHON"
SETUP_SCRIPT = "scripts/setup-autosklearn.sh"
_WORKER = Path(__file__).with_name("_autosklearn_worker.py")

METRICS = {"mae": "mean_absolute_error", "mse": "mean_squared_error", "rmse": "root_mean_squared_error", "r2": "r2"}

#: constructor arguments the worker sets itself (not accepted in ``autosklearn_kwargs``)
_RESERVED = {"ensemble_class", "ensemble_kwargs", "ensemble_size", "tmp_folder", "delete_tmp_folder_after_terminate",
             "smac_scenario_args", "dask_client", "seed", "metric", "time_left_for_this_task", "per_run_time_limit",
             "memory_limit", "n_jobs", "include", "exclude", "initial_configurations_via_metalearning"}


class AutoSklearnEnvError(RuntimeError):
    """The side environment with auto-sklearn is missing or does not import it."""


class AutoSklearnWorkerError(RuntimeError):
    """The auto-sklearn worker failed, died or ran past its timeout (message quotes its stderr)."""


_ENV = SideEnv(
    name="auto-sklearn", package="auto-sklearn 0.15", folder="autosklearn-0.15.0", env_var=PYTHON_ENV_VAR,
    python_source="the python parameter",
    setup_hint=(
        f"create it with `bash {SETUP_SCRIPT}` from the skdynemb repository (Python 3.9 + auto-sklearn 0.15.0, "
        "about 5 minutes; by hand: python3.9 -m venv ENV && ENV/bin/pip install auto-sklearn==0.15.0 "
        f"'numpy<1.24' 'scipy<1.11'), or point the python parameter or ${PYTHON_ENV_VAR} at ENV/bin/python"
    ),
    env_error=AutoSklearnEnvError, worker_error=AutoSklearnWorkerError,
)


def run_worker(command: str, folder: Path, python, timeout: float) -> None:
    """Run ``_autosklearn_worker.py COMMAND FOLDER`` under the side interpreter.

    Parameters
    ----------
    command : {"check", "fit", "predict"}
        What the worker does in ``folder``.
    folder : Path
        Folder holding the worker's inputs and receiving its outputs.
    python : str or None
        The side interpreter (None: ``$SKDYNEMB_AUTOSKLEARN_PYTHON`` or the setup script's env).
    timeout : float
        Seconds before the worker and its children are killed.

    Raises
    ------
    AutoSklearnEnvError
        The interpreter is missing, or auto-sklearn is not importable in it.
    AutoSklearnWorkerError
        Non-zero exit, killed with its children, or still running after ``timeout`` s.
    """
    _ENV.run(_WORKER, [command, str(folder)], folder, python, timeout,
             timeout_advice="raise timeout (seconds on top of time_left_for_this_task for fit) if the search "
                            "needs longer; ")


def check_env(python=None, timeout: float = 120) -> str:
    """The auto-sklearn version of the side env; AutoSklearnEnvError naming the setup script if unusable.

    Parameters
    ----------
    python : str, optional
        The side interpreter (default: ``$SKDYNEMB_AUTOSKLEARN_PYTHON`` or the setup script's env).
    timeout : float, default=120
        Seconds the check may take.

    Returns
    -------
    version : str
        auto-sklearn's version in the side env, e.g. ``"0.15.0"``.
    """
    with tempfile.TemporaryDirectory(prefix="skdynemb-autosklearn-") as tmp:
        run_worker("check", Path(tmp), python, timeout)
        return (Path(tmp) / "version.txt").read_text()


def _check_X(X):
    if is_compound_input(X):
        raise TypeError(
            "AutoSklearnRegressor takes a 2-D array of per-compound features, got per-element embeddings; "
            "pool them first (e.g. ElementEmbeddings.mean())"
        )


def _check_finite(X: np.ndarray) -> None:
    bad = np.argwhere(~np.isfinite(X))
    if bad.size:
        raise ValueError(f"sample {bad[0, 0]}: NaN or inf in feature {bad[0, 1]}")


def _numeric_target(y, n_samples: int) -> np.ndarray:
    """1-D finite float64 y (:func:`skdynemb.models._common.check_target`, the one target check)."""
    return check_target(y, n_samples, "AutoSklearnRegressor")


class AutoSklearnRegressor(RegressorMixin, BaseEstimator):
    """auto-sklearn 0.15's ``AutoSklearnRegressor``, run in a separate Python 3.9 interpreter.

    ``fit`` searches auto-sklearn's pipelines with SMAC and builds an ensemble of the best runs;
    the fitted model lives in ``model_bytes_``, so this estimator pickles, clones and predicts in
    a new session like any other. Set up the side env once with ``bash scripts/setup-autosklearn.sh``.

    Parameters
    ----------
    time_left_for_this_task : int
        Search budget in seconds (wall clock, all runs together).
    per_run_time_limit : int or None
        Seconds one pipeline fit may take; None: auto-sklearn's default, a tenth of the budget.
    memory_limit : int or None
        Memory limit of one pipeline fit in MB (None: unlimited).
    max_runs : int or None
        End the search after this many pipeline fits (SMAC's ``runcount_limit``) if the budget
        has not ended it before. Must exceed ``initial_configurations_via_metalearning``.
    initial_configurations_via_metalearning : int
        Pipelines warm-started from auto-sklearn's meta-learning (0 disables it).
    ensemble_size : int
        Rounds of ensemble selection over the fitted runs (1: the single best run).
    metric : {"mae", "mse", "rmse", "r2"}
        Metric optimised on the hold-out split.
    include, exclude : dict or None
        auto-sklearn's component filters, e.g. ``{"regressor": ["random_forest", "gradient_boosting"]}``.
    random_state : int, RandomState or None
        Seed of the search. The search is reproducible for a seed when ``max_runs`` ends it (not
        the clock), ``n_jobs=1`` and no run hits ``per_run_time_limit`` or ``memory_limit``: a run
        killed by a limit depends on machine load, and so does everything after it.
    n_jobs : int
        Parallel pipeline fits (auto-sklearn starts a dask cluster for more than 1).
    python : str, path or None
        Interpreter of the side env; None: ``$SKDYNEMB_AUTOSKLEARN_PYTHON``, else
        ``~/.cache/skdynemb/autosklearn-0.15.0/bin/python`` (the script's default target).
    timeout : float
        Seconds a worker call may take beyond the search budget (fit) or in all (predict)
        before it is killed.
    autosklearn_kwargs : dict or None
        Further (JSON-serialisable) ``AutoSklearnRegressor`` arguments, e.g.
        ``{"resampling_strategy": "cv", "resampling_strategy_arguments": {"folds": 5}}``.

    Attributes
    ----------
    model_bytes_ : bytes
        The fitted auto-sklearn model, pickled by (and only readable in) the side env.
    n_runs_ : int
        Pipeline fits run by the search.
    ensemble_ : list of dict
        Ensemble members: ``model_id``, ``type`` (regressor), ``weight``, ``cost`` (hold-out loss).
    autosklearn_version_ : str
        auto-sklearn version that fitted the model.
    n_features_in_ : int
    """

    def __init__(
        self,
        time_left_for_this_task=60,
        per_run_time_limit=None,
        memory_limit=3072,
        max_runs=None,
        initial_configurations_via_metalearning=25,
        ensemble_size=50,
        metric="mae",
        include=None,
        exclude=None,
        random_state=0,
        n_jobs=1,
        python=None,
        timeout=300,
        autosklearn_kwargs=None,
    ):
        self.time_left_for_this_task = time_left_for_this_task
        self.per_run_time_limit = per_run_time_limit
        self.memory_limit = memory_limit
        self.max_runs = max_runs
        self.initial_configurations_via_metalearning = initial_configurations_via_metalearning
        self.ensemble_size = ensemble_size
        self.metric = metric
        self.include = include
        self.exclude = exclude
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.python = python
        self.timeout = timeout
        self.autosklearn_kwargs = autosklearn_kwargs

    def _params(self) -> dict:
        """Checked worker parameters (JSON)."""
        def positive_int(name, value, none_ok=False, minimum=1):
            if value is None and none_ok:
                return None
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
                alt = " or None" if none_ok else ""
                raise ValueError(f"{name} must be an integer >= {minimum}{alt}, got {value!r}")
            return int(value)

        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {sorted(METRICS)}, got {self.metric!r}")
        if not isinstance(self.timeout, numbers.Real) or self.timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {self.timeout!r}")
        initial = positive_int("initial_configurations_via_metalearning",
                               self.initial_configurations_via_metalearning, minimum=0)
        max_runs = positive_int("max_runs", self.max_runs, none_ok=True)
        if max_runs is not None and max_runs <= initial:
            raise ValueError(f"max_runs={max_runs} must exceed initial_configurations_via_metalearning={initial} "
                             "(auto-sklearn runs those and its default pipeline first)")
        extra = dict(self.autosklearn_kwargs or {})
        if _RESERVED & set(extra):
            raise ValueError(f"autosklearn_kwargs may not set {sorted(_RESERVED & set(extra))}: they are parameters "
                             "of AutoSklearnRegressor or set by its worker")
        rs = self.random_state
        seed = int(rs) if isinstance(rs, numbers.Integral) else int(check_random_state(rs).randint(2**31 - 1))
        params = {
            "time_left_for_this_task": positive_int("time_left_for_this_task", self.time_left_for_this_task),
            "per_run_time_limit": positive_int("per_run_time_limit", self.per_run_time_limit, none_ok=True),
            "memory_limit": positive_int("memory_limit", self.memory_limit, none_ok=True),
            "max_runs": max_runs,
            "ensemble_size": positive_int("ensemble_size", self.ensemble_size),
            "metric": METRICS[self.metric],
            "include": self.include,
            "exclude": self.exclude,
            "seed": seed,
            "n_jobs": positive_int("n_jobs", self.n_jobs),
            "autosklearn_kwargs": {**extra, "initial_configurations_via_metalearning": initial},
        }
        try:
            return json.loads(json.dumps(params))
        except TypeError as exc:
            raise ValueError(f"include, exclude and autosklearn_kwargs must be JSON-serialisable: {exc}") from None

    def fit(self, X, y):
        """Search auto-sklearn pipelines on (X, y) and keep the fitted ensemble.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Per-compound features (at least 2 samples).
        y : array-like of shape (n_samples,)
            Numeric targets, in any unit.

        Returns
        -------
        self : AutoSklearnRegressor
            The fitted estimator.
        """
        _check_X(X)
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite=False, ensure_min_samples=2)
        _check_finite(X)
        y = _numeric_target(y, len(X))
        params = self._params()
        with tempfile.TemporaryDirectory(prefix="skdynemb-autosklearn-") as tmp:
            folder = Path(tmp)
            np.save(folder / "X.npy", X, allow_pickle=False)
            np.save(folder / "y.npy", y, allow_pickle=False)
            (folder / "params.json").write_text(json.dumps(params))
            run_worker("fit", folder, self.python, params["time_left_for_this_task"] + self.timeout)
            result = json.loads((folder / "result.json").read_text())
            self.model_bytes_ = (folder / "model.bin").read_bytes()
        self.n_runs_ = int(result["n_runs"])
        self.ensemble_ = result["ensemble"]
        self.autosklearn_version_ = result["autosklearn_version"]
        return self

    def predict(self, X):
        """Predictions of the fitted ensemble, computed in the side interpreter.

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
        _check_X(X)
        X = validate_data(self, X, reset=False, dtype=np.float64, ensure_all_finite=False)
        _check_finite(X)
        if not isinstance(self.timeout, numbers.Real) or self.timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {self.timeout!r}")
        with tempfile.TemporaryDirectory(prefix="skdynemb-autosklearn-") as tmp:
            folder = Path(tmp)
            np.save(folder / "X.npy", X, allow_pickle=False)
            (folder / "model.bin").write_bytes(self.model_bytes_)
            run_worker("predict", folder, self.python, self.timeout)
            pred = np.load(folder / "pred.npy", allow_pickle=False)
        if pred.shape != (len(X),):
            raise AutoSklearnWorkerError(f"worker returned {pred.shape} predictions for {len(X)} samples")
        return pred

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.max_runs is None  # a clock-ended search depends on machine speed
        return tags
