"""skdynemb.datasets on the real shared files: every reader is compared with the raw JSON read here
independently (gzip + json, a hand-written CIF loop reader); online loaders run with their download
function replaced by the local files."""

import gzip
import json
import math
import re
from collections import Counter
from functools import reduce

import numpy as np
import pandas as pd
import pytest

from skdynemb import datasets as D
from skdynemb.datasets import local, online, splits
from skdynemb.structures import InvalidStructureError


def _raw(shared, *parts):
    with gzip.open(shared.joinpath("data", *parts), "rt") as fh:
        return json.load(fh)


@pytest.fixture(scope="module")
def raw_mp(shared):
    return _raw(shared, "mp", "mp_eform_crysxpp.json.gz")


@pytest.fixture(scope="module")
def raw_jarvis(shared):
    return _raw(shared, "jarvis", "jarvis_structures_with_leaderboard_props.json.gz")


@pytest.fixture(scope="module")
def raw_dielectric(shared):
    return _raw(shared, "matbench", "matbench_dielectric.json.gz")


@pytest.fixture(scope="module")
def mp(shared):
    return D.load_mp_eform()


@pytest.fixture(scope="module")
def jarvis(shared):
    return D.load_jarvis_leaderboard()


def _cif_cell_and_sites(cif):
    """(a, b, c, alpha, beta, gamma), symbols, fractional coords from a P1 CIF, read by hand."""
    cell = [float(re.search(rf"^_cell_{k}\s+(\S+)", cif, re.M).group(1)) for k in
            ("length_a", "length_b", "length_c", "angle_alpha", "angle_beta", "angle_gamma")]
    lines = cif.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "_atom_site_type_symbol")
    header = []
    for line in lines[start:]:
        if not line.strip().startswith("_atom_site_"):
            break
        header.append(line.strip())
    rows = [line.split() for line in lines[start + len(header):] if line.strip()]
    col = {name: header.index(f"_atom_site_{name}") for name in ("type_symbol", "fract_x", "fract_y", "fract_z")}
    symbols = [r[col["type_symbol"]] for r in rows]
    frac = np.array([[float(r[col[f"fract_{k}"]]) for k in "xyz"] for r in rows])
    return cell, symbols, frac


def _same_sites(structure, symbols, frac, lattice=None):
    assert [site.specie.symbol for site in structure] == list(symbols)
    diff = np.asarray(structure.frac_coords) - np.asarray(frac)
    np.testing.assert_allclose(diff - np.round(diff), 0, atol=1e-7)
    if lattice is not None:
        np.testing.assert_allclose(structure.lattice.matrix, lattice, atol=1e-8)


def _reduced_key(formula_sum):
    """Reduced composition from a CIF formula sum such as 'Ba2 N4', without pymatgen."""
    counts = Counter()
    for element, amount in re.findall(r"([A-Z][a-z]?)(\d*)", formula_sum):
        counts[element] += int(amount or 1)
    g = reduce(math.gcd, counts.values())
    return tuple(sorted((e, n // g) for e, n in counts.items()))


# ----------------------------------------------------------------------------------------- MP eform
def test_mp_eform_counts_ids_and_targets(mp, raw_mp):
    assert len(raw_mp) == 36_737 and len(mp) == len(raw_mp)
    assert list(mp.ids) == [r["material_id"] for r in raw_mp]
    for i in (0, 1234, len(raw_mp) - 1):
        rec = raw_mp[i]
        row = mp.targets.loc[rec["material_id"]]
        for key in ("e_form", "band_gap", "volume"):
            assert row[key] == rec[key]
        assert row["total_magnetization"] == rec["col5"]
    tk = mp.task("e_form")
    np.testing.assert_array_equal(tk.y, [r["e_form"] for r in raw_mp])
    assert tk.split is None


def test_mp_efermi_nan_kept_and_flagged(mp, raw_mp):
    nan_ids = [r["material_id"] for r in raw_mp if math.isnan(r["efermi"])]
    assert len(nan_ids) == 2  # README: two efermi values are NaN
    assert mp.targets.loc[nan_ids, "efermi"].isna().all()
    assert mp.targets["efermi"].isna().sum() == 2
    with pytest.raises(ValueError, match=nan_ids[0]):
        mp.task("efermi")
    tk = mp.task("efermi", missing="drop")
    assert len(tk) == len(raw_mp) - 2 and not set(nan_ids) & set(tk.ids)
    assert np.isfinite(tk.y).all()
    np.testing.assert_array_equal(tk.ids, mp.ids[tk.index])


def test_mp_structures_match_cif_text(shared, raw_mp):
    ds = D.load_mp_eform(sample=4, random_state=3)
    position = {r["material_id"]: i for i, r in enumerate(raw_mp)}
    for sid, structure in zip(ds.ids, ds.structures):
        cell, symbols, frac = _cif_cell_and_sites(raw_mp[position[sid]]["cif"])
        np.testing.assert_allclose([*structure.lattice.abc, *structure.lattice.angles], cell, atol=1e-6)
        _same_sites(structure, symbols, frac)
        assert structure.volume == pytest.approx(raw_mp[position[sid]]["volume"], rel=1e-6)


def test_row_selection(shared):
    raw = _raw(shared, "mp", "mp_elasticity_3191.json.gz")
    a = D.load_mp_elasticity(sample=50, random_state=7)
    b = D.load_mp_elasticity(sample=50, random_state=7)
    c = D.load_mp_elasticity(sample=50, random_state=8)
    assert len(a) == 50 and list(a.ids) == list(b.ids) and list(a.ids) != list(c.ids)
    file_order = {r["material_id"]: i for i, r in enumerate(raw)}
    assert [file_order[s] for s in a.ids] == sorted(file_order[s] for s in a.ids)
    assert list(D.load_mp_elasticity(limit=3).ids) == [r["material_id"] for r in raw[:3]]
    wanted = [raw[9]["material_id"], raw[2]["material_id"]]
    picked = D.load_mp_elasticity(ids=wanted)
    assert list(picked.ids) == wanted
    assert picked.targets["K_VRH"].tolist() == [raw[9]["K_VRH"], raw[2]["K_VRH"]]
    with pytest.raises(KeyError, match="mp-does-not-exist"):
        D.load_mp_elasticity(ids=["mp-does-not-exist"])
    with pytest.raises(ValueError, match="at most one"):
        D.load_mp_elasticity(limit=3, sample=3)
    with pytest.raises(ValueError, match="sample=4000"):
        D.load_mp_elasticity(sample=4000)


def test_structures_are_lazy_and_cached(shared, raw_mp):
    ds = D.load_mp_eform(limit=20)
    assert "parsed=0" in repr(ds.structures)
    first = ds.structures[5]
    assert ds.structures[5] is first and "parsed=1" in repr(ds.structures)
    view = ds.structures[[5, 6]]
    assert view[0] is first and list(view.ids) == list(ds.ids[[5, 6]])
    mask = np.zeros(20, dtype=bool)
    mask[[1, 3]] = True
    assert list(ds.structures[mask].ids) == list(ds.ids[[1, 3]])
    # compositions read from the CIF formula agree with the parsed structures
    comps = ds.structures.compositions()
    assert all(c == s.composition for c, s in zip(comps, ds.structures))


def test_bad_structure_names_the_entry(raw_mp):
    truncated = raw_mp[0]["cif"].split("loop_")[0]
    lazy = D.LazyStructures.from_raw([raw_mp[1]["cif"], truncated], "cif", ["ok", "broken-id"])
    assert len(lazy[0]) > 0
    with pytest.raises(InvalidStructureError, match="broken-id"):
        lazy[1]


def test_bad_target_value_names_the_entry(tmp_path):
    from pymatgen.core import Lattice, Structure

    cif = Structure(Lattice.cubic(4.2), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(fmt="cif")
    records = [{"material_id": "mp-a", "K_VRH": 1.0, "G_VRH": 2.0, "poisson": 0.3, "cif": cif},
               {"material_id": "mp-b", "K_VRH": "high", "G_VRH": 2.0, "poisson": 0.3, "cif": cif}]
    path = tmp_path / "elastic.json.gz"
    with gzip.open(path, "wt") as fh:
        json.dump(records, fh)
    with pytest.raises(ValueError, match=r"entry 1 \(id='mp-b'\).*K_VRH"):
        D.load_mp_elasticity(path)
    with gzip.open(path, "wt") as fh:
        json.dump(records[:1] * 2, fh)
    with pytest.raises(ValueError, match="duplicate ids"):
        D.load_mp_elasticity(path)


def test_missing_file_says_where_to_put_it(monkeypatch):
    monkeypatch.setattr(local, "shared_data", lambda *parts: None)
    with pytest.raises(D.DatasetUnavailableError, match=r"mp/mp_eform_crysxpp\.json\.gz.*fetch_mp_eform"):
        D.load_mp_eform()
    monkeypatch.setattr(splits, "shared_data", lambda *parts: None)
    monkeypatch.setattr(splits.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(D.DatasetUnavailableError, match="pip install matbench"):
        D.matbench_folds()


# ----------------------------------------------------------------------------------------- MP elasticity
def test_mp_elasticity(shared):
    raw = _raw(shared, "mp", "mp_elasticity_3191.json.gz")
    ds = D.load_mp_elasticity()
    assert len(raw) == 3_191 and len(ds) == len(raw)
    assert list(ds.ids) == [r["material_id"] for r in raw]
    for key in ("K_VRH", "G_VRH", "poisson"):
        np.testing.assert_array_equal(ds.targets[key].to_numpy(), [r[key] for r in raw])
    cell, symbols, frac = _cif_cell_and_sites(raw[-1]["cif"])
    _same_sites(ds.structures[-1], symbols, frac)


# ----------------------------------------------------------------------------------------- JARVIS
def test_jarvis_leaderboard_values_and_splits(jarvis, raw_jarvis):
    assert len(raw_jarvis) == 1_124 and len(jarvis) == len(raw_jarvis)
    assert list(jarvis.ids) == [r["jid"] for r in raw_jarvis]
    props = sorted({k[:-7] for r in raw_jarvis for k in r if k.endswith("__split")})
    assert len(props) == 28 and sorted(jarvis.targets.columns) == props
    for prop in props:
        have = [r for r in raw_jarvis if prop in r]
        tk = jarvis.task(prop, missing="drop")
        assert list(tk.ids) == [r["jid"] for r in have]
        np.testing.assert_array_equal(tk.y, [r[prop] for r in have])
        assert list(tk.split) == [r[prop + "__split"] for r in have]
    counts = {p: jarvis.targets[p].notna().sum() for p in ("formation_energy_peratom", "bulk_modulus_kv",
                                                           "epsx", "mbj_bandgap", "Tc_supercon")}
    assert counts == {"formation_energy_peratom": 940, "bulk_modulus_kv": 881, "epsx": 873,
                      "mbj_bandgap": 568, "Tc_supercon": 616}  # README
    with pytest.raises(ValueError, match="missing='drop'"):
        jarvis.task("bulk_modulus_kv")


def test_jarvis_task_structures_and_split_indices(shared, raw_jarvis):
    from pymatgen.core import Structure

    tk = D.jarvis_leaderboard_task("shear_modulus_gv")
    parts = tk.split_indices()
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(len(tk)))
    by_id = {r["jid"]: r for r in raw_jarvis}
    for part, idx in parts.items():
        assert all(by_id[tk.ids[i]]["shear_modulus_gv__split"] == part for i in idx)
    for i in (0, len(tk) - 1):
        ref = Structure.from_dict(by_id[tk.ids[i]]["structure"])
        _same_sites(tk.structures[i], [s.specie.symbol for s in ref], ref.frac_coords, ref.lattice.matrix)


def test_official_leaderboard_package_agrees_with_local_labels(raw_jarvis):
    pytest.importorskip("jarvis_leaderboard")
    for prop in ("formation_energy_peratom", "bulk_modulus_kv", "Tc_supercon", "n_Seebeck"):
        table = D.jarvis_leaderboard_splits(prop)
        assert set(table["split"]) == {"train", "val", "test"}
        local_rows = [r for r in raw_jarvis if prop in r]
        sub = table.loc[[r["jid"] for r in local_rows]]
        assert list(sub["split"]) == [r[prop + "__split"] for r in local_rows]
        np.testing.assert_allclose(sub[prop].to_numpy(), [r[prop] for r in local_rows], rtol=0, atol=1e-12)
    with pytest.raises(KeyError, match="available properties"):
        D.jarvis_leaderboard_splits("not_a_property")


# ----------------------------------------------------------------------------------------- Matbench
def test_matbench_dielectric(shared, raw_dielectric):
    from pymatgen.core import Structure

    ds = D.load_matbench_dielectric()
    n = len(raw_dielectric["n"])
    assert n == 4_764 and len(ds) == n
    assert ds.ids[0] == "mb-dielectric-0001" and ds.ids[-1] == "mb-dielectric-4764"
    np.testing.assert_array_equal(ds.targets["n"].to_numpy(), [raw_dielectric["n"][str(i)] for i in range(n)])
    assert ds.info["formula"].tolist()[:3] == [raw_dielectric["formula"][str(i)] for i in range(3)]
    for i in (0, 2500):
        ref = Structure.from_dict(raw_dielectric["structure"][str(i)])
        _same_sites(ds.structures[i], [s.specie.symbol for s in ref], ref.frac_coords, ref.lattice.matrix)


def test_matbench_folds_partition(shared):
    raw = _raw(shared, "matbench", "matbench_v0.1_validation.json.gz")["splits"]["matbench_dielectric"]
    ids = D.matbench_ids("matbench_dielectric", 4764)
    folds = D.matbench_folds("matbench_dielectric")
    assert len(folds) == 5
    tests = np.concatenate([test for _, test in folds])
    assert len(tests) == 4764 and sorted(tests.tolist()) == list(range(4764))
    for k, (train, test) in enumerate(folds):
        assert not set(train) & set(test) and len(train) + len(test) == 4764
        assert set(ids[test]) == set(raw[f"fold_{k}"]["test"])
    # a subset keeps only its own ids, indexed into the subset
    sub = D.load_matbench_dielectric(sample=300, random_state=0)
    sub_folds = D.matbench_folds("matbench_dielectric", ids=sub.ids)
    assert sorted(np.concatenate([t for _, t in sub_folds]).tolist()) == list(range(300))
    for k, (_, test) in enumerate(sub_folds):
        assert set(sub.ids[test]) == set(raw[f"fold_{k}"]["test"]) & set(sub.ids)
    with pytest.raises(KeyError, match="mb-dielectric-9999"):
        D.matbench_folds("matbench_dielectric", ids=["mb-dielectric-9999"])


# ----------------------------------------------------------------------------------------- conventions
def test_train_val_test_split():
    train, val, test = D.train_val_test_split(1001)
    assert (len(train), len(val), len(test)) == (801, 100, 100)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(1001))
    again = D.train_val_test_split(list(range(1001)), random_state=0)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again))
    other = D.train_val_test_split(1001, random_state=1)
    assert not np.array_equal(test, other[2])
    assert [len(p) for p in D.train_val_test_split(10, fractions=(0.6, 0.2, 0.2))] == [6, 2, 2]
    with pytest.raises(ValueError, match="summing to 1"):
        D.train_val_test_split(10, fractions=(0.8, 0.1, 0.2))


def test_drop_polymorphs_on_mp_is_brute_force_minimum(mp, raw_mp):
    energy = mp.targets["e_form"].to_numpy()
    kept = D.drop_polymorphs(mp.structures.compositions(), energy)
    formula_sum = re.compile(r"^_chemical_formula_sum\s+'?([^'\n]+?)'?\s*$", re.M)
    keys = [_reduced_key(formula_sum.search(r["cif"]).group(1)) for r in raw_mp]
    best = {}
    for i, (key, e) in enumerate(zip(keys, energy)):
        if key not in best or e < energy[best[key]]:
            best[key] = i
    assert sorted(best.values()) == kept.tolist()
    assert len(kept) == len(set(keys)) < len(raw_mp)


def test_drop_polymorphs_ties_and_bad_input():
    from pymatgen.core import Lattice, Structure

    rock_salt = Structure(Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    formulas = ["Fe2O3", "Fe4O6", "FeO", rock_salt, "Na2Cl2", "O2"]
    assert D.drop_polymorphs(formulas, [1.0, 1.0, 0.0, -2.0, -3.0, 0.0]).tolist() == [0, 2, 4, 5]
    with pytest.raises(ValueError, match=r"samples \[1\]"):
        D.drop_polymorphs(["NaCl", "KCl"], [0.0, np.nan])
    with pytest.raises(ValueError, match="sample 1"):
        D.drop_polymorphs(["NaCl", 42], [0.0, 1.0])


# ----------------------------------------------------------------------------------------- online loaders
def _as_dft_3d_records(raw_jarvis, n):
    """JARVIS figshare-style records (jarvis Atoms dicts, 'na' for missing, hyphenated Seebeck keys)."""
    from jarvis.core.atoms import pmg_to_atoms
    from pymatgen.core import Structure

    records = []
    for k, rec in enumerate(raw_jarvis[:n]):
        atoms = pmg_to_atoms(Structure.from_dict(rec["structure"])).to_dict()
        if k % 2:  # exercise Cartesian coordinates too
            atoms["coords"] = (np.array(atoms["coords"]) @ np.array(atoms["lattice_mat"])).tolist()
            atoms["cartesian"] = True
        out = {"jid": rec["jid"], "atoms": atoms, "formula": Structure.from_dict(rec["structure"]).formula,
               "elastic_tensor": [[0.0] * 6] * 6}
        for prop in ("formation_energy_peratom", "bulk_modulus_kv", "n_Seebeck"):
            out[prop.replace("n_Seebeck", "n-Seebeck")] = rec.get(prop, "na")
        records.append(out)
    return records


def test_fetch_jarvis_parses_figshare_records(monkeypatch, raw_jarvis):
    from jarvis.db import figshare
    from pymatgen.core import Structure

    fake = _as_dft_3d_records(raw_jarvis, 60)
    calls = []
    monkeypatch.setattr(figshare, "data", lambda dataset, store_dir=None: calls.append(dataset) or fake)
    ds = D.fetch_jarvis()
    assert calls == ["dft_3d_2021"]
    assert list(ds.ids) == [r["jid"] for r in raw_jarvis[:60]]
    assert sorted(ds.targets.columns) == ["bulk_modulus_kv", "formation_energy_peratom", "n_Seebeck"]
    assert list(ds.info.columns) == ["formula"]
    for prop in ds.targets.columns:
        expected = [r.get(prop, np.nan) for r in raw_jarvis[:60]]
        np.testing.assert_array_equal(ds.targets[prop].to_numpy(), expected)
    for i in (0, 1, 59):
        ref = Structure.from_dict(raw_jarvis[i]["structure"])
        _same_sites(ds.structures[i], [s.specie.symbol for s in ref], ref.frac_coords, ref.lattice.matrix)


def test_fetch_jarvis_leaderboard_joins_official_split(monkeypatch, raw_jarvis):
    pytest.importorskip("jarvis_leaderboard")
    from jarvis.db import figshare

    fake = _as_dft_3d_records(raw_jarvis, 200)
    monkeypatch.setattr(figshare, "data", lambda dataset, store_dir=None: fake)
    with pytest.raises(ValueError, match="have no structure in dft_3d_2021"):
        D.fetch_jarvis_leaderboard("bulk_modulus_kv")
    real = online.jarvis_leaderboard_splits
    present = {r["jid"] for r in fake}
    monkeypatch.setattr(online, "jarvis_leaderboard_splits",
                        lambda prop: real(prop).loc[lambda t: t.index.isin(present)])
    tk = D.fetch_jarvis_leaderboard("bulk_modulus_kv")
    expected = {r["jid"]: (r["bulk_modulus_kv"], r["bulk_modulus_kv__split"]) for r in raw_jarvis[:200]
                if "bulk_modulus_kv" in r}
    assert dict(zip(tk.ids, zip(tk.y.tolist(), tk.split.tolist()))) == expected
    assert [s.composition for s in tk.structures[:3]] == [
        D.fetch_jarvis().structures[i].composition for i in tk.index[:3]]


def test_fetch_failures_are_clear(monkeypatch):
    import matminer.datasets as mmd
    import requests
    from jarvis.db import figshare

    def offline(*args, **kwargs):
        raise requests.ConnectionError("no route to host")

    monkeypatch.setattr(figshare, "data", offline)
    with pytest.raises(D.DatasetUnavailableError, match="dft_3d_2021.*path="):
        D.fetch_jarvis()
    with pytest.raises(D.DatasetUnavailableError, match="megnet"):
        D.fetch_mp_eform()
    monkeypatch.setattr(mmd, "load_dataset", offline)
    with pytest.raises(D.DatasetUnavailableError, match="matbench_dielectric.*path="):
        D.fetch_matbench("matbench_dielectric")
    monkeypatch.setattr(online.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="jarvis-leaderboard==2024.10.30"):
        D.jarvis_leaderboard_splits("formation_energy_peratom")


def test_fetch_mp_eform_parses_megnet_records(monkeypatch, raw_mp):
    from jarvis.core.atoms import pmg_to_atoms
    from jarvis.db import figshare

    local_ds = D.load_mp_eform(limit=30)
    fake = [{"id": r["material_id"], "atoms": pmg_to_atoms(s).to_dict(), "e_form": r["e_form"],
             "gap pbe": r["band_gap"], "mu_b": r["col5"], "bulk modulus": "na"}
            for r, s in zip(raw_mp[:30], local_ds.structures)]
    monkeypatch.setattr(figshare, "data", lambda dataset, store_dir=None: fake if dataset == "megnet" else None)
    ds = D.fetch_mp_eform()
    assert list(ds.ids) == list(local_ds.ids)
    for col in ("e_form", "band_gap", "total_magnetization"):
        np.testing.assert_array_equal(ds.targets[col].to_numpy(), local_ds.targets[col].to_numpy())
    assert ds.targets["bulk_modulus"].isna().all()
    _same_sites(ds.structures[7], [s.specie.symbol for s in local_ds.structures[7]],
                local_ds.structures[7].frac_coords, local_ds.structures[7].lattice.matrix)


def test_fetch_matbench_via_matminer(monkeypatch, shared, raw_dielectric):
    import matminer.datasets as mmd
    from pymatgen.core import Structure

    path = shared / "data" / "matbench" / "matbench_dielectric.json.gz"
    frame = pd.DataFrame({"structure": [raw_dielectric["structure"][str(i)] for i in range(4764)],
                          "n": [raw_dielectric["n"][str(i)] for i in range(4764)]})
    frame.loc[:19, "structure"] = pd.Series([Structure.from_dict(d) for d in frame["structure"][:20]])
    seen = {}
    monkeypatch.setattr(mmd, "load_dataset", lambda name, data_home=None: seen.setdefault(name, frame))
    ds = D.fetch_matbench("matbench_dielectric")
    assert list(seen) == ["matbench_dielectric"]
    assert list(ds.ids) == list(D.matbench_ids("matbench_dielectric", 4764))
    np.testing.assert_array_equal(ds.targets["n"].to_numpy(), frame["n"].to_numpy())
    assert ds.structures[3] is frame["structure"][3]
    ref = Structure.from_dict(raw_dielectric["structure"]["4000"])
    _same_sites(ds.structures[4000], [s.specie.symbol for s in ref], ref.frac_coords, ref.lattice.matrix)
    from_file = D.fetch_matbench("matbench_dielectric", path=path, limit=10)
    np.testing.assert_array_equal(from_file.targets["n"].to_numpy(), frame["n"].to_numpy()[:10])
    with pytest.raises(ValueError, match="composition-only"):
        local.matbench_frame_dataset(pd.DataFrame({"composition": ["NaCl"], "gap expt": [8.5]}), "matbench_expt_gap")
