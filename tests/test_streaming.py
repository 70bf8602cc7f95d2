"""Streaming, resumable extraction to files (and its dask scale-out) on real structures."""

import csv
import gzip
import io
import json
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from pymatgen.core import Lattice, Structure

from skdynemb import DynamicEmbeddingTransformer
from skdynemb import streaming
from skdynemb.errors import InvalidStructureError
from skdynemb.records import _JsonReader
from skdynemb.streaming import errors_path, extract_to_file, open_source, parts_dir

REPO = Path(__file__).resolve().parents[1]
SETTINGS = dict(backbone="cgcnn-mp-eform", stage="all", pooling="mean", batch_size=8, device="cpu", progress=False)


def transformer(**kw):
    return DynamicEmbeddingTransformer(**{**SETTINGS, **kw})


# ----------------------------------------------------------------------------- data (temporary files)
@pytest.fixture(scope="module")
def dielectric(shared, tmp_path_factory):
    """The first 60 matbench-dielectric structures as a pandas 'columns' JSON (as matbench ships it)."""
    with gzip.open(shared / "data" / "matbench" / "matbench_dielectric.json.gz", "rt") as fh:
        table = json.load(fh)
    keys = list(table["structure"])[:60]
    path = tmp_path_factory.mktemp("dielectric") / "dielectric60.json"
    path.write_text(json.dumps({col: {k: table[col][k] for k in keys} for col in table}))
    return path, keys, [Structure.from_dict(table["structure"][k]) for k in keys]


@pytest.fixture(scope="module")
def mp_file(mp_records, tmp_path_factory):
    """24 Materials Project records (material_id + CIF text, and a NaN field) as JSON.GZ."""
    records = [dict(r) for r in mp_records[:24]]
    records[3]["efermi"] = float("nan")  # the shared file has NaNs too; strict JSON parsers reject them
    path = tmp_path_factory.mktemp("mp") / "mp24.json.gz"
    with gzip.open(path, "wt") as fh:
        json.dump(records, fh)
    return path, records


@pytest.fixture(scope="module")
def reference(dielectric, tmp_path_factory):
    """An uninterrupted extraction of the 60 structures in chunks of 16."""
    out = tmp_path_factory.mktemp("reference") / "ref.parquet"
    summary = extract_to_file(dielectric[0], out, transformer(), chunk_size=16, progress=False)
    assert summary.resumed_chunks == 0 and not parts_dir(out).exists()
    return pq.read_table(out).to_pandas()


# ----------------------------------------------------------------------------- reading
@pytest.mark.parametrize("block", [1, 3, 64])
def test_json_reader_matches_json_module_at_any_block_size(block):
    doc = {
        "rows": [{"id": "a\"b", "x": 1.25e-3, "y": float("nan"), "z": [1, 22, 333]}, {"id": "é", "x": -12345}],
        "n": {"0": 7.5, "1": float("inf")},
        "empty": [], "none": {},
    }
    text = json.dumps(doc)
    reader = _JsonReader(io.StringIO(text), "doc", block=block)
    got = {}
    for key in reader.keys():
        if key == "rows":
            got[key] = list(reader.items())
        elif key == "n":
            got[key] = {k: reader.value() for k in reader.keys()}
        else:
            got[key] = reader.value()
    assert json.dumps(got) == text  # NaN / Infinity survive, numbers cut by a block edge are read whole
    with pytest.raises(ValueError, match="invalid JSON"):
        list(_JsonReader(io.StringIO('[{"a": 1}, {"a": }]'), "bad", block=block).items())


def test_sources_read_ids_and_structures_in_order(dielectric, mp_file, tmp_path):
    path, keys, structures = dielectric
    source = open_source(path)
    assert source.ids == keys
    first = next(source.records())
    assert first[:2] == (0, keys[0]) and Structure.from_dict(first[2]) == structures[0]
    table = json.loads(path.read_text())
    volumes = open_source(path, id_field="volume")  # ids from a column instead of the index
    assert volumes.ids == [str(table["volume"][k]) for k in keys]

    mp_path, records = mp_file
    mp = open_source(mp_path)  # material_id + cif picked automatically
    assert mp.ids == [r["material_id"] for r in records]
    assert [raw for _, _, raw in mp.records()] == [r["cif"] for r in records]

    folder = tmp_path / "cifs"
    folder.mkdir()
    for i, s in enumerate(structures[:3]):
        s.to(filename=str(folder / f"s{i}.cif"))
    structures[3].to(filename=str(folder / "POSCAR_s3"), fmt="poscar")
    (folder / "notes.txt").write_text("not a structure")
    assert open_source(folder).ids == ["POSCAR_s3", "s0", "s1", "s2"]


def test_bad_inputs_name_the_problem(mp_file, tmp_path):
    _, records = mp_file
    dup = tmp_path / "dup.json"
    dup.write_text(json.dumps([records[0], records[1], records[0]]))
    with pytest.raises(ValueError, match=r"duplicate id 'mp-1' \(records 0 and 2\)"):
        open_source(dup)
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps([records[0], {"material_id": "x"}]))
    with pytest.raises(ValueError, match="record 1 has no 'cif' value"):
        open_source(missing)
    with pytest.raises(ValueError, match="pass --id-field"):
        open_source(_write(tmp_path / "noid.json", [{"cif": records[0]["cif"]}]))
    with pytest.raises(ValueError, match="expected a folder of CIF/POSCAR files"):
        open_source(_write(tmp_path / "text.json", "hello"))
    with pytest.raises(FileNotFoundError):
        open_source(tmp_path / "nope.json")


def _write(path, obj):
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


# ----------------------------------------------------------------------------- values and formats
def test_streamed_rows_match_in_memory_transform(dielectric, reference):
    path, keys, structures = dielectric
    expected = transformer().fit().transform(structures)
    assert list(reference["id"]) == keys
    np.testing.assert_allclose(reference.iloc[:, 1:].to_numpy(), expected, rtol=1e-6, atol=1e-6)
    assert list(reference.columns[1:]) == list(transformer().fit().get_feature_names_out())


def test_element_pooling_long_table_parquet_and_npz(dielectric, tmp_path):
    path, keys, structures = dielectric
    subset = streaming.RecordSource(path, keys[:20], lambda: ((k, s.as_dict()) for k, s in zip(keys, structures[:20])))
    pq_out, npz_out, mean_out = tmp_path / "e.parquet", tmp_path / "e.npz", tmp_path / "m.parquet"
    extract_to_file(subset, pq_out, transformer(pooling="element", stage=-1), chunk_size=7, progress=False)
    extract_to_file(subset, npz_out, transformer(pooling="element", stage=-1), chunk_size=20, progress=False)
    extract_to_file(subset, mean_out, transformer(stage=-1), chunk_size=20, progress=False)
    long = pq.read_table(pq_out).to_pandas()
    provenance = json.loads(pq.read_schema(pq_out).metadata[b"skdynemb"])
    assert provenance["backbone"] == "cgcnn-mp-eform" and provenance["stages"] == [4]
    assert provenance["pooling"] == "element" and provenance["weights"] is None
    z = np.load(npz_out)
    assert list(z["ids"]) == list(long["id"]) and list(z["elements"]) == list(long["element"])
    np.testing.assert_array_equal(z["features"], long.iloc[:, 3:].to_numpy())
    mean = pq.read_table(mean_out).to_pandas().set_index("id")
    for key, s in zip(keys[:20], structures[:20]):
        rows = long[long["id"] == key]
        comp = s.composition
        assert sorted(rows["element"]) == sorted(e.symbol for e in comp.elements)
        np.testing.assert_allclose(rows["fraction"], [comp.get_atomic_fraction(e) for e in rows["element"]])
        # atom-mean = fraction-weighted mean of the per-element means
        np.testing.assert_allclose(
            rows["fraction"].to_numpy() @ rows.iloc[:, 3:].to_numpy(), mean.loc[key].to_numpy(), rtol=1e-5, atol=1e-6
        )


def test_folder_input(dielectric, tmp_path):
    _, _, structures = dielectric
    folder = tmp_path / "in"
    folder.mkdir()
    for i, s in enumerate(structures[:5]):
        s.to(filename=str(folder / f"m{i}.cif"))
    out = tmp_path / "f.npz"
    extract_to_file(folder, out, transformer(batch_size=None), chunk_size=2, progress=False)  # backbone's batch size
    z = np.load(out)
    assert list(z["ids"]) == [f"m{i}" for i in range(5)]
    read_back = [Structure.from_file(folder / f"m{i}.cif") for i in range(5)]
    np.testing.assert_allclose(z["features"], transformer().fit().transform(read_back), rtol=1e-6, atol=1e-6)


def test_invalid_structures_fail_by_default_or_are_listed(mp_file, tmp_path):
    _, records = mp_file
    overlap = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0, 0, 0.001]])
    no_cgcnn = Structure(Lattice.cubic(5.0), ["Og"], [[0, 0, 0]])  # CGCNN covers Z = 1..100
    bad = [
        {"material_id": "garbage", "cif": "data_x\n_cell_length_a 3\nnot a cif\n"},
        {"material_id": "overlap", "cif": overlap.as_dict()},
        {"material_id": "oneline", "cif": "/etc/passwd"},
        {"material_id": "og", "cif": no_cgcnn.as_dict()},
    ]
    data = [records[0], bad[0], records[1], bad[1], records[2], bad[2], bad[3], records[3]]
    path = _write(tmp_path / "mixed.json", data)
    out = tmp_path / "mixed.parquet"
    with pytest.raises(InvalidStructureError, match=r"sample 1 \(id='garbage'\): could not parse CIF"):
        extract_to_file(path, out, transformer(), chunk_size=3, progress=False)
    assert not out.exists()
    summary = extract_to_file(path, out, transformer(), chunk_size=3, skip_invalid=True, progress=False)
    table = pq.read_table(out).to_pandas()
    assert list(table["id"]) == [r["material_id"] for r in records[:4]]
    with open(errors_path(out)) as fh:
        rows = list(csv.DictReader(fh))
    assert [(int(r["index"]), r["id"]) for r in rows] == [(1, "garbage"), (3, "overlap"), (5, "oneline"), (6, "og")]
    assert "apart" in rows[1]["reason"] and "one line" in rows[2]["reason"] and "[118]" in rows[3]["reason"]
    assert summary.errors_file == errors_path(out) and summary.n_rows == 4


# ----------------------------------------------------------------------------- resuming
def _assert_same(out, reference):
    got = pq.read_table(out).to_pandas()
    assert got["id"].is_unique
    pd.testing.assert_frame_equal(got, reference, check_exact=True)


def test_resume_after_interrupt_skips_finished_chunks(dielectric, reference, tmp_path, monkeypatch):
    path = dielectric[0]
    out = tmp_path / "run.parquet"
    real_write = streaming._write_part
    written = []

    def interrupt_at_chunk_2(parts, chunk, *args):
        if chunk == 2:
            raise KeyboardInterrupt  # Ctrl-C while chunk 2 is being computed
        written.append(chunk)
        real_write(parts, chunk, *args)

    monkeypatch.setattr(streaming, "_write_part", interrupt_at_chunk_2)
    with pytest.raises(KeyboardInterrupt):
        extract_to_file(path, out, transformer(), chunk_size=16, progress=False)
    assert written == [0, 1] and not out.exists()
    left = sorted(p.name for p in parts_dir(out).iterdir())
    assert left == ["manifest.json", "part-000000.parquet", "part-000001.parquet"]

    # other settings must not mix with the finished chunks
    with pytest.raises(ValueError, match="differs in: chunk_size"):
        extract_to_file(path, out, transformer(), chunk_size=20, progress=False)
    with pytest.raises(ValueError, match="differs in: feature_names, stages"):
        extract_to_file(path, out, transformer(stage=-1), chunk_size=16, progress=False)

    written.clear()
    def record_chunk(parts, chunk, *args):
        written.append(chunk)
        real_write(parts, chunk, *args)

    monkeypatch.setattr(streaming, "_write_part", record_chunk)
    summary = extract_to_file(path, out, transformer(), chunk_size=16, progress=False)
    assert written == [2, 3] and summary.resumed_chunks == 2 and summary.n_rows == 60
    assert not parts_dir(out).exists()
    _assert_same(out, reference)
    with pytest.raises(FileExistsError, match="exists"):
        extract_to_file(path, out, transformer(), chunk_size=16, progress=False)


_DIE_WHILE_WRITING_CHUNK_2 = """
import os, signal, sys
import pyarrow.parquet as pq
from skdynemb import streaming
from skdynemb.errors import InvalidStructureError
from skdynemb.cli import main

real, calls = pq.write_table, []

def write_then_die(table, where, **kw):
    calls.append(where)
    real(table, where, **kw)
    if len(calls) == 3:  # chunk 2: leave its temporary file half written, then die at once
        data = open(where, "rb").read()
        open(where, "wb").write(data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)

streaming.pq.write_table = write_then_die
sys.exit(main(sys.argv[1:]))
"""


def test_resume_after_sigkill_while_writing(dielectric, reference, tmp_path):
    from skdynemb.cli import main

    out = tmp_path / "killed.parquet"
    args = ["extract", str(dielectric[0]), "-o", str(out), "--backbone", "cgcnn-mp-eform", "--stage", "all",
            "--batch-size", "8", "--chunk-size", "16", "--device", "cpu", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _DIE_WHILE_WRITING_CHUNK_2, *args], env=env, capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    left = sorted(p.name for p in parts_dir(out).iterdir())
    assert left[1:] == ["manifest.json", "part-000000.parquet", "part-000001.parquet"]
    assert left[0].startswith(".part-000002.parquet.") and left[0].endswith(".tmp")  # the half-written file
    assert not out.exists()

    assert main(args) == 0
    assert not parts_dir(out).exists()
    _assert_same(out, reference)


# ----------------------------------------------------------------------------- dask scale-out
@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
        )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_dask_workers_give_the_sequential_result(mp_file, dask_client, tmp_path):
    import joblib

    path, records = mp_file
    local = tmp_path / "local.parquet"
    extract_to_file(path, local, transformer(batch_size=4), chunk_size=12, progress=False)
    on_dask = tmp_path / "dask.parquet"
    with joblib.parallel_config("dask"):
        extract_to_file(path, on_dask, transformer(batch_size=4, n_jobs=2), chunk_size=12, progress=False)
    # the workers did the work: they imported the featurizer
    assert all(dask_client.run(lambda: "skdynemb.streaming" in sys.modules).values())
    expected = pq.read_table(local).to_pandas()
    assert list(expected["id"]) == [r["material_id"] for r in records]
    pd.testing.assert_frame_equal(pq.read_table(on_dask).to_pandas(), expected, check_exact=True)

    from skdynemb.cli import main

    via_cli = tmp_path / "cli.parquet"
    args = ["extract", str(path), "-o", str(via_cli), "--dask", dask_client.scheduler.address,
            "--backbone", "cgcnn-mp-eform", "--stage", "all",
            "--batch-size", "4", "--chunk-size", "12", "--device", "cpu", "--no-progress"]
    assert main(args) == 0
    pd.testing.assert_frame_equal(pq.read_table(via_cli).to_pandas(), expected, check_exact=True)
