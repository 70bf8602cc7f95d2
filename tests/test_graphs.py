"""ALIGNN graphs: identical to the official DGL graphs (fixtures) and to alignn's numpy builder, for both the
canonical rule (plain ALIGNN) and the non-canonical one (ALIGNN-FF)."""

import json
import time

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure
from pymatgen.core.surface import SlabGenerator

from skdynemb.backbones.alignn.graphs import KNearestGraph, batch_graphs, line_graph, weighted_line_graph
from skdynemb.structures import Crystal, to_crystal, to_crystals

FIXTURE_IDS = [
    "JVASP-21210", "JVASP-1372", "JVASP-1996", "JVASP-10", "JVASP-14441", "JVASP-28565", "JVASP-15345",
    "JVASP-22556", "JVASP-97984", "JVASP-76567", "JVASP-98224", "JVASP-60702", "JVASP-97677",
    "handbuilt-Cu1-cubic10A",
]


CANON, NONCANON = KNearestGraph(), KNearestGraph(canonize=False)
RULES = {"alignn": CANON, "alignn_ff": NONCANON}  # fixture folder -> the rule its graphs were built with


def fixture_graph(shared, name, folder="alignn"):
    return np.load(shared / "fixtures" / folder / "graphs" / f"{name}.npz")


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


@pytest.mark.parametrize("folder", sorted(RULES))
@pytest.mark.parametrize("name", FIXTURE_IDS)
def test_matches_official_dgl_graph(shared, name, folder):
    ref = fixture_graph(shared, name, folder)
    graph = RULES[folder].build(fixture_crystal(ref, name)).expanded()
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


def alignn_reference(crystal, canonize=True):
    """alignn's own numpy builder (jarvis neighbour list) on the same structure."""
    from alignn.graphs import build_undirected_edgedata, nearest_neighbor_edges
    from jarvis.core.atoms import Atoms

    atoms = Atoms(lattice_mat=crystal.lattice, coords=crystal.frac_coords, elements=crystal.symbols, cartesian=False)
    edges, _ = nearest_neighbor_edges(atoms, cutoff=8.0, max_neighbors=12, use_canonize=canonize)
    src, dst, r, images = build_undirected_edgedata(atoms, edges)
    images = images.numpy().astype(np.int64)
    images[1::2] *= -1  # alignn stores the forward image on both directions of a bond
    return src.numpy(), dst.numpy(), r.numpy(), images


@pytest.mark.parametrize("rule", [CANON, NONCANON], ids=["canonical", "non-canonical"])
def test_matches_alignn_numpy_builder_on_mp(mp_crystals, rule):
    for crystal in mp_crystals:
        src, dst, r, images = alignn_reference(crystal, rule.canonize)
        graph = rule.build(crystal).expanded()
        to_ours = match_edges(src, dst, images, graph)
        np.testing.assert_allclose(graph.edge_r[to_ours], r, rtol=0, atol=1e-6, err_msg=crystal.id)


def slab_with_vacuum() -> Crystal:
    bulk = Structure.from_spacegroup("Fm-3m", Lattice.cubic(3.61), ["Cu"], [[0, 0, 0]])
    slab = SlabGenerator(bulk, (1, 1, 1), min_slab_size=4.0, min_vacuum_size=15.0).get_slab()
    return to_crystal(slab, id="Cu(111)-slab")


def test_slab_and_sparse_single_atom_match_alignn():
    # one atom, 6 neighbours within 8 Å: the cutoff must grow (to 16 Å)
    single = to_crystal(Structure(Lattice.tetragonal(6.5, 7.2), ["Po"], [[0.1, 0.2, 0.3]]), id="Po1")
    for rule in (CANON, NONCANON):
        for crystal in (slab_with_vacuum(), single):
            src, dst, r, images = alignn_reference(crystal, rule.canonize)
            graph = rule.build(crystal).expanded()
            to_ours = match_edges(src, dst, images, graph)
            np.testing.assert_allclose(graph.edge_r[to_ours], r, rtol=0, atol=1e-6, err_msg=crystal.id)
        assert graph.cutoff == 16.0


@pytest.mark.parametrize("rule", [CANON, NONCANON], ids=["canonical", "non-canonical"])
def test_bond_vectors_and_angles_are_geometric(mp_crystals, rule):
    crystal = mp_crystals[0]
    graph = rule.build(crystal).expanded()
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
    small = CANON.build(to_crystal(unit))
    start = time.perf_counter()
    big = CANON.build(to_crystal(unit * (4, 4, 4)))
    elapsed = time.perf_counter() - start
    assert big.num_nodes == 512
    assert elapsed < 2.0

    def distances(graph, site):
        mine = graph.edge_src == site
        return np.sort(np.repeat(np.linalg.norm(graph.edge_r[mine], axis=1), graph.edge_mult[mine]))

    # pymatgen orders supercell sites unit-site-major: site i of the unit cell -> sites 64 i .. 64 i + 63.
    # The official builder rounds each lattice to 5 decimals, so 4 x (rounded unit cell) and the
    # rounded supercell differ by up to ~1e-5 Å.
    for site in range(8):
        ref = distances(small, site)
        for copy in (64 * site, 64 * site + 37):
            np.testing.assert_allclose(distances(big, copy), ref, rtol=0, atol=2e-5)


def test_deterministic(mp_crystals):
    a, b = NONCANON.build(mp_crystals[1]), NONCANON.build(mp_crystals[1])
    for name in ("edge_src", "edge_dst", "edge_r", "edge_image", "edge_mult", "lg_src", "lg_dst", "lg_h", "lg_mult"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_batch_is_block_diagonal(mp_crystals):
    graphs = [NONCANON.build(c) for c in mp_crystals[:4]]
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
        np.testing.assert_array_equal(batch.edge_weight[edges].numpy(), graph.edge_mult)
        np.testing.assert_array_equal(batch.lg_count[lg].numpy(), graph.lg_mult)
        # copies of the source edge that reach one copy of the destination edge
        lg_weight = graph.lg_mult / graph.edge_mult[graph.lg_dst]
        np.testing.assert_array_equal(batch.lg_weight[lg].numpy(), lg_weight)
        assert (batch.graph_index[nodes] == g).all() and (batch.edge_graph_index[edges] == g).all()
        assert (batch.lg_graph_index[lg] == g).all()
    assert batch.edge_src.dtype == torch.int64 and batch.edge_r.dtype == torch.float32


def test_bad_input_raises():
    crystal = to_crystal(Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]), id="NaCl")
    with pytest.raises(ValueError, match="cutoff"):
        KNearestGraph(cutoff=0.0)
    with pytest.raises(ValueError, match="max_neighbors"):
        KNearestGraph(max_neighbors=0)
    with pytest.raises(ValueError, match="canonize"):
        KNearestGraph(canonize="no")
    assert CANON.build(crystal).num_edges > 0
    lonely = to_crystal(Structure(Lattice.cubic(600.0), ["Xe"], [[0, 0, 0]]), id="lonely-Xe")
    with pytest.raises(ValueError, match="lonely-Xe"):
        CANON.build(lonely)
    with pytest.raises(ValueError, match="at least one graph"):
        batch_graphs([])


def test_distinct_edges_with_multiplicities_are_the_multigraph(mp_crystals):
    """Each distinct (src, dst, image) edge's multiplicity = its copies in the multigraph; each distinct
    line-graph pair's count = the pairs of copies (e1 != e2) of the multigraph's line graph."""
    for crystal in mp_crystals[:6]:
        graph, full = NONCANON.build(crystal), NONCANON.build(crystal).expanded()
        rows = np.column_stack([graph.edge_src, graph.edge_dst, graph.edge_image])
        full_rows, counts = np.unique(np.column_stack([full.edge_src, full.edge_dst, full.edge_image]),
                                      axis=0, return_counts=True)
        np.testing.assert_array_equal(rows, full_rows)  # distinct rows, sorted
        np.testing.assert_array_equal(graph.edge_mult, counts)
        assert graph.edge_mult.max() == 2 and (graph.edge_mult == 2).mean() > 0.5  # mutual bonds twice
        # multigraph line-graph pairs mapped onto distinct edges, counted
        to_distinct = np.repeat(np.arange(graph.num_edges), graph.edge_mult)
        pairs, pair_counts = np.unique(np.column_stack([to_distinct[full.lg_src], to_distinct[full.lg_dst]]),
                                       axis=0, return_counts=True)
        np.testing.assert_array_equal(np.column_stack([graph.lg_src, graph.lg_dst]), pairs)
        np.testing.assert_array_equal(graph.lg_mult, pair_counts)


def test_weighted_line_graph_self_loop_pairs_only_with_its_other_copies():
    # one site, a self-loop edge 0 -> 0 stored twice (image n) and once (image -n); distinct edges 0, 1
    src, dst, mult = np.array([0, 0]), np.array([0, 0]), np.array([2, 1])
    e1, e2, count = weighted_line_graph(src, dst, mult, 1)
    # (0, 0): 2 copies, 2 * 1 ordered pairs of different copies; (1, 1): one copy, no pair
    assert list(zip(e1.tolist(), e2.tolist(), count.tolist())) == [(0, 0, 2), (0, 1, 2), (1, 0, 2)]
    full_e1, full_e2 = line_graph(np.zeros(3, dtype=np.int64), np.zeros(3, dtype=np.int64), 1)
    assert len(full_e1) == count.sum() == 6


def test_rule_keys_and_official_config_round_trip(shared):
    assert CANON.key != NONCANON.key and KNearestGraph(8, 12).key == CANON.key  # ints and floats alike
    assert hash(CANON) == hash(KNearestGraph()) and CANON == KNearestGraph()
    for rule in (CANON, NONCANON, KNearestGraph(6.5, 8, False)):
        assert KNearestGraph.from_config(rule.to_config()) == rule
    ff = json.loads((shared / "fixtures" / "alignn_ff" / "weights.json").read_text())
    settings = ff["checkpoints"]["alignnff_wt01"]["train_config_graph_settings"]
    assert KNearestGraph.from_config(settings) == NONCANON
    assert KNearestGraph.from_config({}) == CANON  # alignn's defaults
    with pytest.raises(ValueError, match="neighbor_strategy='radius_graph'"):
        KNearestGraph.from_config({"neighbor_strategy": "radius_graph"})
    with pytest.raises(ValueError, match="atom_features='basic'"):
        KNearestGraph.from_config({"atom_features": "basic"})
