"""The CrabNet benchmark peer (benchmarks/paper/crabnet.py): real tiny fits in its side env, and its errors.

The real fits need the env of ``bash scripts/setup-crabnet.sh`` (benchmark-only, not built by CI);
without it they skip. The error tests (missing env, an interpreter without crabnet, a failing or
hanging worker, bad input) need no side env and always run.
"""

import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.paper import crabnet as cn  # noqa: E402

# small CrabNet (d_model 64, feed-forward 128, 20 epochs in cycles of 5, batch 16): ~5-10 s a fit on one core;
# its test MAE was 0.69-0.72 of the mean baseline's for seeds 0-2
TINY = dict(epochs=20, batch_size=16, epochs_step=5, d_model=64, dim_feedforward=128)


@pytest.fixture(scope="module")
def side_env():
    try:
        return cn.check_env()
    except cn.CrabNetEnvError as exc:
        pytest.skip(f"CrabNet side env not usable (benchmark-only; `bash scripts/setup-crabnet.sh` builds it): {exc}")


@pytest.fixture(scope="module")
def jarvis(shared):
    """JARVIS formation energies (eV/atom): 100 seeded official-train entries, 40 official val, the official test.

    Returned as (compositions, y, split) over just those entries. A short validation split keeps the
    fits fast: CrabNet predicts it after every batch of its SWA epochs.
    """
    from skdynemb.datasets import load_jarvis_leaderboard
    task = load_jarvis_leaderboard().task("formation_energy_peratom", missing="drop")
    parts = task.split_indices()
    rows = [np.sort(np.random.default_rng(0).choice(parts["train"], 100, replace=False)), parts["val"][:40],
            parts["test"]]
    used = np.concatenate(rows)
    comps = [task.structures[int(i)].composition for i in used]
    bounds = np.cumsum([0, *map(len, rows)])
    return comps, task.y[used], tuple(np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:]))


def test_real_fit_learns_and_is_reproducible_for_a_seed(side_env, jarvis):
    comps, y, split = jarvis
    tr, va, te = split
    first = cn.crabnet_fit(comps, y, split, seed=0, **TINY)
    pred = np.array(first["pred_test"])
    assert pred.shape == (len(te),) and np.isfinite(pred).all()
    assert first["test_mae"] == pytest.approx(np.abs(pred - y[te]).mean())
    baseline = np.abs(y[te] - y[tr].mean()).mean()
    assert first["test_mae"] < 0.85 * baseline, (first["test_mae"], baseline)
    assert first["epochs"] == 20 and 1 <= first["epochs_run"] <= 20 and first["fit_s"] > 0
    assert first["epoch_s"] == pytest.approx(first["fit_s"] / first["epochs_run"])
    assert first["versions"]["crabnet"] == "2.0.8" and first["versions"]["python"].startswith("3.10.")
    # bitwise the same for the same seed on the CPU
    again = cn.crabnet_fit(comps, y, split, seed=0, **TINY)
    assert again["pred_test"] == first["pred_test"] and again["val_mae"] == first["val_mae"]


def test_formulas_as_strings_seeds_and_a_failing_worker(side_env, jarvis):
    comps, y, (tr, va, te) = jarvis
    formulas = [c.formula for c in comps]
    split = (tr[:30], va[:10], te[:10])
    quick = dict(epochs=2, batch_size=16, epochs_step=1, d_model=32, dim_feedforward=32)
    res = cn.crabnet_fit(formulas, y, split, seed=0, **quick)
    assert len(res["pred_test"]) == 10 and np.isfinite(res["pred_test"]).all()
    assert cn.crabnet_fit(formulas, y, split, seed=1, **quick)["pred_test"] != res["pred_test"]
    with pytest.raises(cn.CrabNetWorkerError, match=r"(?s)exit status 1.*no_such_argument"):
        cn.crabnet_fit(formulas, y, split, seed=0, epochs=2, no_such_argument=1)


def test_missing_env_names_the_setup_script(monkeypatch, tmp_path):
    monkeypatch.setenv(cn.PYTHON_ENV_VAR, str(tmp_path / "absent" / "bin" / "python"))
    assert cn.crabnet_available() is False
    with pytest.raises(cn.CrabNetEnvError, match=r"no CrabNet interpreter at .*absent.*SKDYNEMB_CRABNET_PYTHON"
                                                 r".*bash scripts/setup-crabnet\.sh"):
        cn.crabnet_fit(["NaCl", "KCl", "LiF"], [1.0, 2.0, 3.0], ([0], [1], [2]), seed=0)
    monkeypatch.delenv(cn.PYTHON_ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(cn.CrabNetEnvError, match=r"skdynemb/crabnet-2\.0\.8/bin/python \(from the default location"):
        cn.check_env()


def test_interpreter_without_crabnet(tmp_path):
    # this very interpreter (skdynemb's env) has no crabnet: the worker exits with its "env broken" status
    with pytest.raises(cn.CrabNetEnvError, match=r"(?s)cannot import crabnet.*bash scripts/setup-crabnet\.sh"):
        cn.check_env(sys.executable)
    assert cn.crabnet_available(sys.executable) is False


def _fake_python(folder: Path, body: str) -> Path:
    """A stand-in interpreter: a shell script that ignores its arguments and runs ``body``."""
    folder.mkdir()
    exe = folder / "python"
    exe.write_text(f"#!/bin/sh\n{body}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


def test_worker_failure_and_timeout_quote_stderr(tmp_path):
    data = (["NaCl", "KCl", "LiF"], [1.0, 2.0, 3.0], ([0], [1], [2]))
    broken = _fake_python(tmp_path / "broken", "echo 'first line' >&2; echo 'RuntimeError: out of memory' >&2; exit 1")
    with pytest.raises(cn.CrabNetWorkerError, match=r"(?s)\(fit\) failed \(exit status 1\).*out of memory"):
        cn.crabnet_fit(*data, seed=0, python=broken)
    slow = _fake_python(tmp_path / "slow", "echo 'still training' >&2; exec sleep 30")
    with pytest.raises(cn.CrabNetWorkerError, match=r"(?s)still running after 1 s.*still training"):
        cn.crabnet_fit(*data, seed=0, python=slow, timeout=1)


@pytest.mark.parametrize("args, message", [
    ((["NaCl", "", "LiF"], [1.0, 2.0, 3.0], ([0], [1], [2])), r"sample 1: formula must be a non-empty string"),
    ((["NaCl", "KCl", "LiF"], [1.0, np.nan, 3.0], ([0], [1], [2])), r"sample 1 \(KCl\): target is nan"),
    ((["NaCl", "KCl", "LiF"], [1.0, 2.0], ([0], [1], [2])), r"3 formulas but 2 targets"),
    ((["NaCl", "KCl", "LiF"], [1.0, 2.0, 3.0], ([0], [], [2])), r"split val is empty"),
    ((["NaCl", "KCl", "LiF"], [1.0, 2.0, 3.0], ([0], [1], [5])), r"split test has position 5, outside the 3"),
    ((["NaCl", "KCl", "LiF"], [1.0, 2.0, 3.0], ([0], [1])), r"split must be \(train, val, test\)"),
])
def test_bad_input_is_named_before_any_worker_runs(args, message, tmp_path):
    never = tmp_path / "never-run"
    with pytest.raises(ValueError, match=message):
        cn.crabnet_fit(*args, seed=0, python=never)


def test_options_the_worker_sets_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"options may not set \['random_state'\]"):
        cn.crabnet_fit(["NaCl", "KCl", "LiF"], [1.0, 2.0, 3.0], ([0], [1], [2]), seed=0, random_state=3,
                       python=tmp_path / "never-run")
    with pytest.raises(ValueError, match=r"options must be JSON-serialisable"):
        cn.crabnet_fit(["NaCl", "KCl", "LiF"], [1.0, 2.0, 3.0], ([0], [1], [2]), seed=0, criterion=os.getcwd,
                       python=tmp_path / "never-run")
