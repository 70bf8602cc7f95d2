"""Extraction outputs are those of the code before the issue-16 refactors and the issue-30 speed-ups.

The rows of the first 8 shared Materials Project structures (every stage, ``pooling="element"``
and ``"mean"``, batch sizes 3 and 8) computed by this tree are compared with those computed on the
same machine, in a subprocess, by the revision named for each backbone, taken from this
repository's git history (``git archive``): bit for bit (SHA-256 digests) where nothing was meant
to change them, within a stated tolerance where a deliberate change moved float32 last bits. The
comparison runs on the machine at hand because float32 rows differ in the last bits between CPUs
(AVX-512 and AVX2 kernels sum in another order): digests pinned on one machine failed on another
with the same code. float32 rows may also depend on the forward batch in the last bits, so each
batch size is compared on its own.

- CGCNN (``cgcnn-mp-eform``): against commit cba3745, before the refactors, bit for bit.
- ALIGNN (``alignn-mp-eform``, shipped in ``skdynemb/data``; ``alignn-ff-wt10``, from the skdynemb
  cache that ``scripts/setup.sh`` fills), with the mean bond and angle features appended
  (``compound_features="bond+angle"``): against commit 3b965ac, elements, fractions and shapes
  identical and every row value within ``TOLERANCE`` = 1e-5 (largest absolute difference). Not
  bit for bit since issue 30: the first ALIGNN layer computes its edge gate ``W_e y`` once per
  distinct bond length and angle cosine of the embedding stage and adds it to the node gates
  instead of inside the matrix product (``addmm``), which rounds differently. Measured on these 8
  structures (AMD EPYC, 1 thread, every configuration): alignn-mp-eform still bit for bit,
  alignn-ff-wt10 at most 3.8e-6; on the 200 MP structures of ``benchmarks/bench_alignn_ff.py
  --sections side-by-side`` (alignn-ff-wt10) at most 7.6e-6, in mean bond features whose values
  reach ~70, where one float32 step is 7.6e-6 (``benchmarks/results/alignn_ff_speed.md``).
  Everything else of issue 30 (blocks, fused gathers,
  distinct embeddings, pooling sums) is bit for bit. Not against cba3745: two deliberate changes
  after it moved ALIGNN's float32 rows in the last bits, fd19873 (distinct edges with
  multiplicities: messages summed in another order) and 2502b5d (mean bond and angle features
  accumulated in float64). On the 200 structures of ``benchmarks/check_bitwise.py``
  (alignn-mp-eform, mean pooling) the atom-stage rows moved by at most 7.2e-7 and the bond/angle
  features by at most 2.0e-5 (about 1e-4 relative) from those of cba3745.

Skips (saying why) where this checkout has no git history holding those revisions.
"""

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Structure

from _bitwise_rows import digest, layout_digest, matrix, rows

REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("_bitwise_rows.py")
GRID = [(pooling, batch) for pooling in ("element", "mean") for batch in (3, 8)]

#: revision -> configurations (backbone, pooling, batch_size, compound_features) compared with it.
REFERENCES = {
    "cba3745": [("cgcnn-mp-eform", pooling, batch, None) for pooling, batch in GRID],
    "3b965ac": [
        (backbone, pooling, batch, "bond+angle")
        for backbone in ("alignn-mp-eform", "alignn-ff-wt10") for pooling, batch in GRID
    ],
}
CONFIGS = [(rev, config) for rev, configs in REFERENCES.items() for config in configs]
#: revisions whose rows are compared within a tolerance (largest absolute difference) instead of bit for bit
TOLERANCE = {"3b965ac": 1e-5}


def _source_tree(rev: str, into: Path) -> Path:
    """The ``skdynemb`` package of ``rev`` unpacked under ``into``, or a skip saying why not."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed: the reference revisions cannot be read")
    known = subprocess.run(["git", "cat-file", "-e", f"{rev}^{{commit}}"], cwd=REPO, capture_output=True)
    if known.returncode != 0:
        pytest.skip(f"revision {rev} is not in this checkout's git history (a shallow clone or an sdist)")
    archive = into / f"{rev}.tar"
    subprocess.run(["git", "archive", "--format=tar", "-o", str(archive), rev, "skdynemb"], cwd=REPO, check=True)
    tree = into / rev
    with tarfile.open(archive) as tar:
        # the "data" filter (Python >= 3.10.12 / 3.11.4) refuses links and paths leaving the folder
        tar.extractall(tree, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    return tree


@pytest.fixture(scope="module")
def structures(mp_records):
    return [Structure.from_str(r["cif"], fmt="cif") for r in mp_records[:8]]


@pytest.fixture(scope="module")
def reference_digests(request, mp_records, tmp_path_factory):
    """(revision, configuration) -> digest of the rows computed by that revision's code, here; for
    the revisions of ``TOLERANCE``, (layout digest, rows) instead."""
    folder = tmp_path_factory.mktemp("bitwise")
    cifs = folder / "cifs.json"
    cifs.write_text(json.dumps([r["cif"] for r in mp_records[:8]]))
    digests = {}
    for rev, configs in REFERENCES.items():
        wanted = [c for c in configs if c[0] != "alignn-ff-wt10" or _has_ff_weights(request)]
        tree = _source_tree(rev, folder)
        config_file = folder / f"{rev}.json"
        config_file.write_text(json.dumps(wanted))
        env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        rows_file = folder / f"{rev}.npz"
        done = subprocess.run(
            [sys.executable, str(WORKER), str(cifs), str(config_file)] + ([str(rows_file)] if rev in TOLERANCE else []),
            env=env, cwd=folder, capture_output=True, text=True,
        )
        assert done.returncode == 0, f"revision {rev} failed to extract:\n{done.stderr[-3000:]}"
        answer = json.loads(done.stdout.strip().splitlines()[-1])
        assert Path(answer["skdynemb"]).resolve().is_relative_to(tree.resolve()), (
            f"the subprocess for {rev} imported skdynemb from {answer['skdynemb']}, not from {tree}"
        )
        if rev in TOLERANCE:
            with np.load(rows_file) as saved:
                digests.update({(rev, tuple(c)): (layout, saved[f"rows{k}"])
                                for k, (c, layout) in enumerate(zip(wanted, answer["layouts"]))})
        else:
            digests.update({(rev, tuple(c)): d for c, d in zip(wanted, answer["digests"])})
    return digests


def _has_ff_weights(request) -> bool:
    try:
        request.getfixturevalue("alignn_ff_weights")
    except pytest.skip.Exception:
        return False
    return True


@pytest.mark.parametrize("rev,config", CONFIGS, ids=[f"{rev}-{'-'.join(map(str, c[:3]))}" for rev, c in CONFIGS])
def test_rows_are_those_of_the_reference_revision(request, structures, reference_digests, rev, config):
    if config[0] == "alignn-ff-wt10":
        request.getfixturevalue("alignn_ff_weights")  # skips when they are not in the cache
    out = rows(structures, *config)
    if rev not in TOLERANCE:
        assert digest(out) == reference_digests[rev, config]
        return
    layout, reference = reference_digests[rev, config]
    assert layout_digest(out) == layout  # elements, fractions, shapes: exactly
    largest = float(np.abs(matrix(out).astype(np.float64) - reference).max())
    assert largest <= TOLERANCE[rev], f"rows differ from {rev}'s by up to {largest:.2e}"

