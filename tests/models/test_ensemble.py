"""SeedEnsembleRegressor: seeded members, their mean and spread, pipelines and parallel fits."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skdynemb import RoostRegressor, SeedEnsembleRegressor, StaticEmbeddingTransformer
from skdynemb.models import ensemble
from skdynemb.models.ensemble import seed_parameters

FORMULAS = ["LiCoO2", "Co3O4", "NaCl", "MgO", "Fe2O3", "TiO2", "LiF", "KCl", "CaO", "ZnS", "GaAs", "SiO2"]
Y = np.array([-1.8, -1.3, -2.1, -3.0, -1.7, -3.3, -3.2, -2.2, -3.3, -1.0, -0.4, -3.0])


class SeedEcho(RegressorMixin, BaseEstimator):
    """Predicts its own seed for every sample: the ensemble's mean and spread are then known."""

    def __init__(self, random_state=None):
        self.random_state = random_state

    def fit(self, X, y):
        self.seed_ = self.random_state
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict(self, X):
        return np.full(len(X), float(self.seed_))


def tiny_roost(**kw):
    return RoostRegressor(max_epochs=3, batch_size=4, elem_fea_len=8, n_graph=1, elem_heads=1, cry_heads=1,
                          elem_gate=(8,), elem_msg=(8,), cry_gate=(8,), cry_msg=(8,), out_hidden=(8,), **kw)


@pytest.fixture(scope="module")
def rows():
    return StaticEmbeddingTransformer("megnet16").fit_transform(FORMULAS)


def test_mean_and_std_are_those_of_the_member_seeds():
    X = np.zeros((3, 2))
    model = SeedEnsembleRegressor(SeedEcho(), n_seeds=4, random_state=7).fit(X, [0.0, 1.0, 2.0])
    seeds = np.array([m.seed_ for m in model.estimators_], dtype=float)
    assert len(set(seeds)) == 4 and list(model.seeds_) == list(seeds)
    assert model.seed_parameters_ == ["random_state"]
    mean, std = model.predict(X, return_std=True)
    np.testing.assert_allclose(mean, [seeds.mean()] * 3)
    # population std of the four seeds, computed by hand
    np.testing.assert_allclose(std, [np.sqrt(((seeds - seeds.mean()) ** 2).mean())] * 3)
    np.testing.assert_array_equal(model.predict_members(X), np.repeat(seeds[:, None], 3, axis=1))


def test_member_seeds_follow_random_state():
    X = np.zeros((2, 1))
    a = SeedEnsembleRegressor(SeedEcho(), n_seeds=3, random_state=0).fit(X, [0.0, 1.0]).seeds_
    b = SeedEnsembleRegressor(SeedEcho(), n_seeds=3, random_state=0).fit(X, [0.0, 1.0]).seeds_
    c = SeedEnsembleRegressor(SeedEcho(), n_seeds=3, random_state=1).fit(X, [0.0, 1.0]).seeds_
    assert list(a) == list(b) and list(a) != list(c)
    # the first members of a 3- and a 5-member ensemble are the same models
    d = SeedEnsembleRegressor(SeedEcho(), n_seeds=5, random_state=0).fit(X, [0.0, 1.0]).seeds_
    assert list(d[:3]) == list(a)


def test_roost_members_equal_standalone_fits(rows):
    """Member k is exactly RoostRegressor(random_state=seeds_[k]) fitted alone; predict is their mean."""
    model = SeedEnsembleRegressor(tiny_roost(), n_seeds=3, random_state=5).fit(rows, Y)
    alone = np.stack([tiny_roost(random_state=int(s)).fit(rows, Y).predict(rows) for s in model.seeds_])
    np.testing.assert_array_equal(model.predict_members(rows), alone)
    mean, std = model.predict(rows, return_std=True)
    np.testing.assert_allclose(mean, alone.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std, alone.std(axis=0), rtol=1e-12)
    assert std.min() > 0  # the seeds give different models
    assert model.n_features_in_ == 16


def test_seeds_set_inside_a_pipeline():
    pipe = make_pipeline(StandardScaler(), tiny_roost())
    assert seed_parameters(pipe) == ["roostregressor__random_state"]
    model = SeedEnsembleRegressor(pipe, n_seeds=2, random_state=0).fit(np.eye(4), [1.0, 2.0, 3.0, 4.0])
    assert [m[-1].random_state for m in model.estimators_] == [int(s) for s in model.seeds_]
    assert pipe[-1].random_state == 0  # the given estimator is not touched


def test_whole_pipeline_of_structures_or_formulas_as_member():
    pipe = make_pipeline(StaticEmbeddingTransformer("megnet16"), tiny_roost())
    model = SeedEnsembleRegressor(pipe, n_seeds=2).fit(FORMULAS, Y)
    assert model.predict(["NaCl", "MgO"]).shape == (2,)


def test_in_a_pipeline_and_grid_search(rows):
    pipe = make_pipeline(StaticEmbeddingTransformer("megnet16"), SeedEnsembleRegressor(tiny_roost(), n_seeds=2))
    search = GridSearchCV(pipe, {"seedensembleregressor__estimator__lr": [1e-3, 1e-2],
                                 "seedensembleregressor__n_seeds": [1, 2]}, cv=2,
                          scoring="neg_mean_absolute_error").fit(FORMULAS, Y)
    assert len(search.cv_results_["params"]) == 4
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert len(search.best_estimator_[-1].estimators_) == search.best_params_["seedensembleregressor__n_seeds"]


def test_fit_params_reach_every_member(rows):
    model = SeedEnsembleRegressor(tiny_roost(), n_seeds=2).fit(rows[:8], Y[:8], X_valid=rows[8:], y_valid=Y[8:])
    for member in model.estimators_:
        assert len(member.history_[0][:, "valid_loss"]) == 3


def test_parallel_fits_match_sequential(rows):
    seq = SeedEnsembleRegressor(tiny_roost(), n_seeds=2, n_jobs=None, random_state=3).fit(rows, Y)
    par = SeedEnsembleRegressor(tiny_roost(), n_seeds=2, n_jobs=2, random_state=3).fit(rows, Y)
    np.testing.assert_allclose(par.predict_members(rows), seq.predict_members(rows), rtol=1e-5, atol=1e-6)


def test_default_estimator_is_roost():
    model = SeedEnsembleRegressor(n_seeds=1)
    assert model.estimator is None and isinstance(model._base(), RoostRegressor)


def test_clone_keeps_parameters():
    model = clone(SeedEnsembleRegressor(tiny_roost(lr=0.01), n_seeds=3, n_jobs=2, random_state=4))
    assert model.get_params()["estimator__lr"] == 0.01 and model.n_seeds == 3


@pytest.mark.parametrize("n_seeds", [0, -1, 1.5, True, "3"])
def test_bad_n_seeds(n_seeds):
    with pytest.raises(ValueError, match="n_seeds must be a positive integer"):
        SeedEnsembleRegressor(SeedEcho(), n_seeds=n_seeds).fit(np.zeros((2, 1)), [0.0, 1.0])


def test_estimator_without_seed_is_refused():
    with pytest.raises(ValueError, match="LinearRegression has no random_state parameter"):
        SeedEnsembleRegressor(LinearRegression()).fit(np.eye(3), [0.0, 1.0, 2.0])


def test_single_member_has_zero_spread():
    mean, std = SeedEnsembleRegressor(SeedEcho(), n_seeds=1).fit(np.zeros((2, 1)), [0.0, 1.0]).predict(
        np.zeros((2, 1)), return_std=True)
    assert np.all(std == 0)


def test_docstring_example_runs():
    assert doctest.testmod(ensemble, optionflags=doctest.ELLIPSIS).failed == 0
