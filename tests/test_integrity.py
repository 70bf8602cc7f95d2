"""Nothing stale, nothing mixed, nothing misattributed: resumes, caches, error attribution, cells.

Each test is one case of the integrity issue, on real structures (Materials Project records,
or textbook crystals built from their space groups).
"""

import csv
import json
import os
import pickle
import shutil
import signal
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from pymatgen.core import Lattice, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from skdynemb import DynamicEmbeddingTransformer
from skdynemb import streaming
from skdynemb.cache import CacheEntryWarning, StageCache, clear_cache
from skdynemb.errors import BackboneBatchError, InvalidStructureError
from skdynemb.streaming import errors_path, extract_to_file, parts_dir
from skdynemb.structures import standardize, to_crystal

CGCNN = "cgcnn-mp-eform"  # the fast shipped backbone these tests were written for (the default is alignn-ff)

REPO = Path(__file__).resolve().parents[1]
ALIGNN_SHIPPED = REPO / "skdynemb" / "data" / "alignn-mp-eform"
CPU = dict(progress=False, device="cpu")


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return path


def _umask(mask):
    old = os.umask(mask)
    return old


def nacl():
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def isolated():
    """Na and Cl 13 Å apart: no neighbour within CHGNet's 6 Å atom-graph cutoff."""
    return Structure(Lattice.cubic(15.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


# ----------------------------------------------------------------------------- 1. resume integrity
def test_resume_with_changed_structures_recomputes_them(mp_records, tmp_path, monkeypatch):
    records = [{"material_id": r["material_id"], "cif": r["cif"]} for r in mp_records[:8]]
    path = _write(tmp_path / "in.json", records)
    out = tmp_path / "out.parquet"
    t = DynamicEmbeddingTransformer(CGCNN, pooling="mean", batch_size=4, **CPU)
    real_write = streaming._write_part

    def stop_at_chunk_1(parts, chunk, *args):
        if chunk == 1:
            raise KeyboardInterrupt
        real_write(parts, chunk, *args)

    monkeypatch.setattr(streaming, "_write_part", stop_at_chunk_1)
    with pytest.raises(KeyboardInterrupt):
        extract_to_file(path, out, t, chunk_size=4, progress=False)
    monkeypatch.setattr(streaming, "_write_part", real_write)

    # same ids, other structures in the finished chunk 0
    changed = [dict(r) for r in records]
    changed[1]["cif"], changed[2]["cif"] = mp_records[100]["cif"], mp_records[101]["cif"]
    _write(path, changed)
    with pytest.warns(UserWarning, match=r"chunk 0 .* 2 structure\(s\) changed .*'mp-1000'.*computing it again"):
        summary = extract_to_file(path, out, t, chunk_size=4, progress=False)
    assert summary.resumed_chunks == 0
    fresh = tmp_path / "fresh.parquet"
    extract_to_file(path, fresh, t, chunk_size=4, progress=False)
    pd.testing.assert_frame_equal(pq.read_table(out).to_pandas(), pq.read_table(fresh).to_pandas(), check_exact=True)
    provenance = json.loads(pq.read_schema(out).metadata[b"skdynemb"])
    assert provenance["input_sha256"] == json.loads(pq.read_schema(fresh).metadata[b"skdynemb"])["input_sha256"]


def test_resume_refuses_another_backbone_configuration(mp_records, tmp_path, monkeypatch):
    records = [{"material_id": r["material_id"], "cif": r["cif"]} for r in mp_records[:4]]
    path = _write(tmp_path / "in.json", records)
    weights = shutil.copytree(ALIGNN_SHIPPED, tmp_path / "alignn")
    out = tmp_path / "out.parquet"
    t = DynamicEmbeddingTransformer(backbone="alignn", weights=str(weights), pooling="mean", **CPU)
    monkeypatch.setattr(streaming, "_merge", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        extract_to_file(path, out, t, chunk_size=2, progress=False)
    config = json.loads((weights / "config.json").read_text())
    config["max_neighbors"] = 12  # the same weights, another graph
    (weights / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="differs in: backbone_identity"):
        extract_to_file(path, out, t, chunk_size=2, progress=False)


# ----------------------------------------------------------------------------- 2. one error path
@pytest.fixture(scope="module")
def forty(mp_records):
    """40 small MP records (<= 8 sites), with CHGNet's isolated-atom case at index 37."""
    small = [r for r in mp_records[:400] if len(Structure.from_str(r["cif"], fmt="cif")) <= 8][:39]
    records = [{"material_id": r["material_id"], "cif": r["cif"]} for r in small]
    records.insert(37, {"material_id": "isolated", "cif": isolated().to(fmt="cif")})
    return records


def test_chgnet_graph_failure_names_the_global_index_and_is_skipped(forty, tmp_path, capsys):
    from skdynemb.cli import main

    path = _write(tmp_path / "forty.json", forty)
    out = tmp_path / "out.parquet"
    args = ["extract", str(path), "-o", str(out), "--backbone", "chgnet", "--chunk-size", "20", "--device", "cpu",
            "--no-progress"]
    t = DynamicEmbeddingTransformer(backbone="chgnet", pooling="mean", **CPU).fit()
    assert main(args) == 1 and not out.exists()
    assert "sample 37 (id='isolated'): CHGNet cannot build its graph" in capsys.readouterr().err
    assert main([*args, "--skip-invalid"]) == 0
    table = pq.read_table(out).to_pandas()
    assert list(table["id"]) == [r["material_id"] for i, r in enumerate(forty) if i != 37]
    with open(errors_path(out)) as fh:
        rows = list(csv.DictReader(fh))
    assert [(int(r["index"]), r["id"]) for r in rows] == [(37, "isolated")] and "isolated atom" in rows[0]["reason"]
    # the structures batched with it keep their rows
    kept = t.transform([Structure.from_str(r["cif"], fmt="cif") for r in forty[36:39:2]])
    np.testing.assert_allclose(table.iloc[36:38, 1:].to_numpy(), kept, atol=1e-5)


def test_alignn_graph_failure_names_the_sample():
    far = Structure(Lattice.cubic(800.0), ["Na"], [[0, 0, 0]])  # fewer than k neighbours within 1000 Å
    t = DynamicEmbeddingTransformer(backbone="alignn-mp-eform", batch_size=2, **CPU).fit()
    X = pd.Series([nacl(), nacl(), far], index=["a", "b", "far"])
    with pytest.raises(InvalidStructureError, match=r"^sample 2 \(id='far'\): .*fewer than 8 neighbours"):
        t.transform(X)


def test_element_coverage_is_an_invalid_structure():
    og = Structure(Lattice.cubic(5.0), ["Og"], [[0, 0, 0]])
    for backbone in ("cgcnn-mp-eform", "alignn-mp-eform"):
        t = DynamicEmbeddingTransformer(backbone=backbone, **CPU).fit()
        with pytest.raises(InvalidStructureError, match=r"^sample 1: .*118"):
            t.transform([nacl(), og])


def test_batch_failure_not_caused_by_a_structure_aborts(monkeypatch):
    t = DynamicEmbeddingTransformer(CGCNN, **CPU).fit()

    def out_of_memory(crystals):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(t.backbone_, "forward_stages", out_of_memory)
    with pytest.raises(BackboneBatchError, match=r"batch of structures \[0, 1\].*smaller batch_size"):
        t.transform([nacl(), nacl()])


def test_featurizer_ignore_errors_skips_exactly_the_bad_sample():
    from skdynemb.featurizers import DynamicEmbeddingFeaturizer

    f = DynamicEmbeddingFeaturizer(backbone="chgnet", device="cpu").fit()
    rows = f.featurize_many([nacl(), isolated(), nacl()], ignore_errors=True, return_errors=True, pbar=False)
    assert np.isnan(rows[1][:-1]).all() and "sample 1" in rows[1][-1] and "isolated" in rows[1][-1]
    assert np.isfinite(rows[0][:-1]).all() and rows[0][-1] is np.nan
    np.testing.assert_allclose(rows[0][:-1], rows[2][:-1], atol=1e-5)


# ----------------------------------------------------------------------------- 3. cache integrity
def test_config_edit_invalidates_the_cache(tmp_path):
    weights = shutil.copytree(ALIGNN_SHIPPED, tmp_path / "alignn")
    structures = [nacl(), Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.43), ["Si"], [[0, 0, 0]])]

    def rows(memory):
        t = DynamicEmbeddingTransformer(backbone="alignn", weights=str(weights), pooling="mean", memory=memory, **CPU)
        return t.fit().transform(structures)

    cached = rows(tmp_path / "cache")
    config = json.loads((weights / "config.json").read_text())
    config["max_neighbors"] = 4  # was 8: NaCl's first shell (6) instead of the first two (18)
    (weights / "config.json").write_text(json.dumps(config))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheEntryWarning)
        after = rows(tmp_path / "cache")
    np.testing.assert_array_equal(after, rows(None))  # the edited graph's rows, not the cached ones
    assert np.abs(after - cached).max() > 1e-3


@pytest.fixture
def cached(tmp_path, licoo2, co3o4):
    """A transformer with a cache holding LiCoO2 and Co3O4, their rows without cache, and the cache."""
    t = DynamicEmbeddingTransformer(CGCNN, memory=tmp_path / "cache", stage="all", **CPU).fit()
    plain = DynamicEmbeddingTransformer(CGCNN, stage="all", **CPU).fit().transform([licoo2, co3o4])
    t.transform([licoo2, co3o4])
    cache = StageCache(tmp_path / "cache", t.backbone_, t.backbone_identity_)
    return t, plain, cache


def _entry(cache, crystal):
    return cache.path(crystal.content_hash())


def test_swapped_nan_and_truncated_entries_are_recomputed(cached, licoo2, co3o4):
    t, plain, cache = cached
    a, b = _entry(cache, licoo2), _entry(cache, co3o4)
    good = a.read_bytes()
    shutil.copyfile(b, a)  # another structure's (valid) entry
    with pytest.warns(CacheEntryWarning, match=rf"{a}.*for other input"):
        assert t.transform([licoo2]) == plain[[0]]
    with np.load(a) as data:
        arrays = dict(data)
    arrays["stage_4"] = np.full_like(arrays["stage_4"], np.nan)
    with open(a, "wb") as fh:
        np.savez(fh, **arrays)
    with pytest.warns(CacheEntryWarning, match=rf"{a}.*(non-finite|do not match the checksum)"):
        assert t.transform([licoo2]) == plain[[0]]
    a.write_bytes(good[: len(good) // 2])
    with pytest.warns(CacheEntryWarning, match=rf"{a}.*unreadable"):
        assert t.transform([licoo2]) == plain[[0]]
    assert a.read_bytes() == good  # rewritten as it was


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (Path(self.marker),)


def test_a_pickle_in_the_cache_never_runs(cached, licoo2, tmp_path):
    t, plain, cache = cached
    marker = tmp_path / "pwned"
    path = _entry(cache, licoo2)
    path.write_bytes(pickle.dumps(_Payload(marker)))
    assert pickle.loads(path.read_bytes()) is None and marker.exists()  # the payload works when unpickled
    marker.unlink()
    with pytest.warns(CacheEntryWarning, match=rf"{path}.*unreadable.*pickled"):
        assert t.transform([licoo2]) == plain[[0]]
    assert not marker.exists()


def test_cache_files_follow_the_umask_and_can_be_cleared(tmp_path, licoo2):
    old = _umask(0o027)
    try:
        DynamicEmbeddingTransformer(CGCNN, memory=tmp_path / "c", **CPU).fit().transform([licoo2])
    finally:
        os.umask(old)
    (entry,) = (tmp_path / "c").rglob("*.npz")
    assert stat.S_IMODE(entry.stat().st_mode) == 0o640
    (tmp_path / "c" / "mine.txt").write_text("not ours")
    clear_cache(tmp_path / "c")
    assert not (tmp_path / "c" / "skdynemb").exists() and (tmp_path / "c" / "mine.txt").exists()


# ----------------------------------------------------------------------------- 4. cells
def _three_cells(structure):
    sga = SpacegroupAnalyzer(structure)
    prim = sga.get_primitive_standard_structure()
    return [prim, sga.get_conventional_standard_structure(), prim * (2, 2, 2)]


@pytest.mark.parametrize("backbone", ["alignn-mp-eform", "cgcnn-mp-eform"])
def test_cell_primitive_makes_rows_independent_of_the_cell(backbone, licoo2):
    crystals = {
        "NaCl": nacl(),
        "Si": Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.43), ["Si"], [[0, 0, 0]]),
        "LiCoO2": licoo2.to_pymatgen(),
    }
    t = DynamicEmbeddingTransformer(backbone=backbone, stage="all", cell="primitive", **CPU).fit()
    default = DynamicEmbeddingTransformer(backbone=backbone, stage="all", **CPU).fit()
    for name, s in crystals.items():
        cells = _three_cells(s)
        assert len(cells[0]) < len(cells[1]) < len(cells[2])
        rows = t.transform(cells)
        for other in rows[1:]:
            assert other.elements == rows[0].elements
            np.testing.assert_allclose(other.features, rows[0].features, atol=1e-5, err_msg=name)
        if backbone.startswith("alignn") and name == "NaCl":  # the default keeps the cell as given
            given = default.transform(cells)
            assert np.abs(given[1].features - given[0].features).max() > 0.1


def test_standardize_keeps_the_crystal(licoo2):
    for cell in ("primitive", "niggli"):
        s = standardize(to_crystal(licoo2.to_pymatgen() * (2, 1, 1)), cell).to_pymatgen()
        assert s.composition.reduced_formula == "LiCoO2"
        assert SpacegroupAnalyzer(s).get_space_group_symbol() == "R-3m"
    with pytest.raises(ValueError, match="cell must be one of"):
        DynamicEmbeddingTransformer(CGCNN, cell="conventional").fit()


def test_standardize_is_the_deprecated_name_of_cell(licoo2):
    """``standardize=`` (the transformer's and the featurizer's) still maps the cell, with a
    FutureWarning, until 0.3; ``cell`` and ``standardize`` together are an error."""
    from skdynemb.featurizers import DynamicEmbeddingFeaturizer

    supercell = to_crystal(licoo2.to_pymatgen() * (2, 1, 1), id="LiCoO2")
    new = DynamicEmbeddingTransformer(CGCNN, cell="primitive", **CPU).fit()
    with pytest.warns(FutureWarning, match="`standardize` was renamed `cell` in 0.2 and will be removed in 0.3"):
        old = DynamicEmbeddingTransformer(CGCNN, standardize="primitive", **CPU).fit()
    assert old.extractor_.cell == new.extractor_.cell == "primitive"
    np.testing.assert_array_equal(old.transform([supercell])[0].features, new.transform([licoo2])[0].features)
    with pytest.raises(ValueError, match="both given"):
        DynamicEmbeddingTransformer(CGCNN, cell="niggli", standardize="primitive").fit()
    with pytest.warns(FutureWarning, match="`standardize` was renamed `cell`"):
        assert DynamicEmbeddingFeaturizer(CGCNN, standardize="niggli", device="cpu").fit().transformer_.cell == "niggli"


# ----------------------------------------------------------------------------- 5. validation
def test_one_site_cell_with_a_near_self_image_is_rejected():
    thin = Structure(Lattice([[0.01, 0, 0], [0, 10, 0], [0, 0, 10]]), ["Cu"], [[0, 0, 0]])
    with pytest.raises(InvalidStructureError, match=r"^sample 4 \(id='thin'\): .*0.01 Å from its own periodic image"):
        to_crystal(thin, index=4, id="thin")
    skewed = Structure(Lattice([[3.0, 0, 0], [3.05, 0.04, 0], [0, 0, 3.0]]), ["Cu"], [[0, 0, 0]])
    with pytest.raises(InvalidStructureError, match="0.064 Å from its own periodic image"):
        to_crystal(skewed)  # long lattice vectors, but b - a is 0.064 Å


def test_close_contacts_warn_naming_the_sample():
    s = Structure(Lattice.cubic(5.0), ["Na", "Cl"], [[0, 0, 0], [0.06, 0, 0]])  # 0.3 Å apart
    with pytest.warns(UserWarning, match=r"sample 3 \(id='close'\): sites 0 and 1 are 0.3 Å apart"):
        to_crystal(s, index=3, id="close")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        to_crystal(nacl())  # 2.82 Å: nothing to say


def test_truncated_cif_is_rejected(mp_records):
    record = max(mp_records[:40], key=lambda r: len(r["cif"].splitlines()))
    cut = "\n".join(record["cif"].splitlines()[:-2]) + "\n"  # two atom lines lost at a line boundary
    with pytest.raises(InvalidStructureError, match=r"^sample 7 .*do not match the formula it declares"):
        to_crystal(cut, index=7, id=record["material_id"])


def test_dummy_species_is_named():
    from pymatgen.core.periodic_table import DummySpecies

    s = Structure(Lattice.cubic(4.0), ["O", DummySpecies("X")], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(InvalidStructureError, match=r"^sample 2: site 1 holds 'X0\+', a dummy species"):
        to_crystal(s, index=2)


@pytest.mark.parametrize("bad, message", [("NaCl0", "'Cl' an amount of 0"), ({"Na": 1, "Cl": 0}, "Cl is 0")])
def test_zero_amounts_are_errors(bad, message):
    from skdynemb import StaticEmbeddingTransformer
    from skdynemb.errors import InvalidCompositionError

    with pytest.raises(InvalidCompositionError, match=rf"^sample 1: .*{message}"):
        StaticEmbeddingTransformer().fit().transform(["NaCl", bad])


def test_automl_rejects_string_targets():
    from skdynemb.models import AutoMLRegressor

    X = np.random.default_rng(0).normal(size=(6, 3))
    with pytest.raises(ValueError, match=r"sample 2: target 'n/a' is not a number"):
        AutoMLRegressor(time_budget=-1, max_iter=2).fit(X, [1.0, 2.0, "n/a", 1.0, 2.0, 3.0])


# ----------------------------------------------------------------------------- 6. checkpoints, workers, files
def test_invalid_batchnorm_statistics_are_rejected_by_name(tmp_path):
    from skdynemb.backbones import cgcnn, load_backbone

    checkpoint = torch.load(cgcnn.DEFAULT_WEIGHTS, map_location="cpu", weights_only=True)
    checkpoint["state_dict"]["convs.1.bn2.running_var"][3] = -0.5
    torch.save(checkpoint, tmp_path / "negative.pth.tar")
    with pytest.raises(ValueError, match=r"negative.pth.tar.*convs.1.bn2.running_var"):
        load_backbone("cgcnn-mp-eform", tmp_path / "negative.pth.tar")


def test_unreadable_files_are_named(tmp_path):
    from skdynemb.backbones import cgcnn, load_backbone

    data = cgcnn.DEFAULT_WEIGHTS.read_bytes()
    truncated = tmp_path / "truncated.pth.tar"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"^{truncated}: could not load"):
        load_backbone("cgcnn-mp-eform", truncated)
    folder = shutil.copytree(ALIGNN_SHIPPED, tmp_path / "alignn")
    (folder / "config.json").write_text('{"model": {"name": "alignn", ')
    with pytest.raises(ValueError, match=rf"{folder}.*config.json"):
        load_backbone("alignn", folder)


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if ppid == pid and b"loky" in cmd and b"resource_tracker" not in cmd:
                out.append(int(entry.name))
    return out


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_workers_do_not_outlive_a_killed_parent(mp_records, tmp_path):
    path = _write(tmp_path / "in.json", [{"material_id": r["material_id"], "cif": r["cif"]} for r in mp_records[:200]])
    args = [sys.executable, "-m", "skdynemb.cli", "extract", str(path), "-o", str(tmp_path / "o.parquet"),
            "--backbone", "cgcnn-mp-eform", "--n-jobs", "2", "--batch-size", "4", "--chunk-size", "50",
            "--device", "cpu", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first_part = tmp_path / "o.parquet.parts" / "part-000000.parquet"
    workers = []
    for _ in range(1500):  # until chunk 0 is done: both workers have run tasks; chunks 1-3 are under way
        workers = _children(proc.pid) or workers
        if first_part.exists() or proc.poll() is not None:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "finished before it could be killed"
    assert len(workers) == 2, "no loky workers seen"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for _ in range(100):
        alive = [w for w in workers if Path(f"/proc/{w}").exists() and "Z" not in _state(w)]
        if not alive:
            break
        time.sleep(0.2)
    assert not alive


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_outputs_follow_the_umask(mp_records, tmp_path):
    records = [{"material_id": r["material_id"], "cif": r["cif"]} for r in mp_records[:3]]
    records.append({"material_id": "bad", "cif": "data_x\n_cell_length_a 3\nnot a cif\n"})
    path = _write(tmp_path / "in.json", records)
    old = _umask(0o027)
    try:
        for out in (tmp_path / "o.parquet", tmp_path / "o.npz"):
            extract_to_file(path, out, DynamicEmbeddingTransformer(CGCNN, pooling="mean", **CPU), skip_invalid=True,
                            progress=False)
            assert stat.S_IMODE(out.stat().st_mode) == 0o640
            assert stat.S_IMODE(errors_path(out).stat().st_mode) == 0o640
            assert not parts_dir(out).exists()
    finally:
        os.umask(old)
