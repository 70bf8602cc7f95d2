"""StaticEmbeddingTransformer: compositions or structures -> static element embeddings.

Also holds the composition parsing shared by the composition baselines
(:mod:`skdynemb.transformers.composition`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from numbers import Number, Real

import numpy as np
from pymatgen.core import Composition
from pymatgen.core.periodic_table import Element
from sklearn.utils.validation import check_is_fitted

from skdynemb.errors import InvalidCompositionError
from skdynemb.embeddings import CompoundEmbedding, ElementEmbeddings
from skdynemb.static_tables import TABLES, UnknownElementError, element_rows, load_table
from skdynemb.structures import Crystal, to_crystal
from skdynemb.transformers._base import SampleTransformer, as_samples


#: An element (or bracketed group) followed by an explicit amount of zero, as in "NaCl0".
_ZERO_AMOUNT = re.compile(r"([A-Z][a-z]*|\))\s*0+(?:\.0*)?(?![\d.])")


def _from_composition(comp: Composition, index, sample_id) -> dict[Element, float]:
    amounts = {}
    for species, amount in comp.element_composition.items():
        if not isinstance(species, Element):
            raise InvalidCompositionError(index, sample_id, f"unknown element {str(species.symbol)!r}")
        if not np.isfinite(amount) or amount <= 0:
            raise InvalidCompositionError(index, sample_id, f"amount of {species.symbol} is {amount}, not positive")
        amounts[species] = float(amount)
    return amounts


def _from_mapping(mapping: Mapping, index, sample_id) -> Composition:
    for key, amount in mapping.items():
        if isinstance(amount, bool) or not isinstance(amount, Real) or not np.isfinite(amount) or amount <= 0:
            raise InvalidCompositionError(index, sample_id, f"amount of {key} is {amount!r}, not a positive number")
    try:
        return Composition(mapping)
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidCompositionError(index, sample_id, f"not a composition {dict(mapping)!r}: {exc}") from exc


def _amounts(obj, index: int, sample_id) -> dict[Element, float]:
    """Element -> amount (any scale) of one sample; structures count their sites."""
    if isinstance(obj, Composition):
        return _from_composition(obj, index, sample_id)
    if isinstance(obj, str) and "\n" not in obj and not os.path.isfile(obj):
        zero = _ZERO_AMOUNT.search(obj)
        if zero:  # pymatgen drops it silently: "NaCl0" would become pure Na
            raise InvalidCompositionError(
                index, sample_id, f"formula {obj!r} gives {zero.group(1)!r} an amount of 0; leave the element out"
            )
        try:
            comp = Composition(obj)
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidCompositionError(index, sample_id, f"could not parse formula {obj!r}: {exc}") from exc
        return _from_composition(comp, index, sample_id)
    if isinstance(obj, Mapping) and not ({"@class", "sites", "lattice"} & set(obj)):
        return _from_composition(_from_mapping(obj, index, sample_id), index, sample_id)
    if obj is None or isinstance(obj, Number):
        raise InvalidCompositionError(
            index, sample_id, f"got {obj!r}; expected a formula, Composition, element->amount dict or structure"
        )
    numbers = to_crystal(obj, index=index, id=sample_id).numbers
    z, counts = np.unique(numbers, return_counts=True)
    return {Element.from_Z(int(k)): float(n) for k, n in zip(z, counts)}


def parse_compositions(X) -> tuple[list[tuple[tuple[str, ...], np.ndarray]], list]:
    """Per sample of X: (element symbols sorted by atomic number, atomic fractions summing to 1).

    X items may be formula strings ("LiCoO2", "Li10 Ge P2 S12"), pymatgen ``Composition``\\ s,
    element -> amount dicts, or any structure :func:`skdynemb.structures.to_crystal` accepts
    (a structure contributes the composition of its sites). A string is a formula unless it
    contains a newline (CIF/POSCAR text) or names an existing file. Also returns the sample ids
    (pandas index labels or ``Crystal.id``; None where absent).
    """
    items, ids = as_samples(X)
    if not items:
        raise ValueError("X has no samples")
    parsed, sample_ids = [], []
    for i, obj in enumerate(items):
        sample_id = ids[i] if ids is not None else (obj.id if isinstance(obj, Crystal) else None)
        amounts = _amounts(obj, i, sample_id)
        if not amounts:
            raise InvalidCompositionError(i, sample_id, f"empty composition {obj!r}")
        elements = sorted(amounts, key=lambda el: el.Z)
        values = np.array([amounts[el] for el in elements], dtype=np.float64)
        parsed.append((tuple(el.symbol for el in elements), values / values.sum()))
        sample_ids.append(sample_id)
    return parsed, sample_ids


class StaticEmbeddingTransformer(SampleTransformer):
    """Look up a static (structure-free) element embedding for every element of each compound.

    Drop-in alternative to :class:`~skdynemb.transformers.DynamicEmbeddingTransformer`: the same
    output types, so static vs dynamic embeddings is a one-parameter swap in front of Roost.

    Parameters
    ----------
    embedding : str, default="matscholar200"
        Table name, one of :data:`skdynemb.static_tables.TABLES` (see that module for sources
        and widths).
    pooling : {"element", "mean"}, default="element"
        ``"element"``: per compound, the unique elements (sorted by atomic number), their atomic
        fractions (sum 1) and their table rows -> :class:`ElementEmbeddings` (Roost input).
        ``"mean"``: the fraction-weighted mean row per compound -> (n_samples, width) float32.

    Attributes
    ----------
    feature_names_ : ndarray of str
        Names of the row features (``get_feature_names_out()``).
    n_features_out_ : int
        The table width.

    Examples
    --------
    >>> from skdynemb import StaticEmbeddingTransformer
    >>> emb = StaticEmbeddingTransformer("megnet16").fit_transform(["LiCoO2", "NaCl"])
    >>> emb[0].elements, emb[0].features.shape
    (('Li', 'O', 'Co'), (3, 16))
    >>> StaticEmbeddingTransformer("megnet16", pooling="mean").fit_transform(["LiCoO2", "NaCl"]).shape
    (2, 16)
    """

    def __init__(self, embedding="matscholar200", pooling="element"):
        self.embedding = embedding
        self.pooling = pooling

    def fit(self, X=None, y=None):
        """Check the parameters and load the table; X and y are not used (nothing is learned)."""
        if not isinstance(self.embedding, str) or self.embedding not in TABLES:
            raise ValueError(f"embedding must be one of {TABLES}, got {self.embedding!r}")
        if self.pooling not in ("element", "mean"):
            raise ValueError(f"pooling must be 'element' or 'mean', got {self.pooling!r}")
        self.feature_names_ = np.asarray(load_table(self.embedding)[1], dtype=object)
        self.n_features_out_ = len(self.feature_names_)
        return self

    def transform(self, X):
        """Embeddings of the compositions/structures X (see :func:`parse_compositions`).

        Returns :class:`ElementEmbeddings` (``pooling="element"``) or an (n_samples, width)
        float32 array / DataFrame (``pooling="mean"``).
        """
        check_is_fitted(self, "feature_names_")
        parsed, ids = parse_compositions(X)
        compounds = []
        for i, ((symbols, fractions), sample_id) in enumerate(zip(parsed, ids)):
            try:
                rows = element_rows(self.embedding, symbols)
            except UnknownElementError as exc:
                raise InvalidCompositionError(i, sample_id, str(exc)) from exc
            compounds.append(CompoundEmbedding(symbols, fractions, rows, sample_id))
        out = ElementEmbeddings(compounds, self.feature_names_)
        return self._wrap_output(out if self.pooling == "element" else out.mean(), X)

