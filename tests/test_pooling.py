"""Element pooling groups atoms by their actual site species, whatever the order or counts."""

import numpy as np
from pymatgen.core import Lattice, Structure

from skdynemb.backbones.base import StageOutput
from skdynemb.embeddings import CompoundEmbedding, ElementEmbeddings
from skdynemb.pooling import pool_by_element
from skdynemb.structures import to_crystal


def _manual_means(structure, atom):
    """Independent reference: loop over symbols with pymatgen's own site species."""
    symbols = [site.specie.symbol for site in structure]
    out = {}
    for sym in set(symbols):
        idx = [i for i, s in enumerate(symbols) if s == sym]
        out[sym] = atom[idx].mean(axis=0)
    return out


def _big_cell():
    # 12 Li, 3 Co, 1 O... in one cell: element counts >= 10, sites not grouped by element
    rng = np.random.default_rng(0)
    species = ["Li"] * 12 + ["Co"] * 3 + ["O"] * 11
    grid = np.array([[i, j, k] for i in range(3) for j in range(3) for k in range(3)], float)[:26] / 3
    order = rng.permutation(len(species))
    return Structure(Lattice.cubic(7.5), [species[i] for i in order], grid)


def test_groups_by_site_species_with_large_counts_and_shuffled_sites():
    s = _big_cell()
    rng = np.random.default_rng(1)
    atom = rng.normal(size=(len(s), 5)).astype(np.float32)
    pooled = pool_by_element(to_crystal(s).numbers, StageOutput(atom=[atom, 2 * atom]))
    ref = _manual_means(s, atom)
    assert pooled.elements == ("Li", "O", "Co")  # sorted by atomic number
    np.testing.assert_allclose(pooled.fractions, [12 / 26, 11 / 26, 3 / 26])
    for row, sym in enumerate(pooled.elements):
        np.testing.assert_allclose(pooled.stages[0][row], ref[sym], atol=1e-6)
        np.testing.assert_allclose(pooled.stages[1][row], 2 * ref[sym], atol=1e-6)


def test_site_permutation_does_not_change_pooled_rows():
    s = _big_cell()
    atom = np.random.default_rng(2).normal(size=(len(s), 4)).astype(np.float32)
    perm = np.random.default_rng(3).permutation(len(s))
    shuffled = Structure(s.lattice, [s[i].specie for i in perm], [s[i].frac_coords for i in perm])
    a = pool_by_element(to_crystal(s).numbers, StageOutput(atom=[atom]))
    b = pool_by_element(to_crystal(shuffled).numbers, StageOutput(atom=[atom[perm]]))
    assert a.elements == b.elements
    np.testing.assert_allclose(a.stages[0], b.stages[0], atol=1e-6)


def test_element_embeddings_indexing_and_mean():
    rows = np.arange(6, dtype=np.float32).reshape(3, 2)
    c1 = CompoundEmbedding(("Li", "O", "Co"), np.array([0.25, 0.5, 0.25]), rows, "a")
    c2 = CompoundEmbedding(("Na",), np.array([1.0]), rows[:1], "b")
    emb = ElementEmbeddings([c1, c2, c1], ["f0", "f1"])
    assert len(emb) == 3 and emb[1] is c2
    assert len(emb[[0, 2]]) == 2 and emb[[0, 2]][1] is c1
    assert len(emb[np.array([False, True, True])]) == 2
    assert len(emb[1:]) == 2
    np.testing.assert_allclose(emb.mean()[0], 0.25 * rows[0] + 0.5 * rows[1] + 0.25 * rows[2])
    np.testing.assert_allclose(emb.mean()[1], rows[0])


def test_compound_embedding_rejects_mismatched_shapes():
    import pytest

    with pytest.raises(ValueError, match="compound 'x'"):
        CompoundEmbedding(("Li", "O"), np.array([0.5, 0.5]), np.zeros((3, 2), np.float32), "x")


def test_element_sums_are_float64_in_site_order():
    """Each element row is its sites' float64 sum, added one site after the other in site order,
    divided by the count, then rounded to float32 (checked bit for bit against that loop)."""
    rng = np.random.default_rng(4)
    numbers = np.array([8, 3, 8, 27, 3, 3, 8, 27, 3, 8, 8, 3] * 7)  # 84 sites, elements interleaved
    atom = (rng.normal(size=(len(numbers), 16)) * 50).astype(np.float32)
    pooled = pool_by_element(numbers, StageOutput(atom=[atom]))
    for row, z in enumerate((3, 8, 27)):
        total = np.zeros(16, dtype=np.float64)
        for i in range(len(numbers)):
            if numbers[i] == z:
                total = total + atom[i].astype(np.float64)
        expected = (total / np.count_nonzero(numbers == z)).astype(np.float32)
        np.testing.assert_array_equal(pooled.stages[0][row], expected)
    assert pooled.elements == ("Li", "O", "Co")
