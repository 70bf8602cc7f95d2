"""Common mistakes get a message that says what is wrong and what to do (real structures, real tables)."""

import warnings

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from sklearn.linear_model import Ridge
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline

from skdynemb import DynamicEmbeddingTransformer, InvalidStructureError, StaticEmbeddingTransformer, to_crystal
from skdynemb.embeddings import ElementEmbeddings

CGCNN = "cgcnn-mp-eform"  # the fast shipped backbone these tests were written for (the default is alignn-ff)

FORMULAS = ["LiCoO2", "Co3O4", "Fe2O3", "NaCl", "MgO", "TiO2", "SiO2", "Al2O3"]
Y = np.array([-1.8, -1.3, -1.7, -2.1, -3.0, -3.3, -3.0, -3.4])  # rough formation energies, eV/atom


def nacl():
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_element_embeddings_into_a_2d_estimator_say_use_mean_pooling():
    pipe = make_pipeline(StaticEmbeddingTransformer(), Ridge())
    with pytest.raises(TypeError, match='not a 2-D feature array.*pooling="mean"'):
        pipe.fit(FORMULAS, Y)
    # the same through cross-validation, where sklearn indexes the embeddings into lists
    emb = StaticEmbeddingTransformer().fit_transform(FORMULAS)
    with pytest.raises(TypeError, match='pooling="mean"'):
        Ridge().fit(list(emb), Y)
    with pytest.raises(TypeError, match='pooling="mean"'):  # error_score="raise": the fit error itself
        cross_val_score(Ridge(), emb, Y, cv=2, error_score="raise")
    # what the message says works, and an object array of compounds is still available
    scores = cross_val_score(make_pipeline(StaticEmbeddingTransformer(pooling="mean"), Ridge()), FORMULAS, Y, cv=2)
    assert np.isfinite(scores).all()
    objects = np.asarray(emb, dtype=object)
    assert objects.shape == (8,) and objects[3] == emb[3]


def test_pandas_output_with_element_pooling_warns():
    for t in (StaticEmbeddingTransformer("megnet16"), DynamicEmbeddingTransformer(CGCNN, device="cpu", progress=False)):
        t.set_output(transform="pandas")
        X = FORMULAS[:2] if isinstance(t, StaticEmbeddingTransformer) else [nacl()]
        with pytest.warns(UserWarning, match=r"set_output\(transform='pandas'\) has no effect with pooling='element'"):
            out = t.fit_transform(X)
        assert isinstance(out, ElementEmbeddings)
        t.set_params(pooling="mean")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert t.fit_transform(X).shape[0] == len(X)


def ase_atoms():
    pytest.importorskip("ase")
    from pymatgen.io.ase import AseAtomsAdaptor

    return AseAtomsAdaptor.get_atoms(nacl())


@pytest.mark.parametrize("make", [nacl, lambda: nacl().composition, lambda: to_crystal(nacl()), ase_atoms])
def test_a_single_structure_where_a_list_is_expected(make):
    one = make()
    with pytest.raises(TypeError, match=r"X is a single \w+ \w+, not a sequence of samples; wrap it in a list"):
        StaticEmbeddingTransformer().fit_transform(one)
    if not hasattr(one, "get_reduced_formula_and_factor"):  # a structure (not a Composition)
        t = DynamicEmbeddingTransformer(CGCNN, device="cpu", progress=False).fit()
        with pytest.raises(TypeError, match="wrap it in a list"):
            t.transform(one)
        assert len(t.transform([one])) == 1


def test_formulas_given_to_the_dynamic_transformer():
    t = DynamicEmbeddingTransformer(CGCNN, device="cpu", progress=False).fit()
    with pytest.raises(InvalidStructureError, match=r"sample 1: 'NaCl' is a chemical formula, not a structure.*"
                                                    r"use StaticEmbeddingTransformer"):
        t.transform([nacl(), "NaCl"])
    with pytest.raises(InvalidStructureError, match="no such structure file"):  # a path that is not a formula
        t.transform(["missing/structure.cif"])
