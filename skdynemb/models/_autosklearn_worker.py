"""Fit or apply auto-sklearn inside its own interpreter (run by AutoSklearnRegressor).

    python -I _autosklearn_worker.py fit FOLDER      # params.json, X.npy, y.npy -> model.bin, result.json
    python -I _autosklearn_worker.py predict FOLDER  # model.bin, X.npy -> pred.npy
    python -I _autosklearn_worker.py check FOLDER    # -> version.txt (auto-sklearn imports)

This file runs under the side environment's Python 3.9 with only numpy and auto-sklearn 0.15:
it must not import skdynemb (nor anything else from the main environment). Arrays cross as
``.npy`` files read with ``allow_pickle=False``; the only pickle is ``model.bin``, written and read
here, never unpickled by the main environment. Exit status :data:`ENV_BROKEN` means auto-sklearn
could not be imported.
"""

import json
import pickle
import sys
from pathlib import Path

ENV_BROKEN = 3

try:
    import numpy as np
except ImportError as exc:
    print(f"cannot import auto-sklearn's dependency numpy in {sys.executable}: {exc}", file=sys.stderr)
    sys.exit(ENV_BROKEN)


def _autosklearn():
    try:
        import autosklearn.metrics
        import autosklearn.regression
    except Exception as exc:  # ImportError, or compiled modules built against another numpy
        print(f"cannot import auto-sklearn in {sys.executable}: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(ENV_BROKEN)
    return autosklearn


def _leaderboard(model):
    board = model.leaderboard(ensemble_only=True, detailed=False)
    return [
        {"model_id": int(i), "type": str(r["type"]), "weight": float(r["ensemble_weight"]), "cost": float(r["cost"])}
        for i, r in board.iterrows()
    ]


def fit(folder: Path) -> None:
    autosklearn = _autosklearn()
    p = json.loads((folder / "params.json").read_text())
    X = np.load(folder / "X.npy", allow_pickle=False)
    y = np.load(folder / "y.npy", allow_pickle=False)
    model = autosklearn.regression.AutoSklearnRegressor(
        time_left_for_this_task=p["time_left_for_this_task"],
        per_run_time_limit=p["per_run_time_limit"],
        memory_limit=p["memory_limit"],
        seed=p["seed"],
        n_jobs=p["n_jobs"],
        metric=getattr(autosklearn.metrics, p["metric"]),
        include=p["include"],
        exclude=p["exclude"],
        smac_scenario_args=None if p["max_runs"] is None else {"runcount_limit": p["max_runs"]},
        # the ensemble is built once after the search (not by a builder racing the search), so
        # it depends on the runs only, not on their timing
        ensemble_class=None,
        tmp_folder=str(folder / "autosklearn"),
        delete_tmp_folder_after_terminate=False,  # fit_ensemble reads the runs' predictions; the caller deletes it
        **p["autosklearn_kwargs"],
    )
    model.fit(X, y)
    model.fit_ensemble(y, ensemble_kwargs={"ensemble_size": p["ensemble_size"]})
    (folder / "model.bin").write_bytes(pickle.dumps(model, protocol=4))
    result = {
        "n_runs": len(model.cv_results_["params"]),
        "ensemble": _leaderboard(model),
        "autosklearn_version": autosklearn.__version__,
        "python_version": sys.version.split()[0],
    }
    (folder / "result.json").write_text(json.dumps(result))


def predict(folder: Path) -> None:
    _autosklearn()
    model = pickle.loads((folder / "model.bin").read_bytes())
    X = np.load(folder / "X.npy", allow_pickle=False)
    pred = np.asarray(model.predict(X), dtype=np.float64).reshape(-1)
    np.save(folder / "pred.npy", pred, allow_pickle=False)


def check(folder: Path) -> None:
    (folder / "version.txt").write_text(_autosklearn().__version__)


if __name__ == "__main__":
    command, folder = sys.argv[1], Path(sys.argv[2])
    {"fit": fit, "predict": predict, "check": check}[command](folder)
