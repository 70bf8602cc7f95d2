"""Structures in: coerce anything crystal-like into one canonical, validated :class:`Crystal`.

Accepted inputs: :class:`Crystal`, pymatgen ``Structure``, ASE ``Atoms`` (fully periodic),
jarvis-tools ``Atoms``, pymatgen structure dicts, CIF or POSCAR text, and paths to such files.
Every problem raises :class:`InvalidStructureError` naming the sample (index and id).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skdynemb.errors import InvalidStructureError

#: Two sites closer than this (Å) are treated as the same spot.
MIN_DISTANCE = 0.1


@dataclass(frozen=True, eq=False)
class Crystal:
    """A periodic, ordered crystal.

    Attributes
    ----------
    lattice : ndarray of shape (3, 3), float64
        Rows are the lattice vectors in Å.
    frac_coords : ndarray of shape (N, 3), float64
        Fractional coordinates, as given (not wrapped).
    numbers : ndarray of shape (N,), int64
        Atomic numbers, one per site, in site order.
    id : str or None
        Identifier carried through to outputs and error messages.
    """

    lattice: np.ndarray
    frac_coords: np.ndarray
    numbers: np.ndarray
    id: str | None = None

    @property
    def cart_coords(self) -> np.ndarray:
        """(N, 3) Cartesian coordinates in Å."""
        return self.frac_coords @ self.lattice

    @property
    def num_sites(self) -> int:
        return len(self.numbers)

    @property
    def symbols(self) -> list[str]:
        from pymatgen.core.periodic_table import Element

        return [Element.from_Z(int(z)).symbol for z in self.numbers]

    @property
    def volume(self) -> float:
        """Cell volume in Å³."""
        return float(abs(np.linalg.det(self.lattice)))

    def to_pymatgen(self):
        from pymatgen.core import Lattice, Structure

        return Structure(Lattice(self.lattice), self.symbols, self.frac_coords)

    def content_hash(self) -> str:
        """SHA-256 of lattice, coordinates and species (not the id): a cache key."""
        h = hashlib.sha256()
        for arr in (self.lattice, self.frac_coords):
            h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
        h.update(np.ascontiguousarray(self.numbers, dtype=np.int64).tobytes())
        return h.hexdigest()

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, Crystal)
            and np.array_equal(self.lattice, other.lattice)
            and np.array_equal(self.frac_coords, other.frac_coords)
            and np.array_equal(self.numbers, other.numbers)
        )

    __hash__ = None


def _from_pymatgen(structure, index, sample_id) -> Crystal:
    if not structure.is_ordered:
        bad = next(i for i, site in enumerate(structure) if not site.is_ordered)
        raise InvalidStructureError(
            index, sample_id,
            f"site {bad} is disordered or partially occupied ({structure[bad].species}); "
            "order the structure first (e.g. pymatgen OrderDisorderedStructureTransformation)",
        )
    numbers = np.array([site.specie.Z for site in structure], dtype=np.int64)
    return Crystal(
        np.array(structure.lattice.matrix, dtype=np.float64),
        np.array(structure.frac_coords, dtype=np.float64).reshape(-1, 3),
        numbers,
        sample_id,
    )


def _from_ase(atoms, index, sample_id) -> Crystal:
    if not np.all(atoms.pbc):
        raise InvalidStructureError(
            index, sample_id,
            f"ASE Atoms with pbc={[bool(p) for p in atoms.pbc]}: a non-periodic molecule or slab without "
            "periodic boundaries; put it in a periodic cell (pbc=True) first",
        )
    lattice = np.array(atoms.cell[:], dtype=np.float64)
    return Crystal(
        lattice,
        np.array(atoms.get_scaled_positions(wrap=False), dtype=np.float64).reshape(-1, 3),
        np.array(atoms.numbers, dtype=np.int64),
        sample_id,
    )


def _from_jarvis(atoms, index, sample_id) -> Crystal:
    from pymatgen.core.periodic_table import Element

    lattice = np.array(atoms.lattice_mat, dtype=np.float64)
    coords = np.array(atoms.coords, dtype=np.float64).reshape(-1, 3)
    frac = np.linalg.solve(lattice.T, coords.T).T if atoms.cartesian else coords
    numbers = np.array([Element(e).Z for e in atoms.elements], dtype=np.int64)
    return Crystal(lattice, frac, numbers, sample_id)


def _from_text(text: str, index, sample_id):
    from pymatgen.core import Structure

    fmt = "cif" if ("_cell_length_a" in text or text.lstrip().startswith("data_")) else "poscar"
    try:
        return Structure.from_str(text, fmt=fmt)
    except Exception as exc:  # pymatgen raises many types for bad text
        raise InvalidStructureError(index, sample_id, f"could not parse {fmt.upper()} text: {exc}") from exc


def _is_instance(obj, module: str, name: str) -> bool:
    """isinstance against an optional dependency, without importing it if absent."""
    import importlib
    import sys

    if module.split(".")[0] not in sys.modules and not importlib.util.find_spec(module.split(".")[0]):
        return False
    return isinstance(obj, getattr(importlib.import_module(module), name))


def _to_pymatgen_like(obj, index, sample_id):
    """Return a Crystal directly or a pymatgen Structure to convert."""
    from pymatgen.core import Molecule, Structure

    if isinstance(obj, Crystal):
        return obj if sample_id is None or obj.id == sample_id else Crystal(
            obj.lattice, obj.frac_coords, obj.numbers, sample_id
        )
    if isinstance(obj, Structure):
        return obj
    if isinstance(obj, Molecule):
        raise InvalidStructureError(
            index, sample_id, "a non-periodic Molecule; embed it in a periodic box (Molecule.get_boxed_structure)"
        )
    if isinstance(obj, dict):
        if obj.get("@class") == "Molecule":
            raise InvalidStructureError(index, sample_id, "a Molecule dict is not periodic")
        try:
            return Structure.from_dict(obj)
        except Exception as exc:
            raise InvalidStructureError(index, sample_id, f"not a pymatgen Structure dict: {exc}") from exc
    if isinstance(obj, Path) or (isinstance(obj, str) and "\n" not in obj and len(obj) < 4096):
        path = Path(obj)
        if not path.is_file():
            raise InvalidStructureError(index, sample_id, f"no such structure file: {str(path)!r}")
        try:
            return Structure.from_file(path)
        except Exception as exc:
            raise InvalidStructureError(index, sample_id, f"could not read {str(path)!r}: {exc}") from exc
    if isinstance(obj, str):
        return _from_text(obj, index, sample_id)
    if _is_instance(obj, "ase", "Atoms"):
        return _from_ase(obj, index, sample_id)
    if _is_instance(obj, "jarvis.core.atoms", "Atoms"):
        return _from_jarvis(obj, index, sample_id)
    raise InvalidStructureError(
        index, sample_id,
        f"cannot read a {type(obj).__name__} as a crystal structure (expected pymatgen Structure, "
        "ASE Atoms, jarvis Atoms, Structure dict, CIF/POSCAR text or path)",
    )


def _validate(crystal: Crystal, index, sample_id) -> Crystal:
    if crystal.num_sites == 0:
        raise InvalidStructureError(index, sample_id, "empty structure (no sites)")
    if not (np.isfinite(crystal.lattice).all() and np.isfinite(crystal.frac_coords).all()):
        raise InvalidStructureError(index, sample_id, "lattice or coordinates contain NaN or infinity")
    if crystal.volume < 1e-3:
        raise InvalidStructureError(index, sample_id, f"degenerate lattice (volume {crystal.volume:.3g} Å³)")
    if (crystal.numbers < 1).any() or (crystal.numbers > 118).any():
        raise InvalidStructureError(index, sample_id, f"unknown atomic numbers {sorted(set(crystal.numbers))}")
    if crystal.num_sites > 1 or crystal.volume ** (1 / 3) < MIN_DISTANCE:
        _check_overlaps(crystal, index, sample_id)
    return crystal


def _check_overlaps(crystal: Crystal, index, sample_id) -> None:
    """Raise if two sites (or a site and a periodic image of another) nearly coincide."""
    from vesin import NeighborList

    points = crystal.cart_coords
    # vesin's cell list is far slower with a tiny cutoff (~28 ms vs 0.2 ms per structure), so
    # search 1 Å and filter
    i, j, d = NeighborList(cutoff=1.0, full_list=False).compute(
        points=points, box=crystal.lattice, periodic=True, quantities="ijd"
    )
    close = d < MIN_DISTANCE
    i, j, d = i[close], j[close], d[close]
    if len(d):
        k = int(np.argmin(d))
        raise InvalidStructureError(
            index, sample_id,
            f"sites {int(i[k])} and {int(j[k])} are {d[k]:.3g} Å apart (two atoms on the same spot; "
            f"minimum {MIN_DISTANCE} Å)",
        )


def to_crystal(obj, index: int | None = None, id: str | None = None) -> Crystal:
    """Coerce one structure-like object into a validated :class:`Crystal`.

    ``index`` and ``id`` only label error messages (and ``id`` is carried on the result).
    """
    result = _to_pymatgen_like(obj, index, id)
    if not isinstance(result, Crystal):
        result = _from_pymatgen(result, index, id)
    return _validate(result, index, id)


#: structures per joblib task when :func:`to_crystals` parses in parallel
PARSE_CHUNK = 256


def _to_crystal_chunk(start: int, objs: list, ids: list) -> list[Crystal]:
    return [to_crystal(obj, index=start + k, id=sid) for k, (obj, sid) in enumerate(zip(objs, ids))]


def to_crystals(structures, ids: Sequence | None = None, n_jobs: int | None = None) -> list[Crystal]:
    """Coerce a sequence (list, tuple, pandas Series) of structures; errors name the index.

    ``n_jobs``: joblib workers that parse chunks of :data:`PARSE_CHUNK` structures in parallel
    (worth it for CIF/POSCAR text and files; None or 1 parses here).
    """
    if hasattr(structures, "tolist") and not isinstance(structures, np.ndarray):
        if ids is None and hasattr(structures, "index"):
            ids = [str(i) for i in structures.index]
        structures = structures.tolist()
    if isinstance(structures, (str, bytes, dict)) or not hasattr(structures, "__len__"):
        raise TypeError(f"expected a sequence of structures, got {type(structures).__name__}")
    if ids is not None and len(ids) != len(structures):
        raise ValueError(f"{len(ids)} ids for {len(structures)} structures")
    labels = [None] * len(structures) if ids is None else list(ids)
    labels = [obj.id if sid is None and isinstance(obj, Crystal) else sid for obj, sid in zip(structures, labels)]
    if n_jobs is None or n_jobs == 1 or len(structures) <= PARSE_CHUNK:
        return _to_crystal_chunk(0, list(structures), labels)
    from joblib import Parallel, delayed

    starts = range(0, len(structures), PARSE_CHUNK)
    parts = Parallel(n_jobs=n_jobs)(
        delayed(_to_crystal_chunk)(s, list(structures[s : s + PARSE_CHUNK]), labels[s : s + PARSE_CHUNK])
        for s in starts
    )
    return [c for part in parts for c in part]
