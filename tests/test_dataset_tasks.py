"""``jarvis_split_task``: the local JARVIS file with its official split when a data folder is found,
else a seeded online sample split 80:10:10 (the online loader replaced by a stand-in)."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

import skdynemb._paths
from skdynemb.datasets import DatasetUnavailableError, jarvis_split_task
from skdynemb.datasets import tasks as tasks_module

PROP = "formation_energy_peratom"


def test_local_file_gives_the_official_split(shared):
    """Ids of each part equal those labelled so in the raw file (read here with json, not our loader)."""
    path = shared / "data" / "jarvis" / "jarvis_structures_with_leaderboard_props.json.gz"
    with gzip.open(path, "rt") as fh:
        raw = [r for r in json.load(fh) if r.get(PROP) is not None]
    task, parts, source = jarvis_split_task(PROP, shared / "data")
    assert str(path) in source and "official" in source
    for part in ("train", "val", "test"):
        expected = sorted(r["jid"] for r in raw if r[PROP + "__split"] == part)
        assert sorted(task.ids[parts[part]]) == expected
    # the values are the file's (eV/atom), in the task's order
    by_id = {r["jid"]: r[PROP] for r in raw}
    np.testing.assert_allclose(task.y, [by_id[i] for i in task.ids])
    assert sum(len(p) for p in parts.values()) == len(raw) == len(task)


class _Sample:
    """Stands in for the downloaded JARVIS-DFT sample: records what was asked, has ``n`` entries."""

    def __init__(self, n):
        self.n, self.asked = n, []

    def task(self, prop, missing):
        self.asked.append((prop, missing))
        return list(range(self.n))


def test_without_a_data_folder_a_seeded_online_sample_is_split(monkeypatch):
    monkeypatch.delenv("SKDYNEMB_DATA", raising=False)
    monkeypatch.setattr(skdynemb._paths, "shared_dir", lambda: None)
    calls = []

    def fake_fetch(release, *, sample, random_state):
        calls.append((release, sample, random_state))
        return _Sample(200)

    monkeypatch.setattr(tasks_module, "fetch_jarvis", fake_fetch)
    task, parts, source = jarvis_split_task(PROP, online_sample=200, random_state=3)
    assert calls == [("dft_3d_2021", 200, 3)]
    assert "jarvis-tools" in source and "200 random entries" in source and "seed 3" in source
    assert [len(parts[p]) for p in ("train", "val", "test")] == [160, 20, 20]
    together = np.concatenate(list(parts.values()))
    assert sorted(together.tolist()) == list(range(200))  # disjoint and covering
    again = jarvis_split_task(PROP, online_sample=200, random_state=3)[1]
    other = jarvis_split_task(PROP, online_sample=200, random_state=4)[1]
    assert all(np.array_equal(parts[p], again[p]) for p in parts)
    assert not np.array_equal(parts["test"], other["test"])


def test_a_named_folder_without_the_file_is_an_error(tmp_path):
    with pytest.raises(DatasetUnavailableError, match=str(tmp_path)):
        jarvis_split_task(PROP, tmp_path)
