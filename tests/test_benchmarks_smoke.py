"""Smoke run of the paper-benchmark harness (benchmarks/paper) at tiny settings on real JARVIS data."""

import re
import sys
from dataclasses import replace
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
    ``GridSearchCV`` over the transformer's ``stage`` with the validation split as its one fold."""
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
        {"dynamicembeddingtransformer__stage": [*range(len(stages)), "all"]},
        cv=PredefinedSplit([-1] * len(train) + [0] * len(val)), scoring="neg_mean_absolute_error", refit=False,
    ).fit(X, y)
    names = [*stages, "all"]
    grid_val = -search.cv_results_["split0_test_score"]
    table_val = [fits.loc[(fits.embedding == f"dynamic:{n}") & (fits.seed == 0), "val MAE"].item() for n in names]
    np.testing.assert_allclose(grid_val, table_val, rtol=1e-3)
    assert names[search.best_index_] == row["tuned stage (val)"]


def test_crabnet_rows_come_from_crabnet_fits_on_the_same_split(shared, tmp_path, monkeypatch):
    from benchmarks.paper import fits

    seen = []

    def train_mean(formulas, y, split, seed, epochs, threads):  # stands in for the side env: predicts the mean
        seen.append((list(formulas), [np.asarray(s).tolist() for s in split], seed))
        tr, va, te = split
        pred = np.full(len(te), y[tr].mean())
        return {"val_mae": float(np.mean(np.abs(y[va] - y[tr].mean()))), "test_mae": float(np.mean(np.abs(y[te] - pred))),
                "pred_test": pred.tolist(), "fit_s": 0.0, "epoch_s": None}

    for module in (run, fits):
        monkeypatch.setattr(module, "crabnet_runner", lambda: (train_mean, ""))
    props = ["jarvis:formation_energy_peratom", "jarvis:bulk_modulus_kv"]
    args = [*TINY[:4], *props, *TINY[5:], "--work", str(tmp_path / "work"), "--ledger", str(tmp_path / "ledger")]
    out = tmp_path / "out"
    run.main([*args, "--crabnet-props", "jarvis:bulk_modulus_kv", "--out", str(out)])

    table = pd.read_csv(out / "table2_static_vs_dynamic.csv", comment="#").set_index("property")
    assert list(table.columns[-4:]) == ["CrabNet MAE", "CrabNet std", "dynamic vs CrabNet %", "dynamic vs CrabNet"]
    assert table.loc["jarvis:formation_energy_peratom", "CrabNet MAE":].isna().all()  # not asked for there
    row = table.loc["jarvis:bulk_modulus_kv"]
    assert row["CrabNet MAE"] == pytest.approx(row["mean baseline MAE"], rel=1e-3) and row["CrabNet std"] == 0
    assert row["dynamic vs CrabNet %"] == pytest.approx(
        100 * (row["dynamic (last) MAE"] / row["CrabNet MAE"] - 1), abs=0.2)
    assert row["dynamic vs CrabNet"] in ("win", "tie", "loss")

    s = settings.settings_from(run.parser().parse_args([*args, "--out", str(out)]))
    prop = data.load_property("jarvis:bulk_modulus_kv", s)
    assert [seed for *_, seed in seen] == [0, 1]  # every seed, on the property's formulas and split
    assert all(f == [c.formula for c in prop.compositions] and sp == [p.tolist() for p in prop.split]
               for f, sp, _ in seen)
    fit_table = pd.read_csv(out / "table2_all_fits.csv", comment="#")
    assert (fit_table.embedding == "CrabNet (formula)").sum() == 2
    assert "of the 1 properties with CrabNet rows" in (out / "table2_static_vs_dynamic.md").read_text()

    run.main(["rebuild", "--results", str(out), "--out", str(tmp_path / "again"), "--ledger", str(tmp_path / "ledger")])
    for name in ("table2_static_vs_dynamic.csv", "table2_all_fits.csv", "manifest.json"):
        assert (out / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name

    with pytest.raises(SystemExit, match="among --props.*jarvis:epsx"):
        run.main([*args, "--crabnet-props", "jarvis:epsx", "--out", str(tmp_path / "bad")])
    # without the side env: the CrabNet rows are read from the ledger (same tables), and a CrabNet fit
    # the ledger lacks stops the run before that property's Roost fits, naming the setup
    for module in (run, fits):
        monkeypatch.setattr(module, "crabnet_runner", lambda: (None, "its side env is missing"))
    run.main([*args, "--crabnet-props", "jarvis:bulk_modulus_kv", "--out", str(tmp_path / "no_env")])
    for name in ("table2_static_vs_dynamic.csv", "table2_all_fits.csv"):  # the header names the other --out
        pd.testing.assert_frame_equal(pd.read_csv(out / name, comment="#"),
                                      pd.read_csv(tmp_path / "no_env" / name, comment="#"))
    fresh = [*args[:-1], str(tmp_path / "fresh_ledger")]
    with pytest.raises(SystemExit, match=r"CrabNet cannot run: its side env is missing; 2 fit\(s\) of "
                                         r"jarvis:bulk_modulus_kv .* not in the ledger"):
        run.main([*fresh, "--crabnet-props", "jarvis:bulk_modulus_kv", "--out", str(tmp_path / "bad")])
    assert not list((tmp_path / "fresh_ledger").glob("jarvis_bulk*"))  # no Roost fit of it was trained


def test_diagnostics_of_a_table2_run(shared, tmp_path):
    from benchmarks.paper import diagnose

    assert diagnose.trimmed_mae(np.arange(1.0, 21.0)) == pytest.approx(10.0)  # 5 % of 20: the 20 left out
    assert diagnose.trimmed_mae(np.array([1.0, 3.0, 100.0]), share=0.3) == pytest.approx(2.0)

    out = _run(tmp_path, "a")
    common = [*TINY[1:], "--work", str(tmp_path / "a" / "work"), "--ledger", str(tmp_path / "a" / "ledger"),
              "--out", str(out)]
    run.main(["diagnose", *common])
    table = pd.read_csv(out / "table2_diagnostics.csv", comment="#")
    row = table.iloc[0]
    s = settings.settings_from(run.parser().parse_args(["diagnose", *common, "--max-samples", "0"]))
    prop = data.load_property("jarvis:formation_energy_peratom", replace(s, max_samples=None))  # all 940: polymorphs
    frame = pd.DataFrame({"formula": [c.reduced_formula for c in prop.compositions], "y": prop.y})
    sizes = frame.groupby("formula")["y"].size()
    repeated = frame[frame.formula.isin(sizes.index[sizes > 1])].groupby("formula")["y"].std(ddof=0)
    n_formulas, spread = diagnose.polymorph_spread(prop)
    assert n_formulas == len(repeated) > 50
    assert spread == pytest.approx(100 * repeated.mean() / prop.y.std(), rel=1e-6)
    atoms = diagnose.atoms_per_formula(prop)
    first = prop.compositions[0]  # counted by hand from the formula string, e.g. "Al2O3" -> 5
    assert atoms[0] == sum(int(n or 1) for n in re.findall(r"[A-Z][a-z]?(\d*)", first.reduced_formula))
    assert row["formulas with polymorphs"] == 0 and np.isnan(row["polymorph spread %"])  # none among 40 samples
    table2 = pd.read_csv(out / "table2_static_vs_dynamic.csv", comment="#").iloc[0]
    assert row["static MAE"] == pytest.approx(table2["static MAE"], rel=1e-3)  # the same fits, from the targets
    assert row["dynamic MAE"] == pytest.approx(table2["dynamic (last) MAE"], rel=1e-3)
    assert row["static trimmed MAE"] <= row["static MAE"] and row["dynamic trimmed MAE"] <= row["dynamic MAE"]

    with pytest.raises(SystemExit, match="other samples or another split"):
        run.main(["diagnose", *[a if a != "40" else "30" for a in common]])  # --max-samples 30: not that table
    with pytest.raises(SystemExit, match="no Table 2"):
        run.main(["diagnose", *common[:-1], str(tmp_path / "empty")])
