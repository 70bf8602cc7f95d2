"""Table 5 of the paper harness (Matbench dielectric, official folds) at tiny settings on real data."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.paper import data, fits, ledger, run  # noqa: E402

TINY = ["matbench", "--backbone", "cgcnn-mp-eform", "--max-samples", "80", "--max-train", "0", "--epochs", "1",
        "--seeds", "0", "1", "--stages", "conv3", "conv4", "all", "--static-table", "onehot", "--n-jobs", "1"]


def test_holdout_is_a_seeded_disjoint_partition():
    idx = np.arange(100, 150)
    rest, out = data.holdout(idx, 0.1, 3)
    assert len(out) == 5 and len(rest) == 45 and set(rest) | set(out) == set(idx) and not set(rest) & set(out)
    assert np.array_equal(out, data.holdout(idx, 0.1, 3)[1]) and not np.array_equal(out, data.holdout(idx, 0.1, 4)[1])
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        data.holdout(idx, 1.0, 0)


def test_table5_chooses_the_stage_per_fold_and_scores_seed_ensembles(shared, tmp_path, monkeypatch):
    out, book = tmp_path / "out", tmp_path / "ledger"
    run.main([*TINY, "--work", str(tmp_path / "work"), "--ledger", str(book), "--out", str(out)])
    folds = pd.read_csv(out / "table5_matbench_folds.csv", comment="#")
    assert folds["fold"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert set(folds.loc[folds.model == "dynamic", "embedding"]) <= {"conv3", "conv4", "all"}
    assert set(folds.loc[folds.model == "static", "embedding"]) == {"onehot"}
    # the 80 entries: every one is in exactly one test fold; inner train + inner val = the rest
    first = folds.drop_duplicates("fold")
    assert first["test"].sum() == 80 and ((first["inner train"] + first["inner val"] + first["test"]) == 80).all()

    # the chosen stage has the lowest inner-validation MAE (seed 0) of the candidates, per fold, and the
    # ensemble MAE is that of the two seeds' mean test prediction against the test fold's real targets
    from skdynemb.datasets import matbench_folds

    s = run.settings_from(run.parser().parse_args(TINY))
    prop = data.load_property("matbench:n", s)
    records = [r for r in ledger.Ledger(book).records.values() if r["kind"] == "fit"]
    for k, (_, test) in enumerate(matbench_folds("matbench_dielectric", ids=prop.ids)):
        mine = [r for r in records if r["identity"]["subset"] == f"fold {k}"]
        val = {r["identity"]["inputs"]: r["result"]["val_mae"] for r in mine
               if r["identity"]["seed"] == 0 and r["identity"]["inputs"].startswith("dynamic:")}
        assert set(val) == {"dynamic:conv3", "dynamic:conv4", "dynamic:all"}
        row = folds[(folds.fold == k) & (folds.model == "dynamic")].iloc[0]
        assert row["embedding"] == min(val, key=val.get).split(":")[1] and row["test"] == len(test)
        preds = np.array([r["result"]["pred_test"] for r in mine
                          if r["identity"]["inputs"] == f"dynamic:{row['embedding']}"])
        assert preds.shape == (2, len(test))
        expected = np.mean(np.abs(preds.mean(axis=0) - prop.y[test]))
        assert row["test MAE, ensemble of 2"] == pytest.approx(expected, rel=1e-3)
        assert row["test MAE (mean over seeds)"] == pytest.approx(
            np.mean([np.mean(np.abs(p - prop.y[test])) for p in preds]), rel=1e-3)

    def refuse(*args):
        raise AssertionError("a fit held by the ledger was retrained")

    monkeypatch.setattr(fits, "_fit", refuse)
    run.main([*TINY, "--work", str(tmp_path / "work"), "--ledger", str(book), "--out", str(tmp_path / "second")])
    run.main(["rebuild", "--results", str(out), "--out", str(tmp_path / "again"), "--ledger", str(book)])
    for name in ("table5_matbench_dielectric.csv", "table5_matbench_folds.csv", "table5_matbench_dielectric.md",
                 "manifest.json"):
        assert (out / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name
    summary = pd.read_csv(out / "table5_matbench_dielectric.csv", comment="#")
    assert {"MODNet", "coGN", "ALIGNN"} <= {m.split(" ")[0] for m in summary["model"]}


def test_table5_stage_ensemble_averages_every_stage_and_seed(shared, tmp_path, monkeypatch):
    out, book = tmp_path / "out", tmp_path / "ledger"
    argv = [*TINY, "--stage-ensemble", "--work", str(tmp_path / "work"), "--ledger", str(book)]
    run.main([*argv, "--out", str(out)])
    folds = pd.read_csv(out / "table5_matbench_folds.csv", comment="#")
    ens = folds[folds.model == "stage ensemble"]
    assert ens["fold"].tolist() == [0, 1, 2, 3, 4] and set(ens["embedding"]) == {"conv3+conv4+all"}

    # its ensemble MAE is that of the mean test prediction of all 3 stages x 2 seeds, against the real targets
    from skdynemb.datasets import matbench_folds

    s = run.settings_from(run.parser().parse_args(TINY))
    prop = data.load_property("matbench:n", s)
    records = [r for r in ledger.Ledger(book).records.values() if r["kind"] == "fit"]
    for k, (_, test) in enumerate(matbench_folds("matbench_dielectric", ids=prop.ids)):
        members = [r for r in records if r["identity"]["subset"] == f"fold {k}"
                   and r["identity"]["inputs"].startswith("dynamic:")]
        assert sorted((r["identity"]["inputs"], r["identity"]["seed"]) for r in members) == sorted(
            (f"dynamic:{st}", seed) for st in ("conv3", "conv4", "all") for seed in (0, 1))
        preds = np.array([r["result"]["pred_test"] for r in members])
        row = ens[ens.fold == k].iloc[0]
        assert row["test MAE, ensemble of 2"] == pytest.approx(np.mean(np.abs(preds.mean(0) - prop.y[test])), rel=1e-3)
        assert row["val MAE"] == pytest.approx(np.mean([r["result"]["val_mae"] for r in members]), rel=1e-3)

    summary = pd.read_csv(out / "table5_matbench_dielectric.csv", comment="#")
    assert summary["model"].str.contains("stage ensemble .* ensemble of 6 models", regex=True).sum() == 1

    def refuse(*args):
        raise AssertionError("a fit held by the ledger was retrained")

    monkeypatch.setattr(fits, "_fit", refuse)
    run.main(["rebuild", "--results", str(out), "--out", str(tmp_path / "again"), "--ledger", str(book)])
    for name in ("table5_matbench_dielectric.md", "table5_matbench_folds.csv"):
        assert (out / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name


def test_table5_ensemble_of_members_from_two_backbones(shared, tmp_path, monkeypatch):
    other = "alignn-mp-eform"
    out, book = tmp_path / "out", tmp_path / "ledger"
    argv = [*TINY, "--stage-ensemble", "--members", "dynamic:conv4", f"{other}/dynamic:gcn2",
            "--work", str(tmp_path / "work"), "--ledger", str(book)]
    run.main([*argv, "--out", str(out)])
    folds = pd.read_csv(out / "table5_matbench_folds.csv", comment="#")
    ens = folds[folds.model == "stage ensemble"]
    assert ens["fold"].tolist() == [0, 1, 2, 3, 4] and set(ens["embedding"]) == {f"conv4+{other}/gcn2"}

    # per fold: the mean test prediction of both members x both seeds, each member on its own backbone's fits
    from skdynemb.datasets import matbench_folds

    s = run.settings_from(run.parser().parse_args(TINY))
    prop = data.load_property("matbench:n", s)
    records = [r for r in ledger.Ledger(book).records.values() if r["kind"] == "fit"]
    for k, (_, test) in enumerate(matbench_folds("matbench_dielectric", ids=prop.ids)):
        members = [r for r in records if r["identity"]["subset"] == f"fold {k}" and (
            (r["identity"]["backbone"], r["identity"]["inputs"]) in
            {("cgcnn-mp-eform", "dynamic:conv4"), (other, "dynamic:gcn2")})]
        assert sorted((r["identity"]["backbone"], r["identity"]["seed"]) for r in members) == sorted(
            (b, seed) for b in ("cgcnn-mp-eform", other) for seed in (0, 1))
        preds = np.array([r["result"]["pred_test"] for r in members])
        row = ens[ens.fold == k].iloc[0]
        assert row["test MAE, ensemble of 2"] == pytest.approx(np.mean(np.abs(preds.mean(0) - prop.y[test])), rel=1e-3)
        assert row["val MAE"] == pytest.approx(np.mean([r["result"]["val_mae"] for r in members]), rel=1e-3)
        assert row["test MAE (mean over seeds)"] == pytest.approx(
            np.mean([r["result"]["test_mae"] for r in members]), rel=1e-3)

    summary = pd.read_csv(out / "table5_matbench_dielectric.csv", comment="#")
    assert summary["model"].str.contains(f"ensemble \\(conv4\\+{other}/gcn2, no choice\\), ensemble of 4 models",
                                         regex=True).sum() == 1

    def refuse(*args):
        raise AssertionError("a fit held by the ledger was retrained")

    monkeypatch.setattr(fits, "_fit", refuse)
    run.main([*argv, "--out", str(tmp_path / "second")])
    run.main(["rebuild", "--results", str(out), "--out", str(tmp_path / "again"), "--ledger", str(book)])
    for name in ("table5_matbench_dielectric.md", "table5_matbench_folds.csv", "manifest.json"):
        assert (out / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name
