"""AutoMLRegressor (FLAML backend): learning on MP data, reproducibility (auto-sklearn: test_automl_autosklearn.py)."""

import pickle

import numpy as np
import pytest
from elementembeddings.core import Embedding
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skdynemb.embeddings import CompoundEmbedding, ElementEmbeddings
from skdynemb.models import AutoMLRegressor

# trial-limited (time_budget=-1): reproducible and quick
FAST = dict(time_budget=-1, max_iter=8, estimator_list=["lgbm"])


@pytest.fixture(scope="module")
def mp(mp_distinct):
    """300 MP entries with distinct reduced formulas: fraction-weighted mean magpie rows and e_form (eV/atom)."""
    table = Embedding.load_data("magpie").embeddings
    comps, y = mp_distinct(300, table)
    return np.array([sum(c.get_atomic_fraction(e) * np.asarray(table[e.symbol]) for e in c.elements) for c in comps]), y


def test_learns_formation_energy(mp):
    X, y = mp
    train, test = np.arange(240), np.arange(240, 300)
    model = AutoMLRegressor(time_budget=-1, max_iter=15, estimator_list=["lgbm", "rf"])
    model.fit(X[train], y[train])
    mae = np.abs(model.predict(X[test]) - y[test]).mean()
    baseline = np.abs(y[test] - y[train].mean()).mean()
    assert mae < 0.7 * baseline, (mae, baseline)
    assert model.best_estimator_ in ("lgbm", "rf") and model.n_iter_ == 15


def test_trial_limited_search_is_reproducible_and_pickles(mp):
    X, y = mp[0][:150], mp[1][:150]
    a = AutoMLRegressor(**FAST, random_state=5).fit(X, y)
    b = AutoMLRegressor(**FAST, random_state=5).fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert a.model_.best_config == b.model_.best_config
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(a)).predict(X), a.predict(X))


def test_pipeline_and_cross_val(mp):
    X, y = mp[0][:120], mp[1][:120]
    scores = cross_val_score(make_pipeline(StandardScaler(), AutoMLRegressor(**FAST)), X, y, cv=3)
    assert np.isfinite(scores).all()


def test_invalid_input(mp):
    X, y = mp[0][:30].copy(), mp[1][:30]
    with pytest.raises(ValueError, match="backend"):
        AutoMLRegressor(backend="h2o").fit(X, y)
    X[4, 1] = np.inf
    with pytest.raises(ValueError, match="inf"):
        AutoMLRegressor(**FAST).fit(X, y)
    one = CompoundEmbedding(("Na",), np.ones(1), np.ones((1, 22), np.float32))
    emb = ElementEmbeddings([one], ["a"] * 22)
    with pytest.raises(TypeError, match="pool them first"):
        AutoMLRegressor(**FAST).fit(emb, [0.0])
