"""Orbit counting of benchmarks/bench_orbits.py on structures whose orbits are known by hand."""

import sys
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_orbits import count_orbits, speedups  # noqa: E402
from skdynemb.backbones.alignn.graphs import KNearestGraph, TieCompleteGraph  # noqa: E402
from skdynemb.structures import to_crystal  # noqa: E402

FF_TIES = TieCompleteGraph(8.0, 12, canonize=False)  # the rule of alignn-ff-tie-complete
COUNTS = ("atoms", "bonds", "triplets", "atom_orbits", "bond_orbits", "triplet_orbits")


def _counts(record: dict) -> tuple:
    return tuple(record[k] for k in COUNTS)


@pytest.fixture(scope="module")
def rocksalt():
    """NaCl (Fm-3m, a = 5.64 Å): the conventional cell (8 atoms) and the primitive one (2 atoms)."""
    conventional = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5] * 3])
    return to_crystal(conventional, id="NaCl-conv"), to_crystal(conventional.get_primitive_structure(), id="NaCl")


def test_rocksalt_orbits_by_hand(rocksalt):
    conventional, primitive = rocksalt
    # Each site's 12-nearest shell: 6 unlike neighbours at a/2, then the 12 like ones at a/sqrt(2), of which
    # the 12th cuts the shell: tie-complete keeps all 18. Not canonized, so 18 distinct directed edges per site
    # (each of multiplicity 2), and every in-edge of a site pairs with each of its 18 out-edges: 36 * 18 triplets.
    # Orbits: one per site kind (2); bonds: Na->Cl, Na->Na, Cl->Na, Cl->Cl (4); triplets at one centre
    # are ordered pairs of bond directions under the site group m-3m: unlike/unlike at 0, 90, 180 degrees (3),
    # like/like (110 directions) at 0, 60, 90, 120, 180 (5), unlike/like and like/unlike at 45, 90, 135 (3 + 3):
    # 14 per centre, 28 in all.
    prim = count_orbits(primitive, FF_TIES, 1e-3)
    assert _counts(prim) == (2, 36, 648, 2, 4, 28)
    assert prim["spacegroup"] == 225 and prim["operations"] == 48 and prim["closed"] and prim["spglib_atoms"]
    assert (prim["graph"].edge_mult == 2).all()
    # the conventional cell: 4 times the items (its 4 centring translations are operations), the same orbits
    conv = count_orbits(conventional, FF_TIES, 1e-3)
    assert _counts(conv) == (8, 144, 2592, 2, 4, 28)
    assert conv["operations"] == 4 * 48 and conv["closed"]
    # every bond orbit is one (source kind, destination kind) pair; the labels are orbit representatives
    graph, labels = prim["graph"], prim["bond_labels"]
    kinds = graph.atomic_numbers[graph.edge_src] * 100 + graph.atomic_numbers[graph.edge_dst]
    assert all(len(set(kinds[labels == rep])) == 1 for rep in np.unique(labels))
    assert (labels[np.unique(labels)] == np.unique(labels)).all()


def test_ossi_orbits_by_burnside(mp_records):
    """mp-2488, OsSi (P2_13, 12 operations; 4 Si + 4 Os, each site on a 3-fold axis, site group 3)."""
    record = next(r for r in mp_records if r["material_id"] == "mp-2488")
    crystal = to_crystal(record["cif"], id="mp-2488")
    counts = count_orbits(crystal, FF_TIES, 1e-3)
    # 13 neighbours per site (a shell of 3 completes the 12th): 13 distinct out-edges, 13 * 13 triplets per
    # centre. Under the site group 3 the 13 directions are 1 on the axis + 4 triples (5 orbits per site kind);
    # the 169 pairs: (169 + 1 + 1) / 3 = 57 orbits per site kind (Burnside: only the axis pair is fixed).
    assert _counts(counts) == (8, 104, 1352, 2, 10, 114)
    assert counts["operations"] == 12 and counts["closed"]
    # the official rule cuts the 13-shell at the 12th neighbour where round-off decides: the group no longer
    # maps the graph onto itself, which the check sees
    assert not count_orbits(crystal, KNearestGraph(8.0, 12, canonize=False), 1e-3)["closed"]


def test_p1_structure_has_no_saving(mp_records):
    """mp-684958 (Ta/O, 11 sites, space group 1 at symprec 1e-3): only the identity, every item its own orbit."""
    record = next(r for r in mp_records if r["material_id"] == "mp-684958")
    counts = count_orbits(to_crystal(record["cif"], id="mp-684958"), FF_TIES, 1e-3)
    assert counts["spacegroup"] == 1 and counts["operations"] == 1 and counts["closed"]
    assert counts["atoms"] == 11 and counts["triplets"] > counts["bonds"] > counts["atoms"]
    assert (counts["atom_orbits"], counts["bond_orbits"], counts["triplet_orbits"]) == (
        counts["atoms"], counts["bonds"], counts["triplets"])
    for key, n in (("atom_labels", "atoms"), ("bond_labels", "bonds"), ("triplet_labels", "triplets")):
        assert np.array_equal(counts[key], np.arange(counts[n]))


def test_orbits_carry_equal_features_and_distinct_orbits_differ(rocksalt, alignn_ff_weights):
    from skdynemb.backbones import load_backbone
    from skdynemb.backbones.alignn.graphs import batch_graphs

    backbone = load_backbone("alignn-ff-tie-complete")
    assert backbone.rule == FF_TIES
    counts = count_orbits(rocksalt[1], backbone.rule, 1e-3)
    stages = backbone.module.eval().stages(batch_graphs([counts["graph"]]), pool_edges=False)
    for rows, labels in ((stages.y[-1], counts["bond_labels"]), (stages.z[-1], counts["triplet_labels"])):
        rows = rows.detach().numpy()
        assert np.abs(rows - rows[labels]).max() < 1e-4  # equal within an orbit (float32 summation order)
        reps = rows[np.unique(labels)]
        gaps = np.abs(reps[:, None] - reps[None]).max(axis=2) + np.eye(len(reps))
        assert gaps.min() > 1e-3  # and two orbits are never merged by mistake: their features differ


def test_speedup_bound_arithmetic():
    totals = {"atoms": 100, "bonds": 2000, "triplets": 30000,
              "atoms_orbits": 50, "bonds_orbits": 500, "triplets_orbits": 6000}
    shares = {"line": 0.7, "atom": 0.2, "rest": 0.1}
    bound = speedups(totals, shares)
    assert bound["remaining"]["brief"] == pytest.approx(0.7 * 0.2 + 0.2 * 0.25 + 0.1)
    assert bound["speedup"]["brief"] == pytest.approx(1 / 0.29)
    assert bound["line_flops"] == pytest.approx((4 * 500 + 6000) / (4 * 2000 + 30000))
    assert bound["remaining"]["all"] == pytest.approx(0.7 * 0.2 + 0.2 * 0.25 + 0.1 * 0.5)
