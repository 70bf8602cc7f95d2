"""ALIGNN graphs: identical to the official DGL graphs (fixtures) and to alignn's numpy builder."""

import time

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure
from pymatgen.core.surface import SlabGenerator

from skdynemb.graphs import batch_graphs, build_alignn_graph
from skdynemb.structures import Crystal, to_crystal, to_crystals

FIXTURE_IDS = [
    "JVASP-21210", "JVASP-1372", "JVASP-1996", "JVASP-10", "JVASP-14441", "JVASP-28565", "JVASP-15345",
    "JVASP-22556", "JVASP-97984", "JVASP-76567", "JVASP-98224", "JVASP-60702", "JVASP-97677",
    "handbuilt-Cu1-cubic10A",
]


def fixture_graph(shared, name):
    return np.load(shared / "fixtures" / "alignn" / "graphs" / f"{name}.npz")


def fixture_crystal(ref, name) -> Crystal:
    """The structure exactly as the fixture script gave it to alignn (raw lattice, POSCAR fractions)."""
    return Crystal(ref["lattice_mat"], ref["frac_coords"], ref["atomic_numbers"], name)


def sorted_rows(src, dst, image):
    """Edges as (src, dst, image) rows in lexicographic order, and the permutation that sorts them."""
    rows = np.column_stack([src, dst, image])
    order = np.lexsort(rows.T[::-1])
    return rows[order], order


def match_edges(ref_src, ref_dst, ref_image, graph):
    """Map reference edge k -> our edge index; asserts the (src, dst, image) multisets are equal."""
    ref_rows, ref_order = sorted_rows(ref_src, ref_dst, ref_image)
    our_rows, our_order = sorted_rows(graph.edge_src, graph.edge_dst, graph.edge_image)
    assert ref_rows.shape == our_rows.shape
    np.testing.assert_array_equal(ref_rows, our_rows)
    ref_to_ours = np.empty(len(ref_order), dtype=np.int64)
    ref_to_ours[ref_order] = our_order
    return ref_to_ours


@pytest.mark.parametrize("name", FIXTURE_IDS)
def test_matches_official_dgl_graph(shared, name):
    ref = fixture_graph(shared, name)
    graph = build_alignn_graph(fixture_crystal(ref, name))
    assert graph.cutoff == float(ref["effective_cutoff"])
    np.testing.assert_array_equal(graph.atomic_numbers, ref["atomic_numbers"])
    to_ours = match_edges(ref["edge_src"], ref["edge_dst"], ref["edge_image"], graph)
    np.testing.assert_allclose(graph.edge_r[to_ours], ref["edge_r"], rtol=0, atol=1e-6)
    # line graph: same set of (e1, e2) pairs once edges are matched, and the same cosines
    n_edges = graph.num_edges
    ours = graph.lg_src * n_edges + graph.lg_dst
    theirs = to_ours[ref["lg_src"]] * n_edges + to_ours[ref["lg_dst"]]
    assert np.all(np.diff(ours) > 0)  # ours is sorted by (e1, e2) and has no repeats
    np.testing.assert_array_equal(np.sort(theirs), ours)
    position = np.searchsorted(ours, theirs)
    np.testing.assert_allclose(graph.lg_h[position], ref["lg_h"], rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def mp_crystals(mp_sample):
    picked = mp_sample(20, seed=7)
    return to_crystals([r["cif"] for r in picked], ids=[r["material_id"] for r in picked])


def alignn_reference(crystal):
    """alignn's own numpy builder (jarvis neighbour list) on the same structure."""
    from alignn.graphs import build_undirected_edgedata, nearest_neighbor_edges
    from jarvis.core.atoms import Atoms

    atoms = Atoms(lattice_mat=crystal.lattice, coords=crystal.frac_coords, elements=crystal.symbols, cartesian=False)
    edges, _ = nearest_neighbor_edges(atoms, cutoff=8.0, max_neighbors=12, use_canonize=True)
    src, dst, r, images = build_undirected_edgedata(atoms, edges)
    images = images.numpy().astype(np.int64)
    images[1::2] *= -1  # alignn stores the forward image on both directions of a bond
    return src.numpy(), dst.numpy(), r.numpy(), images


def test_matches_alignn_numpy_builder_on_mp(mp_crystals):
    for crystal in mp_crystals:
        src, dst, r, images = alignn_reference(crystal)
        graph = build_alignn_graph(crystal)
        to_ours = match_edges(src, dst, images, graph)
        np.testing.assert_allclose(graph.edge_r[to_ours], r, rtol=0, atol=1e-6, err_msg=crystal.id)


def slab_with_vacuum() -> Crystal:
    bulk = Structure.from_spacegroup("Fm-3m", Lattice.cubic(3.61), ["Cu"], [[0, 0, 0]])
    slab = SlabGenerator(bulk, (1, 1, 1), min_slab_size=4.0, min_vacuum_size=15.0).get_slab()
    return to_crystal(slab, id="Cu(111)-slab")


def test_slab_and_sparse_single_atom_match_alignn():
    # one atom, 6 neighbours within 8 Å: the cutoff must grow (to 16 Å)
    single = to_crystal(Structure(Lattice.tetragonal(6.5, 7.2), ["Po"], [[0.1, 0.2, 0.3]]), id="Po1")
    for crystal in (slab_with_vacuum(), single):
        src, dst, r, images = alignn_reference(crystal)
        graph = build_alignn_graph(crystal)
        to_ours = match_edges(src, dst, images, graph)
        np.testing.assert_allclose(graph.edge_r[to_ours], r, rtol=0, atol=1e-6, err_msg=crystal.id)
    assert graph.cutoff == 16.0


def test_bond_vectors_and_angles_are_geometric(mp_crystals):
    crystal = mp_crystals[0]
    graph = build_alignn_graph(crystal)
    lattice5 = np.around(crystal.lattice, 5)
    cart = crystal.frac_coords @ lattice5
    expected = cart[graph.edge_dst] + graph.edge_image @ lattice5 - cart[graph.edge_src]
    np.testing.assert_allclose(graph.edge_r, expected, rtol=0, atol=1e-5)
    # line graph = brute force over all edge pairs
    src, dst = graph.edge_src, graph.edge_dst
    e1, e2 = np.nonzero((dst[:, None] == src[None, :]) & ~np.eye(len(src), dtype=bool))
    np.testing.assert_array_equal(graph.lg_src, e1)
    np.testing.assert_array_equal(graph.lg_dst, e2)
    # cosine of the angle at the shared atom, in float64
    a, b = -expected[e1], expected[e2]
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    np.testing.assert_allclose(graph.lg_h, cos, rtol=0, atol=1e-6)


def test_large_cell_is_a_periodic_copy_of_the_unit_cell():
    """A 4x4x4 supercell (512 atoms): every atom keeps its unit-cell neighbour distances, quickly."""
    unit = Structure(
        Lattice.from_parameters(4.1, 4.6, 5.3, 87, 94, 101),
        ["Mg", "Si", "O", "O", "O", "O", "Mg", "O"],
        np.random.default_rng(3).uniform(size=(8, 3)),
    )
    small = build_alignn_graph(to_crystal(unit))
    start = time.perf_counter()
    big = build_alignn_graph(to_crystal(unit * (4, 4, 4)))
    elapsed = time.perf_counter() - start
    assert big.num_nodes == 512
    assert elapsed < 2.0

    def distances(graph, site):
        return np.sort(np.linalg.norm(graph.edge_r[graph.edge_src == site], axis=1))

    # pymatgen orders supercell sites unit-site-major: site i of the unit cell -> sites 64 i .. 64 i + 63.
    # The official builder rounds each lattice to 5 decimals, so 4 x (rounded unit cell) and the
    # rounded supercell differ by up to ~1e-5 Å.
    for site in range(8):
        ref = distances(small, site)
        for copy in (64 * site, 64 * site + 37):
            np.testing.assert_allclose(distances(big, copy), ref, rtol=0, atol=2e-5)


def test_deterministic(mp_crystals):
    a, b = build_alignn_graph(mp_crystals[1]), build_alignn_graph(mp_crystals[1])
    for name in ("edge_src", "edge_dst", "edge_r", "edge_image", "lg_src", "lg_dst", "lg_h"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_batch_is_block_diagonal(mp_crystals):
    graphs = [build_alignn_graph(c) for c in mp_crystals[:4]]
    batch = batch_graphs(graphs)
    assert batch.num_graphs == 4
    node_off, edge_off, lg_off = batch.node_offsets, batch.edge_offsets, batch.lg_offsets
    for g, graph in enumerate(graphs):
        nodes = slice(int(node_off[g]), int(node_off[g + 1]))
        edges = slice(int(edge_off[g]), int(edge_off[g + 1]))
        lg = slice(int(lg_off[g]), int(lg_off[g + 1]))
        np.testing.assert_array_equal(batch.atomic_numbers[nodes].numpy(), graph.atomic_numbers)
        np.testing.assert_array_equal(batch.edge_src[edges].numpy() - int(node_off[g]), graph.edge_src)
        np.testing.assert_array_equal(batch.edge_dst[edges].numpy() - int(node_off[g]), graph.edge_dst)
        np.testing.assert_array_equal(batch.edge_r[edges].numpy(), graph.edge_r)
        np.testing.assert_array_equal(batch.lg_src[lg].numpy() - int(edge_off[g]), graph.lg_src)
        np.testing.assert_array_equal(batch.lg_dst[lg].numpy() - int(edge_off[g]), graph.lg_dst)
        np.testing.assert_array_equal(batch.lg_h[lg].numpy(), graph.lg_h)
        assert (batch.graph_index[nodes] == g).all() and (batch.edge_graph_index[edges] == g).all()
        assert (batch.lg_graph_index[lg] == g).all()
    assert batch.edge_src.dtype == torch.int64 and batch.edge_r.dtype == torch.float32


def test_bad_input_raises():
    crystal = to_crystal(Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]), id="NaCl")
    with pytest.raises(ValueError, match="cutoff"):
        build_alignn_graph(crystal, cutoff=0.0)
    with pytest.raises(ValueError, match="max_neighbors"):
        build_alignn_graph(crystal, max_neighbors=0)
    lonely = to_crystal(Structure(Lattice.cubic(600.0), ["Xe"], [[0, 0, 0]]), id="lonely-Xe")
    with pytest.raises(ValueError, match="lonely-Xe"):
        build_alignn_graph(lonely)
    with pytest.raises(ValueError, match="at least one graph"):
        batch_graphs([])
