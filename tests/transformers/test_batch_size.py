"""One batch-size decision, one validation per structure, and rows that do not depend on batching."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from skdynemb import DynamicEmbeddingTransformer, extraction, structures
from skdynemb.streaming import extract_to_file

SETTINGS = dict(layer="all", device="cpu", progress=False)


@pytest.fixture(scope="module")
def mp_cifs(mp_records):
    """The first 7 MP structures (CIF text) and their ids."""
    return [r["cif"] for r in mp_records[:7]], [r["material_id"] for r in mp_records[:7]]


@pytest.fixture()
def forward_sizes(monkeypatch):
    """Number of structures in every forward pass the extraction runs."""
    sizes, forward = [], extraction._forward

    def counting(backbone, crystals, indices):
        sizes.append(len(crystals))
        return forward(backbone, crystals, indices)

    monkeypatch.setattr(extraction, "_forward", counting)
    return sizes


def _records_file(tmp_path, cifs, ids):
    path = tmp_path / "records.json"
    path.write_text(json.dumps([{"id": i, "cif": c} for i, c in zip(ids, cifs)]))
    return path


def test_batch_size_resolved_once_at_fit():
    default = DynamicEmbeddingTransformer(**SETTINGS).fit()
    assert default.batch_size_ == default.backbone_.default_batch_size == 64
    assert DynamicEmbeddingTransformer(batch_size=5, **SETTINGS).fit().batch_size_ == 5
    assert default.fingerprint_ == default.backbone_.fingerprint()
    assert default.backbone_identity_["weights_sha256"] == default.fingerprint_


def test_forward_batches_are_exactly_the_batch_size(mp_cifs, forward_sizes, tmp_path):
    cifs, ids = mp_cifs
    t = DynamicEmbeddingTransformer(batch_size=3, pooling="mean", **SETTINGS).fit()
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
        out = DynamicEmbeddingTransformer(batch_size=batch_size, pooling=pooling, **SETTINGS).fit().transform(cifs)
        rows.append(np.asarray(out) if pooling == "mean" else np.concatenate([c.features for c in out]))
    assert rows[0].shape[0] == (7 if pooling == "mean" else sum(len(c.elements) for c in out))
    assert rows[1].tobytes() == rows[2].tobytes()
    for other in rows[1:]:
        np.testing.assert_allclose(other, rows[0], rtol=0, atol=1e-5)


def test_streamed_rows_bitwise_equal_transform_at_the_same_batch_size(mp_cifs, tmp_path):
    cifs, ids = mp_cifs
    t = DynamicEmbeddingTransformer(batch_size=3, pooling="mean", **SETTINGS).fit()
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
    validate, check = structures._validate, extraction.check_elements

    def counting_validate(crystal, index, sample_id, *args):
        validated.append(sample_id)
        return validate(crystal, index, sample_id, *args)

    def counting_check(backbone, crystal, index):
        checked.append(crystal.id)
        return check(backbone, crystal, index)

    monkeypatch.setattr(structures, "_validate", counting_validate)
    monkeypatch.setattr(extraction, "check_elements", counting_check)
    t = DynamicEmbeddingTransformer(pooling="mean", **SETTINGS).fit()
    out = tmp_path / "out.parquet"
    extract_to_file(_records_file(tmp_path, cifs, ids), out, t, progress=False)
    assert validated == ids and checked == ids
    assert pq.read_table(out).column("id").to_pylist() == ids
