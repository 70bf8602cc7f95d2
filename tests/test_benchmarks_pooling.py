"""The pooling-ideas command of the paper harness (mean+std element rows, two stages) at tiny sizes
on real Matbench dielectric data: its inputs against independently pooled atom vectors, its
ledger reuse (also of the learning curves' fits) and its rebuild."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.paper import data, element_stats, fits, ledger, pooling, run  # noqa: E402
from benchmarks.paper.settings import Settings  # noqa: E402
from skdynemb import DynamicEmbeddingTransformer  # noqa: E402
from skdynemb.structures import to_crystal  # noqa: E402

TINY = ["--backbone", "cgcnn-mp-eform", "--props", "matbench:n", "--max-samples", "60",  # fast; stages named
        "--sizes", "10", "25", "--epochs", "1", "--seeds", "0", "1"]
LABELS = ["mean(last)", "mean+std(last)", "mean(last)+mean(conv2)", "mean+std(last+conv2)"]
INPUTS = ["dynamic:conv4", "dynamic-meanstd:conv4", "dynamic:conv4+conv2", "dynamic-meanstd:conv4+conv2"]


def _refuse(*args):
    raise AssertionError("a fit held by the ledger was retrained")


def test_smoke_table_ledger_reuse_and_rebuild(shared, tmp_path, monkeypatch):
    paths = ["--work", str(tmp_path / "work"), "--ledger", str(tmp_path / "ledger")]
    out = tmp_path / "out"
    run.main(["pooling-ideas", *TINY, "--early-stage", "conv2", *paths, "--out", str(out)])
    table = pd.read_csv(out / "pooling_ideas.csv", comment="#")
    assert list(table["size"].astype(str).unique()) == ["10", "25"]
    records = list(ledger.Ledger(tmp_path / "ledger").records.values())
    assert sum(r["kind"] == "fit" for r in records) == 2 * 4 * 2  # sizes x variants x seeds
    train_n = {r["identity"]["split"]: int(r["result"]["sizes"].split("/")[0]) for r in records
               if r["kind"] == "property"}
    assert sorted(train_n.values()) == [10, 25]
    maes = {}
    for r in records:
        if r["kind"] == "fit":
            at = (train_n[r["identity"]["split"]], r["identity"]["inputs"])
            maes.setdefault(at, []).append(r["result"]["test_mae"])
    for n, part in table.groupby("train size"):
        assert list(part["variant"]) == LABELS and list(part["inputs"]) == INPUTS
        ref = np.array(maes[(n, INPUTS[0])])
        for _, row in part.iterrows():
            own = np.array(maes[(n, row.inputs)])
            assert len(own) == 2 and row["test MAE"] == pytest.approx(own.mean(), rel=1e-3)
            assert row["% vs mean(last)"] == pytest.approx(100 * (own.mean() / ref.mean() - 1), rel=1e-3, abs=1e-3)
            margin = max(own.std(ddof=1) + ref.std(ddof=1), 0.05 * ref.mean())
            diff = ref.mean() - own.mean()
            expected = "ref" if row.inputs == INPUTS[0] else "win" if diff > margin else \
                "loss" if -diff > margin else "tie"
            assert row.verdict == expected
    assert list(table["width"][:4]) == [64, 128, 128, 256]  # CGCNN stages are 64 wide
    assert table["val/test"].nunique() == 1 and (table["test MAE"] > 0).all()
    rule = pd.read_csv(out / "pooling_ideas_adoption.csv", comment="#")
    assert list(rule["variant"]) == [v for v in LABELS[1:] for _ in (10, 25)]
    assert set(rule["meets the rule"]) == {"no"}  # one property: never two wins

    monkeypatch.setattr(fits, "_fit", _refuse)
    again = tmp_path / "again"
    run.main(["pooling-ideas", *TINY, "--early-stage", "conv2", *paths, "--out", str(out)])  # trains nothing
    run.main(["rebuild", "--results", str(out), "--out", str(again), "--ledger", str(tmp_path / "ledger")])
    for name in ("pooling_ideas.csv", "pooling_ideas.md", "pooling_ideas_adoption.csv", "pooling_ideas_adoption.md",
                 "manifest.json"):
        assert (out / name).read_bytes() == (again / name).read_bytes(), name
    # the learning curves' Roost on the last stage at the same sizes and seeds is the same fit: read, not trained
    run.main(["learning-curve", *TINY, "--stages", "conv4", "--curve-models", "dynamic", *paths,
              "--out", str(tmp_path / "curves")])


@pytest.fixture(scope="module")
def prop(shared, tmp_path_factory):
    s = Settings(backbone="cgcnn-mp-eform", max_samples=60, max_train=None,
                 work=str(tmp_path_factory.mktemp("work")))
    return data.load_property("matbench:n", s), s


def _atoms(structure, stage: int) -> tuple[np.ndarray, np.ndarray]:
    """One stage's atom vectors of ``structure`` from the backbone itself, and the atomic numbers."""
    crystal = to_crystal(structure)
    tr = DynamicEmbeddingTransformer("cgcnn-mp-eform", device="cpu", progress=False).fit()
    return tr.backbone_.forward_stages([crystal])[0].atom[stage].astype(np.float64), np.asarray(crystal.numbers)


def test_meanstd_rows_are_the_mean_and_std_of_each_elements_atoms(prop, monkeypatch):
    prop_data, s = prop
    cache = {}
    E = data.embeddings(prop_data, "dynamic-meanstd:conv4", s, cache)
    # a structure with an element whose atoms differ (std > 0 somewhere)
    picks = [i for i, c in enumerate(E) if (c.features[:, 64:] > 1e-3).any()]
    assert picks, "no structure with an element in two environments among the 60"
    i = picks[0]
    (atoms4, z), (atoms2, _) = _atoms(prop_data.structures[i], 4), _atoms(prop_data.structures[i], 2)
    assert len(z) > len(set(z))  # an element with > 1 atom
    both_stages = np.hstack([atoms4, atoms2])
    for atoms, name in ((atoms4, "dynamic-meanstd:conv4"), (both_stages, "dynamic-meanstd:conv4+conv2")):
        rows = data.embeddings(prop_data, name, s, cache)[i].features
        d = atoms.shape[1]
        for row, el in enumerate(sorted(set(z))):
            own = atoms[z == el]
            np.testing.assert_allclose(rows[row, :d], own.mean(axis=0), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(rows[row, d:], own.std(axis=0), rtol=1e-4, atol=1e-6)
    # concatenated stages = the two stages side by side = the transformer's own list of layers
    both = data.embeddings(prop_data, "dynamic:conv4+conv2", s, cache)
    one, two = (data.embeddings(prop_data, f"dynamic:{stage}", s, cache) for stage in ("conv4", "conv2"))
    listed = DynamicEmbeddingTransformer("cgcnn-mp-eform", stage=["conv4", "conv2"], device="cpu",
                                         progress=False).fit().transform(prop_data.structures)
    for k in range(len(both)):
        np.testing.assert_array_equal(both[k].features, np.hstack([one[k].features, two[k].features]))
        np.testing.assert_allclose(both[k].features, listed[k].features, rtol=1e-6, atol=1e-6)
    assert list(both.feature_names[:2]) == ["conv4_0", "conv4_1"] and both.feature_names[64] == "conv2_0"
    assert pooling.width("dynamic-meanstd:conv4+conv2", s) == E.n_features * 2

    # the std rows are read back from <work>/element-std: no forward pass, the same rows
    backbone = data.backbone_for(s)
    monkeypatch.setattr(backbone, "forward_stages", _refuse)
    np.testing.assert_array_equal(data.embeddings(prop_data, "dynamic-meanstd:conv4", s, {})[i].features, E[i].features)
    assert len(list((Path(s.work) / "element-std").rglob("*.npz"))) == len(prop_data.structures)
    # ... and never served for another statistic or backbone identity
    other = element_stats.std_cache(data.dynamic_transformer(s), s.work)
    other = type(other)(Path(s.work) / "element-std", backbone, {**other.identity, "statistic": "something else"})
    crystal = to_crystal(prop_data.structures[i])
    assert other.get(crystal.content_hash(), crystal.numbers) is None


@pytest.mark.parametrize("name, message", [("dynamic:conv4+all", "'all' already holds"),
                                           ("dynamic-meanstd:conv2+conv2", "named twice"),
                                           ("dynamic-std:conv9", "no stage 'conv9'")])
def test_bad_stage_lists_are_refused(prop, name, message):
    prop_data, s = prop
    with pytest.raises(ValueError, match=message):
        data.embeddings(prop_data, name, s, {})


def test_adoption_rule_per_size_and_overall():
    def rows(variant, size, verdicts):
        return [{"variant": variant, "size": size, "property": p, "verdict": v}
                for p, v in zip(("mp:G_VRH", "mp:band_gap", "matbench:n"), verdicts)]

    df = pd.DataFrame(rows("mean(last)", "300", ["ref"] * 3) + rows("a", "300", ["win", "win", "tie"])
                      + rows("a", "1000", ["tie", "tie", "tie"]) + rows("b", "300", ["win", "win", "tie"])
                      + rows("b", "1000", ["win", "tie", "loss"]) + rows("c", "300", ["win", "tie", "tie"]))
    got = pooling.adoption(df).set_index(["variant", "size"])
    per_size = got["wins >= 2, no loss at this size"]
    assert per_size.to_dict() == {("a", "300"): "yes", ("a", "1000"): "no", ("b", "300"): "yes",
                                  ("b", "1000"): "no", ("c", "300"): "no"}
    assert got["meets the rule"].to_dict() == {("a", "300"): "yes", ("a", "1000"): "yes", ("b", "300"): "no",
                                               ("b", "1000"): "no", ("c", "300"): "no"}  # b lost at 1000
    assert got.loc[("b", "1000"), "losses"] == "matbench:n" and got.loc[("a", "300"), "wins"] == "mp:G_VRH, mp:band_gap"
