"""CrabNetRegressor: the CrabNet-style attention model (fraction encoding, invariances, inputs, learning, errors)."""

import pickle

import numpy as np
import pytest
import torch
from pymatgen.core import Composition
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline

from skdynemb import CrabNetRegressor, StaticEmbeddingTransformer
from skdynemb.embeddings import CompoundEmbedding, ElementEmbeddings
from skdynemb.models.batching import collate_compounds
from skdynemb.models.crabnet import CrabNetModule, fraction_encoding

SMALL = dict(
    embedding="megnet16",
    d_model=16,
    n_layers=1,
    n_heads=2,
    dim_feedforward=32,
    out_hidden=(32, 16),
    batch_size=32,
    max_epochs=3,
)


@pytest.fixture(scope="module")
def mp(mp_distinct):
    """400 MP entries with distinct reduced formulas (elements in megnet16): formulas, e_form (eV/atom)."""
    from skdynemb.static_tables import load_table

    comps, y = mp_distinct(400, load_table("megnet16")[0])
    return [c.formula for c in comps], y


def _rows(formulas, table="megnet16"):
    return StaticEmbeddingTransformer(table).fit().transform(formulas)


def _batch(compounds):
    items = [((c.features, c.fractions.astype(np.float32)), np.zeros(1, np.float32)) for c in compounds]
    return collate_compounds(items)[0]


def test_fraction_encoding_is_sinusoidal_on_linear_and_log_scales():
    x = torch.tensor([1.0, 0.5, 0.01, 1e-4])
    lin = fraction_encoding(x, 8, 5000.0, log_scale=False)
    log = fraction_encoding(x, 8, 5000.0, log_scale=True)
    assert lin.shape == log.shape == (4, 8)
    # column 0 / 1: sin / cos of the position itself (frequency 1)
    np.testing.assert_allclose(lin[:, 0].numpy(), np.sin(5000 * x.numpy()), atol=1e-3)
    np.testing.assert_allclose(lin[:, 1].numpy(), np.cos(5000 * x.numpy()), atol=1e-3)
    pos = 5000 * np.minimum(1, -np.log2(x.numpy()) / np.log2(5000))
    np.testing.assert_allclose(log[:, 0].numpy(), np.sin(pos), atol=1e-3)
    assert log[0].tolist() == pytest.approx([0, 1] * 4)  # fraction 1 is position 0 on the log scale
    # odd widths are cut, not padded
    assert fraction_encoding(x, 5, 5000.0, log_scale=True).shape == (4, 5)
    # small fractions stay distinguishable on the log scale
    small = fraction_encoding(torch.tensor([1e-3, 2e-3]), 16, 5000.0, log_scale=True)
    assert not torch.allclose(small[0], small[1], atol=1e-2)


def test_permutation_invariant_over_the_elements_of_a_compound(mp):
    X = _rows(mp[0][:60])
    model = CrabNetRegressor(**{**SMALL, "n_layers": 2}).fit(X, mp[1][:60])
    rng = np.random.default_rng(0)
    shuffled = []
    for c in X:
        p = rng.permutation(len(c.elements))
        shuffled.append(CompoundEmbedding(tuple(np.array(c.elements)[p]), c.fractions[p], c.features[p]))
    assert any(len(c.elements) > 2 for c in X)
    np.testing.assert_allclose(model.predict(shuffled), model.predict(X), rtol=1e-10)
    # and independent of which other compounds share the batch (padding is masked; predictions run
    # in float64, so the row count of the matrix products does not show)
    one_by_one = np.concatenate([model.predict(X[i : i + 1]) for i in range(10)])
    np.testing.assert_allclose(one_by_one, model.predict(X)[:10], rtol=1e-10)


def test_fraction_encoding_changes_the_output():
    """Same elements, other amounts -> other predictions; attention and the fraction encoding see them."""
    torch.manual_seed(0)
    X = _rows(["FeO", "Fe2O3", "Fe3O4", "FeO2"])
    assert len({c.elements for c in X}) == 1
    for pooling in ("fraction", "mean"):
        module = CrabNetModule(16, d_model=16, n_heads=2, dim_feedforward=32, out_hidden=(16,), pooling=pooling,
                               dropout=0.0).eval()
        with torch.no_grad():
            out = module(_batch(X))[:, 0].numpy()
            assert len(np.unique(np.round(out, 6))) == 4, (pooling, out)
            # with the fraction encodings scaled away and uniform pooling, the amounts are invisible
            module.log2_scales.data[1:] = -100.0
            if pooling == "mean":
                flat = module(_batch(X))[:, 0].numpy()
                np.testing.assert_allclose(flat, flat[0], rtol=1e-5, atol=1e-6)


def test_learns_jarvis_formation_energy_better_than_the_mean():
    """Official JARVIS leaderboard train/test labels of formation energy, mat2vec rows from formulas."""
    pytest.importorskip("elementembeddings", reason="the mat2vec table (the mat2vec extra)")
    from skdynemb.datasets import load_jarvis_leaderboard

    try:
        task = load_jarvis_leaderboard().task("formation_energy_peratom", missing="drop")
    except FileNotFoundError:
        pytest.skip("shared JARVIS data not present")
    formulas = np.array([s.composition.formula for s in task.structures], dtype=object)
    train = np.flatnonzero(task.split == "train")[:300]
    test = np.flatnonzero(task.split == "test")
    model = CrabNetRegressor(d_model=64, n_heads=4, dim_feedforward=128, out_hidden=(128, 64), batch_size=32,
                             max_epochs=25, lr=1e-3, random_state=0)
    model.fit(formulas[train], task.y[train])
    mae = np.abs(model.predict(formulas[test]) - task.y[test]).mean()
    baseline = np.abs(task.y[test] - task.y[train].mean()).mean()
    assert mae < 0.6 * baseline, (mae, baseline)


def test_formulas_static_rows_and_dynamic_rows_are_accepted(mp, licoo2, co3o4):
    formulas, y = mp[0][:40], mp[1][:40]
    from_formulas = CrabNetRegressor(**SMALL).fit(formulas, y)
    from_rows = CrabNetRegressor(**SMALL).fit(_rows(formulas), y)
    np.testing.assert_array_equal(from_formulas.predict(formulas), from_rows.predict(_rows(formulas)))
    assert from_formulas.input_kind_ == "formulas" and from_rows.input_kind_ == "rows"
    assert from_formulas.n_features_in_ == 16
    comps = [Composition(f) for f in formulas[:5]]  # Compositions are formulas too
    np.testing.assert_array_equal(from_formulas.predict(comps), from_formulas.predict(formulas[:5]))
    # dynamic rows (the fast shipped backbone) in a pipeline
    from skdynemb import DynamicEmbeddingTransformer

    pipe = make_pipeline(DynamicEmbeddingTransformer("cgcnn-mp-eform", progress=False),
                         CrabNetRegressor(**SMALL))
    pred = pipe.fit([licoo2, co3o4] * 3, [-1.8, -1.3] * 3).predict([licoo2, co3o4])
    assert pred.shape == (2,) and np.isfinite(pred).all()
    assert pipe[-1].n_features_in_ == 64


def test_mixing_formulas_and_rows_between_fit_and_predict_is_an_error(mp):
    formulas, y = mp[0][:20], mp[1][:20]
    with pytest.raises(ValueError, match="fitted on formulas"):
        CrabNetRegressor(**SMALL).fit(formulas, y).predict(_rows(formulas))
    with pytest.raises(ValueError, match="not formulas"):
        CrabNetRegressor(**SMALL).fit(_rows(formulas), y).predict(formulas)


def test_bad_inputs_give_clear_errors(mp):
    formulas, y = list(mp[0][:4]), mp[1][:4]
    with pytest.raises(ValueError, match=r"sample 2: unknown element 'Xx'"):
        CrabNetRegressor(**SMALL).fit(formulas[:2] + ["Xx2O"] + formulas[3:], y)
    with pytest.raises(ValueError, match=r"sample 1: element\(s\) Og not in the 'megnet16' table"):
        CrabNetRegressor(**SMALL).fit([formulas[0], "Og2", *formulas[2:]], y)
    bad = list(_rows(formulas))
    f = bad[2].features.copy()
    f[0, 3] = np.nan
    bad[2] = CompoundEmbedding(bad[2].elements, bad[2].fractions, f, "mp-x")
    with pytest.raises(ValueError, match=r"sample 2 \(id 'mp-x'\): non-finite"):
        CrabNetRegressor(**SMALL).fit(bad, y)
    with pytest.raises(ValueError, match="X has 4 samples but y has 3"):
        CrabNetRegressor(**SMALL).fit(formulas, y[:3])
    with pytest.raises(ValueError, match="not a number"):
        CrabNetRegressor(**SMALL).fit(formulas, ["a", "b", "c", "d"])
    model = CrabNetRegressor(**SMALL).fit(_rows(formulas), y)
    with pytest.raises(ValueError, match="200 features per element, expected 16"):
        model.predict(_rows(formulas, "mat2vec" if _has_mat2vec() else "matscholar200"))


def _has_mat2vec():
    try:
        import elementembeddings  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize(
    "params, message",
    [
        ({"n_heads": 3}, "must divide d_model"),
        ({"n_layers": -1}, "n_layers must be an integer >= 0"),
        ({"dropout": 1.0}, "dropout"),
        ({"pooling": "max"}, "pooling must be one of"),
        ({"embedding": "word2vec"}, "embedding must be one of"),
        ({"out_hidden": (32, 0)}, "out_hidden"),
        ({"frac_resolution": 1}, "frac_resolution"),
        ({"loss": "huber"}, "loss must be one of"),
    ],
)
def test_invalid_parameters_are_refused_at_fit(mp, params, message):
    model = CrabNetRegressor(**{**SMALL, **params})
    assert model.get_params()[next(iter(params))] == params[next(iter(params))]  # nothing checked in __init__
    with pytest.raises(ValueError, match=message):
        model.fit(mp[0][:8], mp[1][:8])


def test_same_seed_same_predictions_and_seed_matters(mp):
    X, y = _rows(mp[0][:80]), mp[1][:80]
    a = CrabNetRegressor(**SMALL, random_state=3).fit(X, y).predict(X)
    torch.manual_seed(123)  # the global RNG state must not matter
    b = CrabNetRegressor(**SMALL, random_state=3).fit(X, y).predict(X)
    c = CrabNetRegressor(**SMALL, random_state=4).fit(X, y).predict(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_scale_features_scales_rows_and_makes_their_unit_irrelevant(mp):
    X, y = _rows(mp[0][:60]), mp[1][:60]
    scaled = ElementEmbeddings(
        [CompoundEmbedding(c.elements, c.fractions, (c.features * 1000 + 5).astype(np.float32)) for c in X],
        X.feature_names,
    )
    a = CrabNetRegressor(**SMALL).fit(X, y)
    b = CrabNetRegressor(**SMALL).fit(scaled, y)
    rows = np.concatenate([c.features for c in X])
    np.testing.assert_allclose(a.x_mean_, rows.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.predict(scaled), a.predict(X), rtol=1e-3, atol=1e-4)
    raw = CrabNetRegressor(**SMALL, scale_features=False).fit(X, y)
    assert (raw.x_mean_ == 0).all() and (raw.x_scale_ == 1).all()


def test_robust_loss_gives_a_std_and_ensembles_spread(mp):
    X, y = _rows(mp[0][:60]), mp[1][:60]
    model = CrabNetRegressor(**SMALL, loss="robust").fit(X, y)
    mean, std = model.predict(X, return_std=True)
    np.testing.assert_array_equal(mean, model.predict(X))
    assert std.shape == mean.shape and (std > 0).all()
    assert model.nets_[0].module_.head.out.out_features == 2
    with pytest.raises(ValueError, match="return_std"):
        CrabNetRegressor(**SMALL).fit(X, y).predict(X, return_std=True)
    _, spread = CrabNetRegressor(**SMALL, n_estimators=2).fit(X, y).predict(X, return_std=True)
    assert (spread > 0).any()


def test_early_stopping_on_an_explicit_validation_set(mp):
    X, y = _rows(mp[0][:120]), mp[1][:120]
    model = CrabNetRegressor(**{**SMALL, "max_epochs": 200}, lr=3e-2, patience=3)
    model.fit(X[:90], y[:90], X_valid=X[90:], y_valid=y[90:])
    valid = model.history_[0][:, "valid_loss"]
    assert len(valid) < 200 and valid[-1] > min(valid)


def test_grid_search_over_layers_and_pickle(mp):
    formulas, y = np.array(mp[0][:60], dtype=object), mp[1][:60]
    search = GridSearchCV(CrabNetRegressor(**SMALL), {"n_layers": [0, 1]}, cv=KFold(2, shuffle=True, random_state=0),
                          scoring="neg_mean_absolute_error").fit(formulas, y)
    best = search.best_estimator_
    assert len(best.nets_[0].module_.encoder) == search.best_params_["n_layers"]
    again = pickle.loads(pickle.dumps(best))
    np.testing.assert_array_equal(again.predict(formulas), best.predict(formulas))


def test_plain_array_rows_are_single_element_compounds(mp):
    rows = _rows(mp[0][:50]).mean()
    as_compounds = [CompoundEmbedding(("X",), np.ones(1), r[None, :]) for r in rows]
    a = CrabNetRegressor(**SMALL).fit(rows, mp[1][:50])
    b = CrabNetRegressor(**SMALL).fit(as_compounds, mp[1][:50])
    np.testing.assert_array_equal(a.predict(rows), b.predict(as_compounds))
    assert a.n_features_in_ == 16 and a.input_kind_ == "rows"


def test_docstring_example_runs():
    import doctest

    import skdynemb.models.crabnet as module

    assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0
