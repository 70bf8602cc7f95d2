"""ElemNetRegressor: the published architecture, learning on MP data, early stopping, API contracts."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skdynemb.embeddings import CompoundEmbedding, ElementEmbeddings
from skdynemb.static_tables import load_table
from skdynemb.models import ElemNetRegressor

FAST = dict(blocks=((64, 2, 0.2), (32, 1, 0.0)), batch_size=32, max_epochs=3, validation_fraction=None)


@pytest.fixture(scope="module")
def mp(mp_distinct):
    """300 MP entries with distinct reduced formulas: fraction-weighted mean matscholar rows and e_form (eV/atom)."""
    table = load_table("matscholar200")[0]
    comps, y = mp_distinct(300, table)
    return np.array([sum(c.get_atomic_fraction(e) * np.asarray(table[e.symbol]) for e in c.elements) for c in comps]), y


def test_architecture_is_elemnet():
    model = ElemNetRegressor(max_epochs=1, validation_fraction=None).fit(np.eye(86)[:8], np.arange(8.0))
    layers = list(model.nets_[0].module_.net)
    linears = [m for m in layers if isinstance(m, torch.nn.Linear)]
    widths = [1024] * 4 + [512] * 3 + [256] * 3 + [128] * 3 + [64] * 2 + [32, 1]
    assert [m.out_features for m in linears] == widths
    assert linears[0].in_features == 86
    assert sum(isinstance(m, torch.nn.ReLU) for m in layers) == 16
    # dropout (keep probabilities 0.8, 0.9, 0.7, 0.8) right after the 4th, 7th, 10th, 13th layer
    after = {}
    for i, m in enumerate(layers):
        if isinstance(m, torch.nn.Dropout):
            after[sum(isinstance(x, torch.nn.Linear) for x in layers[:i])] = 1 - m.p
    assert after == pytest.approx({4: 0.8, 7: 0.9, 10: 0.7, 13: 0.8})
    opt = model.nets_[0].optimizer_
    assert isinstance(opt, torch.optim.Adam) and opt.param_groups[0]["lr"] == 1e-4
    assert model.nets_[0].batch_size == 32


def test_learns_formation_energy(mp):
    X, y = mp
    train, test = np.arange(240), np.arange(240, 300)
    model = ElemNetRegressor(lr=3e-4, max_epochs=8, validation_fraction=None).fit(X[train], y[train])
    mae = np.abs(model.predict(X[test]) - y[test]).mean()
    baseline = np.abs(y[test] - y[train].mean()).mean()
    assert mae < 0.7 * baseline, (mae, baseline)


def test_early_stopping_on_validation_split_restores_best(mp):
    X, y = mp[0][:100], mp[1][:100]
    model = ElemNetRegressor(**{**FAST, "max_epochs": 300, "validation_fraction": 0.2}, lr=1e-2, patience=4)
    net = model.fit(X, y).nets_[0]
    history = net.history[:, "valid_loss"]
    assert len(history) < 300 and history[-1] > min(history)
    valid = net.train_split.keywords["valid_ds"]
    assert len(valid) == 20
    Xv, yv = valid.X, valid.y
    with torch.no_grad():
        net.module_.eval()
        restored = torch.nn.functional.l1_loss(net.module_(torch.from_numpy(Xv)), torch.from_numpy(yv)).item()
    assert restored == pytest.approx(min(history), rel=1e-5)


def test_standardised_inputs_make_predictions_affine_invariant(mp):
    X, y = mp[0][:80], mp[1][:80]
    a = ElemNetRegressor(**FAST).fit(X, y)
    b = ElemNetRegressor(**FAST).fit(5 * X - 2, y)
    np.testing.assert_allclose(a.x_mean_, X.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(b.predict(5 * X - 2), a.predict(X), rtol=1e-3, atol=1e-3)


def test_same_seed_same_predictions(mp):
    X, y = mp[0][:80], mp[1][:80]
    kw = {**FAST, "validation_fraction": 0.2}
    a = ElemNetRegressor(**kw, random_state=1).fit(X, y).predict(X)
    torch.manual_seed(99)
    b = ElemNetRegressor(**kw, random_state=1).fit(X, y).predict(X)
    c = ElemNetRegressor(**kw, random_state=2).fit(X, y).predict(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_pipeline_cross_val_and_pickle(mp):
    X, y = mp[0][:90], mp[1][:90]
    pipe = make_pipeline(FunctionTransformer(np.sqrt, validate=True), ElemNetRegressor(**FAST))
    assert np.isfinite(cross_val_score(pipe, np.abs(X), y, cv=3)).all()
    model = ElemNetRegressor(**FAST, loss="robust").fit(X, y)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(X, return_std=True)[1], model.predict(X, return_std=True)[1])


def test_invalid_input():
    X = np.random.default_rng(0).normal(size=(20, 4))
    bad = X.copy()
    bad[7, 2] = np.nan
    with pytest.raises(ValueError, match="sample 7: NaN or inf in feature 2"):
        ElemNetRegressor(**FAST).fit(bad, np.zeros(20))
    model = ElemNetRegressor(**FAST).fit(X, np.arange(20.0))
    with pytest.raises(ValueError, match="3 features, but ElemNetRegressor is expecting 4"):
        model.predict(X[:, :3])
    with pytest.raises(ValueError, match="1 sample"):
        ElemNetRegressor(max_epochs=1).fit(X[:1], [0.0])
    one = CompoundEmbedding(("Na",), np.ones(1), np.ones((1, 4), np.float32))
    emb = ElementEmbeddings([one], list("abcd"))
    with pytest.raises(TypeError, match=r"ElementEmbeddings.mean\(\)"):
        ElemNetRegressor(**FAST).fit(emb, [0.0])
    with pytest.raises(ValueError, match="blocks"):
        ElemNetRegressor(**{**FAST, "blocks": ((64, 2, 1.5),)}).fit(X, np.zeros(20))
