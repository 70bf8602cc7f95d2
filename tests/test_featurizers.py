"""matminer adapter: featurize_dataframe gives the transformer's atom-averaged vectors."""

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from skdynemb import DynamicEmbeddingTransformer
from skdynemb.featurizers import DynamicEmbeddingFeaturizer

CGCNN = "cgcnn-mp-eform"  # the fast shipped backbone these tests were written for (the default is alignn-ff)


def _structures():
    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    cu = Structure.from_spacegroup("Fm-3m", Lattice.cubic(3.61), ["Cu"], [[0, 0, 0]])
    mgo = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.21), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    return [nacl, cu, mgo]


def test_featurize_dataframe_matches_transformer_and_keeps_user_columns():
    structures = _structures()
    df = pd.DataFrame({"structure": structures, "target": [1.0, 2.0, 3.0]}, index=["a", "b", "c"])
    f = DynamicEmbeddingFeaturizer(CGCNN, device="cpu").fit(df["structure"])
    out = f.featurize_dataframe(df, "structure", pbar=False)
    labels = f.feature_labels()
    assert list(out.columns) == ["structure", "target", *labels]
    assert list(out.index) == ["a", "b", "c"] and list(out["target"]) == [1.0, 2.0, 3.0]
    transformer = DynamicEmbeddingTransformer(CGCNN, pooling="mean", progress=False, device="cpu")
    expected = transformer.fit().transform(structures)
    np.testing.assert_allclose(out[labels].to_numpy(), expected, atol=1e-6)
    assert np.isfinite(out[labels].to_numpy()).all()
    np.testing.assert_allclose(f.featurize(structures[1]), expected[1], atol=1e-6)


def test_featurize_many_runs_one_batched_extraction(monkeypatch):
    f = DynamicEmbeddingFeaturizer(CGCNN, device="cpu").fit()
    calls = []
    original = f.transformer_.backbone_.forward_stages
    monkeypatch.setattr(f.transformer_.backbone_, "forward_stages", lambda c: calls.append(len(c)) or original(c))
    f.featurize_many([[s] for s in _structures()], pbar=False)
    assert calls == [3]  # one block-diagonal batch, not one model call per row


def test_bad_row_raises_or_becomes_nan_only_when_asked():
    rows = _structures() + [Structure(Lattice.cubic(3.0), [{"Fe": 0.5, "Co": 0.5}], [[0, 0, 0]])]
    df = pd.DataFrame({"structure": rows})
    f = DynamicEmbeddingFeaturizer(CGCNN, device="cpu").fit()
    with pytest.raises(ValueError, match="sample 3"):
        f.featurize_dataframe(df, "structure", pbar=False)
    out = f.featurize_dataframe(df, "structure", ignore_errors=True, return_errors=True, pbar=False)
    labels = f.feature_labels()
    assert np.isfinite(out[labels].iloc[:3].to_numpy()).all()
    assert out[labels].iloc[3].isna().all()
    assert "partially occupied" in out.iloc[3, -1]


def test_metadata():
    f = DynamicEmbeddingFeaturizer()
    assert any("dynamic embedding" in c.lower() for c in f.citations())
    assert f.implementors()


def test_matminer_contract():
    """What matminer's BaseFeaturizer asks of the three metadata methods: labels as unique strings,
    one per value ``featurize`` returns; citations as BibTeX strings; implementors as names."""
    from importlib.metadata import metadata

    f = DynamicEmbeddingFeaturizer(CGCNN, device="cpu")
    labels = f.feature_labels()
    assert all(type(label) is str for label in labels) and len(set(labels)) == len(labels) == 64
    assert len(f.featurize(_structures()[0])) == len(labels)
    citations = f.citations()
    assert citations and all(type(c) is str and c.startswith("@") and c.endswith("}") for c in citations)
    assert any("xie2018cgcnn" in c for c in citations)  # the backbone's own paper
    names = f.implementors()
    assert names and all(type(name) is str for name in names)
    assert names == [metadata("skdynemb")["Author"]]  # the same name as the package metadata


def test_layer_is_the_deprecated_name_of_stage():
    with pytest.warns(FutureWarning, match="`layer` was renamed `stage` in 0.2"):
        old = DynamicEmbeddingFeaturizer(CGCNN, layer="embedding", device="cpu").fit()
    assert old.feature_labels() == [f"dynemb_embedding_{k}" for k in range(64)]
    new = DynamicEmbeddingFeaturizer(CGCNN, stage=0, device="cpu").fit()
    assert new.feature_labels() == old.feature_labels()
    with pytest.raises(ValueError, match="both given"):
        DynamicEmbeddingFeaturizer(CGCNN, stage=0, layer=0).fit()
