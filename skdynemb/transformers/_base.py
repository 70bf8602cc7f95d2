"""Shared plumbing for the transformers: input coercion and tabular (set_output) wrapping."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._set_output import ADAPTERS_MANAGER, _get_output_config
from sklearn.utils.validation import check_is_fitted


def as_samples(X, name: str = "X") -> tuple[list, list[str] | None]:
    """Turn X (list, tuple, 1-D object array, pandas Series or one-column DataFrame) into a list.

    Returns the items and, for pandas input with a non-default index, the index as string ids.
    """
    ids = None
    if isinstance(X, pd.DataFrame):
        if X.shape[1] != 1:
            raise ValueError(f"{name} is a DataFrame with {X.shape[1]} columns; pass the one column of samples")
        X = X.iloc[:, 0]
    if isinstance(X, pd.Series):
        if not isinstance(X.index, pd.RangeIndex):
            ids = [str(i) for i in X.index]
        return X.tolist(), ids
    if isinstance(X, np.ndarray):
        if X.ndim == 2 and X.shape[1] == 1:
            X = X[:, 0]
        if X.ndim != 1:
            raise ValueError(f"{name} must be a 1-D sequence of samples, got an array of shape {X.shape}")
        return X.tolist(), None
    if _is_single_sample(X):
        raise TypeError(
            f"{name} is a single {type(X).__module__.split('.')[0]} {type(X).__name__}, not a sequence of "
            f"samples; wrap it in a list: transform([{name.lower()}])"
        )
    if isinstance(X, (str, bytes, dict)) or not hasattr(X, "__len__"):
        raise TypeError(f"{name} must be a sequence of samples, got {type(X).__name__}")
    return list(X), None


def _is_single_sample(X) -> bool:
    """A structure or composition object (iterable over its sites/elements) given where a list is expected."""
    from pymatgen.core import Composition, SiteCollection

    from skdynemb.structures import Crystal

    if isinstance(X, (SiteCollection, Composition, Crystal)):
        return True
    return any(c.__name__ == "Atoms" and c.__module__.split(".")[0] in ("ase", "jarvis") for c in type(X).__mro__)


class TabularOutputMixin:
    """``set_output`` for transformers whose output is tabular only for some settings.

    Subclasses declare ``auto_wrap_output_keys=None`` and call :meth:`_wrap_output` on their
    result: 2-D arrays become DataFrames when ``set_output(transform="pandas")`` is configured;
    per-element :class:`~skdynemb.embeddings.ElementEmbeddings` are not tabular and pass through.
    """

    def set_output(self, *, transform=None):
        """Set the output container of ``transform`` ("default", "pandas" or "polars").

        Parameters
        ----------
        transform : {"default", "pandas", "polars"}, optional
            Container of 2-D outputs; per-element embeddings are returned as they are. None: unchanged.

        Returns
        -------
        self : estimator
            This transformer.
        """
        if transform is not None:
            if not hasattr(self, "_sklearn_output_config"):
                self._sklearn_output_config = {}
            self._sklearn_output_config["transform"] = transform
        return self

    def _wrap_output(self, out, X):
        dense = _get_output_config("transform", self)["dense"]
        if not isinstance(out, np.ndarray):
            if dense != "default":
                warnings.warn(
                    f"set_output(transform={dense!r}) has no effect with pooling={getattr(self, 'pooling', None)!r}: "
                    f"per-element embeddings are not a table, so transform returns {type(out).__name__}; "
                    "use pooling=\"mean\" for one row per compound as a DataFrame",
                    UserWarning, stacklevel=3,
                )
            return out
        if dense == "default":
            return out
        table = ADAPTERS_MANAGER.adapters[dense].create_container(
            out, X if isinstance(X, pd.DataFrame) else None, columns=self.get_feature_names_out
        )
        if dense == "pandas" and isinstance(X, pd.Series):
            table.index = X.index
        return table


class SampleTransformer(TabularOutputMixin, TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """Base of the transformers whose samples are structures or compositions (not numeric rows).

    Subclasses set ``feature_names_`` in ``fit``. The input tags tell scikit-learn's estimator
    checks that X is a sequence of objects, not a 2-D float array.
    """

    def __init_subclass__(cls, **kwargs):
        # never let scikit-learn auto-wrap transform: _wrap_output decides what is tabular
        kwargs["auto_wrap_output_keys"] = None
        super().__init_subclass__(**kwargs)

    def fit_transform(self, X, y=None, **fit_params):
        """``fit(X, y).transform(X)`` (TransformerMixin's version would re-wrap the output).

        Parameters
        ----------
        X : sequence or pandas Series / DataFrame
            The samples, as ``transform`` accepts them.
        y : ignored
            Passed to ``fit`` (which does not use it).
        **fit_params : dict
            Passed to ``fit``.

        Returns
        -------
        out : ElementEmbeddings or ndarray of shape (n_samples, n_features_out_) or DataFrame
            What ``transform`` returns.
        """
        return self.fit(X, y, **fit_params).transform(X)

    def get_feature_names_out(self, input_features=None):
        """Names of the output features (one per column of a row).

        Parameters
        ----------
        input_features : ignored
            Not used (the inputs are structures or compositions, not named columns).

        Returns
        -------
        feature_names_out : ndarray of str
            A copy of ``feature_names_``.
        """
        check_is_fitted(self, "feature_names_")
        return self.feature_names_.copy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.transformer_tags.preserves_dtype = []
        return tags
