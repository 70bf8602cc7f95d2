"""matminer adapter: the atom-averaged dynamic embedding as a ``BaseFeaturizer``."""

from __future__ import annotations

import numpy as np
from matminer.featurizers.base import BaseFeaturizer

from skdynemb.transformers.dynamic import DynamicEmbeddingTransformer


class DynamicEmbeddingFeaturizer(BaseFeaturizer):
    """Atom-averaged hidden features of a pretrained GNN for one structure per row.

    ``featurize_dataframe(df, "structure")`` runs the whole column through one batched
    extractor (``featurize_many`` is overridden), so no model is spawned per row or process.
    Parameters are those of :class:`~skdynemb.DynamicEmbeddingTransformer` (pooling is "mean"),
    with the same default backbone, ``"alignn-ff"`` (best downstream; a 60 MB one-time weights
    download, ~25x slower than CGCNN); ``backbone="cgcnn-mp-eform"`` is the fast option shipped
    inside the package, with no download.
    """

    def __init__(self, backbone="alignn-ff", weights=None, layer=-1, compound_features=None,
                 standardize=None, device="auto", batch_size=None, memory=None):
        self.backbone = backbone
        self.weights = weights
        self.layer = layer
        self.compound_features = compound_features
        self.standardize = standardize
        self.device = device
        self.batch_size = batch_size
        self.memory = memory

    def fit(self, X=None, y=None, **kwargs):
        """Load the backbone (no data needed)."""
        self.transformer_ = DynamicEmbeddingTransformer(
            backbone=self.backbone, weights=self.weights, layer=self.layer, pooling="mean",
            compound_features=self.compound_features, standardize=self.standardize, device=self.device,
            batch_size=self.batch_size,
            memory=self.memory, progress=False,
        ).fit()
        return self

    def _fitted(self) -> DynamicEmbeddingTransformer:
        if not hasattr(self, "transformer_"):
            self.fit()
        return self.transformer_

    def featurize(self, structure):
        """Feature vector (list of floats) of one structure."""
        return self._fitted().transform([structure])[0].tolist()

    def featurize_many(self, entries, ignore_errors=False, return_errors=False, pbar=True):
        """Featurize all entries in batches.

        With ``ignore_errors=False`` the first structure that cannot be featurized raises
        :class:`~skdynemb.errors.InvalidStructureError` naming its row index. With
        ``ignore_errors=True`` exactly those structures get NaN rows (and, with
        ``return_errors``, the reason in the last column); the other rows are computed as usual.
        Failures that are not one structure's fault (e.g. out of memory) raise either way.
        """
        from skdynemb.errors import InvalidStructureError
        from skdynemb.structures import to_crystal

        structures = [e[0] if isinstance(e, (tuple, list, np.ndarray)) else e for e in entries]
        transformer = self._fitted()
        transformer.set_params(progress=bool(pbar))
        crystals, indices, reasons = [], [], {}
        for i, s in enumerate(structures):
            try:
                crystals.append(to_crystal(s, index=i))
                indices.append(i)
            except InvalidStructureError as exc:
                if not ignore_errors:
                    raise
                reasons[i] = str(exc)
        compounds, errors = transformer._compounds(crystals, indices, stop_on_error=not ignore_errors)
        if errors and not ignore_errors:
            raise InvalidStructureError(*errors[0])
        reasons.update({i: str(InvalidStructureError(i, sid, why)) for i, sid, why in errors})
        n = len(self.feature_labels())
        means = dict(zip(indices, compounds))
        rows = [
            [np.nan] * n if i in reasons else [float(v) for v in (means[i].fractions @ means[i].features).astype(np.float32)]
            for i in range(len(structures))
        ]
        if return_errors:
            return [r + [reasons.get(i, np.nan)] for i, r in enumerate(rows)]
        return rows

    def feature_labels(self):
        """Names of the columns ``featurize`` fills, in order: ``dynemb_<stage>_<i>``.

        Returns
        -------
        labels : list of str
            One per feature, unique (e.g. ``dynemb_conv4_0`` .. ``dynemb_conv4_63`` for CGCNN's
            last stage). Loads the backbone if needed; no data are read.
        """
        return [f"dynemb_{name}" for name in self._fitted().get_feature_names_out()]

    def citations(self):
        """Works to cite for these features, as matminer expects them.

        Returns
        -------
        citations : list of str
            BibTeX entries: the method's paper, then the works behind ``backbone`` (network and
            training data); see :func:`skdynemb.citations.citations`.
        """
        from skdynemb.citations import citations

        return citations(self.backbone)

    def implementors(self):
        """Who implemented this featurizer, as matminer expects it.

        Returns
        -------
        implementors : list of str
            Names (the authors listed in the package metadata and ``CITATION.cff``).
        """
        return ["skdynemb developers"]
