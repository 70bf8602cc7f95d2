"""skorch conventions of the neural regressors (MP formation energies, real static tables).

``warm_start`` and ``partial_fit``: training continues from the fitted networks, their state and
history carry on, and inputs or settings the networks cannot continue with are refused. And a
prediction does not depend on the other samples of its batch (scikit-learn's subset invariance).
"""

import numpy as np
import pytest

from skdynemb import CrabNetRegressor, ElemNetRegressor, RoostRegressor, StaticEmbeddingTransformer

EPOCHS = 5
ROOST = dict(elem_fea_len=16, n_graph=1, elem_heads=1, elem_gate=(32,), elem_msg=(32,), cry_heads=1,
             cry_gate=(32,), cry_msg=(32,), out_hidden=(32, 16), batch_size=32, lr=3e-3)
ELEMNET = dict(blocks=((64, 2, 0.0), (32, 1, 0.0)), batch_size=32, lr=1e-3, validation_fraction=None)
CRABNET = dict(embedding="megnet16", d_model=16, n_heads=2, n_layers=1, dim_feedforward=32, dropout=0.0,
               out_hidden=(32,), batch_size=32, lr=3e-3)


@pytest.fixture(scope="module")
def mp(mp_distinct):
    """120 MP compounds with distinct formulas: formulas, megnet16 element rows, e_form (eV/atom)."""
    from skdynemb.static_tables import load_table

    comps, y = mp_distinct(120, load_table("megnet16")[0])
    formulas = [c.formula for c in comps]
    return formulas, StaticEmbeddingTransformer("megnet16").fit_transform(formulas), y


def _inputs(kind, mp):
    formulas, rows, _ = mp
    return {"roost": rows, "elemnet": rows.mean(), "crabnet": formulas}[kind]


def _model(kind, **kw):
    cls, params = {"roost": (RoostRegressor, ROOST), "elemnet": (ElemNetRegressor, ELEMNET),
                   "crabnet": (CrabNetRegressor, CRABNET)}[kind]
    return cls(**params, max_epochs=EPOCHS, **kw)


def _train_mae(model, X, y):
    """Mean absolute training error in eV/atom, computed here from the predictions."""
    return float(np.mean(np.abs(model.predict(X) - y)))


@pytest.mark.parametrize("kind", ["roost", "elemnet", "crabnet"])
def test_partial_fit_trains_the_fitted_networks_further(kind, mp):
    X, y = _inputs(kind, mp), mp[2]
    model = _model(kind).fit(X, y)
    first = model.predict(X)
    mae5, width, scaling = _train_mae(model, X, y), model.n_features_in_, (model.y_mean_, model.y_std_)
    losses5 = list(model.history_[0][:, "train_loss"])
    net = model.nets_[0]
    assert model.partial_fit(X, y) is model and model.nets_[0] is net  # the same network, trained on
    assert len(model.history_[0]) == 2 * EPOCHS  # the history grows by max_epochs
    assert list(model.history_[0][:EPOCHS, "train_loss"]) == losses5  # and keeps the first epochs
    assert model.n_features_in_ == width and (model.y_mean_, model.y_std_) == scaling
    assert not np.array_equal(model.predict(X), first)
    mae10 = _train_mae(model, X, y)
    assert mae10 < 0.9 * mae5, (mae5, mae10)  # 5 more epochs fit the training set better
    # a fresh fit of 5 epochs gives back the first model: the continuation started from it
    np.testing.assert_array_equal(_model(kind).fit(X, y).predict(X), first)


@pytest.mark.parametrize("kind", ["roost", "elemnet"])
def test_warm_start_fit_continues_and_cold_fit_starts_afresh(kind, mp):
    X, y = _inputs(kind, mp), mp[2]
    cold = _model(kind).fit(X, y)
    first = cold.predict(X)
    cold.fit(X, y)  # warm_start=False: the same fresh fit again
    assert len(cold.history_[0]) == EPOCHS
    np.testing.assert_array_equal(cold.predict(X), first)

    warm = _model(kind, warm_start=True).fit(X, y)
    np.testing.assert_array_equal(warm.predict(X), first)  # the first fit of a warm start is a fresh one
    warm.fit(X, y)
    assert len(warm.history_[0]) == 2 * EPOCHS
    # deterministic: fit twice with warm_start == fit then partial_fit, bitwise
    np.testing.assert_array_equal(warm.predict(X), _model(kind).fit(X, y).partial_fit(X, y).predict(X))
    # lr, max_epochs apply to the new epochs
    warm.set_params(lr=1e-4, max_epochs=2).fit(X, y)
    assert len(warm.history_[0]) == 2 * EPOCHS + 2
    assert warm.nets_[0].optimizer_.param_groups[0]["lr"] == 1e-4


def test_partial_fit_on_an_unfitted_estimator_is_fit(mp):
    X, y = mp[1], mp[2]
    np.testing.assert_array_equal(_model("roost").partial_fit(X, y).predict(X), _model("roost").fit(X, y).predict(X))


def test_inputs_the_fitted_networks_cannot_take_are_refused(mp):
    formulas, rows, y = mp
    roost = _model("roost").fit(rows, y)
    narrow = StaticEmbeddingTransformer("onehot").fit_transform(formulas)  # another table, another width
    with pytest.raises(ValueError, match=rf"sample 0.*{narrow[0].features.shape[1]} features per element, expected 16"):
        roost.partial_fit(narrow, y)
    elemnet = _model("elemnet").fit(rows.mean(), y)
    with pytest.raises(ValueError, match="has 8 features, but ElemNetRegressor is expecting 16"):
        elemnet.partial_fit(rows.mean()[:, :8], y)
    crabnet = _model("crabnet").fit(formulas, y)
    with pytest.raises(ValueError, match="was fitted on formulas"):
        crabnet.partial_fit(rows, y)
    with pytest.raises(ValueError, match="sample 3: target is nan"):
        roost.partial_fit(rows, np.where(np.arange(len(y)) == 3, np.nan, y))
    assert len(roost.history_[0]) == EPOCHS  # nothing trained by the refused calls


def test_settings_the_fitted_networks_cannot_continue_with_are_refused(mp):
    rows, y = mp[1], mp[2]
    model = _model("roost", warm_start=True).fit(rows, y)
    params = model.get_params()
    for change, named in (({"elem_fea_len": 32}, "elem_fea_len"), ({"loss": "robust"}, "loss"),
                          ({"validation_fraction": 0.2}, "validation set"), ({"n_estimators": 2}, "n_estimators=1")):
        with pytest.raises(ValueError, match=rf"{named}.*warm_start=False"):
            model.set_params(**change).fit(rows, y)
        model.set_params(**params)
    assert len(model.history_[0]) == EPOCHS  # nothing trained by the refused calls
    model.set_params(warm_start=False, elem_fea_len=32).fit(rows, y)  # a fresh fit may change anything
    assert model.nets_[0].module__elem_fea_len == 32 and len(model.history_[0]) == EPOCHS


@pytest.mark.parametrize("kind", ["roost", "elemnet", "crabnet"])
def test_a_prediction_does_not_depend_on_the_rest_of_its_batch(kind, mp):
    """Evaluation runs in float64: the whole set at once and one compound at a time agree far below
    float32 precision (in float32 they differed by up to 3e-7 relative, failing scikit-learn's
    check_methods_subset_invariance at rtol 1e-7 depending on the data and the CPU)."""
    X, y = _inputs(kind, mp), mp[2]
    model = _model(kind).fit(X, y)
    whole = model.predict(X)
    alone = np.array([model.predict(X[i:i + 1])[0] for i in range(0, len(y), 7)])
    np.testing.assert_allclose(alone, whole[::7], rtol=1e-12, atol=0)


@pytest.mark.parametrize("kind", ["elemnet", "crabnet"])
def test_standardize_is_the_deprecated_name_of_scale_features(kind, mp):
    """``standardize=False`` still works until 0.3 (FutureWarning) and equals ``scale_features=False``;
    both given is an error; the default scales (x_scale_ is the training rows' std, not ones)."""
    X, y = _inputs(kind, mp), mp[2]
    with pytest.warns(FutureWarning, match="`standardize` was renamed `scale_features`"):
        old = _model(kind, standardize=False).set_params(max_epochs=1).fit(X, y)
    plain = _model(kind, scale_features=False).set_params(max_epochs=1).fit(X, y)
    np.testing.assert_array_equal(old.x_scale_, np.ones_like(old.x_scale_))
    np.testing.assert_array_equal(old.predict(X), plain.predict(X))
    assert "standardize" in old.get_params() and "scale_features" in old.get_params()
    with pytest.raises(ValueError, match="were both given"):
        _model(kind, scale_features=False, standardize=True).set_params(max_epochs=1).fit(X, y)
    scaled = _model(kind).set_params(max_epochs=1).fit(X, y)
    assert not np.allclose(scaled.x_scale_, 1.0)
