"""RoostRegressor: reference equivalence with aviary, learning on MP data, sklearn API contracts."""

import pickle

import numpy as np
import pytest
import torch
from pymatgen.core import Composition, Element
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import Pipeline

from skdynemb.embeddings import CompoundEmbedding, ElementEmbeddings
from skdynemb.static_tables import load_table
from skdynemb.models import RoostRegressor
from skdynemb.models.roost import RoostModule, collate_compounds

SMALL = dict(
    elem_fea_len=16,
    n_graph=1,
    elem_heads=1,
    elem_gate=(32,),
    elem_msg=(32,),
    cry_heads=1,
    cry_gate=(32,),
    cry_msg=(32,),
    out_hidden=(32, 16),
    batch_size=32,
    max_epochs=3,
)


def _table(name="matscholar200"):
    return load_table(name)[0]


def _embed(formula, table, cid=None):
    comp = Composition(formula)
    els = tuple(sorted(e.symbol for e in comp.elements))
    fracs = np.array([comp.get_atomic_fraction(e) for e in els])
    return CompoundEmbedding(els, fracs, np.stack([table[e] for e in els]).astype(np.float32), cid)


class StaticRows(TransformerMixin, BaseEstimator):
    """Formula strings -> ElementEmbeddings of a static element table (test stand-in)."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        table = _table()
        return ElementEmbeddings([_embed(f, table) for f in X], [f"m{i}" for i in range(200)])


@pytest.fixture(scope="module")
def mp(mp_distinct):
    """600 MP entries with distinct reduced formulas: formulas, e_form (eV/atom)."""
    comps, y = mp_distinct(600, _table())
    return [c.formula for c in comps], y


def _emb(formulas):
    return StaticRows().transform(formulas)


def test_network_matches_aviary_reference(mp):
    """Same weights -> same compound descriptors and outputs as aviary's Roost implementation."""
    pytest.importorskip("aviary", reason="the reference implementation (aviary-models, in the test extra)")
    from aviary.networks import ResidualNetwork
    from aviary.roost.data import CompositionData, collate_batch
    from aviary.roost.model import DescriptorNetwork
    import pandas as pd

    formulas = mp[0][:40]
    table = _table()
    kw = dict(elem_fea_len=16, n_graph=2, elem_heads=2, elem_gate=(24,), elem_msg=(20,), cry_heads=2)
    kw.update(cry_gate=(24,), cry_msg=(20,))
    torch.manual_seed(0)
    ref = DescriptorNetwork(elem_emb_len=200, **kw)
    ref_out = ResidualNetwork(16, 1, (32, 32, 8))
    ours = RoostModule(200, out_hidden=(32, 32, 8), **kw)
    ref_params = list(ref.parameters()) + list(ref_out.parameters())
    assert [p.shape for p in ours.parameters()] == [p.shape for p in ref_params]
    with torch.no_grad():
        for mine, theirs in zip(ours.parameters(), ref_params):
            mine.copy_(theirs)

    df = pd.DataFrame({"composition": formulas, "material_id": range(40), "e": 0.0})
    data = CompositionData(df, task_dict={"e": "regression"})
    (weights, z, self_idx, nbr_idx, cry_idx), *_ = collate_batch([data[i] for i in range(40)])
    rows = torch.tensor(np.stack([table[Element.from_Z(int(k)).symbol] for k in z]), dtype=torch.float32)
    with torch.no_grad():
        expected = ref(weights, rows, self_idx, nbr_idx, cry_idx)
        batch, _ = _batch(_emb(formulas))
        got = ours.descriptor(batch)
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(ours(batch).numpy(), ref_out(expected).numpy(), rtol=1e-4, atol=1e-5)


def test_collate_is_all_pairs_per_compound_without_padding():
    table = _table()
    comps = [_embed(f, table) for f in ["Fe", "NaCl", "LiCoO2", "BaTiO3"]]
    batch, y = _batch(comps)
    sizes = [1, 2, 3, 3]
    assert batch.elem_fea.shape == (sum(sizes), 200) and len(batch) == 4 and y.shape == (4, 1)
    start, expected = 0, set()
    for n in sizes:  # brute force: every ordered pair inside each compound, self loops included
        expected |= {(start + i, start + j) for i in range(n) for j in range(n)}
        start += n
    got = list(zip(batch.self_idx.tolist(), batch.nbr_idx.tolist()))
    assert len(got) == len(expected) and set(got) == expected
    assert batch.compound_idx.tolist() == [0, 1, 1, 2, 2, 2, 3, 3, 3]
    np.testing.assert_allclose(batch.elem_weights[1:3, 0].numpy(), [0.5, 0.5])


def test_learns_formation_energy(mp):
    formulas, y = mp
    X = _emb(formulas[:300])
    train, test = np.arange(240), np.arange(240, 300)
    model = RoostRegressor(max_epochs=10).fit(X[train], y[train])
    mae = np.abs(model.predict(X[test]) - y[test]).mean()
    baseline = np.abs(y[test] - y[train].mean()).mean()
    assert mae < 0.7 * baseline, (mae, baseline)


def test_invariant_to_element_order_and_accepts_plain_lists(mp):
    X = _emb(mp[0][:60])
    model = RoostRegressor(**SMALL).fit(X, mp[1][:60])
    rng = np.random.default_rng(0)
    shuffled = []
    for c in X:
        p = rng.permutation(len(c.elements))
        shuffled.append(CompoundEmbedding(tuple(np.array(c.elements)[p]), c.fractions[p], c.features[p]))
    np.testing.assert_allclose(model.predict(shuffled), model.predict(X), rtol=1e-5, atol=1e-6)


def test_same_seed_same_predictions_and_seed_matters(mp):
    X, y = _emb(mp[0][:80]), mp[1][:80]
    a = RoostRegressor(**SMALL, random_state=3).fit(X, y).predict(X)
    torch.manual_seed(123)  # global RNG state must not matter
    b = RoostRegressor(**SMALL, random_state=3).fit(X, y).predict(X)
    c = RoostRegressor(**SMALL, random_state=4).fit(X, y).predict(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_target_standardisation_is_unit_free(mp):
    X, y = _emb(mp[0][:80]), mp[1][:80]
    model = RoostRegressor(**SMALL).fit(X, y)
    assert model.y_mean_ == pytest.approx(y.mean()) and model.y_std_ == pytest.approx(y.std())
    scaled = RoostRegressor(**SMALL).fit(X, 1000 * y - 7)
    np.testing.assert_allclose(scaled.predict(X), 1000 * model.predict(X) - 7, rtol=1e-4, atol=1e-2)


def test_pipeline_cross_val_and_grid_search_over_n_graph(mp):
    formulas, y = mp[0][:90], mp[1][:90]
    pipe = Pipeline([("static", StaticRows()), ("roostregressor", RoostRegressor(**SMALL))])
    cv = KFold(3, shuffle=True, random_state=0)
    scores = cross_val_score(pipe, formulas, y, cv=cv, scoring="neg_mean_absolute_error")
    assert scores.shape == (3,) and np.isfinite(scores).all()
    # splits of an ElementEmbeddings reach the model as plain lists of CompoundEmbedding
    scores = cross_val_score(RoostRegressor(**SMALL), _emb(formulas), y, cv=cv)
    assert np.isfinite(scores).all()
    search = GridSearchCV(pipe, {"roostregressor__n_graph": [0, 2]}, cv=cv).fit(formulas, y)
    assert search.best_params_["roostregressor__n_graph"] in (0, 2)
    best = search.best_estimator_[-1]
    assert len(best.nets_[0].module_.graphs) == search.best_params_["roostregressor__n_graph"]


def test_pickle_roundtrip(mp):
    X, y = _emb(mp[0][:60]), mp[1][:60]
    model = RoostRegressor(**SMALL).fit(X, y)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).predict(X), model.predict(X))


def test_plain_array_rows_are_single_element_compounds(mp):
    rows = _emb(mp[0][:50]).mean()
    as_compounds = [CompoundEmbedding(("X",), np.ones(1), r[None, :]) for r in rows]
    y = mp[1][:50]
    a = RoostRegressor(**SMALL).fit(rows, y)
    b = RoostRegressor(**SMALL).fit(as_compounds, y)
    np.testing.assert_array_equal(a.predict(rows), b.predict(as_compounds))
    assert a.n_features_in_ == 200


def _bad(kind, good):
    if kind == "empty":
        return CompoundEmbedding((), np.zeros(0), np.zeros((0, 200), np.float32), "mp-x")
    if kind == "nan":
        f = good.features.copy()
        f[1, 5] = np.nan
        return CompoundEmbedding(good.elements, good.fractions, f, "mp-x")
    if kind == "fractions":
        return CompoundEmbedding(good.elements, good.fractions * 0.9, good.features, "mp-x")
    return CompoundEmbedding(good.elements, good.fractions, good.features[:, :50], "mp-x")


@pytest.mark.parametrize(
    "kind, message",
    [
        ("empty", "empty compound"),
        ("nan", r"non-finite .*\['O'\]"),
        ("fractions", "fractions sum to 0.9"),
        ("width", "50 features per element, expected 200"),
    ],
)
def test_invalid_compounds_name_the_sample(kind, message):
    table = _table()
    good = [_embed(f, table) for f in ["NaCl", "MgO", "Fe2O3", "LiCoO2"]]
    X = good[:2] + [_bad(kind, good[2])] + good[3:]
    with pytest.raises(ValueError, match=rf"sample 2 \(id 'mp-x'\): {message}"):
        RoostRegressor(**SMALL).fit(X, [0.0, 1.0, 2.0, 3.0])
    model = RoostRegressor(**SMALL).fit(good, [0.0, 1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="sample 2"):
        model.predict(X)


def test_robust_loss_and_ensemble_give_std(mp):
    X, y = _emb(mp[0][:60]), mp[1][:60]
    model = RoostRegressor(**SMALL, loss="robust").fit(X, y)
    mean, std = model.predict(X, return_std=True)
    np.testing.assert_array_equal(mean, model.predict(X))
    assert std.shape == mean.shape and (std > 0).all()
    with pytest.raises(ValueError, match="return_std"):
        RoostRegressor(**SMALL).fit(X, y).predict(X, return_std=True)
    ens = RoostRegressor(**SMALL, n_estimators=3).fit(X, y)
    mean, std = ens.predict(X, return_std=True)
    batch, _ = _batch(X)
    with torch.no_grad():
        preds = np.stack([net.module_(batch)[:, 0].numpy() for net in ens.nets_]) * ens.y_std_ + ens.y_mean_
    assert not np.allclose(preds[0], preds[1])  # members differ by seed
    np.testing.assert_allclose(mean, preds.mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, preds.std(0), rtol=1e-4, atol=1e-6)


def _batch(compounds):
    items = [((c.features, c.fractions.astype(np.float32)), np.zeros(1, np.float32)) for c in compounds]
    return collate_compounds(items)


def test_early_stopping_restores_best_epoch(mp):
    X, y = _emb(mp[0][:80]), mp[1][:80]
    model = RoostRegressor(**{**SMALL, "max_epochs": 200}, lr=3e-2, validation_fraction=0.25, patience=3)
    net = model.fit(X, y).nets_[0]
    history = net.history[:, "valid_loss"]
    assert len(history) < 200 and history[-1] > min(history)  # stopped early, past the best epoch
    valid_ds = net.train_split.keywords["valid_ds"]
    assert len(valid_ds) == 20
    batch, target = collate_compounds([valid_ds[i] for i in range(len(valid_ds))])
    with torch.no_grad():
        restored = torch.nn.functional.l1_loss(net.module_(batch), target).item()
    assert restored == pytest.approx(min(history), rel=1e-5)
