"""CHGNet backbone: weights vs CHGNet's own loader, stages vs CHGNet's own predictions."""


import numpy as np
import pytest
import torch
from chgnet.model import CHGNet
from chgnet.model.model import BatchedGraph
from pymatgen.core import Lattice, Structure

from skdynemb.backbones import chgnet
from skdynemb.structures import Crystal, to_crystal, to_crystals


def bcc_cs() -> Crystal:
    """Nearest neighbours 5.2 Å apart: bonds within 6 Å but none within 3 Å, so no angles."""
    return to_crystal(Structure(Lattice.cubic(6.05), ["Cs", "Cs"], [[0, 0, 0], [0.5, 0.5, 0.5]]), id="Cs")


@pytest.fixture(scope="module")
def backbone():
    return chgnet.load()


@pytest.fixture(scope="module")
def mp_crystals(mp_sample):
    picked = mp_sample(6)
    return to_crystals([r["cif"] for r in picked], ids=[r["material_id"] for r in picked])


def test_weights_equal_chgnet_own_loader(backbone):
    upstream = CHGNet.load(model_name="0.3.0", use_device="cpu", verbose=False)
    ours, theirs = backbone.module.state_dict(), upstream.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    assert backbone.name == "chgnet" and not backbone.module.training
    assert backbone.stage_names == ["embedding", "conv1", "conv2", "conv3", "conv4"]
    assert backbone.stage_dims == [64] * 5
    assert backbone.bond_dims == backbone.angle_dims == [64] * 4


@pytest.mark.parametrize(
    ("name", "version"), [("chgnet-0.3.0", "0.3.0"), ("chgnet-0.2.0", "0.2.0"), ("chgnet-r2scan", "r2scan")]
)
def test_versions_by_name_equal_chgnet_own_loader(name, version, licoo2):
    """Each registered version holds the weights CHGNet's own loader gives for its model name,
    and predicts CHGNet's own energy."""
    from skdynemb.backbones import load_backbone

    ours = load_backbone(name)
    upstream = CHGNet.load(model_name=version, use_device="cpu", verbose=False)
    mine, theirs = ours.module.state_dict(), upstream.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in theirs)
    assert ours.name == ("chgnet" if version == "0.3.0" else name)
    expected = upstream.predict_structure(licoo2.to_pymatgen(), task="e", return_atom_feas=True)
    np.testing.assert_allclose(ours.forward_stages([licoo2])[0].atom[3], expected["atom_fea"], atol=1e-5)


def test_bundled_checkpoints_are_pinned(monkeypatch):
    assert set(chgnet.SHA256) == set(chgnet.BUNDLED)
    monkeypatch.setitem(chgnet.SHA256, "r2scan", "0" * 64)
    with pytest.raises(ValueError, match="SHA-256 .* differs from the pinned"):
        chgnet.load("r2scan")


def test_load_rejects_bad_checkpoints(tmp_path):
    checkpoint = torch.load(chgnet.BUNDLED["0.3.0"], map_location="cpu", weights_only=True)
    checkpoint["model"]["state_dict"]["bond_embedding.weight"][0, 0] = float("inf")
    torch.save(checkpoint, tmp_path / "inf.pth.tar")
    with pytest.raises(ValueError, match="non-finite.*bond_embedding.weight"):
        chgnet.load(tmp_path / "inf.pth.tar")
    torch.save({"state_dict": {}}, tmp_path / "other.pth.tar")
    with pytest.raises(ValueError, match="not a CHGNet checkpoint"):
        chgnet.load(tmp_path / "other.pth.tar")
    old = chgnet.load("0.2.0")  # output-MLP biases detected from the weights
    assert old.name == "chgnet-0.2.0" and old.fingerprint() != chgnet.load().fingerprint()


def test_stages_reproduce_chgnet_predictions(backbone, mp_crystals, licoo2):
    crystals = [*mp_crystals, licoo2]
    outputs = backbone.forward_stages(crystals)
    model = backbone.module
    reference = model.predict_structure(
        [c.to_pymatgen() for c in crystals], task="e", return_atom_feas=True, batch_size=3
    )
    for c, out, ref in zip(crystals, outputs, reference):
        # CHGNet's return_atom_feas are the atom features after the third convolution
        np.testing.assert_allclose(out.atom[3], ref["atom_fea"], atol=1e-5)
        # energy per atom from our last stage through CHGNet's read-out equals its own prediction
        with torch.no_grad():
            site_energies = model.mlp(model.readout_norm(torch.from_numpy(out.atom[4])))
            reference_energy = model.composition_model.fc.weight[0, torch.as_tensor(c.numbers) - 1]
            energy = float((site_energies.sum() + reference_energy.sum()) / c.num_sites)
        assert energy == pytest.approx(float(ref["e"]), abs=1e-5)


def test_bond_and_angle_means(backbone, mp_crystals, licoo2):
    crystals = [licoo2, bcc_cs()]
    lco, cs = backbone.forward_stages(crystals)
    model = backbone.module
    with torch.no_grad():
        batch = BatchedGraph.from_graphs(
            backbone.graphs([licoo2]), model.bond_basis_expansion, model.angle_basis_expansion
        )
        bonds = model.bond_embedding(batch.bond_bases_ag).mean(0).numpy()
        angles = model.angle_embedding(batch.angle_bases).mean(0).numpy()
    np.testing.assert_allclose(lco.bond[0], bonds, atol=1e-6)
    np.testing.assert_allclose(lco.angle[0], angles, atol=1e-6)
    assert len(lco.bond) == len(lco.angle) == 4
    assert all(np.abs(lco.bond[k] - lco.bond[k - 1]).max() > 1e-3 for k in range(1, 4))
    # bcc Cs has no angle, so CHGNet never updates its bonds: all bond stages equal the embedding
    assert cs.angle is None
    assert all(np.array_equal(cs.bond[k], cs.bond[0]) for k in range(4))
    only_cs = backbone.forward_stages([bcc_cs()])[0]
    assert only_cs.angle is None and all(np.array_equal(a, b) for a, b in zip(only_cs.bond, cs.bond))


def test_batched_equals_single_and_repeatable(backbone, mp_crystals):
    crystals = [*mp_crystals[:4], bcc_cs()]
    batched = backbone.forward_stages(crystals)
    again = backbone.forward_stages(crystals)
    for c, out, rep in zip(crystals, batched, again):
        single = backbone.forward_stages([c])[0]
        assert [a.shape for a in out.atom] == [(c.num_sites, 64)] * 5
        assert all(a.dtype == np.float32 and np.isfinite(a).all() for a in out.atom)
        for field in ("atom", "bond", "angle"):
            if getattr(out, field) is None:
                assert getattr(single, field) is None
                continue
            for a, b, r in zip(getattr(out, field), getattr(single, field), getattr(rep, field)):
                np.testing.assert_allclose(a, b, atol=1e-5)
                np.testing.assert_array_equal(a, r)
    assert backbone.forward_stages([]) == []


def test_errors_name_the_sample(backbone, licoo2, co3o4):
    americium = Crystal(np.eye(3) * 3.5, np.zeros((1, 3)), np.array([95]), "am")
    with pytest.raises(ValueError, match=r"sample 1 \(id='am'\).*\[95\]"):
        backbone.forward_stages([licoo2, americium])
    isolated = to_crystal(Structure(Lattice.cubic(7.0), ["Na"], [[0, 0, 0]]), id="lonely")
    with pytest.raises(ValueError, match=r"sample 2 \(id='lonely'\).*isolated"):
        backbone.forward_stages([licoo2, co3o4, isolated])
