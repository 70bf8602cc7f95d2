"""ALIGNN graph rules in their package (:mod:`skdynemb.backbones.alignn.graphs`): the deprecated
top-level module, and the tie-complete neighbour rule."""

import importlib
import sys

import numpy as np
import pytest

from skdynemb.backbones.alignn import graphs
from skdynemb.backbones.alignn.graphs import BOND_TOL, KNearestGraph, TieCompleteGraph
from skdynemb.structures import to_crystal


def test_old_module_warns_and_gives_the_same_objects():
    saved = sys.modules.pop("skdynemb.graphs", None)
    try:
        with pytest.warns(FutureWarning, match=r"skdynemb\.backbones\.alignn\.graphs in 0\.2; removed in 0\.3"):
            old = importlib.import_module("skdynemb.graphs")
        for name in old.__all__:
            assert getattr(old, name) is getattr(graphs, name)
    finally:
        sys.modules.pop("skdynemb.graphs", None)
        if saved is not None:
            sys.modules["skdynemb.graphs"] = saved


# ----------------------------------------------------------------------------- the tie-complete rule
FF_RULE = KNearestGraph(8.0, 12, canonize=False)  # ALIGNN-FF's own rule (its config.json)
FF_TIES = TieCompleteGraph(8.0, 12, canonize=False)


@pytest.fixture(scope="module")
def ossi(mp_records):
    """mp-2488, OsSi (FeSi type, P2_13, 4 Si + 4 Os, two orbits). Every site's 12th neighbour lies in a
    shell of equidistant neighbours that the CIF's coordinates split in the last float64 bits."""
    record = next(r for r in mp_records if r["material_id"] == "mp-2488")
    return to_crystal(record["cif"], id="mp-2488")


def _shells(crystal, k: int, tolerance: float) -> np.ndarray:
    """Per site, the neighbours within ``tolerance`` of its k-th nearest distance (pymatgen's neighbour search)."""
    sizes = []
    for neighbours in crystal.to_pymatgen().get_all_neighbors(8.0):
        d = np.sort([n.nn_distance for n in neighbours if n.nn_distance > BOND_TOL])
        sizes.append(int(np.sum(d <= d[k - 1] + tolerance)))
    return np.array(sizes)


def _equivalent_atoms(crystal) -> np.ndarray:
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    return np.asarray(SpacegroupAnalyzer(crystal.to_pymatgen(), symprec=1e-3).get_symmetry_dataset().equivalent_atoms)


def _degrees(graph) -> np.ndarray:
    """Directed edges leaving each site, copies counted (the official multigraph's out-degree)."""
    return np.bincount(graph.edge_src, weights=graph.edge_mult, minlength=graph.num_nodes).astype(int)


def test_tie_complete_keeps_the_whole_shell(ossi):
    shell = _shells(ossi, 12, 1e-3)
    assert shell.tolist() == [13] * 8  # the 12th neighbour sits in a shell that reaches the 13th
    # non-canonized: a site's edges are its own shell plus the sites that have it in theirs; all 8 sites
    # are alike, so 2 * 13 each
    assert _degrees(FF_TIES.build(ossi)).tolist() == [26] * 8
    official = _degrees(FF_RULE.build(ossi))
    assert official.min() < 26  # the official rule cuts the shell at the 12th (round-off decides where)


def test_tie_complete_graph_contains_the_official_one(mp_sample):
    for record in mp_sample(12, seed=3):
        crystal = to_crystal(record["cif"], id=record["material_id"])
        official, complete = FF_RULE.build(crystal), FF_TIES.build(crystal)
        rows = {tuple(r) for r in np.column_stack([complete.edge_src, complete.edge_dst, complete.edge_image])}
        assert all(tuple(r) in rows for r in np.column_stack([official.edge_src, official.edge_dst, official.edge_image]))
        assert complete.num_edges >= official.num_edges


def test_equivalent_atoms_get_equal_rows_only_with_complete_shells(ossi, alignn_ff_weights):
    from skdynemb.backbones import load_backbone

    orbit = _equivalent_atoms(ossi)
    assert sorted(set(orbit.tolist())) == [0, 4]  # Si 0-3 and Os 4-7
    official = load_backbone("alignn-ff").forward_stages([ossi])[0].atom
    complete = load_backbone("alignn-ff-tie-complete").forward_stages([ossi])[0].atom
    for rows in complete:
        assert np.abs(rows - rows[orbit]).max() < 1e-5  # float32 summation order only
    assert np.abs(official[-1] - official[-1][orbit]).max() > 1e-2
    assert np.array_equal(official[0], complete[0])  # the atom embedding does not see the graph


def test_rule_settings_and_config_round_trip():
    rule = TieCompleteGraph(7.5, 10, canonize=False, shell_tolerance=2e-3)
    assert rule.key == "k-nearest|cutoff=7.5|max_neighbors=10|canonize=False|shell_tolerance=0.002"
    assert KNearestGraph(7.5, 10, canonize=False).key == "k-nearest|cutoff=7.5|max_neighbors=10|canonize=False"
    assert KNearestGraph.from_config(rule.to_config()) == rule
    assert type(KNearestGraph.from_config(KNearestGraph().to_config())) is KNearestGraph
    for bad in (0, -1e-3, BOND_TOL, True, "1e-3", float("nan")):
        with pytest.raises(ValueError, match="shell_tolerance"):
            TieCompleteGraph(shell_tolerance=bad)


def test_checkpoint_keeps_the_tie_complete_rule(tmp_path):
    from skdynemb.backbones.alignn import ALIGNN, ALIGNNConfig, load_checkpoint, save_checkpoint

    model = ALIGNN(ALIGNNConfig(alignn_layers=1, gcn_layers=1, hidden_features=8, embedding_features=8,
                                edge_input_features=8, triplet_input_features=8))
    rule = TieCompleteGraph(6.0, 8, canonize=False, shell_tolerance=5e-4)
    _, loaded = load_checkpoint(save_checkpoint(model, model.config, tmp_path / "ckpt", rule=rule))
    assert loaded == rule and type(loaded) is TieCompleteGraph
