"""skorch controls of the neural regressors: callbacks, history_, an explicit validation set,
device="auto", and the package's loss names (MP formation energies, real static tables)."""

import numpy as np
import pytest
import torch
from skorch.callbacks import LRScheduler
from sklearn.model_selection import GridSearchCV, KFold

from skdynemb import ElemNetRegressor, RoostRegressor, StaticEmbeddingTransformer

SMALL = dict(elem_fea_len=16, n_graph=1, elem_heads=1, elem_gate=(32,), elem_msg=(32,), cry_heads=1,
             cry_gate=(32,), cry_msg=(32,), out_hidden=(32, 16), batch_size=32, max_epochs=4)
ELEMNET = dict(blocks=((64, 2, 0.2), (32, 1, 0.0)), batch_size=32, max_epochs=4, validation_fraction=None)


@pytest.fixture(scope="module")
def mp(mp_distinct):
    """160 MP compounds with distinct formulas: megnet16 element rows, e_form (eV/atom); 120 + 40 split."""
    from skdynemb.static_tables import load_table

    comps, y = mp_distinct(160, load_table("megnet16")[0])
    X = StaticEmbeddingTransformer("megnet16").fit_transform([c.formula for c in comps])
    return X[:120], y[:120], X[120:], y[120:]


def _valid_l1(net, X, y, model):
    """L1 loss of ``net`` on (X, y) in standardised units, computed here from its predictions."""
    pred = (net.forward(model._dataset(model._validate(X, None, reset=False)[0], None, np.arange(len(y))),
                        training=False).numpy()[:, 0])
    return float(np.mean(np.abs(pred - (y - model.y_mean_) / model.y_std_)))


def test_grid_search_over_a_callback_option_with_an_explicit_validation_set(mp):
    X, y, X_val, y_val = mp
    grid = {"callbacks": [[("lr", LRScheduler("StepLR", step_size=1, gamma=g))] for g in (0.5, 1.0)]}
    search = GridSearchCV(RoostRegressor(**SMALL, lr=1e-2), grid, cv=KFold(2, shuffle=True, random_state=0),
                          scoring="neg_mean_absolute_error")
    search.fit(X, y, X_valid=X_val, y_valid=y_val)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    best = search.best_estimator_
    gamma = best.callbacks[0][1].gamma
    net = best.nets_[0]
    # the scheduler ran: lr decayed by gamma once per epoch
    assert net.optimizer_.param_groups[0]["lr"] == pytest.approx(1e-2 * gamma ** SMALL["max_epochs"])
    # the refit trained on all of X and validated on the explicit set, every epoch
    assert len(net.train_split.keywords["valid_ds"]) == len(y_val)
    valid = best.history_[0][:, "valid_loss"]
    assert len(valid) <= SMALL["max_epochs"]
    assert min(valid) == pytest.approx(_valid_l1(net, X_val, y_val, best), rel=1e-4)


def test_history_per_member_and_callbacks_copied(mp):
    X, y, X_val, y_val = mp
    user = LRScheduler("StepLR", step_size=2, gamma=0.5)
    model = RoostRegressor(**SMALL, n_estimators=2, callbacks=[user]).fit(X, y)
    assert len(model.history_) == 2 and all(len(h) == SMALL["max_epochs"] for h in model.history_)
    assert all(np.isfinite(h[:, "train_loss"]).all() for h in model.history_)
    assert "valid_loss" not in model.history_[0][-1]  # no validation set given
    copies = [dict(net.callbacks_)["LRScheduler"] for net in model.nets_]
    assert copies[0] is not copies[1] and user not in copies
    assert model.nets_[0].optimizer_.param_groups[0]["lr"] == pytest.approx(3e-4 * 0.5 ** 2)
    with pytest.raises(ValueError, match="callbacks must be None or a list"):
        RoostRegressor(**SMALL, callbacks=user).fit(X, y)


def test_explicit_validation_set_for_elemnet_and_its_checks(mp):
    X, y, X_val, y_val = mp
    A, A_val = X.mean(), X_val.mean()
    model = ElemNetRegressor(**{**ELEMNET, "validation_fraction": 0.5}).fit(A, y, X_valid=A_val, y_valid=y_val)
    net = model.nets_[0]
    assert len(net.train_split.keywords["valid_ds"]) == 40  # the explicit set, not half of X
    assert "valid_loss" in model.history_[0][-1]
    with pytest.raises(ValueError, match="both X_valid and y_valid"):
        ElemNetRegressor(**ELEMNET).fit(A, y, X_valid=A_val)
    with pytest.raises(ValueError, match="X has 40 samples but y has 39"):
        ElemNetRegressor(**ELEMNET).fit(A, y, X_valid=A_val, y_valid=y_val[:39])
    with pytest.raises(ValueError, match="8 features, expected 16|has 8 features"):
        ElemNetRegressor(**ELEMNET).fit(A, y, X_valid=A_val[:, :8], y_valid=y_val)


def test_device_auto_resolves_like_the_transformer(mp):
    X, y, _, _ = mp
    auto = RoostRegressor(**SMALL, device="auto").fit(X, y)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert auto.device_ == expected
    if expected == "cpu":
        np.testing.assert_array_equal(auto.predict(X), RoostRegressor(**SMALL, device="cpu").fit(X, y).predict(X))
    with pytest.raises(ValueError, match="device must be a string"):
        RoostRegressor(**SMALL, device=None).fit(X, y)


def test_one_loss_vocabulary_and_the_deprecated_l1(mp):
    X, y, _, _ = mp
    assert RoostRegressor().loss == ElemNetRegressor().loss == "mae"
    mae = RoostRegressor(**SMALL, loss="mae").fit(X, y).predict(X)
    with pytest.warns(FutureWarning, match="loss='l1' is deprecated.*use loss='mae'"):
        l1 = RoostRegressor(**SMALL, loss="l1").fit(X, y).predict(X)
    np.testing.assert_array_equal(mae, l1)
    with pytest.raises(ValueError, match=r"loss must be one of \['mae', 'mse', 'robust'\]"):
        RoostRegressor(**SMALL, loss="huber").fit(X, y)
