"""The ``skdynemb`` command line: help, extraction end to end, errors and exit codes, registry."""

import csv
import gzip
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from pymatgen.core import Lattice, Structure

from skdynemb import DynamicEmbeddingTransformer, cli, streaming
from skdynemb.backbones import load_backbone
from skdynemb.cli.extract import parse_stage

CGCNN = "cgcnn-mp-eform"  # the fast shipped backbone these tests were written for (the default is alignn-ff)

REPO = Path(__file__).resolve().parents[1]
FAST = ["--backbone", CGCNN, "--batch-size", "8", "--chunk-size", "8", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def mp_file(mp_records, tmp_path_factory):
    """20 Materials Project records (material_id + CIF text) as JSON.GZ, and their structures."""
    records = mp_records[:20]
    path = tmp_path_factory.mktemp("cli") / "mp20.json.gz"
    with gzip.open(path, "wt") as fh:
        json.dump(records, fh)
    ids = [r["material_id"] for r in records]
    return path, ids, [Structure.from_str(r["cif"], fmt="cif") for r in records]


def test_help_of_every_command(capsys):
    for argv in (["--help"], ["extract", "--help"], ["backbones", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for word in ("extract", "backbones", "--skip-invalid", "--chunk-size", "--dask", "exit codes", "resume"):
        assert word in text


def test_module_entry_point_and_usage_exit_code():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = lambda *a: subprocess.run([sys.executable, "-m", "skdynemb.cli", *a], env=env, capture_output=True, text=True)  # noqa: E731
    proc = run("extract", "--help")
    assert proc.returncode == 0 and "--skip-invalid" in proc.stdout
    proc = run("extract", "in.json")  # no -o
    assert proc.returncode == 2 and "-o/--output" in proc.stderr


def test_extract_element_table_from_mp_json_gz(mp_file, tmp_path, capsys):
    path, ids, structures = mp_file
    out = tmp_path / "emb.parquet"
    assert cli.main(["extract", str(path), "-o", str(out), "--pooling", "element", *FAST]) == 0
    assert f"for 20 structures to {out}" in capsys.readouterr().out
    table = pq.read_table(out).to_pandas()
    expected = DynamicEmbeddingTransformer(CGCNN, device="cpu", progress=False).fit().transform(structures)
    assert list(dict.fromkeys(table["id"])) == ids
    assert list(table["element"]) == [e for c in expected for e in c.elements]
    np.testing.assert_allclose(table["fraction"], np.concatenate([c.fractions for c in expected]))
    np.testing.assert_allclose(
        table.iloc[:, 3:].to_numpy(), np.concatenate([c.features for c in expected]), rtol=1e-6, atol=1e-6
    )


def test_stage_option():
    assert parse_stage("-1") == -1 and parse_stage("all") == "all" and parse_stage("conv4") == "conv4"
    assert parse_stage("0,3") == [0, 3] and parse_stage("embedding, conv4") == ["embedding", "conv4"]
    for bad in ("0,", "all,1"):
        with pytest.raises(Exception, match="stage"):
            parse_stage(bad)


def test_stages_and_npz_output(mp_file, tmp_path):
    path, ids, structures = mp_file
    out = tmp_path / "emb.npz"
    assert cli.main(["extract", str(path), "-o", str(out), "--stage", "0,conv3", *FAST]) == 0
    z = np.load(out)
    bb = load_backbone("cgcnn-mp-eform")
    assert list(z["ids"]) == ids
    assert list(z["feature_names"]) == [f"{s}_{k}" for s in ("embedding", "conv3") for k in range(bb.stage_dims[0])]
    expected = DynamicEmbeddingTransformer(CGCNN, stage=[0, 3], pooling="mean", device="cpu", progress=False).fit()
    np.testing.assert_allclose(z["features"], expected.transform(structures), rtol=1e-6, atol=1e-6)


def test_errors_and_exit_codes(mp_file, tmp_path, capsys):
    path, ids, structures = mp_file
    records = [{"material_id": i, "cif": s.as_dict()} for i, s in zip(ids[:10], structures)]
    records.insert(5, {"material_id": "bad-1", "cif": "data_x\nloop_\n nonsense\n"})
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps(records))
    out = tmp_path / "out.parquet"

    assert cli.main(["extract", str(mixed), "-o", str(out), *FAST]) == 1
    err = capsys.readouterr().err
    assert "sample 5 (id='bad-1')" in err and "--skip-invalid" in err and not out.exists()

    # with --skip-invalid the same input goes through, the bad structure listed with its reason
    assert cli.main(["extract", str(mixed), "-o", str(out), "--skip-invalid", *FAST]) == 0
    assert "1 invalid structure(s) left out" in capsys.readouterr().out
    assert list(pq.read_table(out).column("id").to_pylist()) == ids[:10]
    with open(streaming.errors_path(out)) as fh:
        assert [(r["index"], r["id"]) for r in csv.DictReader(fh)] == [("5", "bad-1")]

    assert cli.main(["extract", str(mixed), "-o", str(out), *FAST]) == 1
    assert "exists" in capsys.readouterr().err
    assert cli.main(["extract", str(tmp_path / "none.json"), "-o", str(tmp_path / "x.parquet")]) == 1
    assert "no such input" in capsys.readouterr().err
    argv = ["extract", str(mixed), "-o", str(tmp_path / "x.parquet"), "--compound-features", "bond", *FAST]
    assert cli.main(argv) == 1
    assert "no bond features" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["extract", str(mixed), "-o", str(out), "--pooling", "max"])
    assert exit_info.value.code == 2


def test_interrupt_exits_130_and_rerun_resumes(mp_file, tmp_path, capsys, monkeypatch):
    path = mp_file[0]
    out = tmp_path / "int.parquet"
    real = streaming._write_part

    def interrupt_second_chunk(parts, chunk, *args):
        if chunk == 1:
            raise KeyboardInterrupt
        real(parts, chunk, *args)

    monkeypatch.setattr(streaming, "_write_part", interrupt_second_chunk)
    assert cli.main(["extract", str(path), "-o", str(out), *FAST]) == 130
    assert "1 finished chunk(s) kept" in capsys.readouterr().err
    monkeypatch.setattr(streaming, "_write_part", real)
    assert cli.main(["extract", str(path), "-o", str(out), *FAST]) == 0
    assert "1 chunk(s) resumed from disk" in capsys.readouterr().out
    assert pq.read_table(out).column("id").to_pylist() == mp_file[1]


def test_backbones_command(capsys):
    assert cli.main(["backbones", "cgcnn-mp-eform"]) == 0
    bb = load_backbone("cgcnn-mp-eform")
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"cgcnn-mp-eform: {len(bb.stage_names)} stages:")
    assert all(f"{s} ({d})" in line for s, d in zip(bb.stage_names, bb.stage_dims))
    assert cli.main(["backbones", "nope"]) == 1
    assert "unknown backbone" in capsys.readouterr().err


def test_a_module_adds_a_subcommand_with_one_function(monkeypatch, capsys):
    def add_cli(subparsers):
        p = subparsers.add_parser("hello", help="say hello")
        p.add_argument("--name", default="world")
        p.set_defaults(handler=lambda args: print(f"hello {args.name}") or 0)

    monkeypatch.setitem(sys.modules, "fake_commands", types.SimpleNamespace(add_cli=add_cli))
    monkeypatch.setattr(cli, "COMMANDS", [*cli.COMMANDS, "fake_commands:add_cli"])
    assert cli.main(["hello", "--name", "cgcnn"]) == 0
    assert capsys.readouterr().out == "hello cgcnn\n"


def test_structure_folder_with_an_unknown_element(tmp_path, capsys):
    folder = tmp_path / "poscars"
    folder.mkdir()
    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    nacl.to(filename=str(folder / "POSCAR_nacl"), fmt="poscar")
    Structure(Lattice.cubic(5.0), ["Og"], [[0, 0, 0]]).to(filename=str(folder / "og.cif"))
    out = tmp_path / "f.parquet"
    assert cli.main(["extract", str(folder), "-o", str(out), "--skip-invalid", *FAST]) == 0
    assert pq.read_table(out).column("id").to_pylist() == ["POSCAR_nacl"]
    with open(streaming.errors_path(out)) as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["id"] == "og" and "atomic number(s) [118]" in row["reason"]


def test_version_and_python_dash_m_skdynemb():
    from skdynemb import __version__

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for argv in (["-m", "skdynemb", "--version"], ["-m", "skdynemb.cli", "--version"]):
        proc = subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True)
        assert proc.returncode == 0 and proc.stdout.strip() == f"skdynemb {__version__}"
    proc = subprocess.run([sys.executable, "-m", "skdynemb", "backbones", "--help"], env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0 and "--traceback" in proc.stdout


def test_traceback_is_accepted_before_and_after_the_subcommand(tmp_path, capsys):
    argv = ["extract", str(tmp_path / "none.json"), "-o", str(tmp_path / "x.parquet")]
    assert cli.main(argv) == 1 and "no such input" in capsys.readouterr().err
    for full in (["--traceback", *argv], [*argv, "--traceback"]):
        assert cli.build_parser().parse_args(full).traceback is True
        with pytest.raises(FileNotFoundError, match="no such input"):
            cli.main(full)
    assert cli.build_parser().parse_args(argv).traceback is False


@pytest.mark.parametrize("compression", [None, "bz2", "gz"])
def test_extract_reads_a_matminer_json_dataframe(mp_file, tmp_path, capsys, compression):
    """A DataFrame stored by matminer's store_dataframe_as_json (pandas 'split', Monty-encoded
    Structures) goes through `extract`, ids from its index or from a column."""
    import pandas as pd
    from matminer.utils.io import store_dataframe_as_json

    _, ids, structures = mp_file
    df = pd.DataFrame({"material_id": ids[:9], "structure": structures[:9], "e_form": np.arange(9.0)},
                      index=[f"row{i}" for i in range(9)])
    path = tmp_path / "df.json"
    store_dataframe_as_json(df, str(path), compression=compression, pbar=False)
    path = next(tmp_path.glob("df.json*"))
    transformer = DynamicEmbeddingTransformer(CGCNN, pooling="mean", device="cpu", progress=False)
    expected = transformer.fit().transform(structures[:9])
    for extra, want_ids in (([], list(df.index)), (["--id-field", "material_id"], ids[:9])):
        out = tmp_path / f"emb{len(extra)}.npz"
        assert cli.main(["extract", str(path), "-o", str(out), *extra, *FAST]) == 0, capsys.readouterr().err
        z = np.load(out)
        assert list(z["ids"]) == want_ids
        np.testing.assert_allclose(z["features"], expected, rtol=1e-6, atol=1e-6)
    assert cli.main(["extract", str(path), "-o", str(tmp_path / "x.npz"), "--structure-field", "cif", *FAST]) == 1
    assert "no structure field 'cif'" in capsys.readouterr().err


def test_a_missing_extra_is_named(monkeypatch, tmp_path, capsys):
    """Without pyarrow, `extract` says which extra installs it instead of a bare ModuleNotFoundError."""
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` fail
    monkeypatch.delitem(sys.modules, "skdynemb.streaming")
    assert cli.main(["extract", str(tmp_path / "in.json"), "-o", str(tmp_path / "x.parquet")]) == 1
    err = capsys.readouterr().err
    assert "'pyarrow'" in err and 'pip install "skdynemb[parquet]"' in err


def test_layer_option_is_the_deprecated_name_of_stage(tmp_path):
    from skdynemb.cli import build_parser

    base = ["extract", "in.json", "-o", str(tmp_path / "out.parquet")]
    with pytest.warns(FutureWarning, match="--layer was renamed --stage in 0.2"):
        assert build_parser().parse_args([*base, "--layer", "0,conv3"]).stage == [0, "conv3"]
    assert build_parser().parse_args(base).stage == -1
    with pytest.warns(FutureWarning), pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*base, "--stage", "1", "--layer", "0"])
    assert exit_info.value.code == 2
