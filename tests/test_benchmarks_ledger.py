"""The benchmark ledger: fits are stored with their identity, read back instead of retrained, never
served for another identity, and every table is rebuilt from ledger + manifest byte for byte."""

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.paper import fits, ledger, run  # noqa: E402

TINY = ["static-dynamic", "--backbone", "cgcnn-mp-eform",  # fast; the assertions name its stages
        "--props", "jarvis:formation_energy_peratom", "--max-samples", "30", "--epochs", "1",
        "--seeds", "0", "1", "--static", "onehot", "megnet16"]
TABLES = ["table2_static_vs_dynamic.csv", "table2_static_vs_dynamic.md", "table2_all_fits.csv",
          "table2_all_fits.md", "manifest.json"]


def _run(tmp: Path, out: str, *extra: str) -> Path:
    """The tiny Table 2 into ``tmp/out`` with the ledger ``tmp/ledger`` (embedding cache shared)."""
    run.main([*TINY, *extra, "--work", str(tmp / "work"), "--ledger", str(tmp / "ledger"), "--out", str(tmp / out)])
    return tmp / out


def _records(folder: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(folder.glob("*.jsonl")) for line in path.read_text().splitlines()]


@pytest.fixture
def counted(monkeypatch):
    """Count the fits really trained."""
    calls = []
    real = fits._fit

    def fit(*args):
        calls.append(args[0])
        return real(*args)

    monkeypatch.setattr(fits, "_fit", fit)
    return calls


def test_a_second_run_trains_nothing_and_writes_the_same_tables(shared, tmp_path, counted, monkeypatch):
    first = _run(tmp_path, "a")
    records = _records(tmp_path / "ledger")
    fit_records = [r for r in records if r["kind"] == "fit"]
    # selection on seed 0: 2 static tables + 5 CGCNN stages + "all"; seed 1: best static, last, tuned (1-3 fits)
    assert len(counted) == len(fit_records) and 8 + 1 <= len(fit_records) <= 8 + 3
    assert [r["key"] for r in records] == sorted(r["key"] for r in records)  # deterministic file order
    prop = next(r for r in records if r["kind"] == "property")
    assert prop["identity"]["property"] == "jarvis:formation_energy_peratom" and prop["result"]["unit"] == "eV/atom"
    for r in fit_records:
        assert r["key"] == ledger.digest(r["identity"])
        assert r["identity"]["params"]["epochs"] == 1 and r["identity"]["n"] == 30 - prop["result"]["n_dropped"]
        assert len(r["result"]["pred_test"]) == int(prop["result"]["sizes"].split("/")[2])
        assert {"git", "machine", "date", "device"} <= set(r["provenance"])

    def refuse(*args):
        raise AssertionError("a fit held by the ledger was retrained")

    monkeypatch.setattr(fits, "_fit", refuse)
    second = _run(tmp_path, "a")  # same command line, so even the header's command matches
    for name in TABLES:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_a_changed_setting_or_split_retrains(shared, tmp_path, counted):
    _run(tmp_path, "a")
    n = len(counted)
    _run(tmp_path, "b", "--epochs", "2")  # another fit setting: every fit again
    assert len(counted) - n >= 9
    n = len(counted)
    _run(tmp_path, "c", "--max-train", "15")  # another training split: every fit again
    assert len(counted) - n >= 9
    idents = [r["identity"] for r in _records(tmp_path / "ledger") if r["kind"] == "fit"]
    assert {i["params"]["epochs"] for i in idents} == {1, 2} and len({i["split"] for i in idents}) == 2


def test_a_record_is_never_served_for_another_identity(tmp_path):
    from benchmarks.paper.settings import Settings

    store = ledger.Ledger(tmp_path)
    ident = {"property": "mp:band_gap", "model": "roost", "seed": 0, "params": {"epochs": 3}}
    store.put("fit", ident, {"test_mae": 0.5}, Settings())
    assert ledger.Ledger(tmp_path).get(ident)["result"] == {"test_mae": 0.5}  # read back from the file
    assert store.get({**ident, "seed": 1}) is None and store.get({**ident, "params": {"epochs": 4}}) is None
    path = tmp_path / "mp_band_gap.jsonl"
    tampered = json.loads(path.read_text())
    tampered["identity"]["seed"] = 7  # same key, another identity
    path.write_text(json.dumps(tampered) + "\n")
    with pytest.raises(ValueError, match="holds identity"):
        ledger.Ledger(tmp_path).get(ident)


def test_rebuild_writes_what_the_run_wrote(shared, tmp_path):
    out = _run(tmp_path, "a")
    run.main(["rebuild", "--results", str(out), "--out", str(tmp_path / "again"), "--ledger", str(tmp_path / "ledger")])
    for name in TABLES:
        assert (out / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name


COMMITTED = sorted((REPO / "benchmarks" / "results").rglob(ledger.MANIFEST))


@pytest.mark.parametrize("manifest", COMMITTED, ids=[str(m.parent.relative_to(REPO)) for m in COMMITTED])
def test_the_committed_ledger_rebuilds_every_committed_table(manifest, tmp_path):
    """Each committed table, rendered again from the committed ledger alone, equals the committed file."""
    store = ledger.Ledger(REPO / "benchmarks" / "results" / "ledger")
    run.main(["rebuild", "--manifest", str(manifest), "--results", str(manifest.parent), "--out", str(tmp_path),
              "--ledger", str(store.folder)])
    written = [p.name for p in tmp_path.iterdir() if p.suffix in (".csv", ".md")]
    assert written
    for name in written:
        assert (tmp_path / name).read_bytes() == (manifest.parent / name).read_bytes(), name


def test_weights_given_by_path_enter_the_identity_by_content(tmp_path):
    """A fit on weights from a path carries their content hash, so retrained weights at the same path retrain."""
    from benchmarks.paper.settings import Settings

    from skdynemb import DynamicEmbeddingTransformer

    weights = REPO / "skdynemb" / "data" / "alignn-mp-eform"
    if not weights.exists():
        pytest.skip("the shipped ALIGNN extractor is not in this checkout")
    assert ledger.weights_hash(Settings()) is None  # shipped weights: named by the backbone
    expected = DynamicEmbeddingTransformer("alignn", weights=str(weights), progress=False).fit().backbone_.fingerprint()
    assert ledger.weights_hash(Settings(backbone="alignn", weights=str(weights), work=str(tmp_path))) == expected
    assert len(expected) == 64


def test_weight_averaging_of_a_job_reaches_its_fit_and_its_identity(shared, tmp_path):
    """A Roost job with ``swa_start`` in its params is trained with it and stored apart from the plain fit."""
    from benchmarks.paper.data import load_property
    from benchmarks.paper.settings import Settings

    s = Settings(max_samples=60, epochs=3, seeds=(0,), work=str(tmp_path / "work"))
    data = load_property("jarvis:formation_energy_peratom", s)
    store = ledger.Ledger(tmp_path / "ledger")
    plain = fits.job("roost", "static:megnet16", 0, s.roost_params())
    last = fits.job("roost", "static:megnet16", 0, s.roost_params() | {"swa_start": 3})  # mean of one epoch
    averaged = fits.job("roost", "static:megnet16", 0, s.roost_params() | {"swa_start": 1})
    got = fits.run_fits(store, data, [plain, last, averaged], s, {})
    assert len({json.dumps(got[j]["identity"], sort_keys=True) for j in (plain, last, averaged)}) == 3
    assert got[last]["identity"]["params"]["swa_start"] == 3
    # the mean of the last epoch alone is the plain fit; the mean of all three epochs is another network
    assert got[last]["result"]["pred_test"] == got[plain]["result"]["pred_test"]
    assert got[averaged]["result"]["pred_test"] != got[plain]["result"]["pred_test"]
