"""The pooling-ideas benchmark (benchmarks/bench_pooling_ideas.py): its statistics and its verdicts."""

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import bench_pooling_ideas as bench  # noqa: E402
from skdynemb.transformers.dynamic import DynamicEmbeddingTransformer  # noqa: E402


@pytest.fixture(scope="module")
def cgcnn():
    return DynamicEmbeddingTransformer("cgcnn-mp-eform", layer=-1, device="cpu", progress=False).fit()


def test_element_stats_match_numpy_and_the_transformer(cgcnn, co3o4, licoo2):
    # spinel Co3O4 primitive cell: 6 Co on two distinct sites (tetrahedral, octahedral), 8 O
    atom = cgcnn.backbone_.forward_stages([co3o4])[0].atom[-1]
    mean, std = bench.element_stats(atom, co3o4.numbers)
    for row, z in enumerate(sorted(set(co3o4.numbers))):
        own = atom[np.asarray(co3o4.numbers) == z].astype(np.float64)
        np.testing.assert_allclose(mean[row], own.mean(axis=0), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(std[row], own.std(axis=0), rtol=1e-5, atol=1e-6)
    assert std[1].max() > 1e-3  # row 1 = Co (rows by Z: O, Co): two environments, its atoms differ
    np.testing.assert_allclose(mean, cgcnn.transform([co3o4])[0].features, rtol=1e-6, atol=1e-6)
    # LiCoO2 primitive: one Li and one Co atom -> std exactly 0 there
    _, std = bench.element_stats(cgcnn.backbone_.forward_stages([licoo2])[0].atom[-1], licoo2.numbers)
    assert cgcnn.transform([licoo2])[0].elements == ("Li", "O", "Co")  # rows sorted by Z
    assert not std[0].any() and not std[2].any()


def _fits(ref, other, size=300, prop="mp:G_VRH"):
    return [{"property": prop, "unit": "GPa", "train_size": size, "variant": v, "stages": s, "with_std": w,
             "seed": k, "test_mae": m, "width": 1, "n_val": 1, "n_test": 1, "fit_s": 1.0}
            for v, s, w, maes in (("mean(last)", ["gcn4"], False, ref), ("mean+std(last)", ["gcn4"], True, other))
            for k, m in enumerate(maes)]


def test_verdict_rule_and_adoption_decision():
    # ref 10 +- 0.1 (std 0.1); a 1.0 lower mean beats both 0.2 (stds) and 0.5 (5 %): win
    win = _fits([9.9, 10.0, 10.1], [8.9, 9.0, 9.1])
    # 0.3 lower: above the stds (0.2) but under 5 % of 10 (0.5): tie
    tie = _fits([9.9, 10.0, 10.1], [9.6, 9.7, 9.8], prop="mp:band_gap")
    loss = _fits([9.9, 10.0, 10.1], [10.9, 11.0, 11.1], size=1000, prop="matbench:n")
    df = bench.table({str(i): f for i, f in enumerate(win + tie)}).set_index(["property", "variant"])
    assert df.loc[("mp:G_VRH", "mean(last)"), "verdict"] == "ref"
    assert df.loc[("mp:G_VRH", "mean+std(last)"), "verdict"] == "win"
    assert df.loc[("mp:band_gap", "mean+std(last)"), "verdict"] == "tie"
    assert df.loc[("mp:G_VRH", "mean+std(last)"), "% vs mean(last)"] == pytest.approx(-10.0)
    two_wins = _fits([9.9, 10.0, 10.1], [8.9, 9.0, 9.1], prop="mp:band_gap")
    adopt = bench.decisions(bench.table({str(i): f for i, f in enumerate(win + two_wins)}))
    assert adopt == ["- `mean+std(last)`: most properties won at one size 2 of 2; losses: none "
                     "-> meets the adoption rule"]
    rejected = bench.decisions(bench.table({str(i): f for i, f in enumerate(win + two_wins + loss)}))
    assert rejected[0].endswith("losses: matbench:n n=1000 -> does not meet the adoption rule")
