r"""Composition-only baseline features (the paper's Table 3 inputs): ElemNet fractions, Magpie.

Both accept what :class:`~skdynemb.transformers.StaticEmbeddingTransformer` accepts (formulas,
``Composition``\ s, element -> amount dicts, structures) and return (n_samples, d) float32 arrays
(or DataFrames with ``set_output(transform="pandas")``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from pymatgen.core import Composition
from pymatgen.core.periodic_table import Element
from sklearn.utils.validation import check_is_fitted

from skdynemb.errors import InvalidCompositionError
from skdynemb.transformers._base import SampleTransformer
from skdynemb.transformers._compositions import parse_compositions

#: Elements ElemNet's 86-wide input leaves out of H..Pu (Jha et al. 2018, ElemNet README).
ELEMNET_EXCLUDED = ("He", "Ne", "Ar", "Po", "At", "Rn", "Fr", "Ra")


def element_columns(elements: str) -> tuple[str, ...]:
    """Column symbols, by atomic number: ``"elemnet"`` (86: Z=1..94 minus ELEMNET_EXCLUDED) or
    ``"all"`` (118: Z=1..118, the columns of matminer's ``ElementFraction``).

    Parameters
    ----------
    elements : {"elemnet", "all"}
        Which column set.

    Returns
    -------
    symbols : tuple of str
        Element symbols, by atomic number.
    """
    last = 94 if elements == "elemnet" else 118
    excluded = ELEMNET_EXCLUDED if elements == "elemnet" else ()
    return tuple(s for s in (Element.from_Z(z).symbol for z in range(1, last + 1)) if s not in excluded)


class _CompositionFeatures(SampleTransformer):
    """Shared fit/transform: subclasses define ``_names()`` (checks parameters) and ``_row_function()``
    (returns ``row(symbols, fractions, index, sample_id) -> 1-D array`` for the fitted state)."""

    def fit(self, X=None, y=None):
        """Check the parameters and set the output names; X and y are not used.

        Parameters
        ----------
        X : ignored
            Not used, present for API consistency.
        y : ignored
            Not used, present for API consistency.

        Returns
        -------
        self : estimator
            The fitted transformer.
        """
        self.feature_names_ = np.asarray(self._names(), dtype=object)
        self.n_features_out_ = len(self.feature_names_)
        return self

    def transform(self, X):
        """(n_samples, n_features_out_) float32 features of the compositions/structures X.

        Parameters
        ----------
        X : sequence or pandas Series / DataFrame
            Formula strings, pymatgen Compositions, element -> amount dicts or structures
            (see :func:`~skdynemb.transformers._compositions.parse_compositions`).

        Returns
        -------
        features : ndarray of shape (n_samples, n_features_out_) or DataFrame
            float32 rows (a DataFrame under ``set_output(transform="pandas")``).

        Raises
        ------
        InvalidCompositionError
            A composition cannot be represented (its index and id).
        """
        check_is_fitted(self, "feature_names_")
        parsed, ids = parse_compositions(X)
        row = self._row_function()
        out = np.zeros((len(parsed), self.n_features_out_), dtype=np.float32)
        for i, ((symbols, fractions), sample_id) in enumerate(zip(parsed, ids)):
            out[i] = row(symbols, fractions, i, sample_id)
        return self._wrap_output(out, X)


class ElementFractionTransformer(_CompositionFeatures):
    """Atomic fraction of each element: ElemNet's input vector.

    Parameters
    ----------
    elements : {"elemnet", "all"}, default="elemnet"
        ``"elemnet"``: ElemNet's 86 elements (H..Pu without He, Ne, Ar, Po, At, Rn, Fr, Ra); a
        compound holding any other element is an error, as ElemNet cannot represent it.
        ``"all"``: Z=1..118, the same vector as matminer's ``ElementFraction``.

    Attributes
    ----------
    feature_names_ : ndarray of str
        The element symbols of the columns (by atomic number).
    n_features_out_ : int
        86 or 118.
    """

    def __init__(self, elements="elemnet"):
        self.elements = elements

    def _names(self):
        if self.elements not in ("elemnet", "all"):
            raise ValueError(f"elements must be 'elemnet' or 'all', got {self.elements!r}")
        return list(element_columns(self.elements))

    def _row_function(self):
        column = {s: k for k, s in enumerate(self.feature_names_)}

        def row(symbols, fractions, index, sample_id):
            missing = [s for s in symbols if s not in column]
            if missing:
                raise InvalidCompositionError(
                    index, sample_id,
                    f"element(s) {', '.join(missing)} not among ElemNet's 86 elements; use elements='all'",
                )
            out = np.zeros(len(column))
            out[[column[s] for s in symbols]] = fractions
            return out

        return row


@lru_cache(maxsize=2)
def _magpie_featurizer(impute_nan: bool):
    from matminer.featurizers.composition import ElementProperty

    return ElementProperty.from_preset("magpie", impute_nan=impute_nan)


class MagpieTransformer(_CompositionFeatures):
    """Magpie composition features (Ward et al. 2016) via matminer: 132 columns.

    matminer's ``ElementProperty.from_preset("magpie")``: minimum, maximum, range, fraction-weighted
    mean, mean absolute deviation and mode of 22 element properties (units as in matminer's
    Magpie data, e.g. MeltingT in K, CovalentRadius in pm). Computed one compound at a time in
    this process (no matminer multiprocessing).

    Parameters
    ----------
    impute_nan : bool, default=True
        matminer's option: fill the few element properties the Magpie data lacks (e.g. the
        melting point of He) with the mean over all elements. With False, a compound containing
        such an element is an error naming the sample, element and property.

    Attributes
    ----------
    feature_names_ : ndarray of str
        matminer's labels ("MagpieData mean MeltingT", ...).
    n_features_out_ : int
        132.
    """

    def __init__(self, impute_nan=True):
        self.impute_nan = impute_nan

    def _names(self):
        if not isinstance(self.impute_nan, (bool, np.bool_)):
            raise ValueError(f"impute_nan must be True or False, got {self.impute_nan!r}")
        return _magpie_featurizer(bool(self.impute_nan)).feature_labels()

    def _row_function(self):
        featurizer = _magpie_featurizer(bool(self.impute_nan))

        def row(symbols, fractions, index, sample_id):
            out = np.asarray(featurizer.featurize(Composition(dict(zip(symbols, fractions)))), dtype=np.float64)
            if not np.isfinite(out).all():
                gaps = [
                    f"{prop} of {s}"
                    for prop in featurizer.features
                    for s in symbols
                    if not np.isfinite(featurizer.data_source.get_elemental_property(Element(s), prop))
                ]
                raise InvalidCompositionError(
                    index, sample_id, f"Magpie data lacks {', '.join(gaps) or 'a property'}; use impute_nan=True"
                )
            return out

        return row
