"""Every script in examples/ runs end to end on the real data with tiny settings, as after
``pip install .`` outside the repository: the repository's data folder is hidden, and each example
either gets a data folder (``--data-dir`` or ``$SKDYNEMB_DATA``) or falls back to the online loaders,
whose downloads are replaced here by the local files (converted to the format the download has)."""

from __future__ import annotations

import gzip
import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Structure

from skdynemb.datasets import DatasetUnavailableError, train_val_test_split
from skdynemb.datasets.local import JARVIS_LEADERBOARD_FILE, MP_EFORM_FILE, data_file

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
#: MP records handed to the mocked online MP loader (the polymorph search runs over them)
MP_ONLINE = 1500


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen CIF notes, CGCNN padding notes
        yield


def _raw(shared, *parts):
    with gzip.open(shared.joinpath("data", *parts), "rt") as fh:
        return json.load(fh)


@pytest.fixture
def no_data_folder(monkeypatch):
    """No data folder anywhere: $SKDYNEMB_DATA unset and ../shared/data not found."""
    import skdynemb._paths

    monkeypatch.delenv("SKDYNEMB_DATA", raising=False)
    monkeypatch.setattr(skdynemb._paths, "shared_dir", lambda: None)


@pytest.fixture(scope="module")
def jarvis_online_records(shared):
    """JARVIS figshare-style records (jarvis Atoms dicts, "na" for missing) of the local JARVIS entries
    that have a formation energy, as ``jarvis.db.figshare.data("dft_3d_2021")`` returns them."""
    from jarvis.core.atoms import pmg_to_atoms

    return [
        {"jid": r["jid"], "atoms": pmg_to_atoms(Structure.from_dict(r["structure"])).to_dict(),
         "formation_energy_peratom": r["formation_energy_peratom"],
         "optb88vdw_bandgap": r.get("optb88vdw_bandgap", "na")}
        for r in _raw(shared, *JARVIS_LEADERBOARD_FILE) if "formation_energy_peratom" in r
    ]


@pytest.fixture(scope="module")
def mp_online_records(shared):
    """The first MP_ONLINE local MP entries as jarvis-tools' "megnet" records (MP 2018.6.1 format)."""
    from jarvis.core.atoms import pmg_to_atoms

    return [
        {"id": r["material_id"], "atoms": pmg_to_atoms(Structure.from_str(r["cif"], fmt="cif")).to_dict(),
         "e_form": r["e_form"], "gap pbe": r["band_gap"]}
        for r in _raw(shared, *MP_EFORM_FILE)[:MP_ONLINE]
    ]


@pytest.fixture
def online(monkeypatch, no_data_folder, jarvis_online_records, mp_online_records, shared):
    """Online loaders whose downloads return the local data; ``calls`` lists what was fetched."""
    import matminer.datasets as mmd
    from jarvis.db import figshare

    calls = []
    by_name = {"dft_3d_2021": jarvis_online_records, "megnet": mp_online_records}

    def figshare_data(dataset, store_dir=None):
        calls.append(dataset)
        return by_name[dataset]

    def load_dataset(name, data_home=None):
        calls.append(name)
        raw = _raw(shared, "matbench", "matbench_dielectric.json.gz")
        rows = [str(i) for i in range(len(raw["n"]))]
        return pd.DataFrame({"structure": [raw["structure"][i] for i in rows], "n": [raw["n"][i] for i in rows]})

    monkeypatch.setattr(figshare, "data", figshare_data)
    monkeypatch.setattr(mmd, "load_dataset", load_dataset)
    return calls


def test_data_file_finds_the_data_folder(shared, monkeypatch, tmp_path, no_data_folder):
    assert data_file(JARVIS_LEADERBOARD_FILE) is None  # nothing configured: use the online loader
    found = data_file(JARVIS_LEADERBOARD_FILE, shared / "data")
    assert found == shared.joinpath("data", *JARVIS_LEADERBOARD_FILE)
    with pytest.raises(DatasetUnavailableError, match="jarvis/jarvis_structures.*in the data folder"):
        data_file(JARVIS_LEADERBOARD_FILE, tmp_path)  # a folder that was named must hold the file
    monkeypatch.undo()
    monkeypatch.setenv("SKDYNEMB_DATA", str(shared / "data"))
    assert data_file(MP_EFORM_FILE) == shared.joinpath("data", *MP_EFORM_FILE)
    monkeypatch.setenv("SKDYNEMB_DATA", str(tmp_path / "typo"))
    with pytest.raises(DatasetUnavailableError, match=r"\$SKDYNEMB_DATA=.*typo"):
        data_file(MP_EFORM_FILE)


def test_every_example_is_tested():
    tested = {"quickstart", "gridsearch_layers", "matminer_featurize", "elemnet_automl", "polymorphs",
              "choose_representation"}
    assert {p.stem for p in EXAMPLES.glob("*.py")} == tested


def test_quickstart_online(online, jarvis_online_records, alignn_ff_weights, capsys):
    results = load_example("quickstart").main(
        ["--epochs", "2", "--limit", "40", "--seed", "3", "--online-sample", str(len(jarvis_online_records))]
    )
    assert online == ["dft_3d_2021"]
    assert list(results) == ["predict the training mean", "static  matscholar200 + Roost",
                             "dynamic alignn-ff + Roost"]
    y = np.array([r["formation_energy_peratom"] for r in jarvis_online_records])
    parts = dict(zip(("train", "val", "test"), (p[:40] for p in train_val_test_split(len(y), random_state=0))))
    mean = y[parts["train"]].mean()
    for part in ("val", "test"):
        assert results["predict the training mean"][part] == pytest.approx(np.abs(y[parts[part]] - mean).mean())
    for name, mae in results.items():
        assert np.isfinite(mae["val"]) and np.isfinite(mae["test"]) and mae["test"] > 0, name
    out = capsys.readouterr().out
    assert "data: no data folder" in out and "jarvis-tools" in out
    assert "40 train / 40 val / 40 test" in out and "dynamic vs static test MAE" in out


def test_gridsearch_extracts_each_structure_once(shared, no_data_folder, tmp_path, monkeypatch, capsys):
    from skdynemb.backbones.cgcnn import CgcnnBackbone

    forwarded = []
    original = CgcnnBackbone.forward_stages

    def counting(self, crystals):
        forwarded.extend(c.content_hash() for c in crystals)
        return original(self, crystals)

    monkeypatch.setattr(CgcnnBackbone, "forward_stages", counting)
    search = load_example("gridsearch_layers").main(
        ["--epochs", "1", "--limit", "24", "--folds", "2", "--cache-dir", str(tmp_path),
         "--data-dir", str(shared / "data")]
    )
    out = capsys.readouterr().out
    assert f"data: {shared / 'data'}" in out and "searching 6 settings x 2 folds" in out
    assert "[CV 2/2] END" in out  # a line per fit while the search runs
    params = search.cv_results_["params"]
    assert len(params) == 6 and {p["dynamicembeddingtransformer__stage"] for p in params} == {0, 2, -1}
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    # 6 settings x 2 folds + refit + test predictions, yet every structure went through CGCNN once
    assert len(forwarded) == len(set(forwarded)) > 24


def test_matminer_featurize_online(online, shared, capsys):
    example = load_example("matminer_featurize")
    results = example.main(["--limit", "60", "--trees", "10"])
    assert online == ["matbench_dielectric"]
    assert "data: no data folder" in capsys.readouterr().out
    # without the fold file, the fold comes from Matbench's rule; it is the official fold 1
    from skdynemb.datasets import matbench_folds

    official = matbench_folds("matbench_dielectric",
                              path=shared / "data" / "matbench" / "matbench_v0.1_validation.json.gz")
    for limit in (None, 300):
        _, (train, test) = example.load_data(limit)
        n = 4764 if limit is None else limit
        assert np.array_equal(train, official[0][0][official[0][0] < n])
        assert np.array_equal(test, official[0][1][official[0][1] < n])
    assert list(results) == ["predict the training mean", "Magpie", "dynamic (cgcnn-mp-eform)", "Magpie + dynamic"]
    assert all(np.isfinite(v) and v > 0 for v in results.values())


def test_elemnet_automl_data_env(shared, no_data_folder, monkeypatch, capsys):
    monkeypatch.setenv("SKDYNEMB_DATA", str(shared / "data"))
    results = load_example("elemnet_automl").main(["--limit", "40", "--epochs", "2", "--automl-trials", "2"])
    assert f"data: {shared.joinpath('data', *JARVIS_LEADERBOARD_FILE)}" in capsys.readouterr().out
    assert len(results) == 4
    for row in results.values():
        assert set(row) == {"ElemNet", "AutoML"} and all(np.isfinite(v) for v in row.values())


def test_polymorphs_static_identical_dynamic_distinct(shared, online):
    out = load_example("polymorphs").main(["--formula", "auto", "--search", str(MP_ONLINE), "--max-polymorphs", "4"])
    assert online == ["megnet"]
    static, dynamic = out["static_embeddings"], out["dynamic_embeddings"]
    n = len(out["ids"])
    assert n >= 2
    # independent check that they are polymorphs: one reduced formula, different structures
    from skdynemb.datasets import load_mp_eform

    structures = list(load_mp_eform(shared.joinpath("data", *MP_EFORM_FILE), ids=list(out["ids"])).structures)
    assert len({s.composition.reduced_formula for s in structures}) == 1
    assert all(isinstance(s, Structure) for s in structures)
    for k in range(1, n):
        assert static[k].elements == static[0].elements
        assert np.array_equal(static[k].features, static[0].features)
        assert not np.allclose(dynamic[k].features, dynamic[0].features, atol=1e-3)
    assert np.all(out["static"] == 0) and np.all(out["dynamic"][1:] > 0)


def test_choose_representation_extracts_each_structure_once_per_backbone(shared, alignn_ff_weights, tmp_path,
                                                                         monkeypatch):
    from skdynemb.backbones.alignn.backbone import AlignnBackbone
    from skdynemb.backbones.cgcnn import CgcnnBackbone
    from skdynemb.datasets import jarvis_leaderboard_task

    forwarded = {"alignn": [], "cgcnn": []}
    for name, cls in (("alignn", AlignnBackbone), ("cgcnn", CgcnnBackbone)):
        def counting(self, crystals, _original=cls.forward_stages, _name=name):
            forwarded[_name].extend(c.content_hash() for c in crystals)
            return _original(self, crystals)

        monkeypatch.setattr(cls, "forward_stages", counting)
    out = load_example("choose_representation").main(
        ["--limit", "20", "--epochs", "1", "--folds", "2", "--seeds", "2", "--cache-dir", str(tmp_path),
         "--data-dir", str(shared / "data")])
    search = out.pop("search")
    assert len(search.cv_results_["params"]) == 5 and np.isfinite(search.cv_results_["mean_test_score"]).all()
    task = jarvis_leaderboard_task("formation_energy_peratom")
    parts = task.split_indices()
    y_train, y_test = task.y[parts["train"][:20]], task.y[parts["test"]]
    assert out["predict the training mean"] == pytest.approx(np.abs(y_test - y_train.mean()).mean())
    assert list(out)[1:] == ["chosen rows, 1 seed", "chosen rows, 2-seed ensemble", "3 best settings averaged"]
    assert all(np.isfinite(v) and v > 0 for v in out.values())
    # 3 ALIGNN-FF stages + the ALIGNN-FF/static union, 2 folds, refits and test predictions: one forward
    # pass per structure and backbone, the rest read from the shared memory= cache
    for name, hashes in forwarded.items():
        assert len(hashes) == len(set(hashes)) >= 20, name
