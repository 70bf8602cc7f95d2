"""Compositions in: formulas, Compositions, element -> amount dicts or structures -> (elements, fractions).

The one composition parser, shared by :class:`~skdynemb.transformers.StaticEmbeddingTransformer`
and the composition baselines (:mod:`skdynemb.transformers.composition`). Every problem raises
:class:`~skdynemb.errors.InvalidCompositionError` naming the sample (index and id).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from numbers import Number, Real

import numpy as np
from pymatgen.core import Composition
from pymatgen.core.periodic_table import Element

from skdynemb.errors import InvalidCompositionError
from skdynemb.structures import Crystal, string_kind, to_crystal
from skdynemb.transformers._base import as_samples


#: An element (or bracketed group) followed by an explicit amount of zero, as in "NaCl0".
_ZERO_AMOUNT = re.compile(r"([A-Z][a-z]*|\))\s*0+(?:\.0*)?(?![\d.])")
#: a candidate element symbol in a formula
_SYMBOL = re.compile(r"[A-Z][a-z]?")


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
    if isinstance(obj, str) and string_kind(obj) == "line":
        zero = _ZERO_AMOUNT.search(obj)
        if zero:  # pymatgen drops it silently: "NaCl0" would become pure Na
            raise InvalidCompositionError(
                index, sample_id, f"formula {obj!r} gives {zero.group(1)!r} an amount of 0; leave the element out"
            )
        try:
            comp = Composition(obj)
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidCompositionError(index, sample_id, f"could not parse formula {obj!r}: {exc}") from exc
        kept = {el.symbol for el in comp.element_composition}
        dropped = [
            sym for sym in dict.fromkeys(_SYMBOL.findall(obj)) if Element.is_valid_symbol(sym) and sym not in kept
        ]
        if dropped:  # pymatgen drops amounts below its tolerance: "Na1e-9Cl" would become pure Cl
            raise InvalidCompositionError(
                index, sample_id,
                f"formula {obj!r} names {dropped} but gives them no amount that counts (below "
                f"{Composition.amount_tolerance:g}); leave them out or give a real amount",
            )
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
    r"""Per sample of X: (element symbols sorted by atomic number, atomic fractions summing to 1).

    X items may be formula strings ("LiCoO2", "Li10 Ge P2 S12"), pymatgen ``Composition``\ s,
    element -> amount dicts, or any structure :func:`skdynemb.structures.to_crystal` accepts
    (a structure contributes the composition of its sites). A string is a formula when
    :func:`skdynemb.structures.string_kind` finds one line that names no file. Also returns the sample ids
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
