"""DynamicEmbeddingTransformer on real structures with the pretrained CGCNN backbone."""

import pickle
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from skdynemb import DynamicEmbeddingTransformer, ElementEmbeddings, InvalidStructureError
from skdynemb.structures import to_crystals

CGCNN = "cgcnn-mp-eform"  # the fast shipped backbone these tests were written for (the default is alignn-ff)


@pytest.fixture(scope="module")
def mp_structures(mp_sample):
    """The first 24 MP records as pymatgen Structures, and their ids."""
    records = mp_sample(24, first=True)
    return [Structure.from_str(r["cif"], fmt="cif") for r in records], [r["material_id"] for r in records]


@pytest.fixture(scope="module")
def fitted():
    return DynamicEmbeddingTransformer(CGCNN, stage="all", progress=False, device="cpu").fit()


def test_stages_and_feature_names(fitted):
    bb = fitted.backbone_
    assert bb.stage_names[0] == "embedding" and len(bb.stage_names) == 5
    assert fitted.n_features_out_ == sum(bb.stage_dims)
    names = fitted.get_feature_names_out()
    assert names[0] == "embedding_0" and names[-1] == f"{bb.stage_names[-1]}_{bb.stage_dims[-1] - 1}"


def test_co_differs_between_compounds_only_after_message_passing(fitted, licoo2, co3o4):
    emb = fitted.transform([licoo2, co3o4])
    dims = fitted.backbone_.stage_dims
    co_a = emb[0].features[emb[0].elements.index("Co")]
    co_b = emb[1].features[emb[1].elements.index("Co")]
    embed = slice(0, dims[0])
    conv1 = slice(dims[0], dims[0] + dims[1])
    np.testing.assert_array_equal(co_a[embed], co_b[embed])  # static lookup: identical
    assert np.abs(co_a[conv1] - co_b[conv1]).max() > 1e-2  # structure-aware after conv1


def test_rows_are_per_element_means_of_backbone_atoms(fitted, mp_structures):
    structures, _ = mp_structures
    crystals = to_crystals(structures[:6])
    outputs = fitted.backbone_.forward_stages(crystals)
    emb = fitted.transform(structures[:6])
    for crystal, out, comp in zip(crystals, outputs, emb):
        symbols = crystal.symbols
        for row, el in enumerate(comp.elements):
            idx = [i for i, s in enumerate(symbols) if s == el]
            expected = np.concatenate([stage[idx].mean(axis=0) for stage in out.atom])
            np.testing.assert_allclose(comp.features[row], expected, atol=1e-5)
            assert comp.fractions[row] == pytest.approx(len(idx) / len(symbols))


def test_shuffled_sites_and_large_counts(licoo2):
    transformer = DynamicEmbeddingTransformer(CGCNN, progress=False, device="cpu").fit()
    s = licoo2.to_pymatgen() * (3, 3, 2)  # 18 Li, 18 Co, 36 O
    perm = np.random.default_rng(0).permutation(len(s))
    shuffled = Structure(s.lattice, [s[i].specie for i in perm], [s[i].frac_coords for i in perm])
    a, b = transformer.transform([s, shuffled])
    assert a.elements == b.elements == ("Li", "O", "Co")
    np.testing.assert_allclose(a.fractions, [0.25, 0.5, 0.25])
    np.testing.assert_allclose(a.features, b.features, atol=1e-5)
    # the supercell of a crystal has the same per-element environment as the cell itself
    (c,) = transformer.transform([licoo2])
    np.testing.assert_allclose(a.features, c.features, atol=1e-4)


def test_batched_equals_single_and_repeatable(mp_structures):
    structures, _ = mp_structures
    batched = DynamicEmbeddingTransformer(CGCNN, batch_size=32, progress=False, device="cpu").fit()
    single = DynamicEmbeddingTransformer(CGCNN, batch_size=1, progress=False, device="cpu").fit()
    a = batched.transform(structures)
    b = single.transform(structures)
    for x, y in zip(a, b):
        assert x.elements == y.elements
        np.testing.assert_allclose(x.features, y.features, atol=1e-5)
    again = batched.transform(structures)
    assert all(np.array_equal(x.features, y.features) for x, y in zip(a, again))
    # two joblib workers (batches of 8 spread over them) give the same rows in the same order
    workers = DynamicEmbeddingTransformer(CGCNN, batch_size=8, n_jobs=2, progress=False, device="cpu").fit()
    for x, y in zip(a, workers.transform(structures)):
        assert x.elements == y.elements
        np.testing.assert_allclose(x.features, y.features, atol=1e-5)


def test_cache_hits_give_identical_rows(mp_structures, tmp_path):
    structures, _ = mp_structures
    plain = DynamicEmbeddingTransformer(CGCNN, progress=False, device="cpu").fit().transform(structures[:8])
    cached = DynamicEmbeddingTransformer(
        CGCNN, memory=joblib.Memory(tmp_path, verbose=0), progress=False, device="cpu"
    ).fit()
    first = cached.transform(structures[:8])
    files = list(tmp_path.rglob("*.npz"))
    assert len(files) == 8
    second = cached.transform(structures[:8])
    assert len(list(tmp_path.rglob("*.npz"))) == 8
    for x, y, z in zip(plain, first, second):
        assert np.array_equal(x.features, y.features) and np.array_equal(y.features, z.features)


def test_mean_pooling_is_atom_average_and_pandas_output(fitted, mp_structures):
    structures, ids = mp_structures
    t = DynamicEmbeddingTransformer(CGCNN, pooling="mean", progress=False, device="cpu").fit()
    X = t.transform(structures[:5])
    assert X.shape == (5, t.n_features_out_) and X.dtype == np.float32
    crystals = to_crystals(structures[:5])
    outputs = t.backbone_.forward_stages(crystals)
    np.testing.assert_allclose(X, np.stack([o.atom[-1].mean(axis=0) for o in outputs]), atol=1e-5)
    df = t.set_output(transform="pandas").transform(pd.Series(structures[:5], index=ids[:5]))
    assert list(df.columns) == list(t.get_feature_names_out())
    assert list(df.index) == ids[:5]
    np.testing.assert_allclose(df.to_numpy(), X, atol=1e-6)


def test_stage_selection(fitted, licoo2):
    dims = fitted.backbone_.stage_dims
    t = DynamicEmbeddingTransformer(CGCNN, stage=["embedding", -1], progress=False, device="cpu").fit()
    assert t.stages_ == [0, len(dims) - 1]
    (full,) = fitted.transform([licoo2])
    (part,) = t.transform([licoo2])
    np.testing.assert_array_equal(part.features[:, : dims[0]], full.features[:, : dims[0]])
    np.testing.assert_array_equal(part.features[:, dims[0]:], full.features[:, -dims[-1]:])
    for bad in [99, "conv9", [], [0, 0]]:
        with pytest.raises(ValueError, match="stage"):
            DynamicEmbeddingTransformer(CGCNN, stage=bad).fit()


@pytest.mark.parametrize(
    "bad, message",
    [
        (Structure(Lattice.cubic(4.0), ["Og"], [[0, 0, 0]]), "(Og|118)"),
        (Structure(Lattice.cubic(3.0), [{"Fe": 0.5, "Co": 0.5}], [[0, 0, 0]]), "partially occupied"),
        (Structure(Lattice.cubic(3.0), [], []), "empty"),
    ],
)
def test_bad_structures_name_the_sample(fitted, bad, message, licoo2):
    with pytest.raises((InvalidStructureError, ValueError), match=rf"sample 1.*{message}|{message}.*sample 1"):
        fitted.transform([licoo2, bad])


def test_output_is_picklable_and_indexable(fitted, licoo2, co3o4):
    emb = fitted.transform([licoo2, co3o4, licoo2])
    assert isinstance(emb, ElementEmbeddings) and len(emb) == 3
    back = pickle.loads(pickle.dumps(emb))
    assert back == emb
    assert back[[2, 0]][0] == emb[0]
    t2 = pickle.loads(pickle.dumps(fitted))
    assert t2.transform([co3o4]) == emb[[1]]


def test_chgnet_compound_features_and_missing_angles(licoo2):
    t = DynamicEmbeddingTransformer(backbone="chgnet", compound_features="bond+angle", progress=False, device="cpu")
    (emb,) = t.fit().transform([licoo2])
    bb = t.backbone_
    assert t.n_features_out_ == bb.stage_dims[-1] + bb.bond_dims[-1] + bb.angle_dims[-1]
    # the compound part is the same for every element row; the element part is not
    compound = emb.features[:, bb.stage_dims[-1]:]
    np.testing.assert_array_equal(compound, np.tile(compound[0], (len(emb.elements), 1)))
    assert np.abs(emb.features[0, : bb.stage_dims[-1]] - emb.features[1, : bb.stage_dims[-1]]).max() > 1e-3
    # bcc Cs: no bond pair short enough for CHGNet's angles -> a clear error, not zeros
    cs = Structure.from_spacegroup("Im-3m", Lattice.cubic(6.05), ["Cs"], [[0, 0, 0]])
    with pytest.raises(InvalidStructureError, match=r"sample 1.*no angles"):
        t.transform([licoo2, cs])
    t.set_params(compound_features="bond").fit()
    assert len(t.transform([cs])) == 1


# ----------------------------------------------------------------------------- layer -> stage (0.2)
def test_layer_is_the_deprecated_name_of_stage(fitted, licoo2):
    """``layer=`` still selects the same stages, with a FutureWarning, until 0.3; both at once is an error."""
    with pytest.warns(FutureWarning, match="`layer` was renamed `stage` in 0.2 and will be removed in 0.3"):
        old = DynamicEmbeddingTransformer(CGCNN, layer="all", progress=False, device="cpu").fit()
    assert old.stages_ == fitted.stages_ == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(old.transform([licoo2])[0].features, fitted.transform([licoo2])[0].features)
    with pytest.warns(FutureWarning, match="`layers_` was renamed `stages_`"):
        assert old.layers_ == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="both given"):
        DynamicEmbeddingTransformer(CGCNN, stage=0, layer=1).fit()


def test_stage_and_layer_are_both_searchable_parameters(mp_structures):
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.linear_model import Ridge

    t = DynamicEmbeddingTransformer(CGCNN, pooling="mean", progress=False, device="cpu")
    params = t.get_params()
    assert params["stage"] == -1 and params["layer"] == "deprecated"
    assert clone(t.set_params(layer=2)).get_params()["layer"] == 2
    structures, _ = mp_structures
    y = np.arange(len(structures), dtype=float)
    for grid in ({"dynamicembeddingtransformer__stage": [0, "conv4"]},
                 {"dynamicembeddingtransformer__layer": [0, "conv4"]}):
        pipe = make_pipeline(DynamicEmbeddingTransformer(CGCNN, pooling="mean", progress=False, device="cpu"), Ridge())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            search = GridSearchCV(pipe, grid, cv=2).fit(structures, y)
        assert len(search.cv_results_["params"]) == 2
