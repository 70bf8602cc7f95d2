"""One batch-size decision, one validation per structure, and rows that do not depend on batching."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from skdynemb import DynamicEmbeddingTransformer, structures
from skdynemb.extraction import batches
from skdynemb.streaming import extract_to_file

CGCNN = "cgcnn-mp-eform"  # the fast shipped backbone these tests were written for (the default is alignn-ff)

SETTINGS = dict(stage="all", device="cpu", progress=False)


@pytest.fixture(scope="module")
def mp_cifs(mp_records):
    """The first 7 MP structures (CIF text) and their ids."""
    return [r["cif"] for r in mp_records[:7]], [r["material_id"] for r in mp_records[:7]]


@pytest.fixture()
def forward_sizes(monkeypatch):
    """Number of structures in every forward pass the extraction runs."""
    sizes, forward = [], batches._forward

    def counting(backbone, crystals, indices):
        sizes.append(len(crystals))
        return forward(backbone, crystals, indices)

    monkeypatch.setattr(batches, "_forward", counting)
    return sizes


def _records_file(tmp_path, cifs, ids):
    path = tmp_path / "records.json"
    path.write_text(json.dumps([{"id": i, "cif": c} for i, c in zip(ids, cifs)]))
    return path


def test_batch_size_resolved_once_at_fit():
    default = DynamicEmbeddingTransformer(CGCNN, **SETTINGS).fit()
    assert default.batch_size_ == default.backbone_.default_batch_size == 64
    assert DynamicEmbeddingTransformer(CGCNN, batch_size=5, **SETTINGS).fit().batch_size_ == 5
    assert default.fingerprint_ == default.backbone_.fingerprint()
    assert default.backbone_identity_["weights_sha256"] == default.fingerprint_


def test_forward_batches_are_exactly_the_batch_size(mp_cifs, forward_sizes, tmp_path):
    cifs, ids = mp_cifs
    t = DynamicEmbeddingTransformer(CGCNN, batch_size=3, pooling="mean", **SETTINGS).fit()
    t.transform(cifs)
    assert forward_sizes == [3, 3, 1]
    forward_sizes.clear()
    extract_to_file(_records_file(tmp_path, cifs, ids), tmp_path / "out.parquet", t, chunk_size=5, progress=False)
    assert forward_sizes == [3, 2, 2]  # chunks of 5 and 2 structures, each in batches of 3


@pytest.mark.parametrize("pooling", ["mean", "element"])
def test_rows_do_not_depend_on_batching_beyond_float32_rounding(mp_cifs, pooling):
    """A block-diagonal batch sums messages in another order than a lone structure (float32
    rounding, ~1e-6 here); the same batch size gives bitwise the same rows, in memory or streamed."""
    cifs, _ = mp_cifs
    rows = []
    for batch_size in (1, 3, 3, None):
        transformer = DynamicEmbeddingTransformer(CGCNN, batch_size=batch_size, pooling=pooling, **SETTINGS)
        out = transformer.fit().transform(cifs)
        rows.append(np.asarray(out) if pooling == "mean" else np.concatenate([c.features for c in out]))
    assert rows[0].shape[0] == (7 if pooling == "mean" else sum(len(c.elements) for c in out))
    assert rows[1].tobytes() == rows[2].tobytes()
    for other in rows[1:]:
        np.testing.assert_allclose(other, rows[0], rtol=0, atol=1e-5)


def test_streamed_rows_bitwise_equal_transform_at_the_same_batch_size(mp_cifs, tmp_path):
    cifs, ids = mp_cifs
    t = DynamicEmbeddingTransformer(CGCNN, batch_size=3, pooling="mean", **SETTINGS).fit()
    out = tmp_path / "out.parquet"
    extract_to_file(_records_file(tmp_path, cifs, ids), out, t, chunk_size=5, progress=False)
    table = pq.read_table(out)
    streamed = np.stack([table.column(str(n)).to_numpy() for n in t.get_feature_names_out()], axis=1)
    # chunks of 5 and 2 are batched 3+2 and 2; in memory the 7 are batched 3+3+1
    expected = np.concatenate([t.transform(cifs[:3]), t.transform(cifs[3:5]), t.transform(cifs[5:])])
    assert streamed.tobytes() == np.asarray(expected, dtype=np.float32).tobytes()


def test_streaming_validates_each_structure_once(mp_cifs, tmp_path, monkeypatch):
    cifs, ids = mp_cifs[0][:3], mp_cifs[1][:3]
    validated, checked = [], []
    validate, check = structures._validate, batches.check_elements

    def counting_validate(crystal, index, sample_id, *args):
        validated.append(sample_id)
        return validate(crystal, index, sample_id, *args)

    def counting_check(backbone, crystal, index):
        checked.append(crystal.id)
        return check(backbone, crystal, index)

    monkeypatch.setattr(structures, "_validate", counting_validate)
    monkeypatch.setattr(batches, "check_elements", counting_check)
    t = DynamicEmbeddingTransformer(CGCNN, pooling="mean", **SETTINGS).fit()
    out = tmp_path / "out.parquet"
    extract_to_file(_records_file(tmp_path, cifs, ids), out, t, progress=False)
    assert validated == ids and checked == ids
    assert pq.read_table(out).column("id").to_pylist() == ids


# ----------------------------------------------------------------------------- the forward batch itself
@pytest.fixture()
def network_batches(monkeypatch):
    """Structures in every forward pass of the networks themselves (CGCNN's and ALIGNN's module),
    whoever calls them: the extraction (``forward_stages``) or ``predict``."""
    from cgcnn2.model import CrystalGraphConvNet

    from skdynemb.backbones.alignn.model import ALIGNN

    sizes, cgcnn_forward, alignn_stages = [], CrystalGraphConvNet.forward, ALIGNN.stages

    def cgcnn(self, atom_fea, nbr_fea, nbr_fea_idx, crystal_atom_idx, *args, **kwargs):
        sizes.append(len(crystal_atom_idx))
        return cgcnn_forward(self, atom_fea, nbr_fea, nbr_fea_idx, crystal_atom_idx, *args, **kwargs)

    def alignn(self, batch, *args, **kwargs):
        sizes.append(batch.num_graphs)
        return alignn_stages(self, batch, *args, **kwargs)

    monkeypatch.setattr(CrystalGraphConvNet, "forward", cgcnn)
    monkeypatch.setattr(ALIGNN, "stages", alignn)
    return sizes


@pytest.fixture(scope="module")
def twelve(mp_records):
    """The first 12 MP structures (CIF text) and their ids."""
    return [r["cif"] for r in mp_records[:12]], [r["material_id"] for r in mp_records[:12]]


def test_batched_cuts_exact_batches_lazily():
    from skdynemb._batches import batched

    assert list(batched(range(12), 5)) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11]]
    assert list(batched(iter("abcdef"), 3)) == [["a", "b", "c"], ["d", "e", "f"]]
    assert list(batched([], 4)) == []
    endless = batched(iter(int, 1), 2)  # an endless iterator: only what is asked is read
    assert next(endless) == [0, 0]
    for bad in (0, -1, 2.5, True, None):
        with pytest.raises(ValueError, match="batch_size must be a positive int"):
            list(batched(range(3), bad))


@pytest.mark.parametrize("backbone", ["cgcnn-mp-eform", "alignn-mp-eform"])
def test_cli_batch_size_is_the_forward_batch(backbone, twelve, network_batches, tmp_path):
    """``skdynemb extract --batch-size 5`` over 12 structures: network forward passes of 5, 5 and 2."""
    from skdynemb import cli

    cifs, ids = twelve
    args = ["extract", str(_records_file(tmp_path, cifs, ids)), "-o", str(tmp_path / "out.parquet"),
            "--backbone", backbone, "--batch-size", "5", "--device", "cpu", "--no-progress"]
    assert cli.main(args) == 0
    assert network_batches == [5, 5, 2]
    assert pq.read_table(tmp_path / "out.parquet").column("id").to_pylist() == ids


@pytest.mark.parametrize("backbone", ["cgcnn-mp-eform", "alignn-mp-eform"])
def test_transform_batch_size_is_the_forward_batch(backbone, twelve, network_batches):
    t = DynamicEmbeddingTransformer(backbone=backbone, batch_size=5, pooling="mean", **SETTINGS).fit()
    assert t.transform(twelve[0]).shape[0] == 12
    assert network_batches == [5, 5, 2]


@pytest.mark.parametrize("backbone", ["cgcnn-mp-eform", "alignn-mp-eform"])
def test_predict_batch_size_is_the_forward_batch(backbone, twelve, network_batches):
    """``Backbone.predict`` cuts batches with the extraction's helper; ``predict_batch`` runs one
    forward pass over exactly what it is given; the rows agree up to float32 reordering."""
    from skdynemb.backbones import load_backbone

    model = load_backbone(backbone, device="cpu")
    crystals = structures.to_crystals(twelve[0], ids=twelve[1])
    in_fives = model.predict(crystals, batch_size=5)
    assert network_batches == [5, 5, 2]
    network_batches.clear()
    whole = model.predict(crystals)  # default_batch_size (64) holds all 12
    assert network_batches == [12]
    network_batches.clear()
    assert model.predict_batch(crystals[:7], first=0).shape == (7,)
    assert network_batches == [7]
    assert in_fives.shape == whole.shape == (12,)
    np.testing.assert_allclose(in_fives, whole, rtol=0, atol=1e-5)
    assert model.predict([]).shape == (0,)
