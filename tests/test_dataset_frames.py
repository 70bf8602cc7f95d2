"""Datasets as DataFrames for matminer (real JARVIS leaderboard and matbench files)."""

import gzip
import json

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Structure

from skdynemb import datasets as D


@pytest.fixture(scope="module")
def raw_jarvis(shared):
    with gzip.open(shared / "data" / "jarvis" / "jarvis_structures_with_leaderboard_props.json.gz", "rt") as fh:
        return json.load(fh)[:40]


def test_dataset_to_frame_holds_structures_targets_and_splits(raw_jarvis):
    ids = [r["jid"] for r in raw_jarvis]
    ds = D.load_jarvis_leaderboard(ids=ids)
    df = ds.to_frame()
    assert list(df.index) == ids and df.index.name == "id"
    assert df.columns[0] == "structure" and all(isinstance(s, Structure) for s in df["structure"])
    for r, structure in zip(raw_jarvis, df["structure"]):
        assert structure == Structure.from_dict(r["structure"])
    prop = "formation_energy_peratom"
    want = [r.get(prop, np.nan) for r in raw_jarvis]
    np.testing.assert_array_equal(df[prop].to_numpy(), want)
    splits = [s if isinstance(s, str) else None for s in df[f"{prop}_split"]]
    assert splits == [r.get(f"{prop}__split") for r in raw_jarvis]
    assert list(ds.to_frame(structures=False, splits=False).columns) == list(ds.targets.columns) + (
        [] if ds.info is None else list(ds.info.columns))


def test_task_to_frame_and_matminer_featurize_dataframe(raw_jarvis):
    from matminer.featurizers.structure import DensityFeatures

    ids = [r["jid"] for r in raw_jarvis]
    task = D.load_jarvis_leaderboard(ids=ids).task("formation_energy_peratom", missing="drop")
    df = task.to_frame()
    assert list(df.columns) == ["structure", "formation_energy_peratom", "split"] and len(df) == len(task)
    featurizer = DensityFeatures(desired_features=["density"])
    featurizer.set_n_jobs(1)
    out = featurizer.featurize_dataframe(df, "structure", pbar=False)
    by_id = {r["jid"]: r for r in raw_jarvis}
    np.testing.assert_allclose(out["density"], [Structure.from_dict(by_id[i]["structure"]).density for i in df.index])


def test_matbench_frame_round_trips_through_matminer_json(shared, tmp_path):
    """Dataset.to_frame -> matminer's store_dataframe_as_json -> load_dataframe_from_json: same data."""
    from matminer.utils.io import load_dataframe_from_json, store_dataframe_as_json

    ds = D.load_matbench_dielectric(limit=10)
    df = ds.to_frame(splits=False)
    store_dataframe_as_json(df, str(tmp_path / "d.json.gz"), compression="gz", pbar=False)
    back = load_dataframe_from_json(str(tmp_path / "d.json.gz"), pbar=False)
    assert list(back.index) == list(df.index) and list(back["structure"]) == list(df["structure"])
    pd.testing.assert_series_equal(back["n"], df["n"], check_names=False)
