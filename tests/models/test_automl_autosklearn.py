"""AutoSklearnRegressor: auto-sklearn 0.15 in its side env, fitted for real on MP structures.

The real fits need the env of ``bash scripts/setup-autosklearn.sh``; without it they skip, unless
SKDYNEMB_REQUIRE_AUTOSKLEARN=1 (set by .ci/run, which builds the env) turns the skip into a failure.
Everything else here (API checks, input checks, missing/broken env, timeout) needs no side env.
"""

import copy
import os
import pickle
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Structure
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import estimator_checks_generator

from skdynemb import DynamicEmbeddingTransformer
from skdynemb.models import AutoMLRegressor, AutoSklearnRegressor
from skdynemb.models.autosklearn import AutoSklearnEnvError, AutoSklearnWorkerError, check_env

CGCNN = "cgcnn-mp-eform"  # the fast shipped backbone these tests were written for (the default is alignn-ff)

LEARNERS = ["random_forest", "extra_trees", "k_nearest_neighbors"]
# ended by max_runs, with a per-run limit no run gets near: reproducible for a seed (see the docstring)
SMALL = dict(time_left_for_this_task=90, per_run_time_limit=60, max_runs=4, initial_configurations_via_metalearning=0,
             ensemble_size=10, include={"regressor": LEARNERS}, random_state=3)


@pytest.fixture(scope="module")
def side_env():
    try:
        return check_env()
    except AutoSklearnEnvError as exc:
        if os.environ.get("SKDYNEMB_REQUIRE_AUTOSKLEARN") == "1":
            pytest.fail(f"SKDYNEMB_REQUIRE_AUTOSKLEARN=1 but the side env is not usable: {exc}")
        pytest.skip(f"auto-sklearn side env not usable: {exc}")


@pytest.fixture(scope="module")
def mp(mp_sample):
    """160 seeded MP records: structures and e_form (eV/atom); the first 120 train, the rest test."""
    records = mp_sample(160, seed=7)
    return [Structure.from_str(r["cif"], fmt="cif") for r in records], np.array([r["e_form"] for r in records])


def test_real_fit_in_a_pipeline_on_structures(side_env, mp, tmp_path):
    """One auto-sklearn fit through a Pipeline (the slow part, ~30 s), then all a fitted model must do.

    A single test, so that pytest-xdist cannot fit the same model in two workers.
    """
    structures, y = mp
    pipe = make_pipeline(DynamicEmbeddingTransformer(CGCNN, pooling="mean", progress=False, device="cpu"),
                         AutoSklearnRegressor(**SMALL))
    pipe.fit(structures[:120], y[:120])
    pred = pipe.predict(structures[120:])
    _learns(pipe, pred, y)
    _pickles_clones_and_predicts_in_a_new_session(pipe, structures[120:], pred, tmp_path)
    X = pipe[0].transform(structures)
    _checks_inputs_and_surfaces_worker_errors(pipe[-1], X[120:125].copy())
    _same_seed_same_model_also_through_automl_backend(pipe[-1], X, y, pred)


def _learns(pipe, pred, y):
    reg = pipe[-1]
    assert pred.shape == (40,) and pred.dtype == np.float64
    mae, baseline = np.abs(pred - y[120:]).mean(), np.abs(y[120:] - y[:120].mean()).mean()
    assert mae < 0.7 * baseline, (mae, baseline)
    assert reg.n_features_in_ == pipe[0].n_features_out_
    assert 1 <= reg.n_runs_ <= SMALL["max_runs"] and reg.autosklearn_version_ == "0.15.0"
    assert reg.ensemble_ and {m["type"] for m in reg.ensemble_} <= set(LEARNERS)
    assert sum(m["weight"] for m in reg.ensemble_) == pytest.approx(1.0)


def _pickles_clones_and_predicts_in_a_new_session(pipe, test, pred, tmp_path):
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(pipe)).predict(test), pred)
    unfitted = clone(pipe[-1])
    assert unfitted.get_params() == pipe[-1].get_params() and not hasattr(unfitted, "model_bytes_")
    # the regressor alone in a fresh interpreter of the main env, as after a restart
    (tmp_path / "reg.pkl").write_bytes(pickle.dumps(pipe[-1]))
    np.save(tmp_path / "X.npy", pipe[0].transform(test))
    script = textwrap.dedent(f"""
        import pickle, numpy as np
        reg = pickle.load(open({str(tmp_path / 'reg.pkl')!r}, "rb"))
        np.save({str(tmp_path / 'pred.npy')!r}, reg.predict(np.load({str(tmp_path / 'X.npy')!r})))
    """)
    repo = str(Path(__file__).resolve().parents[2])
    subprocess.run([sys.executable, "-c", script], check=True, env={**os.environ, "PYTHONPATH": repo})
    np.testing.assert_array_equal(np.load(tmp_path / "pred.npy"), pred)


def _checks_inputs_and_surfaces_worker_errors(reg, X):
    with pytest.raises(ValueError, match=f"has {X.shape[1] - 1} features"):
        reg.predict(X[:, 1:])
    X[2, 5] = np.nan
    with pytest.raises(ValueError, match="sample 2: NaN or inf in feature 5"):
        reg.predict(X)
    broken = copy.deepcopy(reg)
    broken.model_bytes_ = reg.model_bytes_[: len(reg.model_bytes_) // 2]  # a truncated model file
    with pytest.raises(AutoSklearnWorkerError, match=r"\(predict\) failed \(exit status 1\).*(?s:.*)pickle"):
        broken.predict(np.nan_to_num(X))


def _same_seed_same_model_also_through_automl_backend(reg, X, y, pred):
    """A run-limited search is reproducible; AutoMLRegressor(backend="auto-sklearn") is the same model."""
    again = AutoMLRegressor(backend="auto-sklearn", time_budget=SMALL["time_left_for_this_task"], random_state=3,
                            max_iter=SMALL["max_runs"], estimator_list=LEARNERS,
                            fit_kwargs={k: SMALL[k] for k in ("per_run_time_limit", "ensemble_size",
                                                              "initial_configurations_via_metalearning")})
    again.fit(X[:120], y[:120])
    assert again.n_iter_ == reg.n_runs_ and again.model_.ensemble_ == reg.ensemble_
    np.testing.assert_array_equal(again.predict(X[120:]), pred)


# ----------------------------------------------------------------------------- no side env needed
def _xy(n=30, d=4):
    rng = np.random.default_rng(0)
    return rng.random((n, d)), rng.random(n)


def test_missing_env_names_the_setup_script(monkeypatch, tmp_path):
    X, y = _xy()
    with pytest.raises(AutoSklearnEnvError, match=r"no auto-sklearn interpreter at .*nope.*python parameter.*"
                                                  r"bash scripts/setup-autosklearn\.sh"):
        AutoSklearnRegressor(python=tmp_path / "nope" / "python").fit(X, y)
    monkeypatch.setenv("SKDYNEMB_AUTOSKLEARN_PYTHON", str(tmp_path / "env" / "bin" / "python"))
    with pytest.raises(AutoSklearnEnvError, match=r"SKDYNEMB_AUTOSKLEARN_PYTHON.*setup-autosklearn\.sh"):
        AutoMLRegressor(backend="autosklearn").fit(X, y)


def test_env_without_autosklearn_names_the_setup_script():
    """The main env's own Python has numpy but no auto-sklearn: a broken side env."""
    X, y = _xy()
    with pytest.raises(AutoSklearnEnvError, match=r"cannot import auto-sklearn.*(?s:.*)setup-autosklearn\.sh"):
        AutoSklearnRegressor(python=sys.executable).fit(X, y)
    with pytest.raises(AutoSklearnEnvError, match=r"cannot import auto-sklearn"):
        check_env(sys.executable)


def test_timeout_kills_the_worker_and_its_children(tmp_path):
    pidfile = tmp_path / "child.pid"
    fake = tmp_path / "python"  # stands in for a worker that hangs, with a child of its own
    fake.write_text(f"#!/bin/sh\necho started >&2\nsleep 120 &\necho $! > {pidfile}\nwait\n")
    fake.chmod(0o755)
    X, y = _xy()
    with pytest.raises(AutoSklearnWorkerError, match=r"still running after 3 s and was killed(?s:.*)stderr:\nstarted"):
        AutoSklearnRegressor(python=fake, time_left_for_this_task=1, timeout=2).fit(X, y)
    child = int(pidfile.read_text())
    for _ in range(50):  # SIGKILL is delivered asynchronously; the child must be gone (or a zombie) soon
        try:
            with open(f"/proc/{child}/stat") as fh:
                if fh.read().split(")")[-1].split()[0] == "Z":
                    break
        except FileNotFoundError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the worker's child {child} survived the timeout")


def test_rejects_non_numeric_and_non_finite_targets():
    X, _ = _xy(4)
    with pytest.raises(ValueError, match=r"sample 0: target 'metal' is not a number.*regressor"):
        AutoSklearnRegressor().fit(X, ["metal", "insulator", "metal", "metal"])
    with pytest.raises(ValueError, match=r"sample 2: target 'x' is not a number"):
        AutoSklearnRegressor().fit(X, np.array([1.0, 2.0, "x", 3.0], dtype=object))
    with pytest.raises(ValueError, match=r"sample 1: target is nan"):
        AutoSklearnRegressor().fit(X, [1.0, np.nan, 2.0, 3.0])
    with pytest.raises(ValueError, match="X has 4 samples but y has 3"):
        AutoSklearnRegressor().fit(X, [1.0, 2.0, 3.0])


def test_rejects_bad_parameters_before_starting_a_worker():
    X, y = _xy()
    cases = [
        (dict(max_runs=5), "max_runs=5 must exceed initial_configurations_via_metalearning=25"),
        (dict(metric="mape"), "metric must be one of"),
        (dict(time_left_for_this_task=0), "time_left_for_this_task must be an integer >= 1"),
        (dict(autosklearn_kwargs={"tmp_folder": "/tmp/x"}), r"may not set \['tmp_folder'\]"),
        (dict(include={"regressor": {"random_forest"}}), "JSON-serialisable"),
    ]
    for params, message in cases:
        with pytest.raises(ValueError, match=message):
            AutoSklearnRegressor(python="/nonexistent/python", **params).fit(X, y)
    X[3, 1] = np.inf
    with pytest.raises(ValueError, match="sample 3: NaN or inf in feature 1"):
        AutoSklearnRegressor(python="/nonexistent/python").fit(X, y)


# ----------------------------------------------------------------------------- scikit-learn's checks
# Checks that fit run auto-sklearn for real: every fit starts the side interpreter, a dask
# client and a SMAC search (>= ~20 s), so the ~25 fits these checks make would take over 10
# minutes. What they check of a fitted model, test_real_fit_in_a_pipeline_on_structures tests on
# real structures: fit returns self and predicts (n,) floats that learn, pickling and predicting
# in a new session, clone, n_features_in_ and a wrong feature count, NaN at predict, the same
# model for the same seed.
NO_FIT_CHECKS = {
    "check_estimator_cloneable", "check_estimator_tags_renamed", "check_valid_tag_types", "check_estimator_repr",
    "check_no_attributes_set_in_init", "check_estimators_unfitted", "check_do_not_raise_errors_in_init_or_set_params",
    "check_mixin_order", "check_complex_data", "check_estimators_empty_data_messages", "check_estimator_sparse_tag",
    "check_estimator_sparse_array", "check_estimator_sparse_matrix", "check_estimators_partial_fit_n_features",
    "check_supervised_y_no_nan", "check_non_transformer_estimators_n_iter", "check_parameters_default_constructible",
    "check_fit2d_1sample", "check_get_params_invariance", "check_set_params", "check_fit1d", "check_requires_y_none",
    "check_array_api_input", "check_pipeline_consistency",
}
FIT_REASON = "fits auto-sklearn for real (>= ~20 s a fit); see test_real_fit_in_a_pipeline_on_structures"


def _check_name(check):
    return getattr(check, "func", check).__name__


# python points nowhere: a check that tried to fit would fail with AutoSklearnEnvError, not pass
_CHECKED = AutoSklearnRegressor(python="/nonexistent/python")
_NAMES = [_check_name(c) for _, c in estimator_checks_generator(_CHECKED)]
_CHECKS = list(estimator_checks_generator(_CHECKED, mark="skip", expected_failed_checks={
    name: FIT_REASON for name in _NAMES if name not in NO_FIT_CHECKS
}))


@pytest.mark.parametrize("estimator, check", _CHECKS, ids=_NAMES)
def test_sklearn_checks_that_need_no_fit(estimator, check):
    check(estimator)
