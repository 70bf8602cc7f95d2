"""skorch conventions of the neural regressors (MP formation energies, real static tables).

``warm_start`` and ``partial_fit``: training continues from the fitted networks, their state and
history carry on, and inputs or settings the networks cannot continue with are refused. And a
prediction does not depend on the other samples of its batch (scikit-learn's subset invariance).
``swa_start`` (stochastic weight averaging): the averaged network is checked against the mean of
weights recorded here epoch by epoch, independently of the averaging code.
"""

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

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
    return cls(**{**params, "max_epochs": EPOCHS, **kw})


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


# --- swa_start: stochastic weight averaging ---


class Recorder(Callback):
    """Copies of the parameters after every epoch (``epochs``) and at the first batch of every
    training call (``starts``: the weights training actually resumes from)."""

    def initialize(self):
        self.epochs, self.starts, self._new_call = [], [], False
        return self

    def on_train_begin(self, net, **kwargs):
        self._new_call = True

    def on_batch_begin(self, net, batch=None, training=None, **kwargs):
        if training and self._new_call:
            self.starts.append(_params(net))
            self._new_call = False

    def on_epoch_end(self, net, **kwargs):
        self.epochs.append(_params(net))


def _params(net) -> dict:
    return {k: p.detach().clone() for k, p in net.module_.named_parameters()}


def _mean(snapshots) -> dict:
    return {k: torch.stack([s[k].double() for s in snapshots]).mean(0) for k in snapshots[0]}


@pytest.mark.parametrize("kind", ["roost", "elemnet", "crabnet"])
def test_the_network_ends_with_the_mean_of_the_weights_from_swa_start_on(kind, mp):
    X, y = _inputs(kind, mp), mp[2]
    model = _model(kind, max_epochs=6, swa_start=3, callbacks=[("rec", Recorder())]).fit(X, y)
    net = model.nets_[0]
    rec = dict(net.callbacks_)["rec"]
    assert len(rec.epochs) == 6
    expected = _mean(rec.epochs[2:])  # epochs 3..6, 1-based
    for name, p in net.module_.named_parameters():
        torch.testing.assert_close(p.double(), expected[name], rtol=0, atol=1e-6)
    # the mean is a different network from the last epoch's, and it predicts (finite eV/atom)
    last = rec.epochs[-1]
    assert max(float((p.detach() - last[k]).abs().max()) for k, p in net.module_.named_parameters()) > 1e-4
    assert np.isfinite(model.predict(X)).all()


def test_averaging_does_not_change_the_training_it_averages(mp):
    # the mean of the last epoch alone is the last epoch: bitwise the plain fit, same seed
    X, y = mp[1], mp[2]
    plain = _model("roost", max_epochs=4).fit(X, y)
    averaged = _model("roost", max_epochs=4, swa_start=4).fit(X, y)
    np.testing.assert_array_equal(averaged.predict(X), plain.predict(X))
    # and from epoch 2 on it differs from the plain fit (a real average)
    assert np.abs(_model("roost", max_epochs=4, swa_start=2).fit(X, y).predict(X) - plain.predict(X)).max() > 1e-4


def test_no_early_stopping_with_averaging_the_validation_set_is_only_scored(mp):
    X, y = mp[1], mp[2]
    # patience 1 at a learning rate this high stops a plain fit within a few epochs
    stopped = _model("roost", max_epochs=30, patience=1, lr=0.05).fit(X[:90], y[:90], X_valid=X[90:],
                                                                      y_valid=y[90:])
    assert len(stopped.history_[0]) < 30
    model = _model("roost", max_epochs=30, patience=1, lr=0.05, swa_start=20).fit(X[:90], y[:90], X_valid=X[90:],
                                                                                  y_valid=y[90:])
    history = model.history_[0]
    assert len(history) == 30 and np.isfinite(history[:, "valid_loss"]).all()
    assert "early_stopping" not in dict(model.nets_[0].callbacks_)


def test_a_continued_training_resumes_from_the_last_weights_and_extends_the_average(mp):
    X, y = mp[1], mp[2]
    model = _model("roost", max_epochs=4, swa_start=3, callbacks=[("rec", Recorder())]).fit(X, y)
    net = model.nets_[0]
    rec = dict(net.callbacks_)["rec"]
    last_of_first_call = rec.epochs[-1]
    model.set_params(max_epochs=3).partial_fit(X, y)
    assert len(rec.epochs) == 7 and len(rec.starts) == 2
    for name, p in rec.starts[1].items():  # not the mean the network held between the calls
        torch.testing.assert_close(p, last_of_first_call[name], rtol=0, atol=0)
    expected = _mean(rec.epochs[2:])  # epochs 3..7 over both calls
    for name, p in net.module_.named_parameters():
        torch.testing.assert_close(p.double(), expected[name], rtol=0, atol=1e-6)


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "3"])
def test_swa_start_must_be_an_epoch(bad, mp):
    with pytest.raises(ValueError, match="swa_start must be None or a positive integer"):
        _model("roost", max_epochs=3, swa_start=bad).fit(mp[1], mp[2])


def test_swa_start_beyond_the_epochs_and_a_changed_swa_start_on_warm_start_are_refused(mp):
    X, y = mp[1], mp[2]
    with pytest.raises(ValueError, match="swa_start=5 is beyond max_epochs=4"):
        _model("roost", max_epochs=4, swa_start=5).fit(X, y)
    model = _model("roost", max_epochs=2, swa_start=2, warm_start=True).fit(X, y)
    with pytest.raises(ValueError, match=r"swa_start must keep the value of the first fit \(2\)"):
        model.set_params(swa_start=1).fit(X, y)
    with pytest.raises(ValueError, match=r"swa_start must keep the value of the first fit \(None\)"):
        _model("roost", max_epochs=2).fit(X, y).set_params(swa_start=1).partial_fit(X, y)
