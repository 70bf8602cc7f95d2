"""Smoke run of the paper-benchmark harness (benchmarks/paper) at tiny settings on real JARVIS data."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.paper import data, report, run, settings  # noqa: E402

TINY = ["static-dynamic", "--backbone", "cgcnn-mp-eform",  # fast; the assertions name its stages
        "--props", "jarvis:formation_energy_peratom", "--max-samples", "40", "--epochs", "2",
        "--seeds", "0", "1", "--static", "onehot", "megnet16", "--n-jobs", "1"]

COLUMNS = [
    "property", "unit", "train/val/test", "flag", "mean baseline MAE", "best static (val)", "static MAE",
    "static std", "dynamic (last) MAE", "dynamic std", "dynamic %", "dynamic verdict", "tuned stage (val)",
    "tuned MAE", "tuned std", "tuned %", "tuned verdict",
]


def _run(tmp: Path, name: str) -> Path:
    out = tmp / name / "out"
    run.main([*TINY, "--work", str(tmp / name / "work"), "--ledger", str(tmp / name / "ledger"), "--out", str(out)])
    return out


def _without_paths(path: Path) -> list[str]:
    """The file's lines, the command line (which names the run's own folders) left out."""
    return [line for line in path.read_text().splitlines() if "command" not in line]


def test_table2_smoke_is_complete_and_reproducible(shared, tmp_path):
    first, second = _run(tmp_path, "a"), _run(tmp_path, "b")  # separate ledgers: both runs really train

    table = pd.read_csv(first / "table2_static_vs_dynamic.csv", comment="#")
    assert list(table.columns) == COLUMNS
    assert table["property"].tolist() == ["jarvis:formation_energy_peratom"]
    row = table.iloc[0]
    assert row["best static (val)"] in ("onehot", "megnet16")
    assert row["tuned stage (val)"] in ("embedding", "conv1", "conv2", "conv3", "conv4", "all")
    assert row["dynamic %"] == pytest.approx(100 * (row["dynamic (last) MAE"] - row["static MAE"]) / row["static MAE"],
                                             rel=1e-2)
    n_train, n_val, n_test = map(int, row["train/val/test"].split("/"))
    assert n_train + n_val + n_test <= 40 and min(n_train, n_val, n_test) > 0

    fits = pd.read_csv(first / "table2_all_fits.csv", comment="#")
    # selection on seed 0: 2 static tables + 5 stages + "all"; then seeds 1 of best static, last, tuned
    assert set(fits.loc[fits.seed == 0, "embedding"]) == {
        "static:onehot", "static:megnet16", *(f"dynamic:{s}" for s in
                                              ("embedding", "conv1", "conv2", "conv3", "conv4", "all"))}
    assert (fits["test MAE"] > 0).all()
    last = fits[fits.embedding == "dynamic:conv4"]["test MAE"]
    assert row["dynamic (last) MAE"] == pytest.approx(last.mean(), rel=1e-3)

    header = (first / "table2_static_vs_dynamic.csv").read_text().splitlines()
    for key in ("command", "machine", "settings", "split", "seeds"):
        assert any(line.startswith(f"# {key}: ") for line in header), key
    assert "2 epochs" in next(line for line in header if line.startswith("# settings"))
    for name in ("table2_static_vs_dynamic.csv", "table2_all_fits.csv", "table2_static_vs_dynamic.md"):
        same = [_without_paths(out / name) for out in (first, second)]
        assert same[0] == same[1], name
    assert (first / "table2_parity.png").stat().st_size > 0 and (first / "table2_pct_change.png").exists()


def test_verdict_needs_the_difference_to_exceed_the_seed_spread():
    assert report.verdict([1.0, 1.2], [2.0, 2.2]) == "win"  # 1.0 apart, stds 0.14 each
    assert report.verdict([2.0, 2.2], [1.0, 1.2]) == "loss"
    assert report.verdict([1.0, 1.4], [1.2, 1.6]) == "tie"  # 0.2 apart, stds 0.28 each
    assert report.verdict([1.00, 1.001], [1.03, 1.031]) == "tie"  # beyond the stds but < 5 %
    assert report.verdict([1.00, 1.001], [1.03, 1.031], min_pct=1) == "win"
    mean, std = report.seed_stats([1.0, 2.0, 3.0])
    assert (mean, std) == (2.0, pytest.approx(np.std([1.0, 2.0, 3.0], ddof=1)))


def test_tuned_stage_is_what_gridsearchcv_on_the_validation_split_picks(shared, tmp_path):
    """Table 2's "tuned" stage (lowest validation MAE of the seed-0 fits) equals the choice of
    ``GridSearchCV`` over the transformer's ``layer`` with the validation split as its one fold."""
    from sklearn.model_selection import GridSearchCV, PredefinedSplit
    from sklearn.pipeline import make_pipeline

    from skdynemb import DynamicEmbeddingTransformer, RoostRegressor

    out = _run(tmp_path, "a")
    row = pd.read_csv(out / "table2_static_vs_dynamic.csv", comment="#").iloc[0]
    fits = pd.read_csv(out / "table2_all_fits.csv", comment="#")
    s = settings.settings_from(run.parser().parse_args([*TINY, "--work", str(tmp_path / "a" / "work")]))
    prop = data.load_property("jarvis:formation_energy_peratom", s)
    train, val, _ = prop.split
    X = [prop.structures[i] for i in (*train, *val)]  # training order kept: Roost's shuffling depends on it
    y = prop.y[np.concatenate([train, val])]
    stages = ["embedding", "conv1", "conv2", "conv3", "conv4"]
    search = GridSearchCV(
        make_pipeline(
            DynamicEmbeddingTransformer("cgcnn-mp-eform", progress=False, device="cpu"),
            RoostRegressor(max_epochs=s.epochs, batch_size=s.batch_size, out_hidden=s.out_hidden, lr=s.lr,
                           random_state=0),
        ),
        {"dynamicembeddingtransformer__layer": [*range(len(stages)), "all"]},
        cv=PredefinedSplit([-1] * len(train) + [0] * len(val)), scoring="neg_mean_absolute_error", refit=False,
    ).fit(X, y)
    names = [*stages, "all"]
    grid_val = -search.cv_results_["split0_test_score"]
    table_val = [fits.loc[(fits.embedding == f"dynamic:{n}") & (fits.seed == 0), "val MAE"].item() for n in names]
    np.testing.assert_allclose(grid_val, table_val, rtol=1e-3)
    assert names[search.best_index_] == row["tuned stage (val)"]
