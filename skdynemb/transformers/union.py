"""ElementEmbeddingUnion: element rows of several embedding transformers, side by side.

scikit-learn's ``FeatureUnion`` concatenates 2-D outputs column-wise; per-element embeddings
have one row per element of each compound, so concatenating them means joining, compound by
compound and element by element, the rows that several sources give the same element: e.g. the
stages of two backbones, or a dynamic row with a static table's columns appended.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from skdynemb.embeddings import CompoundEmbedding, ElementEmbeddings
from skdynemb.errors import InvalidSampleError
from skdynemb.transformers._base import SampleTransformer

#: largest accepted difference between the atomic fractions two sources give one element
FRACTION_ATOL = 1e-6


class ElementEmbeddingUnion(SampleTransformer):
    """Concatenate, per element of each compound, the rows of several embedding transformers.

    Every transformer gets the same X and must return per-element
    :class:`~skdynemb.embeddings.ElementEmbeddings` (``pooling="element"``, the default of
    :class:`~skdynemb.transformers.DynamicEmbeddingTransformer` and
    :class:`~skdynemb.transformers.StaticEmbeddingTransformer`). For each compound they must
    give the same elements in the same order with the same atomic fractions (within
    :data:`FRACTION_ATOL`); the row of an element is then the concatenation of its rows, in the
    order of ``transformer_list``. A dynamic transformer with ``memory=`` keeps its cache: the
    union calls its ``transform``.

    Parameters
    ----------
    transformer_list : list of (str, transformer)
        Named embedding transformers. A name must be unique and contain no ``"__"``; a
        transformer may be ``"drop"`` (left out, e.g. by a grid search). Their parameters are
        reachable as ``<name>__<parameter>`` (``set_params``, ``GridSearchCV``).
    pooling : {"element", "mean"}, default="element"
        ``"element"``: :class:`~skdynemb.embeddings.ElementEmbeddings` (Roost input).
        ``"mean"``: the fraction-weighted mean of the joined rows per compound -> 2-D float32
        array (a DataFrame with ``set_output(transform="pandas")``).

    Attributes
    ----------
    transformers_ : list of (str, transformer)
        Fitted clones of the transformers that are not ``"drop"``.
    feature_names_ : ndarray of str
        ``<name>__<feature>`` for every column, in order: the source of each column is the part
        before ``"__"`` (``get_feature_names_out()``).
    n_features_out_ : int
        Width of a joined row (sum of the sources' widths).

    Examples
    --------
    >>> from skdynemb import ElementEmbeddingUnion, StaticEmbeddingTransformer
    >>> union = ElementEmbeddingUnion([("megnet", StaticEmbeddingTransformer("megnet16")),
    ...                                ("magpie", StaticEmbeddingTransformer("magpie"))])
    >>> emb = union.fit_transform(["LiCoO2", "NaCl"])
    >>> emb[0].elements, emb[0].features.shape
    (('Li', 'O', 'Co'), (3, 38))
    >>> [str(n) for n in union.get_feature_names_out()[[0, 16]]]
    ['megnet__megnet16_0', 'magpie__magpie_Number']
    """

    def __init__(self, transformer_list, pooling="element"):
        self.transformer_list = transformer_list
        self.pooling = pooling

    # ------------------------------------------------ nested parameters (as FeatureUnion)
    def get_params(self, deep=True):
        """Parameters of the union; with ``deep``, also each transformer by its name and the
        transformers' own parameters as ``<name>__<parameter>``.

        Parameters
        ----------
        deep : bool, default=True
            Include the transformers and their parameters.

        Returns
        -------
        params : dict
            Parameter name -> value.
        """
        out = super().get_params(deep=False)
        if not deep:
            return out
        items = self.transformer_list
        if not isinstance(items, (list, tuple)) or not all(isinstance(p, tuple) and len(p) == 2 for p in items):
            return out
        for name, transformer in items:
            out[name] = transformer
            if hasattr(transformer, "get_params"):
                out.update({f"{name}__{k}": v for k, v in transformer.get_params(deep=True).items()})
        return out

    def set_params(self, **params):
        """Set parameters: ``transformer_list``, ``pooling``, ``<name>`` (replace a transformer)
        or ``<name>__<parameter>``.

        Parameters
        ----------
        **params : dict
            Parameter name -> new value.

        Returns
        -------
        self : ElementEmbeddingUnion
            This estimator.

        Raises
        ------
        ValueError
            A name is neither a parameter nor a transformer name.
        """
        if "transformer_list" in params:
            self.transformer_list = params.pop("transformer_list")
        if "pooling" in params:
            self.pooling = params.pop("pooling")
        if not params:
            return self
        names = [name for name, _ in self.transformer_list]
        nested: dict[str, dict] = {}
        for key, value in params.items():
            name, sep, sub = key.partition("__")
            if name not in names:
                raise ValueError(
                    f"Invalid parameter {name!r} for estimator {type(self).__name__}; valid parameters are "
                    f"transformer_list, pooling and the transformer names {names}"
                )
            if sep:
                nested.setdefault(name, {})[sub] = value
            else:
                self.transformer_list = [(n, value if n == name else t) for n, t in self.transformer_list]
        for name, sub in nested.items():
            dict(self.transformer_list)[name].set_params(**sub)
        return self

    # -------------------------------------------------------------------- fit
    def _check_list(self) -> None:
        items = self.transformer_list
        if not isinstance(items, (list, tuple)) or not items:
            raise ValueError(f"transformer_list must be a non-empty list of (name, transformer), got {items!r}")
        names = []
        for item in items:
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
                raise ValueError(f"transformer_list items must be (name, transformer) tuples, got {item!r}")
            name, transformer = item
            if not name or "__" in name:
                raise ValueError(f"transformer name {name!r} must be non-empty and contain no '__'")
            if name in ("transformer_list", "pooling"):
                raise ValueError(f"transformer name {name!r} clashes with a parameter of {type(self).__name__}")
            if not (isinstance(transformer, str) and transformer == "drop") and not (
                hasattr(transformer, "fit") and hasattr(transformer, "transform")
            ):
                raise TypeError(f"transformer {name!r} must be a transformer or 'drop', got {transformer!r}")
            names.append(name)
        if len(set(names)) != len(names):
            raise ValueError(f"transformer names must be unique, got {names}")
        if all(isinstance(t, str) for _, t in items):
            raise ValueError("every transformer of transformer_list is 'drop': nothing to concatenate")

    def fit(self, X, y=None):
        """Fit clones of the transformers on X (embedding transformers learn nothing from it).

        Parameters
        ----------
        X : sequence of samples
            Structures or compositions, as the transformers take them.
        y : ignored
            Accepted for pipelines.

        Returns
        -------
        self : ElementEmbeddingUnion
            The fitted union.
        """
        self._check_list()
        if self.pooling not in ("element", "mean"):
            raise ValueError(f"pooling must be 'element' or 'mean', got {self.pooling!r}")
        self.transformers_ = [
            (name, clone(t).fit(X, y)) for name, t in self.transformer_list if not isinstance(t, str)
        ]
        names = []
        for name, t in self.transformers_:
            names += [f"{name}__{f}" for f in t.get_feature_names_out()]
        self.feature_names_ = np.asarray(names, dtype=object)
        self.n_features_out_ = len(names)
        return self

    # -------------------------------------------------------------- transform
    def transform(self, X):
        """Joined element rows of X.

        Parameters
        ----------
        X : sequence of samples
            Structures or compositions, as the transformers take them.

        Returns
        -------
        ElementEmbeddings or ndarray of shape (n_samples, n_features_out_)
            Per-element rows (``pooling="element"``) or their fraction-weighted mean per
            compound (``pooling="mean"``, float32; a DataFrame with pandas output).

        Raises
        ------
        InvalidSampleError
            When two transformers disagree on a compound's elements or fractions (naming the
            sample and both answers).
        """
        check_is_fitted(self, "transformers_")
        parts = []
        for name, t in self.transformers_:
            out = t.transform(X)
            if not isinstance(out, ElementEmbeddings):
                raise TypeError(
                    f"transformer {name!r} returned {type(out).__name__}, not per-element ElementEmbeddings; "
                    "give it pooling=\"element\" (the union's own pooling=\"mean\" pools the joined rows)"
                )
            parts.append((name, out))
        out = ElementEmbeddings(self._join(parts), self.feature_names_)
        return self._wrap_output(out if self.pooling == "element" else out.mean(), X)

    @staticmethod
    def _join(parts: list[tuple[str, ElementEmbeddings]]) -> list[CompoundEmbedding]:
        first_name, first = parts[0]
        for name, emb in parts[1:]:
            if len(emb) != len(first):
                raise ValueError(f"transformer {name!r} returned {len(emb)} samples, {first_name!r} {len(first)}")
        compounds = []
        for i in range(len(first)):
            ref = first[i]
            sample_id = next((emb[i].id for _, emb in parts if emb[i].id is not None), None)
            for name, emb in parts[1:]:
                c = emb[i]
                if c.elements != ref.elements:
                    raise InvalidSampleError(
                        i, sample_id,
                        f"transformer {first_name!r} gives elements {list(ref.elements)} but {name!r} gives "
                        f"{list(c.elements)}; the union joins rows element by element, so every source must "
                        "describe the same compound",
                    )
                diff = np.abs(np.asarray(c.fractions, float) - np.asarray(ref.fractions, float))
                if diff.max() > FRACTION_ATOL:
                    raise InvalidSampleError(
                        i, sample_id,
                        f"transformer {first_name!r} gives fractions {np.round(ref.fractions, 6).tolist()} of "
                        f"{list(ref.elements)} but {name!r} gives {np.round(c.fractions, 6).tolist()} (e.g. a "
                        "formula that does not match the structure)",
                    )
            features = np.concatenate([np.asarray(emb[i].features, np.float32) for _, emb in parts], axis=1)
            compounds.append(CompoundEmbedding(ref.elements, ref.fractions, features, sample_id))
        return compounds
