import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import gzip  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from pymatgen.core import Lattice, Structure  # noqa: E402

from skdynemb._paths import shared_dir  # noqa: E402
from skdynemb.structures import to_crystal  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared():
    """The ../shared folder (data + fixtures); tests needing it skip when absent."""
    root = shared_dir()
    if root is None:
        pytest.skip("../shared not present")
    return root


@pytest.fixture(scope="session")
def alignn_ff_weights():
    """Skip unless the official ALIGNN-FF wt10 checkpoint (the default backbone, ``alignn-ff``) is
    in the skdynemb cache; ``scripts/setup.sh`` (``python -m skdynemb.backbones.alignn``) fetches it."""
    from skdynemb.backbones.alignn.fetch import FF_CHECKPOINTS, cache_dir

    folder = cache_dir() / "alignnff_wt10"
    if not all((folder / name).is_file() for name in FF_CHECKPOINTS["alignnff_wt10"]):
        pytest.skip(f"alignn-ff-wt10 weights are not in the skdynemb cache ({folder}); scripts/setup.sh fetches them")
    return folder


# ----------------------------------------------------------------------------- structures built in code
@pytest.fixture(scope="session")
def licoo2():
    """Layered LiCoO2 (R-3m, Co 3a, Li 3b, O 6c z = 0.2604), primitive cell (Li, Co, 2 O), as a Crystal."""
    s = Structure.from_spacegroup(
        "R-3m", Lattice.hexagonal(2.816, 14.05), ["Li", "Co", "O"], [[0, 0, 0.5], [0, 0, 0], [0, 0, 0.2604]]
    )
    return to_crystal(s.get_primitive_structure(), id="LiCoO2")


@pytest.fixture(scope="session")
def co3o4():
    """Spinel Co3O4 (Fd-3m origin choice 1: tetrahedral Co 8a, octahedral Co 16d, O 32e), primitive
    cell (Co6 O8), as a Crystal."""
    s = Structure.from_spacegroup(
        "Fd-3m", Lattice.cubic(8.084), ["Co", "Co", "O"], [[0, 0, 0], [0.625, 0.625, 0.625], [0.3881] * 3]
    )
    return to_crystal(s.get_primitive_structure(), id="Co3O4")


# ----------------------------------------------------------------------------- Materials Project records
@pytest.fixture(scope="session")
def mp_records(shared) -> list[dict]:
    """Every record of shared/data/mp/mp_eform_crysxpp.json.gz (material_id, e_form eV/atom, ..., cif)."""
    with gzip.open(shared / "data" / "mp" / "mp_eform_crysxpp.json.gz", "rt") as fh:
        return json.load(fh)


def _cif_formula(cif: str) -> str:
    return re.search(r"_chemical_formula_sum\s+'?([^'\n]+?)'?\s*\n", cif).group(1)


@pytest.fixture(scope="session")
def mp_sample(mp_records):
    """``mp_sample(n, seed=0, first=False)``: n MP records, drawn without replacement by
    ``np.random.default_rng(seed)`` (or the file's first n), as copies with a ``formula`` key
    (the CIF's ``_chemical_formula_sum``)."""

    def sample(n: int, seed: int = 0, first: bool = False) -> list[dict]:
        pick = range(n) if first else np.random.default_rng(seed).choice(len(mp_records), n, replace=False)
        return [{**mp_records[i], "formula": _cif_formula(mp_records[i]["cif"])} for i in pick]

    return sample


@pytest.fixture(scope="session")
def mp_distinct(mp_records):
    """``mp_distinct(n, table)``: n MP records with distinct reduced formulas whose elements all
    have a row in ``table`` (a mapping symbol -> vector), in a fixed shuffled order (seed 0);
    returns (pymatgen Compositions, e_form in eV/atom)."""
    from pymatgen.core import Composition

    def distinct(n: int, table) -> tuple[list, np.ndarray]:
        comps, y, seen = [], [], set()
        for i in np.random.default_rng(0).permutation(len(mp_records)):
            comp = Composition(_cif_formula(mp_records[i]["cif"]))
            if comp.reduced_formula in seen or any(e.symbol not in table for e in comp.elements):
                continue
            seen.add(comp.reduced_formula)
            comps.append(comp)
            y.append(mp_records[i]["e_form"])
            if len(comps) == n:
                break
        return comps, np.array(y)

    return distinct
