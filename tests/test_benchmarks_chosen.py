"""The ``chosen`` command of the paper harness (Table 2 chosen on validation, pre-registered ensembles)
at tiny sizes on real Matbench dielectric data: ensemble MAEs recomputed from the ledger's predictions
and the data's targets, the validation rule, members of another backbone and unions, ledger reuse and
the byte-for-byte rebuild."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.paper import data, fits, ledger, run  # noqa: E402
from benchmarks.paper.settings import Settings  # noqa: E402

OTHER = "alignn-mp-eform"
MEMBERS = ["dynamic:conv2", "dynamic:conv4", f"{OTHER}/dynamic:gcn2", f"union:dynamic:conv4|dynamic@{OTHER}:gcn2"]
LABELS = ["conv2", "conv4", f"{OTHER}/gcn2", f"union:dynamic:conv4|dynamic@{OTHER}:gcn2"]
TINY = ["--backbone", "cgcnn-mp-eform", "--props", "matbench:n", "--max-samples", "60", "--epochs", "2",
        "--seeds", "0", "1", "--select-seeds", "1", "--static", "onehot", "magpie", "--members", *MEMBERS]


def _refuse(*args):
    raise AssertionError("a fit held by the ledger was retrained")


def _fits(records, inputs, backbone="cgcnn-mp-eform"):
    """seed -> result of the Roost fits of ``inputs`` on ``backbone`` among ``records``."""
    return {r["identity"]["seed"]: r["result"] for r in records
            if r["kind"] == "fit" and r["identity"]["inputs"] == inputs and r["identity"]["backbone"] == backbone}


def test_chosen_table_from_the_ledger_and_its_rebuild(shared, tmp_path, monkeypatch):
    paths = ["--work", str(tmp_path / "work"), "--ledger", str(tmp_path / "ledger")]
    out = tmp_path / "out"
    run.main(["chosen", *TINY, *paths, "--out", str(out)])
    table = pd.read_csv(out / "table2_chosen.csv", comment="#")
    members = pd.read_csv(out / "table2_members.csv", comment="#")
    records = list(ledger.Ledger(tmp_path / "ledger").records.values())

    s = Settings(backbone="cgcnn-mp-eform", max_samples=60, work=str(tmp_path / "work"))
    prop = data.load_property("matbench:n", s)
    y_test = prop.y[prop.split[2]]
    per_member = [_fits(records, "dynamic:conv2"), _fits(records, "dynamic:conv4"),
                  _fits(records, "dynamic:gcn2", backbone=OTHER), _fits(records, MEMBERS[3].split("/", 1)[-1])]
    assert [len(m) for m in per_member] == [2, 2, 2, 2]
    ensemble = [np.mean(np.abs(np.mean([m[seed]["pred_test"] for m in per_member], axis=0) - y_test))
                for seed in (0, 1)]
    row = table.iloc[0]
    assert row["ensemble MAE"] == pytest.approx(np.mean(ensemble), rel=1e-3)
    assert row["ensemble std"] == pytest.approx(np.std(ensemble, ddof=1), rel=1e-3, abs=1e-6)

    statics = {t: _fits(records, f"static:{t}") for t in ("onehot", "magpie")}
    best = min(statics, key=lambda t: statics[t][0]["val_mae"])
    assert row["best static (val)"] == best
    static_test = [statics[best][seed]["test_mae"] for seed in (0, 1)]
    assert row["static MAE"] == pytest.approx(np.mean(static_test), rel=1e-3)
    member_val = min(m[0]["val_mae"] for m in per_member)
    expected = "ensemble" if member_val < statics[best][0]["val_mae"] else "static"
    assert row["chosen (val)"] == expected
    assert row["chosen MAE"] == pytest.approx(row["ensemble MAE" if expected == "ensemble" else "static MAE"])
    # the static ensemble of equal size: 4 members over 2 seeds -> each window holds both seeds
    both = np.mean(np.abs(np.mean([statics[best][seed]["pred_test"] for seed in (0, 1)], axis=0) - y_test))
    assert row["static ensemble MAE"] == pytest.approx(both, rel=1e-3)
    assert list(members["input"]) == LABELS
    for label, m in zip(LABELS, per_member):
        mrow = members[members["input"] == label].iloc[0]
        assert mrow["test MAE"] == pytest.approx(np.mean([m[seed]["test_mae"] for seed in (0, 1)]), rel=1e-3)
    # new fits keep their validation predictions (for ensembles chosen on validation later)
    assert len(per_member[0][0]["pred_val"]) == len(prop.split[1])

    monkeypatch.setattr(fits, "_fit", _refuse)
    run.main(["chosen", *TINY, *paths, "--out", str(out), "--from-ledger"])
    again = tmp_path / "again"
    run.main(["rebuild", "--results", str(out), "--out", str(again), "--ledger", str(tmp_path / "ledger")])
    for name in ("table2_chosen.csv", "table2_chosen.md", "table2_members.csv", "table2_members.md", "manifest.json"):
        assert (out / name).read_bytes() == (again / name).read_bytes(), name


def test_members_parse_backbone_and_refuse_duplicates(shared, tmp_path):
    s = Settings(backbone="cgcnn-mp-eform")
    from benchmarks.paper.chosen import member_label, parse_member

    assert parse_member("dynamic:conv4", s) == ("cgcnn-mp-eform", "dynamic:conv4")
    assert parse_member("sevenn-0/dynamic:interaction3", s) == ("sevenn-0", "dynamic:interaction3")
    assert member_label("sevenn-0", "dynamic:interaction3", s) == "sevenn-0/interaction3"
    # weights by path: NAME=WEIGHTS; the weights enter the member's settings (and so its fits' identity)
    folder = tmp_path / "ckpt" / "alignn-ff-eform"
    backbone, inputs = parse_member(f"alignn={folder}/dynamic:gcn4", s)
    assert (backbone, inputs) == (f"alignn={folder}", "dynamic:gcn4")
    assert member_label(backbone, inputs, s) == "alignn=alignn-ff-eform/gcn4"
    from benchmarks.paper.chosen import member_settings

    sb = member_settings(backbone, s)
    assert (sb.backbone, sb.weights) == ("alignn", str(folder.resolve())) and member_settings("cgcnn-mp-eform", s) is s
    with pytest.raises(SystemExit, match="twice"):
        run.main(["chosen", *TINY[:-len(MEMBERS)], "dynamic:conv4", "cgcnn-mp-eform/dynamic:conv4",
                  "--work", str(tmp_path / "w"), "--ledger", str(tmp_path / "l"), "--out", str(tmp_path / "o")])
