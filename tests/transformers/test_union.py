"""ElementEmbeddingUnion: element rows of several sources joined element by element."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from skdynemb import (
    DynamicEmbeddingTransformer,
    ElementEmbeddingUnion,
    InvalidSampleError,
    RoostRegressor,
    StaticEmbeddingTransformer,
)
from skdynemb.embeddings import CompoundEmbedding, ElementEmbeddings
from skdynemb.static_tables import element_rows
from skdynemb.transformers import union as union_module


def static_union(**kw):
    return ElementEmbeddingUnion([("megnet", StaticEmbeddingTransformer("megnet16")),
                                  ("cgcnn", StaticEmbeddingTransformer("cgcnn92"))], **kw)


def structures():
    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    licoo2 = Structure.from_spacegroup(
        "R-3m", Lattice.hexagonal(2.816, 14.05), ["Li", "Co", "O"], [[0, 0, 0.5], [0, 0, 0], [0, 0, 0.2604]]
    )
    return [nacl, licoo2]


def test_rows_are_the_sources_rows_side_by_side():
    emb = static_union().fit_transform(["LiCoO2", "NaCl"])
    c = emb[0]
    assert c.elements == ("Li", "O", "Co")
    np.testing.assert_allclose(c.fractions, [0.25, 0.5, 0.25])
    expected = np.hstack([element_rows("megnet16", ["Li", "O", "Co"]), element_rows("cgcnn92", ["Li", "O", "Co"])])
    np.testing.assert_allclose(c.features, expected, rtol=1e-6)
    assert c.features.shape == (3, 16 + 92) and c.features.dtype == np.float32


def test_feature_names_say_the_source():
    union = static_union().fit(["NaCl"])
    names = list(union.get_feature_names_out())
    assert len(names) == union.n_features_out_ == 108
    assert names[0] == "megnet__megnet16_0" and names[15] == "megnet__megnet16_15"
    assert all(n.startswith("cgcnn__") for n in names[16:])


def test_mean_pooling_is_the_fraction_weighted_mean_row():
    out = static_union(pooling="mean").fit_transform(["NaCl", "Li2O"])
    na_cl = np.hstack([element_rows("megnet16", ["Na", "Cl"]), element_rows("cgcnn92", ["Na", "Cl"])])
    li_o = np.hstack([element_rows("megnet16", ["Li", "O"]), element_rows("cgcnn92", ["Li", "O"])])
    np.testing.assert_allclose(out[0], na_cl.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(out[1], 2 / 3 * li_o[0] + 1 / 3 * li_o[1], rtol=1e-6)
    frame = static_union(pooling="mean").set_output(transform="pandas").fit_transform(pd.Series(["NaCl", "Li2O"]))
    assert isinstance(frame, pd.DataFrame) and list(frame.columns[:1]) == ["megnet__megnet16_0"]


def test_dynamic_plus_static_with_cached_dynamic_rows(tmp_path, monkeypatch):
    from skdynemb.backbones.cgcnn import CgcnnBackbone

    forwarded = []
    original = CgcnnBackbone.forward_stages

    def counting(self, crystals):
        forwarded.extend(crystals)
        return original(self, crystals)

    monkeypatch.setattr(CgcnnBackbone, "forward_stages", counting)
    dynamic = DynamicEmbeddingTransformer("cgcnn-mp-eform", memory=tmp_path, progress=False, device="cpu")
    union = ElementEmbeddingUnion([("cgcnn", dynamic), ("megnet", StaticEmbeddingTransformer("megnet16"))])
    X = structures()
    emb = union.fit_transform(X)
    dyn = clone(dynamic).fit(X).transform(X)  # read back from the cache
    assert len(forwarded) == 2  # the second transform ran no GNN
    for joined, d in zip(emb, dyn):
        np.testing.assert_array_equal(joined.features[:, :64], d.features)
        np.testing.assert_allclose(joined.features[:, 64:], element_rows("megnet16", list(d.elements)), rtol=1e-6)
    names = union.get_feature_names_out()
    assert names[0] == "cgcnn__conv4_0" and names[64] == "megnet__megnet16_0"


def test_two_stages_of_one_backbone_as_two_sources_equal_a_layer_list():
    a = DynamicEmbeddingTransformer("cgcnn-mp-eform", stage=1, progress=False, device="cpu")
    b = DynamicEmbeddingTransformer("cgcnn-mp-eform", stage=-1, progress=False, device="cpu")
    both = DynamicEmbeddingTransformer("cgcnn-mp-eform", stage=[1, -1], progress=False, device="cpu")
    X = structures()
    joined = ElementEmbeddingUnion([("a", a), ("b", b)]).fit_transform(X)
    listed = both.fit_transform(X)
    for u, v in zip(joined, listed):
        np.testing.assert_array_equal(u.features, v.features)


class Reorder(TransformerMixin, BaseEstimator):
    """Static megnet16 rows, but sample 1 comes back with changed elements or fractions."""

    def __init__(self, what="elements"):
        self.what = what

    def fit(self, X, y=None):
        self.inner_ = StaticEmbeddingTransformer("megnet16").fit(X)
        return self

    def get_feature_names_out(self, input_features=None):
        return self.inner_.get_feature_names_out()

    def transform(self, X):
        emb = self.inner_.transform(X)
        c = emb[1]
        if self.what == "elements":
            bad = CompoundEmbedding(c.elements[::-1], c.fractions[::-1], c.features[::-1], c.id)
        else:
            bad = CompoundEmbedding(c.elements, np.array([0.6, 0.4]), c.features, c.id)
        return ElementEmbeddings([emb[0], bad, *emb.compounds[2:]], emb.feature_names)


@pytest.mark.parametrize("what,words", [
    ("elements", "gives elements ['Na', 'Cl'] but 'odd' gives ['Cl', 'Na']"),
    ("fractions", "gives fractions [0.5, 0.5] of ['Na', 'Cl'] but 'odd' gives [0.6, 0.4]"),
])
def test_disagreeing_sources_name_the_sample(what, words):
    union = ElementEmbeddingUnion([("megnet", StaticEmbeddingTransformer("megnet16")), ("odd", Reorder(what))])
    X = pd.Series(["LiF", "NaCl", "MgO"], index=["a", "b", "c"])
    with pytest.raises(InvalidSampleError, match=r"sample 1 \(id='b'\)") as info:
        union.fit_transform(X)
    assert words in str(info.value)
    assert info.value.index == 1


def test_a_pooled_source_is_refused_with_advice():
    union = ElementEmbeddingUnion([("megnet", StaticEmbeddingTransformer("megnet16", pooling="mean")),
                                   ("cgcnn", StaticEmbeddingTransformer("cgcnn92"))])
    with pytest.raises(TypeError, match="transformer 'megnet' returned ndarray.*pooling=\"element\""):
        union.fit_transform(["NaCl"])


def test_nested_parameters_and_drop():
    union = static_union()
    params = union.get_params()
    assert params["megnet__embedding"] == "megnet16" and params["cgcnn"] is union.transformer_list[1][1]
    union.set_params(megnet__embedding="magpie")
    assert union.transformer_list[0][1].embedding == "magpie"
    union.set_params(cgcnn="drop")
    out = union.fit_transform(["NaCl"])
    assert out.n_features == 22 and list(union.get_feature_names_out())[0] == "megnet__magpie_Number"
    with pytest.raises(ValueError, match="Invalid parameter 'nope'"):
        union.set_params(nope__x=1)


def test_grid_search_over_a_source_parameter():
    formulas = ["LiCoO2", "Co3O4", "NaCl", "MgO", "Fe2O3", "TiO2", "LiF", "KCl"]
    y = [-1.8, -1.3, -2.1, -3.0, -1.7, -3.3, -3.2, -2.2]
    pipe = make_pipeline(static_union(), RoostRegressor(max_epochs=2, batch_size=4, out_hidden=(16,)))
    grid = {"elementembeddingunion__cgcnn": ["drop", StaticEmbeddingTransformer("cgcnn92")],
            "elementembeddingunion__megnet__embedding": ["megnet16", "magpie"]}
    search = GridSearchCV(pipe, grid, cv=2, scoring="neg_mean_absolute_error").fit(formulas, y)
    assert len(search.cv_results_["params"]) == 4 and np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.predict(["NaCl"]).shape == (1,)


@pytest.mark.parametrize("bad,match", [
    ([], "non-empty list"),
    ([("a", StaticEmbeddingTransformer())], None),
    ([("a__b", StaticEmbeddingTransformer())], "contain no '__'"),
    ([("a", StaticEmbeddingTransformer()), ("a", StaticEmbeddingTransformer())], "must be unique"),
    ([("a", "drop")], "every transformer"),
    ([("a", 3)], "must be a transformer or 'drop'"),
    ([("pooling", StaticEmbeddingTransformer())], "clashes"),
])
def test_bad_transformer_lists(bad, match):
    union = ElementEmbeddingUnion(bad)
    if match is None:  # a single source is allowed
        assert union.fit_transform(["NaCl"]).n_features == 200
        return
    with pytest.raises((ValueError, TypeError), match=match):
        union.fit(["NaCl"])


def test_bad_pooling():
    with pytest.raises(ValueError, match="pooling must be"):
        static_union(pooling="max").fit(["NaCl"])


def test_docstring_example_runs():
    assert doctest.testmod(union_module, optionflags=doctest.ELLIPSIS).failed == 0
