"""StaticEmbeddingTransformer: compositions or structures -> static element embeddings."""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted

from skdynemb.errors import InvalidCompositionError
from skdynemb.embeddings import CompoundEmbedding, ElementEmbeddings
from skdynemb.static_tables import TABLES, UnknownElementError, element_rows, load_table
from skdynemb.transformers._base import SampleTransformer
from skdynemb.transformers._compositions import parse_compositions


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
        """Check the parameters and load the table; X and y are not used (nothing is learned).

        Parameters
        ----------
        X : ignored
            Not used, present for API consistency.
        y : ignored
            Not used, present for API consistency.

        Returns
        -------
        self : StaticEmbeddingTransformer
            The fitted transformer.
        """
        if not isinstance(self.embedding, str) or self.embedding not in TABLES:
            raise ValueError(f"embedding must be one of {TABLES}, got {self.embedding!r}")
        if self.pooling not in ("element", "mean"):
            raise ValueError(f"pooling must be 'element' or 'mean', got {self.pooling!r}")
        self.feature_names_ = np.asarray(load_table(self.embedding)[1], dtype=object)
        self.n_features_out_ = len(self.feature_names_)
        return self

    def transform(self, X):
        """Embeddings of the compositions/structures X.

        See :func:`~skdynemb.transformers._compositions.parse_compositions` for what X may hold.

        Returns :class:`ElementEmbeddings` (``pooling="element"``) or an (n_samples, width)
        float32 array / DataFrame (``pooling="mean"``).

        Parameters
        ----------
        X : sequence or pandas Series / DataFrame
            Formula strings, pymatgen Compositions, element -> amount dicts or structures.

        Returns
        -------
        embeddings : ElementEmbeddings or ndarray of shape (n_samples, n_features_out_) or DataFrame
            Per-element table rows (``pooling="element"``), or one fraction-weighted float32 row per
            sample (``pooling="mean"``; a DataFrame under ``set_output(transform="pandas")``).

        Raises
        ------
        InvalidCompositionError
            A sample has an element the table does not cover (its index and id).
        ValueError
            X has no samples.
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
