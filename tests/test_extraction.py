"""The public Extractor: the engine every entry point (transformer, featurizer, streaming, CLI) calls."""

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from skdynemb import DynamicEmbeddingTransformer, Extractor
from skdynemb.backbones import load_backbone
from skdynemb.errors import InvalidStructureError
from skdynemb.extraction import DEFAULT_BACKBONE, resolve_stages
from skdynemb.pooling import mean_rows

CGCNN = "cgcnn-mp-eform"
CGCNN_STAGES = ["embedding", "conv1", "conv2", "conv3", "conv4"]


def test_default_backbone_is_declared_once_and_used_everywhere():
    import inspect

    from skdynemb.cli import build_parser
    from skdynemb.featurizers import DynamicEmbeddingFeaturizer

    assert DEFAULT_BACKBONE == "alignn-ff"
    for cls in (Extractor, DynamicEmbeddingTransformer, DynamicEmbeddingFeaturizer):
        assert inspect.signature(cls).parameters["backbone"].default == DEFAULT_BACKBONE
    assert build_parser().parse_args(["extract", "in.json", "-o", "out.npz"]).backbone == DEFAULT_BACKBONE


def test_resolve_stages():
    assert resolve_stages(-1, CGCNN_STAGES) == [4]
    assert resolve_stages("all", CGCNN_STAGES) == [0, 1, 2, 3, 4]
    assert resolve_stages(["conv2", 0], CGCNN_STAGES) == [2, 0]
    for bad, message in [(5, "out of range"), ("conv9", "not a stage"), ([], "empty"), ([1, -4], "twice"),
                         (True, "out of range")]:
        with pytest.raises(ValueError, match=message):
            resolve_stages(bad, CGCNN_STAGES)


def test_extract_rows_errors_and_order(licoo2):
    """Rows come per element in atomic-number order with the atomic fractions of the formula;
    a formula and a disordered site are errors naming their global index and id."""
    extractor = Extractor(CGCNN, stage=[0, -1], device="cpu")
    assert extractor.stages == [0, 4] and len(extractor.feature_names) == 2 * 64
    disordered = Structure(Lattice.cubic(3.0), [{"Fe": 0.5, "Co": 0.5}], [[0, 0, 0]])
    samples = ["Fe2O3", licoo2, disordered]
    compounds, errors = extractor.extract(samples, ids=["a", "b", "c"], indices=[10, 11, 12])
    assert compounds[0] is None and compounds[2] is None
    (licoo2_rows,) = [compounds[1]]
    assert licoo2_rows.elements == ("Li", "O", "Co") and licoo2_rows.id == "b"
    np.testing.assert_array_equal(licoo2_rows.fractions, [0.25, 0.5, 0.25])
    assert licoo2_rows.features.shape == (3, 128) and licoo2_rows.features.dtype == np.float32
    assert [(i, sid) for i, sid, _ in errors] == [(10, "a"), (12, "c")]
    assert "chemical formula" in errors[0][2] and "partially occupied" in errors[1][2]
    # the embedding stage is a per-element lookup: Co's row equals the embedding of Co's atom
    atom = load_backbone(CGCNN).forward_stages([licoo2])[0].atom[0]
    np.testing.assert_allclose(licoo2_rows.features[2, :64], atom[list(licoo2.numbers).index(27)], atol=1e-6)


def test_stop_on_error_stops_at_the_first(licoo2):
    extractor = Extractor(CGCNN, device="cpu")
    compounds, errors = extractor.extract([licoo2, "NaCl", "H2O"], stop_on_error=True)
    assert compounds == [None, None, None] and [e[0] for e in errors] == [1]
    with pytest.raises(InvalidStructureError, match="sample 1"):
        DynamicEmbeddingTransformer(CGCNN, device="cpu", progress=False).fit().transform([licoo2, "NaCl"])


def test_transformer_and_mean_pooling_are_the_extractor(licoo2, co3o4):
    extractor = Extractor(CGCNN, stage="all", device="cpu")
    compounds, errors = extractor.extract([licoo2, co3o4])
    assert not errors
    t = DynamicEmbeddingTransformer(CGCNN, stage="all", pooling="mean", device="cpu", progress=False).fit()
    means = mean_rows(compounds, len(extractor.feature_names))
    np.testing.assert_array_equal(t.transform([licoo2, co3o4]), means)
    # the atom mean of LiCoO2 = (Li + Co + 2 O) / 4 of the element rows
    rows = compounds[0].features.astype(np.float64)
    np.testing.assert_allclose(means[0], (rows[0] + 2 * rows[1] + rows[2]) / 4, rtol=1e-6)
    assert mean_rows([], 7).shape == (0, 7)


def test_a_loaded_backbone_is_used_as_it_is(licoo2):
    backbone = load_backbone(CGCNN)
    extractor = Extractor(backbone, stage=0)
    assert extractor.backbone is backbone and extractor.name == backbone.name
    with pytest.raises(ValueError, match="weights"):
        Extractor(backbone, "some.pt")
    for kwargs, message in [({"backbone": "nope"}, "not one of"), ({"cell": "conventional"}, "cell"),
                            ({"compound_features": "angle"}, "compound_features"), ({"batch_size": 0}, "batch_size")]:
        with pytest.raises(ValueError, match=message):
            Extractor(**{"backbone": CGCNN, **kwargs})
