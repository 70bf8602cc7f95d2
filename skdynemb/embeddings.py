"""Per-compound element embeddings: the data type between transformers and Roost.

Each sample is a :class:`CompoundEmbedding` (element symbols, their fractions and one feature
row per element). :class:`ElementEmbeddings` is a sequence of them that scikit-learn can index
(``_safe_indexing`` falls back to ``[X[i] for i in idx]``, which gives a list of
CompoundEmbedding, also accepted downstream) and that pickles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: why per-element embeddings are not a 2-D array, and what to do instead
NOT_A_2D_ARRAY = (
    "per-element embeddings (ElementEmbeddings / CompoundEmbedding: one row per element, a different "
    "number of rows per compound) are not a 2-D feature array. RoostRegressor takes them as they are; "
    "an estimator that needs one vector per compound (Ridge, ElemNetRegressor, AutoMLRegressor, ...) "
    "needs pooling=\"mean\" in the transformer (or ElementEmbeddings.mean())"
)


@dataclass(frozen=True, eq=False)
class CompoundEmbedding:
    """One compound: ``features[i]`` is the row of ``elements[i]`` with fraction ``fractions[i]``.

    Attributes
    ----------
    elements : tuple of str
        Element symbols, each once.
    fractions : ndarray of shape (n_elements,)
        Atomic fractions (sum to 1).
    features : ndarray of shape (n_elements, d), float32
        One row per element.
    id : str, optional
        The compound's sample id.
    """

    elements: tuple[str, ...]
    fractions: np.ndarray
    features: np.ndarray
    id: str | None = None

    def __post_init__(self):
        n = len(self.elements)
        if self.features.ndim != 2 or self.features.shape[0] != n or self.fractions.shape != (n,):
            raise ValueError(
                f"compound {self.id!r}: {n} elements but features {self.features.shape} "
                f"and fractions {self.fractions.shape}"
            )

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, CompoundEmbedding)
            and self.elements == other.elements
            and np.array_equal(self.fractions, other.fractions)
            and np.array_equal(self.features, other.features)
        )

    __hash__ = None

    def __float__(self):
        raise TypeError(NOT_A_2D_ARRAY)


class ElementEmbeddings(Sequence):
    """A list of :class:`CompoundEmbedding` with shared ``feature_names`` (length d).

    Parameters
    ----------
    compounds : sequence of CompoundEmbedding
        The compounds, each with rows of width d.
    feature_names : sequence of str
        Names of the d features.
    """

    def __init__(self, compounds: Sequence[CompoundEmbedding], feature_names: Sequence[str]):
        self.compounds = list(compounds)
        self.feature_names = np.asarray(feature_names, dtype=object)
        d = len(self.feature_names)
        for i, c in enumerate(self.compounds):
            if c.features.shape[1] != d:
                raise ValueError(f"sample {i}: {c.features.shape[1]} features, expected {d}")

    @property
    def n_features(self) -> int:
        """Width d of the element rows.

        Returns
        -------
        n_features : int
            ``len(feature_names)``.
        """
        return len(self.feature_names)

    def __len__(self) -> int:
        return len(self.compounds)

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self.compounds[key]
        if isinstance(key, slice):
            return ElementEmbeddings(self.compounds[key], self.feature_names)
        key = np.asarray(key)
        if key.dtype == bool:
            if key.shape != (len(self),):
                raise IndexError(f"boolean mask of shape {key.shape} for {len(self)} samples")
            key = np.flatnonzero(key)
        return ElementEmbeddings([self.compounds[int(i)] for i in key], self.feature_names)

    def __repr__(self) -> str:
        return f"ElementEmbeddings(n_samples={len(self)}, n_features={self.n_features})"

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, ElementEmbeddings)
            and list(self.feature_names) == list(other.feature_names)
            and self.compounds == other.compounds
        )

    __hash__ = None

    def __array__(self, dtype=None, copy=None):
        """An object array of the compounds with ``dtype=object``; any other array is refused
        (TypeError saying to pool them), so a 2-D estimator fails with a clear message."""
        if dtype is not None and np.dtype(dtype) == object:
            out = np.empty(len(self), dtype=object)
            out[:] = self.compounds
            return out
        raise TypeError(NOT_A_2D_ARRAY)

    def mean(self) -> np.ndarray:
        """Fraction-weighted mean row per compound: the atom-averaged vector.

        See :func:`skdynemb.pooling.mean_rows`.

        Returns
        -------
        rows : ndarray of shape (n_samples, d)
            One row per compound.
        """
        from skdynemb.pooling import mean_rows

        return mean_rows(self.compounds, self.n_features)
