"""The default extractor is the official ALIGNN-FF (``alignn-ff`` = ``alignn-ff-wt10``), everywhere
a backbone can be left out: the transformer, the matminer featurizer, ``skdynemb extract`` and
``extract_to_file``."""

import json

import numpy as np

from skdynemb import DynamicEmbeddingTransformer, ElementEmbeddings
from skdynemb.cli import build_parser
from skdynemb.featurizers import DynamicEmbeddingFeaturizer
from skdynemb.streaming import extract_to_file

# the official ALIGNN-FF layout: atom embedding, 4 ALIGNN layers, 4 edge-gated GCN layers, 256 wide
STAGES = ["embedding", "alignn1", "alignn2", "alignn3", "alignn4", "gcn1", "gcn2", "gcn3", "gcn4"]


def test_every_entry_point_defaults_to_alignn_ff(tmp_path):
    assert DynamicEmbeddingTransformer().backbone == "alignn-ff"
    assert DynamicEmbeddingFeaturizer().backbone == "alignn-ff"
    args = build_parser().parse_args(["extract", "in.json", "-o", str(tmp_path / "out.parquet")])
    assert args.backbone == "alignn-ff"


def test_default_rows_are_alignn_ff_wt10_nine_stages_of_256(alignn_ff_weights, licoo2):
    default = DynamicEmbeddingTransformer(stage="all", device="cpu", progress=False).fit()
    assert default.backbone_.stage_names == STAGES and default.backbone_.stage_dims == [256] * 9
    out = default.transform([licoo2])
    assert isinstance(out, ElementEmbeddings)
    (compound,) = out
    assert compound.features.shape == (3, 9 * 256)  # Li, Co, O: one row per element
    np.testing.assert_allclose(compound.fractions.sum(), 1.0)
    wt10 = DynamicEmbeddingTransformer("alignn-ff-wt10", stage="all", device="cpu", progress=False).fit()
    assert default.fingerprint_ == wt10.fingerprint_
    np.testing.assert_array_equal(compound.features, wt10.transform([licoo2])[0].features)


def test_default_featurizer_gives_the_last_alignn_ff_stage(alignn_ff_weights, licoo2):
    featurizer = DynamicEmbeddingFeaturizer(device="cpu").fit()
    labels = featurizer.feature_labels()
    assert len(labels) == 256 and all("gcn4" in label for label in labels)
    row = featurizer.featurize(licoo2)
    expected = DynamicEmbeddingTransformer(pooling="mean", device="cpu", progress=False).fit().transform([licoo2])[0]
    np.testing.assert_allclose(row, expected, atol=1e-6)
    assert np.isfinite(row).all()


def test_extract_to_file_without_a_transformer_uses_alignn_ff(alignn_ff_weights, licoo2, tmp_path):
    source = tmp_path / "in.json"
    source.write_text(json.dumps([{"id": "LiCoO2", "cif": licoo2.to_pymatgen().to(fmt="cif")}]))
    extract_to_file(source, tmp_path / "out.npz", chunk_size=1, progress=False)
    with np.load(tmp_path / "out.npz") as out:
        # the default pooling ("element"): one row per (structure, element), 256 features each
        assert list(out["ids"]) == ["LiCoO2"] * 3 and sorted(out["elements"]) == ["Co", "Li", "O"]
        assert out["features"].shape == (3, 256)
        assert all(name.startswith("gcn4") for name in out["feature_names"])
