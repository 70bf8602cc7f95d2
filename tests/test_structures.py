"""Structures in: every accepted input gives the same Crystal; bad input names the sample."""

import numpy as np
import pytest
from ase.build import bulk, molecule
from pymatgen.core import Lattice, Molecule, Structure
from pymatgen.io.ase import AseAtomsAdaptor
from pymatgen.io.jarvis import JarvisAtomsAdaptor

from skdynemb.structures import Crystal, InvalidStructureError, string_kind, to_crystal, to_crystals


@pytest.fixture
def rocksalt():
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_all_input_kinds_agree(rocksalt, tmp_path):
    ref = to_crystal(rocksalt)
    assert ref.num_sites == 8 and ref.symbols.count("Na") == 4
    np.testing.assert_allclose(ref.volume, 5.64**3)
    cif = tmp_path / "nacl.cif"
    rocksalt.to(filename=str(cif))
    poscar = tmp_path / "POSCAR"
    rocksalt.to(filename=str(poscar), fmt="poscar")
    inputs = [
        AseAtomsAdaptor.get_atoms(rocksalt),
        JarvisAtomsAdaptor.get_atoms(rocksalt),
        rocksalt.as_dict(),
        rocksalt.to(fmt="cif"),
        rocksalt.to(fmt="poscar"),
        cif,
        str(poscar),
        ref,
    ]
    for crystal in to_crystals(inputs):
        np.testing.assert_array_equal(crystal.numbers, ref.numbers)
        np.testing.assert_allclose(crystal.cart_coords, ref.cart_coords, atol=1e-5)
        np.testing.assert_allclose(crystal.lattice, ref.lattice, atol=1e-5)


def test_round_trip_to_pymatgen(rocksalt):
    back = to_crystal(rocksalt).to_pymatgen()
    assert back.matches(rocksalt)
    assert back.composition == rocksalt.composition


def test_real_mp_cifs_parse(mp_records):
    records = mp_records[:25]
    crystals = to_crystals([r["cif"] for r in records], ids=[r["material_id"] for r in records])
    for rec, crystal in zip(records, crystals):
        s = Structure.from_str(rec["cif"], fmt="cif")
        assert crystal.id == rec["material_id"]
        assert sorted(crystal.symbols) == sorted(str(sp) for sp in s.species)
        np.testing.assert_allclose(crystal.volume, s.volume, rtol=1e-8)


def test_content_hash_ignores_id_but_not_geometry(rocksalt):
    a = to_crystal(rocksalt, id="a")
    b = to_crystal(rocksalt, id="b")
    assert a.content_hash() == b.content_hash()
    strained = rocksalt.copy()
    strained.apply_strain(0.01)
    assert to_crystal(strained).content_hash() != a.content_hash()


@pytest.mark.parametrize(
    "make_bad, message",
    [
        (lambda s: Structure(Lattice.cubic(3.0), [], []), "empty structure"),
        (lambda s: Structure(Lattice.cubic(3.0), [{"Fe": 0.5, "Co": 0.5}], [[0, 0, 0]]), "partially occupied"),
        (lambda s: s.copy().__class__.from_sites(list(s) + [s[0].__class__("Na", [0.001, 0, 0], s.lattice)]),
         "same spot"),
        (lambda s: Molecule(["H", "H"], [[0, 0, 0], [0, 0, 0.74]]), "non-periodic"),
        (lambda s: AseAtomsAdaptor.get_atoms(Molecule(["H", "H"], [[0, 0, 0], [0, 0, 0.74]])), "pbc"),
        (lambda s: molecule("H2O"), "pbc"),
        (lambda s: "this is not a structure\nat all", "could not parse"),
        (lambda s: "missing_file.cif", "no such structure file"),
        (lambda s: 42, "cannot read a int"),
    ],
)
def test_bad_input_names_the_sample(rocksalt, make_bad, message):
    bad = make_bad(rocksalt)
    with pytest.raises(InvalidStructureError, match=rf"sample 2 \(id='bad'\).*{message}"):
        to_crystals([rocksalt, rocksalt, bad], ids=["ok1", "ok2", "bad"])


def test_nan_coordinates_rejected(rocksalt):
    crystal = to_crystal(rocksalt)
    frac = crystal.frac_coords.copy()
    frac[3, 1] = np.nan
    with pytest.raises(InvalidStructureError, match="sample 0.*NaN"):
        to_crystals([Crystal(crystal.lattice, frac, crystal.numbers)])


def test_periodic_image_overlap_detected():
    # two sites 0.05 Å apart only across the periodic boundary
    s = Structure(Lattice.cubic(4.0), ["Cu", "Cu"], [[0.001, 0, 0], [0.9885, 0, 0]])
    with pytest.raises(InvalidStructureError, match="same spot"):
        to_crystal(s, index=5)


def test_one_atom_cell_and_ase_bulk():
    crystal = to_crystal(bulk("Cu", "fcc", a=3.6))
    assert crystal.num_sites == 1 and crystal.symbols == ["Cu"]
    np.testing.assert_allclose(crystal.volume, 3.6**3 / 4)


def test_pandas_series_uses_index_as_ids(rocksalt):
    import pandas as pd

    from skdynemb.transformers._base import as_samples

    items, ids = as_samples(pd.Series([rocksalt, rocksalt], index=["mp-1", "mp-2"]))
    assert ids == ["mp-1", "mp-2"]
    assert [c.id for c in to_crystals(items, ids=ids)] == ids


def test_parallel_parsing_equals_serial_and_names_the_global_index(mp_records):
    records = mp_records[:600]  # three chunks of PARSE_CHUNK
    cifs, ids = [r["cif"] for r in records], [r["material_id"] for r in records]
    serial = to_crystals(cifs, ids=ids)
    parallel = to_crystals(cifs, ids=ids, n_jobs=2)
    assert [c.id for c in parallel] == ids
    assert all(a == b for a, b in zip(serial, parallel))
    broken = list(cifs)
    broken[300] = "data_nothing\n_cell_length_a 3\n"  # in the second chunk
    with pytest.raises(InvalidStructureError, match=rf"sample 300 \(id='{ids[300]}'\)"):
        to_crystals(broken, ids=ids, n_jobs=2)


def test_string_kind_is_the_one_answer_for_every_input_path(mp_records, tmp_path):
    """A CIF is "text"; a file naming it is "path"; a formula (or a missing file) is "line", and
    the three readers act on that: structures read the file, compositions parse the formula."""
    from skdynemb.transformers._compositions import parse_compositions

    cif = next(r["cif"] for r in mp_records if len(set(to_crystal(r["cif"]).symbols)) > 1)
    path = tmp_path / "first.cif"
    path.write_text(cif)
    assert (string_kind(cif), string_kind(str(path)), string_kind("LiCoO2")) == ("text", "path", "line")
    assert to_crystal(str(path)) == to_crystal(cif)
    with pytest.raises(InvalidStructureError, match="no such structure file"):
        to_crystal("LiCoO2")
    (symbols, fractions), = parse_compositions(["LiCoO2"])[0]
    assert symbols == ("Li", "O", "Co") and np.allclose(fractions, [0.25, 0.5, 0.25])
    (from_file, file_fractions), = parse_compositions([str(path)])[0]
    (from_text, text_fractions), = parse_compositions([cif])[0]
    assert from_file == from_text and len(from_file) > 1
    np.testing.assert_array_equal(file_fractions, text_fractions)
