"""Structures in: coerce anything crystal-like into one canonical, validated :class:`Crystal`.

Accepted inputs: :class:`Crystal`, pymatgen ``Structure``, ASE ``Atoms`` (fully periodic),
jarvis-tools ``Atoms``, pymatgen structure dicts, CIF or POSCAR text, and paths to such files.
Every problem raises :class:`InvalidStructureError` naming the sample (index and id);
suspicious but usable structures (two atoms closer than :data:`CLOSE_CONTACT`, parser
warnings) give a :class:`~skdynemb.errors.StructureWarning` naming the sample. To make those
errors too: ``warnings.simplefilter("error", skdynemb.errors.StructureWarning)``.

Checks, for every structure: at least one site; finite lattice and coordinates; volume above
1e-3 Å³; real chemical elements (no dummy species, Z = 1..118); no two sites, and no site and
a periodic image of any site (its own included, also in 1-site cells), closer than
:data:`MIN_DISTANCE`; a CIF whose sites do not add up to its declared formula (e.g. a file cut
short) or whose last loop row is cut is rejected; partial occupancies are reported as disorder;
a CIF without a formula line gives a :class:`StructureWarning` (a cut at the end of a line
cannot be detected there).

:func:`standardize` maps a crystal onto a cell that does not depend on the cell it was given
(primitive or Niggli-reduced), for ``DynamicEmbeddingTransformer(standardize=...)``.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skdynemb.errors import InvalidStructureError, StructureWarning

#: Two sites (or a site and a periodic image) closer than this (Å) are the same spot: an error.
MIN_DISTANCE = 0.1
#: Two sites closer than this (Å) but not the same spot give a :class:`StructureWarning`: no
#: chemical bond is that short (the shortest, H-H, is 0.74 Å), so the structure is probably broken.
CLOSE_CONTACT = 0.5
#: The cells :func:`standardize` maps onto (None: the cell as given).
STANDARDIZE = (None, "primitive", "niggli")
#: Distance tolerance (Å) of the symmetry search behind ``standardize="primitive"`` (spglib's symprec).
SYMPREC = 0.01
_DECIMALS = 8


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
        """Cartesian coordinates of the sites.

        Returns
        -------
        cart_coords : ndarray of shape (n_sites, 3)
            In Å.
        """
        return self.frac_coords @ self.lattice

    @property
    def num_sites(self) -> int:
        """Number of sites (atoms) in the cell.

        Returns
        -------
        num_sites : int
            ``len(numbers)``.
        """
        return len(self.numbers)

    @property
    def symbols(self) -> list[str]:
        """Element symbol of every site.

        Returns
        -------
        symbols : list of str
            In site order, e.g. ``["Li", "Co", "O", "O"]``.
        """
        from pymatgen.core.periodic_table import Element

        return [Element.from_Z(int(z)).symbol for z in self.numbers]

    @property
    def volume(self) -> float:
        """Cell volume.

        Returns
        -------
        volume : float
            In Å³.
        """
        return float(abs(np.linalg.det(self.lattice)))

    def to_pymatgen(self):
        """The crystal as a pymatgen Structure (no id, no site properties).

        Returns
        -------
        structure : pymatgen.core.Structure
            Same lattice, species and fractional coordinates.
        """
        from pymatgen.core import Lattice, Structure

        return Structure(Lattice(self.lattice), self.symbols, self.frac_coords)

    def content_hash(self) -> str:
        """SHA-256 of lattice, coordinates and species (not the id): a cache key.

        Returns
        -------
        digest : str
            64 hexadecimal digits.
        """
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
    from pymatgen.core.periodic_table import DummySpecies, Element, Species

    for k, site in enumerate(structure):
        if isinstance(site.specie, DummySpecies) or not isinstance(site.specie, (Element, Species)):
            raise InvalidStructureError(
                index, sample_id, f"site {k} holds {str(site.specie)!r}, a dummy species, not a chemical element"
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
    numbers = []
    for k, symbol in enumerate(atoms.elements):
        try:
            numbers.append(Element(symbol).Z)
        except ValueError:
            problem = f"site {k} holds {symbol!r}, not a chemical element"
            raise InvalidStructureError(index, sample_id, problem) from None
    return Crystal(lattice, frac, np.array(numbers, dtype=np.int64).reshape(-1), sample_id)


#: a CIF line declaring the formula that pymatgen checks the sites against
_CIF_FORMULA = re.compile(r"^[ \t]*_chemical_formula_(sum|structural)[ \t]", re.MULTILINE)


def _cut_loop(text: str) -> str | None:
    """How the last ``loop_`` of CIF ``text`` is cut short (its values do not fill whole rows), or None."""
    import shlex

    lines = text.splitlines()
    starts = [k for k, line in enumerate(lines) if line.strip().lower() == "loop_"]
    if not starts:
        return None
    k, tags, values = starts[-1] + 1, 0, 0
    while k < len(lines) and lines[k].strip().startswith("_"):
        tags, k = tags + 1, k + 1
    for line in lines[k:]:
        stripped = line.strip()
        if stripped.lower().startswith(("loop_", "data_", "_")) or stripped.startswith(";"):
            return None  # another block follows: not the end of the file
        try:
            values += len(shlex.split(stripped, comments=True))
        except ValueError:  # an unclosed quote: the line is cut
            return f"its last loop ends inside a quoted value ({stripped[-40:]!r})"
    if tags and values % tags:
        return f"its last loop holds {values} values, not whole rows of {tags}"
    return None


def _parse(read: Callable, failure: str, index, sample_id, cif_text: str | None = None):
    """``read()`` (a pymatgen parser); a stoichiometry mismatch it warns about is an error naming the sample.

    ``failure`` starts the message when ``read`` raises (``"could not parse CIF text"``); with
    ``cif_text``, a last loop cut in the middle of a row is named as such. A
    disordered structure whose partial occupancies do not add up to its formula is left to
    :func:`_from_pymatgen`, which reports the disorder (not a file cut short).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = read()
        except Exception as exc:  # pymatgen raises many types for bad input
            cut = None if cif_text is None else _cut_loop(cif_text)
            if cut is not None:
                raise InvalidStructureError(
                    index, sample_id, f"{failure}: {cut}, it ends in the middle of a row (a file cut short?)"
                ) from exc
            raise InvalidStructureError(index, sample_id, f"{failure}: {exc}") from exc
    for w in caught:
        message = " ".join(str(w.message).split())
        if message.startswith(("Incorrect stoichiometry", "Missing elements")):
            if not getattr(result, "is_ordered", True):
                continue  # partial occupancies: _from_pymatgen names the disordered site
            raise InvalidStructureError(
                index, sample_id,
                f"its sites do not match the formula it declares (a file cut short?): {message}",
            )
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)  # the others, as they were
    return result


def _warn_unchecked_cif(text: str, index, sample_id) -> None:
    """A :class:`StructureWarning` for CIF text without a formula line: a file cut short at the end
    of a line would not be noticed (its sites cannot be checked against anything)."""
    if not _CIF_FORMULA.search(text):
        warnings.warn(
            StructureWarning(
                index, sample_id,
                "CIF declares no formula (_chemical_formula_sum): its sites cannot be checked, so a file "
                "cut short at the end of a line would go unnoticed",
            ),
            stacklevel=6,
        )


def _from_text(text: str, index, sample_id):
    from pymatgen.core import Structure

    fmt = "cif" if ("_cell_length_a" in text or text.lstrip().startswith("data_")) else "poscar"
    cif_text = text if fmt == "cif" else None
    failure = f"could not parse {fmt.upper()} text"
    result = _parse(lambda: Structure.from_str(text, fmt=fmt), failure, index, sample_id, cif_text)
    if fmt == "cif":
        _warn_unchecked_cif(text, index, sample_id)
    return result


def string_kind(text: str) -> str:
    """What a string given as a sample is, decided here only: ``"text"``, ``"path"`` or ``"line"``.

    ``"text"``: CIF/POSCAR text (it holds a newline, or is too long to be a path);
    ``"path"``: it names an existing file; ``"line"``: one line naming no file (a chemical
    formula, or a structure file that does not exist).

    Parameters
    ----------
    text : str
        The string given as a sample.

    Returns
    -------
    kind : {"text", "path", "line"}
        What it is.
    """
    if "\n" in text or len(text) >= 4096:
        return "text"
    return "path" if os.path.isfile(text) else "line"


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
        return _parse(lambda: Structure.from_dict(obj), "not a pymatgen Structure dict", index, sample_id)
    if isinstance(obj, Path) or (isinstance(obj, str) and string_kind(obj) != "text"):
        path = Path(obj)
        if not path.is_file():
            raise InvalidStructureError(index, sample_id, f"no such structure file: {str(path)!r}")
        cif_text = path.read_text(errors="replace") if path.suffix.lower() == ".cif" else None
        result = _parse(lambda: Structure.from_file(path), f"could not read {str(path)!r}", index, sample_id, cif_text)
        if cif_text is not None:
            _warn_unchecked_cif(cif_text, index, sample_id)
        return result
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


def _validate(crystal: Crystal, index, sample_id, close_contact: float = CLOSE_CONTACT) -> Crystal:
    if crystal.num_sites == 0:
        raise InvalidStructureError(index, sample_id, "empty structure (no sites)")
    if not (np.isfinite(crystal.lattice).all() and np.isfinite(crystal.frac_coords).all()):
        raise InvalidStructureError(index, sample_id, "lattice or coordinates contain NaN or infinity")
    if crystal.volume < 1e-3:
        raise InvalidStructureError(index, sample_id, f"degenerate lattice (volume {crystal.volume:.3g} Å³)")
    if (crystal.numbers < 1).any() or (crystal.numbers > 118).any():
        bad = sorted({int(z) for z in crystal.numbers if not 1 <= z <= 118})
        raise InvalidStructureError(index, sample_id, f"unknown atomic numbers {bad} (elements are Z = 1..118)")
    _check_distances(crystal, index, sample_id, close_contact)
    return crystal


def shortest_lattice_vector(lattice: np.ndarray) -> float:
    """Length of the shortest non-zero lattice vector: the distance of a site to its own images.

    Parameters
    ----------
    lattice : ndarray of shape (3, 3)
        Lattice vectors as rows, in Å.

    Returns
    -------
    length : float
        In Å.
    """
    from pymatgen.core import Lattice

    reduced = Lattice(lattice).get_lll_reduced_lattice().matrix
    combos = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1) if (i, j, k) != (0, 0, 0)])
    return float(np.linalg.norm(combos @ reduced, axis=1).min())


def _check_distances(crystal: Crystal, index, sample_id, close_contact: float) -> None:
    """Raise if two sites, or a site and a periodic image of itself or another site, nearly
    coincide (< MIN_DISTANCE); warn if two are closer than ``close_contact``."""
    from vesin import NeighborList

    self_image = shortest_lattice_vector(crystal.lattice)
    if self_image < MIN_DISTANCE:  # checked first: the neighbour list would hold ~(1 Å / d)^k images
        raise InvalidStructureError(
            index, sample_id,
            f"every site is {self_image:.3g} Å from its own periodic image (a lattice vector that short; "
            f"minimum {MIN_DISTANCE} Å): the cell is not a crystal",
        )
    # vesin's cell list is far slower with a tiny cutoff (~28 ms vs 0.2 ms per structure), so
    # search 1 Å and filter
    radius = max(1.0, close_contact)
    i, j, d = NeighborList(cutoff=radius, full_list=False).compute(
        points=crystal.cart_coords, box=crystal.lattice, periodic=True, quantities="ijd"
    )
    if not len(d):
        return
    k = int(np.argmin(d))
    pair = f"sites {int(i[k])} and {int(j[k])}" if i[k] != j[k] else f"site {int(i[k])} and its periodic image"
    if d[k] < MIN_DISTANCE:
        raise InvalidStructureError(
            index, sample_id,
            f"{pair} are {d[k]:.3g} Å apart (two atoms on the same spot; minimum {MIN_DISTANCE} Å)",
        )
    if d[k] < close_contact:
        warnings.warn(
            StructureWarning(
                index, sample_id,
                f"{pair} are {d[k]:.3g} Å apart, closer than any chemical bond (CLOSE_CONTACT = {close_contact} Å); "
                "check the structure",
            ),
            stacklevel=5,
        )


def to_crystal(obj, index: int | None = None, id: str | None = None, close_contact: float = CLOSE_CONTACT) -> Crystal:
    """Coerce one structure-like object into a validated :class:`Crystal`.

    Parameters
    ----------
    obj : object
        One of the accepted inputs (see the module): a Crystal, pymatgen Structure or dict, ASE
        or jarvis-tools Atoms, CIF or POSCAR text, or a path to such a file.
    index : int, optional
        Global sample index, for messages.
    id : str, optional
        Sample id, for messages; carried on the result.
    close_contact : float, default=CLOSE_CONTACT
        Two sites closer than this (Å) give a :class:`StructureWarning`.

    Returns
    -------
    crystal : Crystal
        The validated structure.

    Raises
    ------
    InvalidStructureError
        Naming the sample, for anything the module's checks reject.
    """
    result = _to_pymatgen_like(obj, index, id)
    if not isinstance(result, Crystal):
        result = _from_pymatgen(result, index, id)
    return _validate(result, index, id, close_contact)


def standardize(crystal: Crystal, cell: str | None, index: int | None = None) -> Crystal:
    """The same crystal in a cell that does not depend on the cell it was given.

    ``cell``: None (the crystal as given), ``"primitive"`` (spglib's standardized primitive
    cell, found with tolerance :data:`SYMPREC` and symmetrized: atoms moved by at most about
    that much onto their ideal positions; lattice (Å) and fractional coordinates rounded to 8
    decimals and sites sorted by element and position, so that a primitive, conventional or
    super-cell input gives bitwise the same cell) or ``"niggli"`` (the Niggli-reduced basis of
    the given cell: the same for every choice of basis vectors of the same lattice; atoms not
    moved, a supercell stays a supercell). Sites may be reordered; the id is kept.

    Parameters
    ----------
    crystal : Crystal
        The structure.
    cell : {None, "primitive", "niggli"}
        Which cell (see above).
    index : int, optional
        Global sample index, for messages.

    Returns
    -------
    crystal : Crystal
        The structure in that cell.
    """
    if cell is None:
        return crystal
    if cell == "primitive":
        import spglib

        found = spglib.standardize_cell(
            (crystal.lattice, crystal.frac_coords, crystal.numbers), to_primitive=True, symprec=SYMPREC
        )
        if found is None:
            raise InvalidStructureError(index, crystal.id, f"spglib found no symmetry cell (symprec={SYMPREC} Å)")
        # the same crystal from any cell gives this cell up to float noise (~1e-15); rounding
        # and sorting the sites make it bitwise the same, so graph rules with exact distance
        # ties (ALIGNN's k-th neighbour shell) see the same ties
        lattice = np.round(found[0], _DECIMALS) + 0.0
        frac = (np.round(found[1], _DECIMALS) % 1.0) + 0.0
        numbers = np.asarray(found[2])
        order = np.lexsort((frac[:, 2], frac[:, 1], frac[:, 0], numbers))
        frac, numbers = frac[order], numbers[order]
    elif cell == "niggli":
        from pymatgen.core import Lattice

        lattice = Lattice(crystal.lattice).get_niggli_reduced_lattice().matrix
        frac = np.linalg.solve(lattice.T, crystal.cart_coords.T).T
        frac = frac - np.floor(frac + 1e-12)
        numbers = crystal.numbers
    else:
        raise ValueError(f"standardize must be one of {STANDARDIZE}, got {cell!r}")
    return Crystal(
        np.asarray(lattice, dtype=np.float64),
        np.asarray(frac, dtype=np.float64).reshape(-1, 3),
        np.asarray(numbers, dtype=np.int64),
        crystal.id,
    )


#: structures per joblib task when :func:`to_crystals` parses in parallel
PARSE_CHUNK = 256


def _to_crystal_chunk(start: int, objs: list, ids: list, close_contact: float) -> list[Crystal]:
    return [
        to_crystal(obj, index=start + k, id=sid, close_contact=close_contact)
        for k, (obj, sid) in enumerate(zip(objs, ids))
    ]


def _chunk_in_worker(start: int, objs: list, ids: list, close_contact: float, parent: int):
    """:func:`_to_crystal_chunk` in a worker: its warnings come back as data, to be re-issued."""
    from skdynemb._workers import exit_with_parent

    exit_with_parent(parent)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        crystals = _to_crystal_chunk(start, objs, ids, close_contact)
    return crystals, [w.message for w in caught]


def to_crystals(
    structures, ids: Sequence | None = None, n_jobs: int | None = None, close_contact: float = CLOSE_CONTACT
) -> list[Crystal]:
    """Coerce a sequence (list, tuple, pandas Series) of structures; errors and warnings name the index.

    Parameters
    ----------
    structures : sequence
        Structure-like objects (see :func:`to_crystal`); a pandas Series gives its index as ids.
    ids : sequence, optional
        One id per structure, for messages and outputs (default: a Crystal's own id, or None).
    n_jobs : int, optional
        joblib workers that parse chunks of :data:`PARSE_CHUNK` structures in parallel (worth it
        for CIF/POSCAR text and files); None or 1 parses here.
    close_contact : float, default=CLOSE_CONTACT
        See :func:`to_crystal` (Å).

    Returns
    -------
    crystals : list of Crystal
        The validated structures, in order.
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
        return _to_crystal_chunk(0, list(structures), labels, close_contact)
    import os

    from joblib import Parallel, delayed

    starts = range(0, len(structures), PARSE_CHUNK)
    parts = Parallel(n_jobs=n_jobs)(
        delayed(_chunk_in_worker)(
            s, list(structures[s : s + PARSE_CHUNK]), labels[s : s + PARSE_CHUNK], close_contact, os.getpid()
        )
        for s in starts
    )
    for _, caught in parts:
        for message in caught:
            warnings.warn(message, stacklevel=2)
    return [c for part, _ in parts for c in part]
