"""SevenNet backbones: energies vs sevenn's own ASE calculator, stages vs the network's own tensors."""

import warnings

import numpy as np
import pytest
import torch
from pymatgen.io.ase import AseAtomsAdaptor

pytest.importorskip("sevenn", reason='the sevenn extra: pip install "skdynemb[sevenn]"')

import sevenn._keys as KEY  # noqa: E402
from sevenn.calculator import SevenNetCalculator  # noqa: E402
from torch_geometric.data import Batch  # noqa: E402

from skdynemb.backbones import load_backbone, sevenn  # noqa: E402
from skdynemb.errors import InvalidStructureError  # noqa: E402
from skdynemb.structures import Crystal, to_crystals  # noqa: E402

#: registry name -> (sevenn's own pretrained-model name, fidelity)
UPSTREAM = {
    "sevenn-0": ("7net-0", None),
    "sevenn-0-22may2024": ("7net-0_22may2024", None),
    "sevenn-l3i5": ("7net-l3i5", None),
    "sevenn-mf-0": ("7net-mf-0", "PBE"),
}


@pytest.fixture(scope="module")
def mp_crystals(mp_sample):
    picked = mp_sample(6, seed=5)
    return to_crystals([r["cif"] for r in picked], ids=[r["material_id"] for r in picked])


@pytest.fixture(scope="module")
def backbone():
    return load_backbone("sevenn-0")


def calculator_energies(model_name, crystals, modal=None):
    """Energy per atom (eV/atom) of each crystal from sevenn's own ASE calculator."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no tensor product accelerator"
        calc = SevenNetCalculator(model_name, device="cpu", modal=modal)
    out = []
    for c in crystals:
        atoms = AseAtomsAdaptor.get_atoms(c.to_pymatgen())
        atoms.calc = calc
        out.append(atoms.get_potential_energy() / len(atoms))
    return np.array(out)


@pytest.mark.parametrize("name", sorted(UPSTREAM))
def test_energies_equal_sevenn_calculator(name, mp_crystals, licoo2, co3o4):
    crystals = [*mp_crystals, licoo2, co3o4]
    ours = load_backbone(name)
    upstream, modal = UPSTREAM[name]
    expected = calculator_energies(upstream, crystals, modal)
    np.testing.assert_allclose(ours.predict(crystals, batch_size=4), expected, rtol=0, atol=1e-5)
    assert ours.name == name and ours.cutoff == 5.0 and ours.modal == modal
    assert ours.stage_names == ["embedding", *(f"interaction{k}" for k in range(1, 6))]
    assert ours.stage_dims == [128] * 6 and ours.bond_dims is None and ours.angle_dims is None


def test_mf_fidelity_changes_rows_and_identity(mp_crystals):
    pbe, r2scan = load_backbone("sevenn-mf-0"), sevenn.load("sevenn-mf-0", modal="R2SCAN")
    assert r2scan.name == "sevenn-mf-0:R2SCAN" and r2scan.modal == "R2SCAN"
    np.testing.assert_allclose(
        r2scan.predict(mp_crystals[:3]), calculator_energies("7net-mf-0", mp_crystals[:3], "R2SCAN"), atol=1e-5
    )
    a, b = pbe.forward_stages(mp_crystals[:1])[0], r2scan.forward_stages(mp_crystals[:1])[0]
    assert np.array_equal(a.atom[0], b.atom[0])  # the element embedding is shared by the fidelities
    assert np.abs(a.atom[-1] - b.atom[-1]).max() > 1e-3  # the interaction blocks are not
    from skdynemb.provenance import backbone_identity

    assert backbone_identity(pbe)["settings"]["modal"] != backbone_identity(r2scan)["settings"]["modal"]
    with pytest.raises(ValueError, match="unknown fidelity 'HSE'"):
        sevenn.load("sevenn-mf-0", modal="HSE")
    with pytest.raises(ValueError, match="single-fidelity"):
        sevenn.load("sevenn-0", modal="PBE")


def test_stages_equal_the_networks_own_node_features(backbone, mp_crystals, licoo2):
    """Run sevenn's modules one by one over sevenn's calculator graph (no hooks) and compare the
    node features after the embedding and after each interaction block with the stage rows."""
    crystals = [*mp_crystals[:3], licoo2]
    outputs = backbone.forward_stages(crystals)
    model = backbone.module
    for c, out in zip(crystals, outputs):
        from sevenn.atom_graph_data import AtomGraphData
        from sevenn.train.dataload import unlabeled_atoms_to_graph

        atoms = AseAtomsAdaptor.get_atoms(c.to_pymatgen())
        data = Batch.from_data_list([AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(atoms, 5.0))])
        seen, head = {}, []
        with torch.no_grad():
            data = model._preprocess(data)
            for name, module in model._modules.items():
                if head:
                    head.append(module)
                data = module(data)
                if name == "onehot_to_feature_x" or name.endswith("_equivariant_gate"):
                    seen[name] = data[KEY.NODE_FEATURE].clone()
                if name == "4_equivariant_gate":
                    head, last = [None], data.clone()
        assert list(seen) == ["onehot_to_feature_x", *(f"{k}_equivariant_gate" for k in range(5))]
        np.testing.assert_allclose(out.atom[0], seen["onehot_to_feature_x"].numpy(), atol=1e-6)
        for k in range(5):
            full = seen[f"{k}_equivariant_gate"]
            # SevenNet-0's blocks output 128x0e + 64x1e + 32x2e (the last one 128x0e): the first 128 columns are the 0e
            assert full.shape[1] == (128 + 64 * 3 + 32 * 5 if k < 4 else 128)
            np.testing.assert_allclose(out.atom[k + 1], full[:, :128].numpy(), atol=1e-5)
        # the last stage through sevenn's own read-out modules gives the calculator's energy
        last[KEY.NODE_FEATURE] = torch.from_numpy(out.atom[-1])
        with torch.no_grad():
            for module in head[1:]:
                last = module(last)
        energy = float(last[KEY.PRED_TOTAL_ENERGY].sum()) / c.num_sites
        assert energy == pytest.approx(float(calculator_energies("7net-0", [c])[0]), abs=1e-5)


def test_invariant_columns_are_read_from_the_irreps():
    l3 = load_backbone("sevenn-l3i5")
    gate = l3.module._modules["0_equivariant_gate"].gate
    assert str(gate.irreps_out) == "128x0e+64x1e+32x2e+32x3e"
    assert l3.invariant_columns[0] == list(range(128)) and l3.invariant_columns[-1] == list(range(128))


def test_rows_are_rotation_invariant(backbone, licoo2):
    """The 0e channels do not change when the whole crystal is rotated (the l > 0 ones would)."""
    from scipy.spatial.transform import Rotation

    rotation = Rotation.from_euler("xyz", [0.3, -1.1, 2.0]).as_matrix()
    rotated = Crystal(licoo2.lattice @ rotation.T, licoo2.frac_coords, licoo2.numbers, "rotated")
    a, b = backbone.forward_stages([licoo2, rotated])
    for x, y in zip(a.atom, b.atom):
        np.testing.assert_allclose(x, y, atol=1e-4)


def test_load_checks_pins_and_files(tmp_path, monkeypatch):
    path, pinned = sevenn.BUNDLED["sevenn-0"]
    assert sevenn.sha256_file(path) == pinned
    copy = tmp_path / "copy.pth"
    copy.write_bytes(path.read_bytes())
    from_file = sevenn.load(copy)
    assert from_file.name == "sevenn:copy.pth"
    assert from_file.fingerprint() != load_backbone("sevenn-0").fingerprint()  # the name differs
    monkeypatch.setitem(sevenn.BUNDLED, "sevenn-0", (path, "0" * 64))
    with pytest.raises(ValueError, match="SHA-256 .* differs from the pinned"):
        sevenn.load("sevenn-0")
    torch.save({"config": {}, "model_state_dict": {"w": torch.tensor([float("nan")])}}, tmp_path / "nan.pth")
    with pytest.raises(ValueError, match=r"non-finite weights in \['w'\]"):
        sevenn.load(tmp_path / "nan.pth")
    torch.save({"state_dict": {}}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not a SevenNet checkpoint"):
        sevenn.load(tmp_path / "other.pth")

    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    torch.save({"config": Evil(), "model_state_dict": {}}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="weights_only=True"):
        sevenn.load(tmp_path / "evil.pth")


def test_errors_name_the_sample(backbone, licoo2):
    curium = Crystal(np.eye(3) * 3.5, np.zeros((1, 3)), np.array([96]), "cm")
    with pytest.raises(InvalidStructureError, match=r"sample 1 \(id='cm'\).*\[96\]"):
        backbone.forward_stages([licoo2, curium])
    with pytest.raises(InvalidStructureError, match=r"sample 7 \(id='cm'\)"):
        backbone.predict_batch([curium], first=7)


def test_isolated_atom_as_sevenn_computes_it(backbone, licoo2):
    """No neighbour within 5 Å: sevenn's calculator gives an energy, so do we (rows finite, and the
    same alone and beside a connected structure)."""
    lonely = Crystal(np.eye(3) * 7.0, np.zeros((1, 3)), np.array([11]), "lonely")
    assert backbone.cutoff == backbone.neighbour_cutoff == 5.0
    alone = backbone.forward_stages([lonely])[0]
    beside = backbone.forward_stages([licoo2, lonely])[1]
    assert all(np.isfinite(a).all() for a in alone.atom)
    for a, b in zip(alone.atom, beside.atom):  # equal up to float32 reordering
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5 * max(1.0, float(np.abs(a).max())))
    np.testing.assert_allclose(backbone.predict([lonely]), calculator_energies("7net-0", [lonely]), atol=1e-5)


def test_transformer_with_cache_gives_the_backbone_rows(backbone, mp_crystals, tmp_path):
    """End to end: the transformer's mean-pooled last stage (through the extraction and the cache,
    whose key holds the backbone's identity) equals the atom mean of forward_stages' last stage."""
    from skdynemb import DynamicEmbeddingTransformer

    crystals = mp_crystals[:3]
    expected = np.stack([out.atom[-1].mean(0) for out in backbone.forward_stages(crystals)])
    make = lambda: DynamicEmbeddingTransformer(  # noqa: E731
        backbone="sevenn-0", pooling="mean", device="cpu", memory=tmp_path, progress=False
    )
    first = make().fit_transform(crystals)
    assert len(list(tmp_path.rglob("*.npz"))) == 3  # one cache entry per structure
    again = make().fit_transform(crystals)  # served from the cache
    np.testing.assert_allclose(first, expected, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(first, again)
    assert first.shape == (3, 128)
