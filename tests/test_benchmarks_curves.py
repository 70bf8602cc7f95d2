"""Learning curves of the paper harness at tiny sizes on real Matbench dielectric data."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.paper import curves, fits, ledger, run  # noqa: E402

TINY = ["learning-curve", "--backbone", "cgcnn-mp-eform",  # fast; the assertions name its stages
        "--props", "matbench:n", "--max-samples", "60", "--sizes", "10", "25", "max",
        "--epochs", "1", "--seeds", "0", "1", "--static", "onehot", "megnet16", "--elemnet-epochs", "2"]


def test_training_sizes_are_capped_at_the_training_split():
    assert curves.training_sizes(["100", "300", "max"], 250) == [("100", 100), ("max", 250)]
    assert curves.training_sizes(["10", "10", "40"], 40) == [("10", 10), ("max", 40)]
    with pytest.raises(ValueError, match="'0'"):
        curves.training_sizes(["0"], 40)


def test_training_subsets_are_nested():
    train = np.arange(100, 180)
    small, large = curves.nested_subset(train, 10, 0), curves.nested_subset(train, 30, 0)
    assert len(small) == 10 and len(large) == 30 and set(small) <= set(large) <= set(train)
    assert curves.nested_subset(train, 80, 0) is train


def test_learning_curve_smoke(shared, tmp_path, monkeypatch):
    monkeypatch.setattr(curves, "crabnet_runner", lambda: (None, "no side env in this test"))
    out = tmp_path / "out"
    run.main([*TINY, "--work", str(tmp_path / "work"), "--ledger", str(tmp_path / "ledger"), "--out", str(out)])
    table = pd.read_csv(out / "learning_curves.csv", comment="#")
    assert list(table["size"].astype(str).unique()) == ["10", "25", "max"]
    assert set(table["model"]) == {curves.LABELS[m] for m in ("dynamic", "static", "elemnet")}
    assert (table["test MAE"] > 0).all() and table["val/test"].nunique() == 1  # same val and test at every size
    stages = {"embedding", "conv1", "conv2", "conv3", "conv4", "all"}
    assert set(table.loc[table.model == curves.LABELS["dynamic"], "chosen (val)"]) <= stages
    assert set(table.loc[table.model == curves.LABELS["static"], "chosen (val)"]) <= {"onehot", "megnet16"}
    assert "CrabNet: not run (no side env in this test)" in (out / "learning_curves.md").read_text()
    for _, at in table.groupby("size"):  # % vs the best static row of the same size; verdicts on the others
        static = at[at.model == curves.LABELS["static"]].iloc[0]
        others = at[at.model != curves.LABELS["static"]]
        assert np.isnan(static["% vs best static"]) and set(others["vs best static"]) <= {"win", "tie", "loss"}
        assert np.allclose(others["% vs best static"], 100 * (others["test MAE"] / static["test MAE"] - 1), atol=0.2)
    assert (out / "learning_curves.png").stat().st_size > 0

    # the training sets of the fits are nested, and validation/test are the same at every size
    records = [r for r in ledger.Ledger(tmp_path / "ledger").records.values() if r["kind"] == "property"]
    sizes = sorted(r["result"]["sizes"] for r in records)
    assert len(records) == 3 and len({s.split("/", 1)[1] for s in sizes}) == 1

    def refuse(*args):
        raise AssertionError("a fit held by the ledger was retrained")

    monkeypatch.setattr(fits, "_fit", refuse)
    run.main(["rebuild", "--results", str(out), "--out", str(tmp_path / "again"), "--ledger", str(tmp_path / "ledger")])
    for name in ("learning_curves.csv", "learning_curves.md", "manifest.json"):
        assert (out / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name


def test_crabnet_is_fitted_only_up_to_its_size_cap(shared, tmp_path, monkeypatch):
    calls = []

    def mean_model(formulas, y, split, seed, epochs, threads):  # stands in for the side env: predicts the mean
        calls.append(len(split[0]))
        tr, va, te = split
        pred = np.full(len(te), y[tr].mean())
        return {"val_mae": float(np.mean(np.abs(y[va] - y[tr].mean()))), "test_mae": float(np.mean(np.abs(y[te] - pred))),
                "pred_test": pred.tolist(), "fit_s": 0.0, "epoch_s": None}

    for module in (curves, fits):
        monkeypatch.setattr(module, "crabnet_runner", lambda: (mean_model, None))
    out = tmp_path / "out"
    run.main([*TINY, "--curve-models", "static", "crabnet", "--crabnet-max-size", "10", "--work", str(tmp_path / "work"),
              "--ledger", str(tmp_path / "ledger"), "--out", str(out)])
    assert calls == [10, 10]  # two seeds at size 10, none at 25 or max
    table = pd.read_csv(out / "learning_curves.csv", comment="#")
    assert table.loc[table.model == curves.LABELS["crabnet"], "size"].astype(str).tolist() == ["10"]
    assert "fitted at training sizes <= 10 only" in (out / "learning_curves.md").read_text()


def test_from_ledger_publishes_what_is_done_and_names_the_rest(shared, tmp_path, monkeypatch):
    monkeypatch.setattr(curves, "crabnet_runner", lambda: (None, "no side env in this test"))
    common = ["--work", str(tmp_path / "work"), "--ledger", str(tmp_path / "ledger")]
    tiny = [a for a in TINY if a != "max"]  # sizes 10 and 25 only
    run.main([*tiny, *common, "--out", str(tmp_path / "first")])

    def refuse(*args):
        raise AssertionError("--from-ledger trained a fit")

    monkeypatch.setattr(fits, "_fit", refuse)
    out = tmp_path / "out"
    run.main([*TINY, "--from-ledger", *common, "--out", str(out)])  # asks for "max" too, which is not there
    table = pd.read_csv(out / "learning_curves.csv", comment="#")
    assert table.equals(pd.read_csv(tmp_path / "first" / "learning_curves.csv", comment="#"))
    notes = (out / "learning_curves.md").read_text()
    assert "not in the ledger yet (table published with --from-ledger): matbench:n at max: " + ", ".join(
        curves.LABELS[m] for m in ("dynamic", "static", "elemnet")) in notes


def test_size_tick_labels_of_close_sizes_go_on_two_lines():
    """3,000 and 4,000 are 0.12 decades apart on the log axis: the second drops a line, the rest stay."""
    from benchmarks.paper.report import size_labels

    assert size_labels([100, 300, 1000, 3000, 4000]) == ["100", "300", "1,000", "3,000", "\n4,000"]
    assert size_labels([100, 300, 1000, 2553]) == ["100", "300", "1,000", "2,553"]
    assert size_labels([1000, 1100, 1200]) == ["1,000", "\n1,100", "1,200"]  # alternate, never two lowered in a row


def test_figure_caption_names_every_backbone_shown():
    from benchmarks.paper.report import backbones_caption

    settings = "Roost 30 epochs; seeds [0, 1, 2]; backbone cgcnn-mp-eform"
    assert backbones_caption(settings, ["cgcnn-mp-eform", "alignn", "alignn"]) == (
        "Roost 30 epochs; seeds [0, 1, 2]; backbones cgcnn-mp-eform, alignn")
    one = backbones_caption(settings, ["alignn-ff-wt10"])
    assert one == "Roost 30 epochs; seeds [0, 1, 2]; backbone alignn-ff-wt10"
